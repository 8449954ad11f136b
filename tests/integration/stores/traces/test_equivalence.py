"""The ``traces``, ``spans`` and ``assessments`` rows of every store equal what mlflow answers.

Stores written by real mlflow 3.18 (tests/support/traces_store.py), each read by its store
backend's plan and read (``Store.plan`` / ``Store.read``, as the Spark source calls them):
SQLite, PostgreSQL and (in the slow tier) MariaDB (``stores/sql/traces.py``), a file store
(``stores/file/traces.py``), and a real ``mlflow server`` over SQLite (spans from
``traces/batchGet``) and one over a file store (spans from ``traces.json`` artifacts) through
its REST API (``stores/rest/traces.py``, through the store's ``RestClient``).
References: ``mlflow.search_traces(..., return_type="list")`` for which traces exist and
``MlflowClient.get_trace`` for each trace's info, spans and assessments, field by field.

Deliberate differences, asserted as such:

- ``spans.attributes`` holds every attribute as MLflow stores it (JSON text; mlflow's
  ``Span.attributes`` decodes them) except ``mlflow.spanInputs`` / ``mlflow.spanOutputs``,
  which are the ``inputs`` / ``outputs`` columns (with ``withSpanContent`` only).
- ``spans.start_time`` / ``end_time`` are microseconds (Spark's precision); the nanoseconds
  are ``start_time_ns`` / ``end_time_ns``.
- ``traces.trace_metrics`` is empty on every store: mlflow 3.18 keeps the table but writes no
  rows to it (token counts and costs are columns of ``trace_info``), and ``TraceInfo`` has no
  such field to compare with.
- ``assessments.metadata`` values are text: a non-string metadata value is JSON-encoded.
"""

from __future__ import annotations

import json
import sqlite3

import pyarrow as pa
import pytest

from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.file import traces as files
from pyspark_experiments.stores.sql import traces as sql
from pyspark_experiments.uri import resolve_tracking_uri
from support.stores import mysql_server, postgres_server  # noqa: F401  (the session fixtures)
from support.traces_store import *  # noqa: F401,F403  (the session fixtures)
from support.traces_store import TOKEN_USAGE, TRACE_EXPERIMENTS

STORES = ("sqlite", "file", "postgres", "rest", "rest-file", pytest.param("mysql", marks=pytest.mark.slow))


def _rows(batch: pa.RecordBatch) -> list[dict]:
    """Plain rows: timestamps as epoch microseconds, maps as dicts."""
    columns = {}
    for field, column in zip(batch.schema, batch.columns):
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64())
        values = column.to_pylist()
        if pa.types.is_map(field.type):
            values = [dict(value) for value in values]
        columns[field.name] = values
    return [dict(zip(columns, values)) for values in zip(*columns.values())] if columns else []


def _read(kind: str, location: str, experiment_ids: tuple[str, ...], **selection) -> dict:
    """``{"traces": rows, "spans": rows, "assessments": rows}`` read by the store backend, one
    partition per trace (so that every read crosses partition boundaries)."""
    store = open_store(resolve_tracking_uri(location))
    found = {}
    for table in ("traces", "spans", "assessments"):
        chosen = Selection(table, experiment_ids, rows_per_partition=1, with_span_content=True, **selection)
        batches = [batch for partition in store.plan(chosen) for batch in store.read(partition)]
        found[table] = [row for batch in batches for row in _rows(batch)]
    return found


@pytest.fixture(scope="module", params=STORES)
def store(request):
    """``{"kind", "uri", "ids", "experiment_ids", "ours", "traces"}``: a store, our rows of it and
    mlflow's ``Trace`` objects by id."""
    from mlflow import MlflowClient

    kind = request.param
    fixture = {"sqlite": "trace_sqlite_store", "file": "trace_file_store", "postgres": "trace_postgres_store",
               "rest": "trace_server", "rest-file": "trace_file_server", "mysql": "trace_mysql_store"}[kind]
    uri, ids = request.getfixturevalue(fixture)
    import mlflow

    client = MlflowClient(uri)
    experiment_ids = tuple(client.get_experiment_by_name(name).experiment_id for name in TRACE_EXPERIMENTS)
    # Inside the scope: mlflow resolves mlflow-artifacts:/ locations through the tracking URI.
    with _tracking(uri):
        found = mlflow.search_traces(locations=list(experiment_ids), return_type="list")
        traces = {trace.info.trace_id: client.get_trace(trace.info.trace_id) for trace in found}
    return {"kind": kind, "uri": uri, "ids": ids, "experiment_ids": experiment_ids,
            "ours": _read(kind, uri, experiment_ids), "traces": traces}


