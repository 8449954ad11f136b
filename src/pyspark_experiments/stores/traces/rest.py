"""A tracking server's traces (MLflow's v3 traces API) read into Arrow batches.

Every function takes ``call(method, path, params=None, body=None, raw=False)``: one HTTP call
to ``<server>/<path>`` answering the parsed JSON object, or with ``raw`` the body's bytes (GET
sends ``params`` as the query, POST sends ``body`` as JSON). The store backend passes its
retrying, deadline-bound client. Artifacts are asked for ``raw``: the server sends
``traces.json`` without a charset, and JSON is UTF-8 whatever a text decoder would guess.

- :func:`search_trace_infos`: ``POST api/3.0/mlflow/traces/search`` (``locations``, ``filter``,
  ``max_results`` up to :data:`SEARCH_PAGE_SIZE`, ``page_token``), every page. Its TraceInfo
  JSON holds the tags, metadata and assessments: ``traces`` and ``assessments`` rows.
- :func:`read_span_rows`: spans where MLflow's own client finds them. A trace tagged
  ``mlflow.trace.spansLocation = TRACKING_STORE`` (every trace a SQL-backed 3.x server
  records) through ``GET api/3.0/mlflow/traces/batchGet`` (:data:`BATCH_GET_SIZE` traces per
  call, spans as OpenTelemetry protobuf JSON); any other trace's ``traces.json`` from its
  artifact location (``mlflow-artifacts:/...`` through ``api/2.0/mlflow-artifacts/artifacts``).

Example::

    >>> pages = [{"traces": [{"trace_id": "tr-1", "state": "OK",
    ...     "trace_location": {"mlflow_experiment": {"experiment_id": "1"}},
    ...     "request_time": "2024-01-01T00:00:00Z"}]}]
    >>> infos = search_trace_infos(lambda method, path, params=None, body=None: pages.pop(), ["1"])
    >>> traces_from_infos(infos).column("trace_id").to_pylist()
    ['tr-1']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlparse

import pyarrow as pa

from ...errors import MalformedRecordError
from .convert import (
    assessment_from_json,
    assessments_batch,
    rfc3339_to_us,
    spans_batch,
    trace_from_json,
    traces_batch,
)
from .selection import TraceSelection
from .spans import span_row

SEARCH_PATH = "api/3.0/mlflow/traces/search"
BATCH_GET_PATH = "api/3.0/mlflow/traces/batchGet"
ARTIFACTS_PATH = "api/2.0/mlflow-artifacts/artifacts"
#: The server's limit on ``max_results`` of ``traces/search`` (MLflow 3.18).
SEARCH_PAGE_SIZE = 500
#: Traces per ``traces/batchGet`` call, as MLflow's client sends them.
BATCH_GET_SIZE = 10
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"
ARTIFACT_LOCATION_TAG = "mlflow.artifactLocation"

Call = Callable[..., dict]


def search_trace_infos(call: Call, experiment_ids: Sequence[str], filter_string: str | None = None) -> list[dict]:
    """Every TraceInfo JSON of ``experiment_ids`` matching ``filter_string``, all pages.

    Example::

        >>> answers = [{"traces": [{"trace_id": "b"}]}, {"traces": [{"trace_id": "a"}], "next_page_token": "t"}]
        >>> [info["trace_id"] for info in search_trace_infos(lambda *a, **k: answers.pop(), ["1"])]
        ['a', 'b']
    """
    body = {
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(experiment_id)}}
                      for experiment_id in experiment_ids],
        "max_results": SEARCH_PAGE_SIZE,
    }
    if filter_string:
        body["filter"] = filter_string
    found: list[dict] = []
    seen_tokens: set[str] = set()
    while True:
        answer = call("POST", SEARCH_PATH, body=body)
        page = answer.get("traces", [])
        if not isinstance(page, list):
            raise MalformedRecordError(f"POST {SEARCH_PATH}: expected a list in 'traces', got {type(page).__name__}")
        found.extend(page)
        token = answer.get("next_page_token") or None
        if token is None:
            return found
        if token in seen_tokens:
            raise MalformedRecordError(f"POST {SEARCH_PATH}: the server returned the same page token twice")
        seen_tokens.add(token)
        body = {**body, "page_token": token}


def selected_trace_infos(call: Call, selection: TraceSelection) -> list[dict]:
    """The TraceInfo JSON of the traces ``selection`` picks, by request time then id.

    Time and state are filtered on the server (``trace.timestamp_ms``, ``trace.status``);
    trace ids here, since a search filter cannot list them.

    Example::

        >>> selected_trace_infos(lambda *a, **k: {}, TraceSelection(experiment_ids=()))
        []
    """
    if not selection.experiment_ids or selection.trace_ids == ():
        return []
    clauses = []
    if selection.start_ms is not None:
        clauses.append(f"trace.timestamp_ms >= {int(selection.start_ms)}")
    if selection.end_ms is not None:
        clauses.append(f"trace.timestamp_ms < {int(selection.end_ms)}")
    infos = search_trace_infos(call, selection.experiment_ids, " AND ".join(clauses) or None)
    if selection.states:
        infos = [info for info in infos if info.get("state") in selection.states]
    if selection.trace_ids is not None:
        wanted = set(selection.trace_ids)
        infos = [info for info in infos if info.get("trace_id") in wanted]
    infos.sort(key=lambda info: (rfc3339_to_us(info.get("request_time")) or 0, info.get("trace_id")))
    return infos


def traces_from_infos(infos: Sequence[dict]) -> pa.RecordBatch:
    """The ``traces`` rows of TraceInfo JSON objects.

    Example::

        >>> traces_from_infos([]).num_rows
        0
    """
    return traces_batch(trace_from_json(info) for info in infos)


def assessments_from_infos(infos: Sequence[dict]) -> pa.RecordBatch:
    """The ``assessments`` rows held in TraceInfo JSON objects, by trace then creation time.

    Example::

        >>> assessments_from_infos([]).num_rows
        0
    """
    rows = []
    for info in infos:
        experiment_id = _experiment_id(info)
        found = [assessment_from_json(assessment, experiment_id, trace_id=info["trace_id"])
                 for assessment in info.get("assessments") or []]
        found.sort(key=lambda row: (row["create_time"] or 0, row["assessment_id"]))
        rows.extend(found)
    return assessments_batch(rows)


def read_spans(call: Call, infos: Sequence[dict], with_content: bool = False) -> pa.RecordBatch:
    """The ``spans`` rows of the traces of ``infos``, each trace's spans by start time.

    Example::

        >>> read_spans(lambda *a, **k: {}, []).num_rows
        0
    """
    return spans_batch(list(read_span_rows(call, infos, with_content)), with_content)


def read_span_rows(call: Call, infos: Sequence[dict], with_content: bool = False) -> Iterator[dict]:
    """The rows of :func:`read_spans`, a batch of traces at a time.

    Example::

        >>> list(read_span_rows(lambda *a, **k: {}, []))
        []
    """
    in_store = [info for info in infos if (info.get("tags") or {}).get(SPANS_LOCATION_TAG) == "TRACKING_STORE"]
    in_store_ids = {info["trace_id"] for info in in_store}
    spans_by_trace: dict[str, list[dict]] = {}
    for start in range(0, len(in_store), BATCH_GET_SIZE):
        batch = [info["trace_id"] for info in in_store[start:start + BATCH_GET_SIZE]]
        answer = call("GET", BATCH_GET_PATH, params={"trace_ids": batch})
        for trace in answer.get("traces") or []:
            trace_id = (trace.get("trace_info") or {}).get("trace_id")
            spans_by_trace[trace_id] = trace.get("spans") or []
    for info in infos:
        trace_id = info["trace_id"]
        spans = spans_by_trace.get(trace_id, []) if trace_id in in_store_ids else _artifact_spans(call, info)
        rows = [span_row(span, experiment_id=_experiment_id(info), trace_id=trace_id, with_content=with_content)
                for span in spans]
        rows.sort(key=lambda row: (row["start_time_ns"] is None, row["start_time_ns"] or 0, row["span_id"]))
        yield from rows


def _artifact_spans(call: Call, info: dict) -> list[dict]:
    location = (info.get("tags") or {}).get(ARTIFACT_LOCATION_TAG)
    if not location:
        return []
    parsed = urlparse(location)
    if parsed.scheme != "mlflow-artifacts":
        raise MalformedRecordError(
            f"trace {info['trace_id']}: its spans are at {location!r}, which the tracking server does not "
            "serve (only mlflow-artifacts:/ locations are read through it)"
        )
    path = f"{ARTIFACTS_PATH}/{parsed.path.strip('/')}/traces.json"
    content = call("GET", path, raw=True)
    try:
        answer = json.loads(content)
    except ValueError as error:
        raise MalformedRecordError(f"trace {info['trace_id']}: GET {path} is not JSON: {error}") from None
    return answer.get("spans") or []


def _experiment_id(info: dict) -> str | None:
    if "experiment_id" in info:
        return info["experiment_id"]
    return ((info.get("trace_location") or {}).get("mlflow_experiment") or {}).get("experiment_id")
