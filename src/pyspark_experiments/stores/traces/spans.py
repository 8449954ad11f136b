"""Rows of the ``spans`` table from a span in any form MLflow serializes it.

- ``Span.to_dict()`` JSON (a SQL store's ``spans.content``, the file store's ``traces.json``):
  ids base64, or hex as MLflow 3.5 wrote them;
- its older v2 form (``context``, ``parent_id``, ``start_time``);
- an OpenTelemetry protobuf span as JSON (a tracking server's ``traces/batchGet``), field names
  in snake_case or lowerCamelCase, attribute values as ``AnyValue``.

Example::

    >>> span = {"trace_id": "AAAAAAAAAAAAAAAAAAAAAQ==", "span_id": "AAAAAAAAAAI=",
    ...         "parent_span_id": None, "name": "chat", "start_time_unix_nano": 1500,
    ...         "end_time_unix_nano": 2000001500, "status": {"code": "STATUS_CODE_OK"},
    ...         "attributes": {"mlflow.traceRequestId": '"tr-1"', "mlflow.spanType": '"LLM"'}}
    >>> span_row(span, experiment_id="3")["span_id"]
    '0000000000000002'
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from .convert import first_present, float_or_none, int_or_none, json_object, json_value, string_or_none

# MLflow's span attribute keys (mlflow/tracing/constant.py, 3.18).
SPAN_INPUTS = "mlflow.spanInputs"
SPAN_OUTPUTS = "mlflow.spanOutputs"
SPAN_TYPE = "mlflow.spanType"
SPAN_TOKEN_USAGE = "mlflow.chat.tokenUsage"
SPAN_COST = "mlflow.llm.cost"
SPAN_MODEL = "mlflow.llm.model"
SPAN_PROVIDER = "mlflow.llm.provider"
REQUEST_ID_ATTRIBUTE = "mlflow.traceRequestId"

_SPAN_STATUS = {"STATUS_CODE_OK": "OK", "STATUS_CODE_ERROR": "ERROR", "STATUS_CODE_UNSET": "UNSET"}


def span_row(span: Mapping, *, experiment_id, trace_id: str | None = None, columns: Mapping | None = None,
             metrics: Mapping | None = None, with_content: bool = False) -> dict:
    """One ``spans`` row from a span as MLflow serializes it.

    ``span``: the JSON of ``Span.to_dict()`` (the SQL ``content`` column, the file store's
    ``traces.json``; ids base64 or, as MLflow 3.5 wrote them, hex), its older v2 form
    (``context``), or an OpenTelemetry protobuf span as JSON (the server's ``batchGet``).
    ``columns``: the SQL ``spans`` row, whose denormalized model and cost columns win;
    ``metrics``: its ``span_metrics``. Attribute values stay JSON text, as MLflow stores them;
    ``mlflow.spanInputs``/``mlflow.spanOutputs`` are the ``inputs``/``outputs`` columns
    instead, present only ``with_content``.

    Example::

        >>> span = {"trace_id": "AAAAAAAAAAAAAAAAAAAAAQ==", "span_id": "AAAAAAAAAAI=",
        ...         "parent_span_id": None, "name": "chat", "start_time_unix_nano": 1500,
        ...         "end_time_unix_nano": 2000001500, "status": {"code": "STATUS_CODE_OK"},
        ...         "attributes": {"mlflow.traceRequestId": '"tr-1"', "mlflow.spanType": '"LLM"',
        ...                        "mlflow.chat.tokenUsage": '{"input_tokens": 3}'}}
        >>> row = span_row(span, experiment_id="3")
        >>> row["trace_id"], row["span_id"], row["span_type"], row["duration_ms"], row["input_tokens"]
        ('tr-1', '0000000000000002', 'LLM', 2000.0, 3)
    """
    if "context" in span:
        parsed = _span_v2(span)
    elif isinstance(span.get("attributes"), list):
        parsed = _span_otel_proto(_snake_keys(span))
    else:
        parsed = _span_v3(span)
    attributes = parsed["attributes"]
    if trace_id is None:
        trace_id = json_value(attributes.get(REQUEST_ID_ATTRIBUTE))
    columns = columns or {}
    metrics = metrics or {}
    usage = json_object(json_value(attributes.get(SPAN_TOKEN_USAGE)))
    cost = json_object(json_value(attributes.get(SPAN_COST)))
    start, end = parsed["start_ns"], parsed["end_ns"]
    row = {
        "trace_id": trace_id,
        "experiment_id": str(experiment_id),
        "span_id": parsed["span_id"],
        "parent_span_id": parsed["parent_id"],
        "name": parsed["name"],
        "span_type": string_or_none(json_value(attributes.get(SPAN_TYPE))),
        "status": parsed["status"],
        "status_message": parsed["status_message"] or None,
        "start_time": None if start is None else start // 1000,
        "end_time": None if end is None else end // 1000,
        "start_time_ns": start,
        "end_time_ns": end,
        "duration_ms": None if start is None or end is None else (end - start) / 1e6,
        "model_name": first_present(columns.get("model_name"), string_or_none(json_value(attributes.get(SPAN_MODEL)))),
        "model_provider": first_present(columns.get("model_provider"),
                                 string_or_none(json_value(attributes.get(SPAN_PROVIDER)))),
        **{column: int_or_none(first_present(usage.get(column), metrics.get(column)))
           for column in ("input_tokens", "output_tokens", "total_tokens")},
        "cost": float_or_none(first_present(columns.get("total_cost"), cost.get("total_cost"), metrics.get("total_cost"))),
        "attributes": {key: value for key, value in attributes.items() if key not in (SPAN_INPUTS, SPAN_OUTPUTS)},
    }
    if with_content:
        row["inputs"] = attributes.get(SPAN_INPUTS)
        row["outputs"] = attributes.get(SPAN_OUTPUTS)
        row["events"] = json.dumps(parsed["events"], ensure_ascii=False)
    return row


def _span_v3(span: Mapping) -> dict:
    raw_trace_id = span.get("trace_id") or ""
    if _is_base64(raw_trace_id):
        span_id, parent_id = _b64_to_hex(span["span_id"]), _b64_to_hex(span.get("parent_span_id"))
    else:
        span_id, parent_id = span["span_id"], span.get("parent_span_id") or None
    status = span.get("status") or {}
    code = status.get("code") or "STATUS_CODE_UNSET"
    return {
        "span_id": span_id, "parent_id": parent_id, "name": span.get("name"),
        "start_ns": int_or_none(span.get("start_time_unix_nano")),
        "end_ns": int_or_none(span.get("end_time_unix_nano")) or None,
        "status": _SPAN_STATUS.get(code, code), "status_message": status.get("message"),
        "attributes": {key: _attribute_text(value) for key, value in (span.get("attributes") or {}).items()},
        "events": [{"name": event.get("name"), "time_unix_nano": int_or_none(event.get("time_unix_nano")),
                    "attributes": event.get("attributes") or {}} for event in span.get("events") or []],
    }


def _span_v2(span: Mapping) -> dict:
    context = span["context"]
    return {
        "span_id": _hex_id(context["span_id"]), "parent_id": _hex_id(span.get("parent_id")),
        "name": span.get("name"), "start_ns": int_or_none(span.get("start_time")),
        "end_ns": int_or_none(span.get("end_time")) or None,
        "status": _SPAN_STATUS.get(span.get("status_code"), span.get("status_code") or "UNSET"),
        "status_message": span.get("status_message"),
        "attributes": {key: _attribute_text(value) for key, value in (span.get("attributes") or {}).items()},
        "events": [{"name": event.get("name"), "time_unix_nano": int_or_none(event.get("timestamp")),
                    "attributes": event.get("attributes") or {}} for event in span.get("events") or []],
    }


def _span_otel_proto(span: Mapping) -> dict:
    status = span.get("status") or {}
    code = status.get("code") or "STATUS_CODE_UNSET"
    return {
        "span_id": _b64_to_hex(span["span_id"]), "parent_id": _b64_to_hex(span.get("parent_span_id")),
        "name": span.get("name"), "start_ns": int_or_none(span.get("start_time_unix_nano")),
        "end_ns": int_or_none(span.get("end_time_unix_nano")) or None,
        "status": _SPAN_STATUS.get(code, code), "status_message": status.get("message"),
        # Like Span.from_otel_proto: each attribute's decoded value, dumped as JSON.
        "attributes": {item["key"]: json.dumps(otel_any_value(item.get("value")), ensure_ascii=False)
                       for item in span["attributes"]},
        "events": [{"name": event.get("name"), "time_unix_nano": int_or_none(event.get("time_unix_nano")),
                    "attributes": {item["key"]: otel_any_value(item.get("value"))
                                   for item in event.get("attributes") or []}}
                   for event in map(_snake_keys, span.get("events") or [])],
    }


def _snake_keys(record: Mapping) -> dict:
    # Protobuf JSON names fields in lowerCamelCase unless the writer preserves proto names.
    return {re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower(): value for key, value in record.items()}


def otel_any_value(value: Mapping | None):
    """The Python value of an OpenTelemetry ``AnyValue`` in protobuf JSON.

    Example::

        >>> otel_any_value({"arrayValue": {"values": [{"intValue": "3"}, {"stringValue": "a"}]}})
        [3, 'a']
    """
    if not value:
        return None
    (kind, inner), = value.items()
    kind = kind.replace("_", "").lower()
    if kind == "arrayvalue":
        return [otel_any_value(item) for item in (inner or {}).get("values", [])]
    if kind == "kvlistvalue":
        return {item["key"]: otel_any_value(item.get("value")) for item in (inner or {}).get("values", [])}
    if kind == "intvalue":
        return int(inner)
    if kind == "doublevalue":
        return float(inner)
    if kind == "bytesvalue":
        return base64.b64decode(inner)
    return inner


def _attribute_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _b64_to_hex(text) -> str | None:
    if not text:
        return None
    return format(int.from_bytes(base64.b64decode(text), "big"), "016x")


def _hex_id(text) -> str | None:
    if not text:
        return None
    return format(int(text, 16), "016x") if text.startswith("0x") else text
