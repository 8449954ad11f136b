"""Rows of the ``traces``, ``spans`` and ``assessments`` tables, from what MLflow stores.

Pure functions, no I/O: each store backend fetches MLflow's own records (SQL rows, the file
store's YAML and JSON, the tracking server's JSON) and turns them into rows here (spans in
:mod:`.spans`), then into Arrow record batches with :func:`traces_batch`, :func:`spans_batch`,
:func:`assessments_batch`.

MLflow keeps one trace in three shapes, and every shape gives the same row:

- SQL stores: ``trace_info`` (with, since MLflow 3.18, denormalized ``trace_name``,
  ``session_id``, token and cost columns whose metadata keys it no longer stores),
  ``trace_tags``, ``trace_request_metadata``, ``trace_metrics``; ``spans`` (the span's JSON in
  ``content``), ``span_metrics``; ``assessments`` (value, error and metadata as JSON text).
- JSON: a TraceInfo v3 (the file store's ``trace_info.yaml`` with its ``tags/`` and
  ``request_metadata/`` files, or the tracking server's answer), a span as MLflow serializes it
  (``traces.json``, the SQL ``content``) or as an OpenTelemetry protobuf JSON (the server's
  ``traces/batchGet``), an assessment as ``Assessment.to_dictionary()`` writes it.

Example::

    >>> row = trace_from_json({"trace_id": "tr-1", "state": "OK",
    ...     "trace_location": {"mlflow_experiment": {"experiment_id": "3"}},
    ...     "request_time": "2024-01-01T00:00:00.5Z", "execution_duration": "1.5s",
    ...     "trace_metadata": {"mlflow.trace.tokenUsage": '{"input_tokens": 4}'}})
    >>> row["experiment_id"], row["request_time"], row["execution_duration_ms"], row["input_tokens"]
    ('3', 1704067200500000, 1500, 4)
    >>> traces_batch([row]).num_rows
    1
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import pyarrow as pa

from ... import tables

# MLflow's own keys (mlflow/tracing/constant.py, 3.18), spelled out so that reading needs no mlflow.
TRACE_NAME_TAG = "mlflow.traceName"
SESSION_KEY = "mlflow.trace.session"
USER_KEY = "mlflow.trace.user"
SOURCE_RUN_KEY = "mlflow.sourceRun"
TOKEN_USAGE_KEY = "mlflow.trace.tokenUsage"
COST_KEY = "mlflow.trace.cost"

#: trace_info's token columns (MLflow 3.18+) and the tokenUsage JSON key each stands for.
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens", "cache_creation_input_tokens_above_1hr")
COST_COLUMNS = ("input_cost", "output_cost", "total_cost")
#: Metadata keys MLflow 3.18 moves into trace_info's columns instead of trace_request_metadata.
PROMOTED_METADATA_KEYS = frozenset({SESSION_KEY, TOKEN_USAGE_KEY, COST_KEY})

_TRACE_STATES_V2 = {"OK": "OK", "ERROR": "ERROR", "IN_PROGRESS": "IN_PROGRESS",
                    "TRACE_STATUS_UNSPECIFIED": "STATE_UNSPECIFIED"}


# ----------------------------------------------------------------------------- traces

def trace_row(*, trace_id: str, experiment_id, request_time_us, execution_duration_ms, state,
              client_request_id=None, request_preview=None, response_preview=None,
              tags: Mapping | None = None, metadata: Mapping | None = None,
              metrics: Mapping | None = None) -> dict:
    """One ``traces`` row from a TraceInfo's fields, as MLflow's ``TraceInfo`` holds them.

    Name, session, user, source run, tokens and costs are read from the tags and metadata
    exactly where MLflow's ``TraceInfo`` keeps them.

    Example::

        >>> trace_row(trace_id="tr-1", experiment_id=3, request_time_us=1000,
        ...           execution_duration_ms=5, state="OK", tags={"mlflow.traceName": "qa"})["trace_name"]
        'qa'
    """
    tags = dict(tags or {})
    metadata = dict(metadata or {})
    usage = json_object(metadata.get(TOKEN_USAGE_KEY))
    cost = json_object(metadata.get(COST_KEY))
    return {
        "trace_id": trace_id,
        "experiment_id": str(experiment_id),
        "request_time": request_time_us,
        "execution_duration_ms": int_or_none(execution_duration_ms),
        "state": state,
        "trace_name": tags.get(TRACE_NAME_TAG),
        "client_request_id": client_request_id or None,
        "session_id": metadata.get(SESSION_KEY),
        "user_id": metadata.get(USER_KEY),
        "source_run_id": metadata.get(SOURCE_RUN_KEY),
        "request_preview": request_preview,
        "response_preview": response_preview,
        **{column: int_or_none(usage.get(column)) for column in TOKEN_COLUMNS[:5]},
        **{column: float_or_none(cost.get(column)) for column in COST_COLUMNS},
        "tags": tags,
        "request_metadata": metadata,
        "trace_metrics": {key: float_or_none(value) for key, value in (metrics or {}).items()},
    }


def trace_from_sql(info: Mapping, tags: Mapping, metadata: Mapping, metrics: Mapping | None = None) -> dict:
    """A ``traces`` row from one ``trace_info`` row (a dict by column name) and its tags,
    request metadata and trace metrics, as MLflow's ``SqlTraceInfo.to_mlflow_entity`` reads them.

    A store written by MLflow 3.18 or later keeps the trace name, session, token counts and
    costs in ``trace_info`` columns; older stores keep them in tags and metadata. Both read the
    same.

    Example::

        >>> info = {"request_id": "tr-1", "experiment_id": 3, "timestamp_ms": 1000,
        ...         "execution_time_ms": 5, "status": "OK", "trace_name": "qa",
        ...         "session_id": "s-1", "input_tokens": 4, "total_cost": 0.5}
        >>> row = trace_from_sql(info, {"mlflow.traceName": "old"}, {"mlflow.user": "ann"})
        >>> row["trace_name"], row["session_id"], row["input_tokens"], row["total_cost"]
        ('qa', 's-1', 4, 0.5)
        >>> sorted(row["request_metadata"])
        ['mlflow.trace.cost', 'mlflow.trace.session', 'mlflow.trace.tokenUsage', 'mlflow.user']
    """
    tags = dict(tags)
    metadata = dict(metadata)
    if "trace_name" in info:
        tags.pop(TRACE_NAME_TAG, None)
        if info["trace_name"] is not None:
            tags[TRACE_NAME_TAG] = info["trace_name"]
    if "session_id" in info:
        # MLflow 3.18 (mlflow/store/tracking/utils/trace_analytics.py): the promoted keys are
        # rebuilt from the columns, and rows left in the metadata table are ignored.
        metadata = {key: value for key, value in metadata.items() if key not in PROMOTED_METADATA_KEYS}
        metadata.update(_metadata_from_columns(info))
    return trace_row(
        trace_id=info["request_id"], experiment_id=info["experiment_id"],
        request_time_us=_ms_to_us(info["timestamp_ms"]), execution_duration_ms=info.get("execution_time_ms"),
        state=info["status"], client_request_id=info.get("client_request_id"),
        request_preview=info.get("request_preview"), response_preview=info.get("response_preview"),
        tags=tags, metadata=metadata, metrics=metrics,
    )


def _metadata_from_columns(info: Mapping) -> dict[str, str]:
    metadata = {}
    if info.get("session_id") is not None:
        metadata[SESSION_KEY] = info["session_id"]
    usage = {column: int(info[column]) for column in TOKEN_COLUMNS if info.get(column) is not None}
    if usage:
        metadata[TOKEN_USAGE_KEY] = json.dumps(usage)
    cost = {column: float(info[column]) for column in COST_COLUMNS if info.get(column) is not None}
    if cost:
        metadata[COST_KEY] = json.dumps(cost)
    return metadata


def trace_from_json(info: Mapping, tags: Mapping | None = None, metadata: Mapping | None = None) -> dict:
    """A ``traces`` row from a TraceInfo as JSON: the tracking server's v3 answer (protobuf
    JSON), the file store's ``trace_info.yaml`` (``tags``/``metadata`` read from its folders),
    or the older v2 form (``request_id``, ``timestamp_ms``, ``status``).

    Example::

        >>> trace_from_json({"request_id": "tr-2", "experiment_id": "1", "timestamp_ms": 7,
        ...                  "execution_time_ms": 2, "status": "OK"})["request_time"]
        7000
    """
    if "request_id" in info and "trace_id" not in info:
        return trace_row(
            trace_id=info["request_id"], experiment_id=info["experiment_id"],
            request_time_us=_ms_to_us(info.get("timestamp_ms")), execution_duration_ms=info.get("execution_time_ms"),
            state=_TRACE_STATES_V2.get(info.get("status"), info.get("status")),
            tags=tags if tags is not None else _key_values(info.get("tags")),
            metadata=metadata if metadata is not None else _key_values(info.get("request_metadata")),
        )
    location = info.get("trace_location") or {}
    experiment_id = (location.get("mlflow_experiment") or {}).get("experiment_id")
    duration = info.get("execution_duration_ms")
    if duration is None and info.get("execution_duration") is not None:
        duration = _duration_ms(info["execution_duration"])
    return trace_row(
        trace_id=info["trace_id"], experiment_id=experiment_id,
        request_time_us=rfc3339_to_us(info.get("request_time")), execution_duration_ms=duration,
        state=info.get("state"),
        client_request_id=info.get("client_request_id"),
        request_preview=info.get("request_preview"), response_preview=info.get("response_preview"),
        tags=tags if tags is not None else info.get("tags") or {},
        metadata=metadata if metadata is not None else info.get("trace_metadata") or {},
    )


# ----------------------------------------------------------------------------- assessments

def assessment_from_sql(row: Mapping, experiment_id) -> dict:
    """An ``assessments`` row from one SQL ``assessments`` row (a dict by column name).

    Example::

        >>> row = {"assessment_id": "a-1", "trace_id": "tr-1", "name": "ok",
        ...        "assessment_type": "feedback", "value": "true", "error": None,
        ...        "created_timestamp": 5, "last_updated_timestamp": 6, "source_type": "HUMAN",
        ...        "valid": 1, "assessment_metadata": '{"round": 1}'}
        >>> got = assessment_from_sql(row, 3)
        >>> got["value"], got["value_type"], got["numeric_value"], got["valid"], got["metadata"]
        ('true', 'boolean', 1.0, True, {'round': '1'})
    """
    error = json_object(row.get("error"))
    return assessment_row(
        assessment_id=row["assessment_id"], trace_id=row["trace_id"], experiment_id=experiment_id,
        run_id=row.get("run_id"), span_id=row.get("span_id"), name=row.get("name"),
        assessment_type=row.get("assessment_type"), value=_json_loads(row.get("value")),
        error_code=error.get("error_code"), error_message=error.get("error_message"),
        source_type=row.get("source_type"), source_id=row.get("source_id"), rationale=row.get("rationale"),
        valid=None if row.get("valid") is None else bool(row["valid"]), overrides=row.get("overrides"),
        metadata=json_object(row.get("assessment_metadata")),
        create_time_us=_ms_to_us(row.get("created_timestamp")),
        last_update_time_us=_ms_to_us(row.get("last_updated_timestamp")),
    )


def assessment_from_json(assessment: Mapping, experiment_id, trace_id: str | None = None) -> dict:
    """An ``assessments`` row from an assessment as ``Assessment.to_dictionary()`` writes it
    (the file store's ``assessments/<id>.yaml``, a TraceInfo's ``assessments`` from the server).

    Example::

        >>> got = assessment_from_json({"assessment_id": "a-2", "trace_id": "tr-1",
        ...     "assessment_name": "expected", "create_time": "2024-01-01T00:00:00Z",
        ...     "expectation": {"serialized_value": {"serialization_format": "JSON_FORMAT",
        ...                                          "value": '{"a": [1, 2]}'}}}, "3")
        >>> got["assessment_type"], got["value"], got["value_type"], got["valid"]
        ('expectation', '{"a": [1, 2]}', 'object', True)
    """
    source = assessment.get("source") or {}
    error: Mapping = {}
    if "feedback" in assessment:
        kind, body = "feedback", assessment["feedback"] or {}
        value = body.get("value")
        error = body.get("error") or {}
    elif "expectation" in assessment:
        kind, body = "expectation", assessment["expectation"] or {}
        serialized = body.get("serialized_value")
        value = _json_loads(serialized.get("value")) if serialized else body.get("value")
    elif "issue" in assessment:
        kind, value = "issue", assessment["issue"]
    else:
        kind, value = None, None
    valid = assessment.get("valid")
    return assessment_row(
        assessment_id=assessment["assessment_id"], trace_id=trace_id or assessment.get("trace_id"),
        experiment_id=experiment_id, run_id=assessment.get("run_id") or None,
        span_id=assessment.get("span_id") or None, name=assessment.get("assessment_name"), assessment_type=kind,
        value=value, error_code=error.get("error_code"), error_message=error.get("error_message"),
        source_type=source.get("source_type"), source_id=source.get("source_id"),
        rationale=assessment.get("rationale"), valid=True if valid is None else bool(valid),
        overrides=assessment.get("overrides") or None, metadata=assessment.get("metadata") or {},
        create_time_us=rfc3339_to_us(assessment.get("create_time")),
        last_update_time_us=rfc3339_to_us(assessment.get("last_update_time")),
    )


def assessment_row(*, assessment_id, trace_id, experiment_id, run_id, span_id, name, assessment_type, value,
                   error_code, error_message, source_type, source_id, rationale, valid, overrides,
                   metadata: Mapping, create_time_us, last_update_time_us) -> dict:
    """One ``assessments`` row; ``value`` is the assessment's Python value (JSON-encoded here).

    ``numeric_value``: the value when it is a number, 1.0 / 0.0 for a boolean, else null.

    Example::

        >>> assessment_row(assessment_id="a", trace_id="t", experiment_id=1, run_id=None,
        ...     span_id=None, name="n", assessment_type="feedback", value=0.5, error_code=None,
        ...     error_message=None, source_type="CODE", source_id=None, rationale=None,
        ...     valid=True, overrides=None, metadata={}, create_time_us=None,
        ...     last_update_time_us=None)["numeric_value"]
        0.5
    """
    return {
        "assessment_id": assessment_id, "trace_id": trace_id, "experiment_id": str(experiment_id),
        "run_id": run_id, "span_id": span_id, "name": name, "assessment_type": assessment_type,
        "value": json.dumps(value, ensure_ascii=False), "value_type": json_type(value),
        "numeric_value": float(value) if isinstance(value, (bool, int, float)) else None,
        "error_code": error_code, "error_message": error_message,
        "source_type": source_type, "source_id": source_id, "rationale": rationale, "valid": valid,
        "overrides": overrides, "metadata": {str(key): _text(item) for key, item in metadata.items()},
        "create_time": create_time_us, "last_update_time": last_update_time_us,
    }


def json_type(value) -> str:
    """The JSON type of a decoded value: boolean, number, string, object, array or null.

    Example::

        >>> [json_type(v) for v in (True, 2, "x", {}, [], None)]
        ['boolean', 'number', 'string', 'object', 'array', 'null']
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    return "array"