def _tracking(uri):
    import contextlib

    import mlflow

    @contextlib.contextmanager
    def scope():
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)

    return scope()


def test_the_same_traces_as_mlflow(store):
    ours = {row["trace_id"] for row in store["ours"]["traces"]}
    assert ours == set(store["traces"])
    assert len(ours) == 4 and store["ids"]["doomed"] not in ours
    assert {store["ids"][label] for label in ("answer", "answer-2", "failing", "solo")} == ours


def test_trace_rows_equal_mlflow_trace_info(store):
    for row in store["ours"]["traces"]:
        info = store["traces"][row["trace_id"]].info
        metadata = info.trace_metadata
        usage = info.token_usage or {}
        cost = info.cost or {}
        assert row["experiment_id"] == info.experiment_id
        assert row["request_time"] == info.request_time * 1000
        assert row["execution_duration_ms"] == info.execution_duration
        assert row["state"] == info.state.value
        assert row["trace_name"] == info.tags.get("mlflow.traceName")
        assert row["client_request_id"] == info.client_request_id
        assert row["session_id"] == metadata.get("mlflow.trace.session")
        assert row["user_id"] == metadata.get("mlflow.trace.user")
        assert row["source_run_id"] == metadata.get("mlflow.sourceRun")
        assert row["request_preview"] == info.request_preview
        assert row["response_preview"] == info.response_preview
        for column in ("input_tokens", "output_tokens", "total_tokens", "cache_read_input_tokens",
                       "cache_creation_input_tokens"):
            assert row[column] == usage.get(column), column
        for column in ("input_cost", "output_cost", "total_cost"):
            assert row[column] == cost.get(column), column
        assert row["tags"] == info.tags
        assert row["request_metadata"] == metadata
        assert row["trace_metrics"] == {}


def test_trace_rows_hold_what_was_logged(store):
    rows = {row["trace_id"]: row for row in store["ours"]["traces"]}
    ids = store["ids"]
    answer, second, failing, solo = (rows[ids[label]] for label in ("answer", "answer-2", "failing", "solo"))
    assert (answer["trace_name"], answer["session_id"], answer["user_id"]) == ("answer", "session-1", "dana")
    assert (answer["input_tokens"], answer["output_tokens"], answer["total_tokens"]) == (12, 30, 42)
    assert (second["input_tokens"], second["total_tokens"]) == (7, 12)
    assert answer["tags"]["reviewed"] == "yes" and answer["tags"]["team.owner"] == '{"name": "ml"}'
    assert answer["request_metadata"]["release"] == "r7"
    assert failing["state"] == "ERROR" and failing["input_tokens"] is None
    assert solo["response_preview"] == '{"answer": 42, "nested": {"ok": true}}'
    assert solo["experiment_id"] == store["experiment_ids"][1]


