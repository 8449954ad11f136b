"""A tracking server's traces (MLflow's v3 traces API) read into Arrow batches.

Every function takes ``call(method, endpoint, params=None, body=None, api="mlflow", raw=False)``,
the shape of :meth:`~.client.RestClient.call` (its auth, retries, deadlines and fault handling):
one HTTP call answering the parsed JSON object, or with ``raw`` the body's bytes (GET sends
``params`` as the query, POST sends ``body`` as JSON). Artifacts are asked for ``raw``: the
server sends ``traces.json`` without a charset, and JSON is UTF-8 whatever a text decoder
would guess. A malformed record goes to ``problems`` (:func:`~..traces.reading.record_or_skip`).

- :func:`search_trace_infos`: ``POST api/3.0/mlflow/traces/search`` (``locations``, ``filter``,
  ``max_results`` up to :data:`SEARCH_PAGE_SIZE`, ``page_token``), every page. Its TraceInfo
  JSON holds the tags, metadata and assessments: ``traces`` and ``assessments`` rows.
- :func:`read_span_rows`: spans where MLflow's own client finds them. A trace tagged
  ``mlflow.trace.spansLocation = TRACKING_STORE`` (every trace a SQL-backed 3.x server
  records) through ``GET api/3.0/mlflow/traces/batchGet`` (:data:`BATCH_GET_SIZE` traces per
  call, spans as OpenTelemetry protobuf JSON); any other trace's ``traces.json`` from its
  artifact location (``mlflow-artifacts:/...`` through ``api/2.0/mlflow-artifacts/artifacts``).

:func:`plan_trace_tables` and :func:`read_trace_tables` are the REST store's: a partition is a
:class:`~..traces.reading.TraceChunk` of one experiment's traces, which its read finds again
with one search bounded by the chunk's first and last request time.

Example::

    >>> pages = [{"traces": [{"trace_id": "tr-1", "state": "OK",
    ...     "trace_location": {"mlflow_experiment": {"experiment_id": "1"}},
    ...     "request_time": "2024-01-01T00:00:00Z"}]}]
    >>> infos = search_trace_infos(lambda method, endpoint, params=None, body=None, api=None: pages.pop(), ["1"])
    >>> traces_from_infos(infos).column("trace_id").to_pylist()
    ['tr-1']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlparse

import pyarrow as pa

from ... import tables
from ...errors import MalformedRecordError, StoreNotFoundError, UnsupportedStoreError
from ..base import Partition, Selection
from ..fingerprints import TRACE_FINGERPRINT_PARTS, fingerprint, text_digest
from ..problems import Problems
from ..traces.convert import (
    assessment_from_json,
    assessments_batch,
    rfc3339_to_us,
    spans_batch,
    trace_from_json,
    traces_batch,
)
from ..traces.reading import TraceChunk, plan_trace_partitions, record_or_skip, span_rows, trace_selection
from ..traces.selection import TraceSelection
from .work import RestWork

#: The API of MLflow 3's traces (``<server>/api/3.0/mlflow/``, see ``RestClient.url``).
TRACES_API = "mlflow-v3"
SEARCH_PATH = "traces/search"
BATCH_GET_PATH = "traces/batchGet"
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
        answer = call("POST", SEARCH_PATH, body=body, api=TRACES_API)
        page = answer.get("traces", [])
        if not isinstance(page, list):
            raise MalformedRecordError(f"POST {SEARCH_PATH}: expected a list in 'traces', got {type(page).__name__}")
        if not all(isinstance(info, dict) and isinstance(info.get("trace_id"), str) for info in page):
            raise MalformedRecordError(f"POST {SEARCH_PATH}: a trace without a 'trace_id' in 'traces'")
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


def traces_from_infos(infos: Sequence[dict], problems: Problems | None = None) -> pa.RecordBatch:
    """The ``traces`` rows of TraceInfo JSON objects.

    Example::

        >>> traces_from_infos([]).num_rows
        0
    """
    rows = (record_or_skip(problems, f"trace {info['trace_id']}", lambda: trace_from_json(info)) for info in infos)
    return traces_batch(row for row in rows if row is not None)


def assessments_from_infos(infos: Sequence[dict], problems: Problems | None = None) -> pa.RecordBatch:
    """The ``assessments`` rows held in TraceInfo JSON objects, by trace then creation time.

    Example::

        >>> assessments_from_infos([]).num_rows
        0
    """
    rows = []
    for info in infos:
        experiment_id = _experiment_id(info)
        found = [row for row in (
            record_or_skip(problems, f"trace {info['trace_id']}, assessment {index}",
                           lambda: assessment_from_json(assessment, experiment_id, trace_id=info["trace_id"]))
            for index, assessment in enumerate(info.get("assessments") or [])) if row is not None]
        found.sort(key=lambda row: (row["create_time"] or 0, row["assessment_id"]))
        rows.extend(found)
    return assessments_batch(rows)


def read_spans(call: Call, infos: Sequence[dict], with_content: bool = False,
               problems: Problems | None = None) -> pa.RecordBatch:
    """The ``spans`` rows of the traces of ``infos``, each trace's spans by start time.

    Example::

        >>> read_spans(lambda *a, **k: {}, []).num_rows
        0
    """
    return spans_batch(list(read_span_rows(call, infos, with_content, problems)), with_content)


def read_span_rows(call: Call, infos: Sequence[dict], with_content: bool = False,
                   problems: Problems | None = None) -> Iterator[dict]:
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
        answer = call("GET", BATCH_GET_PATH, params={"trace_ids": batch}, api=TRACES_API)
        for trace in answer.get("traces") or []:
            trace_id = (trace.get("trace_info") or {}).get("trace_id")
            spans_by_trace[trace_id] = trace.get("spans") or []
    for info in infos:
        trace_id = info["trace_id"]
        spans = spans_by_trace.get(trace_id, []) if trace_id in in_store_ids else record_or_skip(
            problems, f"trace {trace_id}", lambda: _artifact_spans(call, info))
        yield from span_rows(problems, spans, experiment_id=_experiment_id(info), trace_id=trace_id,
                             with_content=with_content)


def _artifact_spans(call: Call, info: dict) -> list[dict]:
    location = (info.get("tags") or {}).get(ARTIFACT_LOCATION_TAG)
    if not location:
        return []
    parsed = urlparse(location)
    if parsed.scheme != "mlflow-artifacts":
        raise UnsupportedStoreError(
            f"trace {info['trace_id']}: its spans are at {location!r}, which the tracking server does not "
            "serve (only mlflow-artifacts:/ locations are read through it)"
        )
    path = f"artifacts/{parsed.path.strip('/')}/traces.json"
    content = call("GET", path, api="mlflow-artifacts", raw=True)
    try:
        answer = json.loads(content)
    except ValueError as error:
        raise MalformedRecordError(f"trace {info['trace_id']}: GET {path} is not JSON: {error}") from None
    return answer.get("spans") or []


def _experiment_id(info: dict) -> str | None:
    if "experiment_id" in info:
        return info["experiment_id"]
    return ((info.get("trace_location") or {}).get("mlflow_experiment") or {}).get("experiment_id")


def trace_fingerprints(call: Call, experiment_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{trace_id: (experiment_id, fingerprint)}`` of every trace of ``experiment_ids`` from one
    search (every page; see :meth:`~..base.Store.trace_fingerprints`): the ``trace`` part
    digests the TraceInfo without its assessments, ``assessments`` its assessments. The server
    tells nothing of spans but the trace's state, duration and where its spans are: the
    ``spans`` part digests those (spans added to a trace in progress that move none of them
    are seen once the trace ends). A server without MLflow 3's traces API holds no traces.

    Example::

        >>> infos = {"traces": [{"trace_id": "tr-1", "state": "OK",
        ...          "trace_location": {"mlflow_experiment": {"experiment_id": "1"}}}]}
        >>> found = trace_fingerprints(lambda *a, **k: infos, ["1"])
        >>> found["tr-1"][0], found["tr-1"][1].startswith("trace=")
        ('1', True)
    """
    if not experiment_ids:
        return {}
    try:
        infos = search_trace_infos(call, experiment_ids)
    except StoreNotFoundError:
        return {}
    found = {}
    for info in infos:
        body = {key: value for key, value in info.items() if key != "assessments"}
        assessments = sorted(info.get("assessments") or [], key=lambda item: str(item.get("assessment_id")))
        spans = (info.get("state"), info.get("execution_duration"), (info.get("tags") or {}).get(SPANS_LOCATION_TAG))
        found[info["trace_id"]] = (str(_experiment_id(info)), fingerprint({
            "trace": text_digest(json.dumps(body, sort_keys=True)), "spans": text_digest(*spans),
            "assessments": text_digest(json.dumps(assessments, sort_keys=True)),
        }, TRACE_FINGERPRINT_PARTS))
    return found