# ----------------------------------------------------------------------------- batches

def traces_batch(rows: Iterable[dict]) -> pa.RecordBatch:
    """An Arrow batch of ``traces`` rows with the table's exact schema.

    Example::

        >>> traces_batch([]).schema.names[:2]
        ['trace_id', 'experiment_id']
    """
    return _batch(list(rows), tables.arrow_schema(tables.TRACES))


def spans_batch(rows: Iterable[dict], with_content: bool = False) -> pa.RecordBatch:
    """An Arrow batch of ``spans`` rows; ``with_content`` as in :func:`.spans.span_row`.

    Example::

        >>> spans_batch([], with_content=True).schema.names[-1]
        'events'
    """
    return _batch(list(rows), tables.spans_arrow_schema(with_content))


def assessments_batch(rows: Iterable[dict]) -> pa.RecordBatch:
    """An Arrow batch of ``assessments`` rows.

    Example::

        >>> assessments_batch([]).num_rows
        0
    """
    return _batch(list(rows), tables.arrow_schema(tables.ASSESSMENTS))


def _batch(rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for field in schema:
        values = [row[field.name] for row in rows]
        if pa.types.is_map(field.type):
            values = [list(value.items()) for value in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# ----------------------------------------------------------------------------- small parsers

def rfc3339_to_us(text) -> int | None:
    """Epoch microseconds of an RFC 3339 time as protobuf JSON writes it (nanoseconds cut).

    Example::

        >>> rfc3339_to_us("2024-01-01T00:00:00.123456789Z")
        1704067200123456
    """
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        moment = text if text.tzinfo else text.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1_000_000)
    text = str(text).strip().replace("z", "Z")
    zone = "+00:00"
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        text, zone = text[:-6], text[-6:]
    fraction = ""
    if "." in text:
        text, fraction = text.split(".", 1)
    moment = datetime.fromisoformat(text + zone)
    micros = int((fraction + "000000")[:6])
    return int(moment.timestamp()) * 1_000_000 + micros


def _duration_ms(text) -> int | None:
    # protobuf JSON Duration: "1.250s"
    if isinstance(text, (int, float)):
        return int(text)
    return round(float(str(text).rstrip("s")) * 1000)


def _ms_to_us(value) -> int | None:
    return None if value is None else int(value) * 1000


def int_or_none(value) -> int | None:
    """``value`` as an int when it is a whole number (text or number), else ``None``.

    Example::

        >>> int_or_none("12"), int_or_none(3.0), int_or_none(True), int_or_none("x")
        (12, 3, None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return int(number) if math.isfinite(number) and number.is_integer() else None


def float_or_none(value) -> float | None:
    """``value`` as a float, or ``None`` when it is not a number (booleans are not).

    Example::

        >>> float_or_none("0.5"), float_or_none(None)
        (0.5, None)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def string_or_none(value) -> str | None:
    """``value`` when it is a string, else ``None``.

    Example::

        >>> string_or_none("gpt"), string_or_none(3)
        ('gpt', None)
    """
    return value if isinstance(value, str) else None


def first_present(*values):
    """The first of ``values`` that is not ``None``.

    Example::

        >>> first_present(None, 0, 5)
        0
    """
    return next((value for value in values if value is not None), None)


def _json_loads(text):
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def json_value(text):
    """The value of a span attribute: MLflow stores each as JSON text (non-JSON text stays as is).

    Example::

        >>> json_value('"gpt-x"'), json_value("plain")
        ('gpt-x', 'plain')
    """
    return _json_loads(text) if isinstance(text, str) else text


def json_object(value) -> dict:
    """``value`` (a mapping or its JSON text) as a dict; anything else is an empty dict.

    Example::

        >>> json_object('{"a": 1}'), json_object("[1]")
        ({'a': 1}, {})
    """
    if isinstance(value, str):
        value = _json_loads(value)
    return dict(value) if isinstance(value, Mapping) else {}


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _key_values(items) -> dict:
    if isinstance(items, Mapping):
        return dict(items)
    return {item["key"]: item.get("value") for item in items or []}