def test_span_rows_equal_mlflow_spans(store):
    by_trace: dict[str, list[dict]] = {}
    for row in store["ours"]["spans"]:
        by_trace.setdefault(row["trace_id"], []).append(row)
    assert set(by_trace) == set(store["traces"])
    for trace_id, trace in store["traces"].items():
        spans = sorted(trace.data.spans, key=lambda span: (span.start_time_ns, span.span_id))
        rows = by_trace[trace_id]
        assert [row["span_id"] for row in rows] == [span.span_id for span in spans]
        for row, span in zip(rows, spans):
            usage = span.get_attribute("mlflow.chat.tokenUsage") or {}
            assert row["experiment_id"] == trace.info.experiment_id
            assert row["parent_span_id"] == span.parent_id
            assert row["name"] == span.name
            assert row["span_type"] == span.span_type
            assert row["status"] == span.status.status_code.value
            assert row["status_message"] == (span.status.description or None)
            assert row["start_time_ns"] == span.start_time_ns
            assert row["end_time_ns"] == span.end_time_ns
            assert row["start_time"] == span.start_time_ns // 1000
            assert row["end_time"] == span.end_time_ns // 1000
            assert row["duration_ms"] == pytest.approx((span.end_time_ns - span.start_time_ns) / 1e6)
            assert row["model_name"] == span.model_name
            assert row["model_provider"] == span.get_attribute("mlflow.llm.provider")
            for column in ("input_tokens", "output_tokens", "total_tokens"):
                assert row[column] == usage.get(column), column
            assert row["cost"] == (span.llm_cost or {}).get("total_cost")
            expected = {key: value for key, value in span.attributes.items()
                        if key not in ("mlflow.spanInputs", "mlflow.spanOutputs")}
            assert {key: json.loads(value) for key, value in row["attributes"].items()} == expected
            assert (json.loads(row["inputs"]) if row["inputs"] is not None else None) == span.inputs
            assert (json.loads(row["outputs"]) if row["outputs"] is not None else None) == span.outputs
            events = json.loads(row["events"])
            assert [(event["name"], event["time_unix_nano"], event["attributes"]) for event in events] == [
                (event.name, event.timestamp, event.attributes) for event in span.events]


def test_span_rows_hold_what_was_logged(store):
    ids = store["ids"]
    spans = {(row["trace_id"], row["name"]): row for row in store["ours"]["spans"]}
    chat = spans[(ids["answer"], "chat")]
    assert (chat["span_type"], chat["model_name"], chat["model_provider"]) == ("CHAT_MODEL", "gpt-x", "openai")
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"]) == tuple(TOKEN_USAGE[0].values())
    assert chat["cost"] == pytest.approx(12e-6 + 30 * 2e-6)
    assert chat["parent_span_id"] == spans[(ids["answer"], "answer")]["span_id"]
    assert spans[(ids["answer"], "answer")]["parent_span_id"] is None
    assert "mlflow.spanInputs" not in chat["attributes"] and json.loads(chat["attributes"]["temperature"]) == 0.2
    failed = spans[(ids["failing"], "failing")]
    assert failed["status"] == "ERROR" and "bad input 3" in failed["status_message"]
    assert [event["name"] for event in json.loads(failed["events"])] == ["exception"]
    assert json.loads(spans[(ids["solo"], "solo")]["inputs"]) == "plain text input"


def test_assessment_rows_equal_mlflow_assessments(store):
    rows = {row["assessment_id"]: row for row in store["ours"]["assessments"]}
    expected = {assessment.assessment_id: (trace, assessment)
                for trace in store["traces"].values() for assessment in trace.info.assessments}
    assert set(rows) == set(expected)
    for assessment_id, (trace, assessment) in expected.items():
        row = rows[assessment_id]
        kind = "feedback" if assessment.feedback is not None else "expectation"
        error = assessment.feedback.error if assessment.feedback is not None else None
        assert row["trace_id"] == assessment.trace_id == trace.info.trace_id
        assert row["experiment_id"] == trace.info.experiment_id
        assert row["run_id"] == assessment.run_id
        assert row["span_id"] == assessment.span_id
        assert row["name"] == assessment.name
        assert row["assessment_type"] == kind
        assert json.loads(row["value"]) == assessment.value
        assert row["error_code"] == (error.error_code if error else None)
        assert row["error_message"] == (error.error_message if error else None)
        assert row["source_type"] == assessment.source.source_type
        assert row["source_id"] == assessment.source.source_id
        assert row["rationale"] == assessment.rationale
        assert row["valid"] == (True if assessment.valid is None else assessment.valid)
        assert row["overrides"] == assessment.overrides
        assert row["metadata"] == {key: value if isinstance(value, str) else json.dumps(value)
                                   for key, value in (assessment.metadata or {}).items()}
        assert row["create_time"] == assessment.create_time_ms * 1000
        assert row["last_update_time"] == assessment.last_update_time_ms * 1000