def plan_trace_tables(store, selection: Selection) -> list[Partition]:
    """The REST store's partitions of a trace table: the selected traces (one search, every
    page) cut into :class:`~..traces.reading.TraceChunk`\\ s. A server older than MLflow 3's
    traces API (HTTP 404 there) holds no traces: no partitions.

    Example::

        >>> plan_trace_tables(store, Selection("traces", ("1",)))  # doctest: +SKIP
        [Partition(index=0, selection=..., work=...)]
    """
    try:
        infos = selected_trace_infos(store.client().call, trace_selection(selection))
    except StoreNotFoundError:
        return []
    units = [(_experiment_id(info), _request_ms(info), info["trace_id"]) for info in infos]
    return [Partition(p.index, selection, RestWork(store.connection, (p.work,)))
            for p in plan_trace_partitions(selection, units)]


def read_trace_tables(client, partition: Partition, problems: Problems) -> Iterator[pa.RecordBatch]:
    """Read one partition that :func:`plan_trace_tables` planned, with ``client``'s calls.

    Example::

        >>> next(read_trace_tables(client, partition, Problems("FAILFAST"))).num_rows  # doctest: +SKIP
        12
    """
    selection = partition.selection
    infos = chunk_trace_infos(client.call, partition.work.items[0])
    if selection.table == tables.TRACES:
        batch = traces_from_infos(infos, problems)
    elif selection.table == tables.SPANS:
        batch = read_spans(client.call, infos, selection.with_span_content, problems)
    else:
        batch = assessments_from_infos(infos, problems)
    if batch.num_rows:
        yield batch


def chunk_trace_infos(call: Call, chunk: TraceChunk) -> list[dict]:
    """The TraceInfo JSON of a chunk's traces, in the chunk's order: one search of its
    experiment between its first and last request time (a trace deleted since is absent).

    Example::

        >>> answer = {"traces": [{"trace_id": "b"}, {"trace_id": "x"}, {"trace_id": "a"}]}
        >>> [info["trace_id"] for info in chunk_trace_infos(lambda *a, **k: answer, TraceChunk("1", 5, 9, ("a", "b")))]
        ['a', 'b']
    """
    clauses = []
    if chunk.first_ms is not None:
        clauses.append(f"trace.timestamp_ms >= {int(chunk.first_ms)}")
    if chunk.last_ms is not None:
        clauses.append(f"trace.timestamp_ms <= {int(chunk.last_ms)}")
    found = {info["trace_id"]: info for info in search_trace_infos(call, [chunk.experiment_id], " AND ".join(clauses) or None)}
    return [found[trace_id] for trace_id in chunk.items if trace_id in found]


def _request_ms(info: dict) -> int | None:
    request_us = rfc3339_to_us(info.get("request_time"))
    return None if request_us is None else request_us // 1000