def test_assessment_rows_hold_what_was_logged(store):
    rows = [row for row in store["ours"]["assessments"] if row["trace_id"] == store["ids"]["answer"]]
    by_name: dict[str, list[dict]] = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row)
    original, override = sorted(by_name["correct"], key=lambda row: row["overrides"] is not None)
    assert (original["value"], original["valid"], original["numeric_value"]) == ("true", False, 1.0)
    assert (override["value"], override["valid"], override["overrides"]) == ("false", True, original["assessment_id"])
    relevance = by_name["relevance"][0]
    assert (relevance["value_type"], relevance["numeric_value"]) == ("number", 0.75)
    assert relevance["span_id"] is not None
    safety = by_name["safety"][0]
    assert (safety["error_code"], safety["value"], safety["value_type"]) == ("RATE_LIMITED", "null", "null")
    expectation = by_name["expected_answer"][0]
    assert expectation["assessment_type"] == "expectation" and expectation["value_type"] == "object"
    assert json.loads(expectation["value"]) == {"text": "Arrow.", "facts": ["arrow", "batches"]}
    assert original["metadata"] == {"round": "1"}


def test_a_selection_by_state_time_and_id(store):
    traces = store["ours"]["traces"]
    failing = store["ids"]["failing"]
    errors = _read(store["kind"], store["uri"], store["experiment_ids"], trace_states=("ERROR",))
    assert [row["trace_id"] for row in errors["traces"]] == [failing]
    assert {row["trace_id"] for row in errors["spans"]} == {failing}
    assert errors["assessments"] == []
    times = sorted(row["request_time"] // 1000 for row in traces)
    later = _read(store["kind"], store["uri"], store["experiment_ids"], min_start_time_ms=times[1], max_start_time_ms=times[-1])
    assert sorted(row["request_time"] // 1000 for row in later["traces"]) == times[1:-1]
    answer = store["ids"]["answer"]
    one = _read(store["kind"], store["uri"], store["experiment_ids"], trace_ids=(answer, "tr-missing"))
    assert [row["trace_id"] for row in one["traces"]] == [answer]
    assert len(one["spans"]) == 3 and len(one["assessments"]) == 5


def test_spans_come_from_where_the_store_keeps_them(store):
    """A SQL-backed store keeps spans in its ``spans`` table (tag ``mlflow.trace.spansLocation``
    = ``TRACKING_STORE``); a file store, and a server over one, in ``traces.json`` artifacts."""
    locations = {row["tags"].get("mlflow.trace.spansLocation") for row in store["ours"]["traces"]}
    expected = {"sqlite": {"TRACKING_STORE"}, "postgres": {"TRACKING_STORE"}, "rest": {"TRACKING_STORE"},
                "mysql": {"TRACKING_STORE"},
                "file": {None}, "rest-file": {None}}[store["kind"]]
    assert locations == expected


def test_a_deleted_experiments_traces_are_read_from_the_trash(trace_file_store, tmp_path):
    import shutil

    from mlflow import MlflowClient

    root = str(tmp_path / "mlruns")
    shutil.copytree(trace_file_store[0], root)
    client = MlflowClient(root)
    beta = client.get_experiment_by_name("traces-beta").experiment_id
    client.delete_experiment(beta)
    assert files.experiment_folder(root, beta).endswith(f".trash/{beta}")
    ours = _read("file", root, (beta,))
    solo = client.get_trace(trace_file_store[1]["solo"])
    assert [row["trace_id"] for row in ours["traces"]] == [solo.info.trace_id]
    assert [row["span_id"] for row in ours["spans"]] == [span.span_id for span in solo.data.spans]
    assert [row["assessment_id"] for row in ours["assessments"]] == [a.assessment_id for a in solo.info.assessments]


def test_a_sql_trace_whose_spans_are_an_artifact_reads_as_mlflow_finds_it(trace_sqlite_store, tmp_path):
    """As an MLflow older than the ``spans`` table left a trace in a SQL store: no span rows, no
    ``mlflow.trace.spansLocation`` tag, the spans in ``traces.json`` at the artifact location
    (written here by mlflow's own ``TracingClient._upload_trace_data``). ``get_trace`` then
    reads the artifact, and so do we. Archived spans are an error naming the trace."""
    import shutil

    from mlflow import MlflowClient
    from mlflow.tracing.client import TracingClient

    from pyspark_experiments.errors import UnsupportedStoreError

    uri, ids = trace_sqlite_store
    path = str(tmp_path / "mlflow.db")
    shutil.copy(uri.removeprefix("sqlite:///"), path)
    copy = f"sqlite:///{path}"
    trace_id, archived = ids["answer-2"], ids["solo"]
    reference = MlflowClient(uri).get_trace(trace_id)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("DELETE FROM span_metrics WHERE trace_id = ?", (trace_id,))
        connection.execute("DELETE FROM spans WHERE trace_id = ?", (trace_id,))
        connection.execute("DELETE FROM trace_tags WHERE request_id = ? AND key = 'mlflow.trace.spansLocation'",
                           (trace_id,))
        connection.execute("UPDATE trace_tags SET value = ? WHERE request_id = ? AND key = 'mlflow.artifactLocation'",
                           (str(tmp_path / "artifacts" / trace_id), trace_id))
    tracing = TracingClient(copy)
    tracing._upload_trace_data(tracing.get_trace_info(trace_id), reference.data)
    expected = MlflowClient(copy).get_trace(trace_id)
    try:
        rows = _rows(sql.read_spans(connection, [trace_id], with_content=True))
        assert [row["span_id"] for row in rows] == sorted(
            (span.span_id for span in expected.data.spans),
            key=lambda span_id: next(s.start_time_ns for s in expected.data.spans if s.span_id == span_id))
        by_id = {span.span_id: span for span in expected.data.spans}
        for row in rows:
            span = by_id[row["span_id"]]
            assert (row["trace_id"], row["experiment_id"]) == (trace_id, expected.info.experiment_id)
            assert (row["parent_span_id"], row["name"], row["start_time_ns"]) == (
                span.parent_id, span.name, span.start_time_ns)
            assert json.loads(row["inputs"]) == span.inputs
        chat = next(row for row in rows if row["name"] == "chat")
        assert (chat["model_name"], chat["input_tokens"]) == ("gpt-x", TOKEN_USAGE[1]["input_tokens"])
        with connection:
            connection.execute("UPDATE trace_tags SET value = 'ARCHIVE_REPO' WHERE request_id = ? "
                               "AND key = 'mlflow.trace.spansLocation'", (archived,))
        with pytest.raises(UnsupportedStoreError, match=f"trace {archived}: its spans were archived"):
            sql.read_spans(connection, [trace_id, archived])
    finally:
        connection.close()


def test_a_sql_span_that_does_not_parse_fails_or_is_skipped_and_reported(trace_sqlite_store, tmp_path):
    import shutil

    from pyspark_experiments.errors import MalformedRecordError
    from pyspark_experiments.stores.problems import collect_skipped

    uri, ids = trace_sqlite_store
    path = str(tmp_path / "mlflow.db")
    shutil.copy(uri.removeprefix("sqlite:///"), path)
    trace_id = ids["answer"]
    connection = sqlite3.connect(path)
    with connection:
        span_id = connection.execute("SELECT span_id FROM spans WHERE trace_id = ? AND name = 'chat'",
                                     (trace_id,)).fetchone()[0]
        connection.execute("UPDATE spans SET content = '{\"name\": ' WHERE span_id = ?", (span_id,))
    connection.close()
    store = open_store(resolve_tracking_uri(f"sqlite:///{path}"))
    experiment_ids = tuple(e.experiment_id for e in store.list_experiments() if e.name in TRACE_EXPERIMENTS)

    def spans(mode: str) -> list[dict]:
        selection = Selection("spans", experiment_ids, mode=mode, trace_ids=(trace_id,))
        return [row for partition in store.plan(selection) for batch in store.read(partition) for row in _rows(batch)]

    with pytest.raises(MalformedRecordError, match=f"malformed record at trace {trace_id}, span {span_id}: "):
        spans("FAILFAST")
    with collect_skipped() as skipped:
        rows = spans("PERMISSIVE")
    assert sorted(row["name"] for row in rows) == ["answer", "retrieve"]
    assert [record.where.split(":")[0] for record in skipped] == [f"trace {trace_id}, span {span_id}"]
