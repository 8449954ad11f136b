"""Streaming reads of ``traces`` and ``assessments`` into Delta: each trace once, each new or
updated assessment once, across runs and restarts from a checkpoint.

A SQLite store written by real mlflow (tests/support/traces_store.py); between runs of the
queries (``trigger(availableNow=True)``, a checkpoint, a Delta sink) real mlflow logs a trace
whose end time is a minute before the newest one already streamed (out of order, within
``lateArrivalSeconds``), sets a tag on a streamed trace (not emitted again: a trace is emitted
once, when it has ended), logs spans of a trace still in progress (emitted once it ends), logs
a feedback, overrides one and updates another (a new state: emitted again). A trace arriving
later than ``lateArrivalSeconds`` stops the stream with an error naming it, rather than being
skipped.
"""

from __future__ import annotations

import shutil

import pytest

from pyspark_experiments import tables
from support.compare import sorted_rows
from support.stores import mlflow_tracking_uri
from support.traces_store import *  # noqa: F401,F403  (the session fixtures)


def _run_stream(spark, uri: str, table: str, checkpoint: str, sink: str, max_rows: int | None = None,
                late_seconds: int | None = None):
    reader = (spark.readStream.format("experiments").option("trackingUri", uri)
              .option("table", table).option("viewType", "ALL"))
    if max_rows:
        reader = reader.option("maxRowsPerTrigger", str(max_rows))
    if late_seconds:
        reader = reader.option("lateArrivalSeconds", str(late_seconds))
    query = (reader.load().writeStream.format("delta").option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start(sink))
    try:
        query.awaitTermination(600)
    except Exception:  # noqa: BLE001 - the query's error is query.exception(), checked by the caller
        pass
    return query


def _ran(query) -> list[dict]:
    assert query.exception() is None, query.exception()
    return [p for p in query.recentProgress if p["numInputRows"] > 0]


def _sink(spark, sink: str, table: str) -> list[tuple]:
    return sorted_rows(spark.read.format("delta").load(sink).select(*tables.spark_schema(table).fieldNames()))


def _batch(spark, uri: str, table: str) -> list[tuple]:
    df = spark.read.format("experiments").option("trackingUri", uri).option("table", table).option("viewType", "ALL").load()
    return sorted_rows(df.select(*tables.spark_schema(table).fieldNames()))


def test_traces_and_assessments_stream_once_across_runs_and_restarts(spark, tmp_path, trace_sqlite_store):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Feedback

    source, ids = trace_sqlite_store
    shutil.copy(source.removeprefix("sqlite:///"), tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    paths = {t: (str(tmp_path / f"checkpoint-{t}"), str(tmp_path / f"sink-{t}")) for t in ("traces", "assessments")}

    # 1. Everything so far, a few items per micro-batch.
    batches = _ran(_run_stream(spark, uri, "traces", *paths["traces"], max_rows=2))
    assert len(batches) == 2 and sum(b["numInputRows"] for b in batches) == 4
    assert _sink(spark, paths["traces"][1], "traces") == _batch(spark, uri, "traces")
    batches = _ran(_run_stream(spark, uri, "assessments", *paths["assessments"], max_rows=3))
    assert len(batches) >= 2
    assert _sink(spark, paths["assessments"][1], "assessments") == _batch(spark, uri, "assessments")

    # 2. Changes between runs.
    with mlflow_tracking_uri(uri):
        client = MlflowClient(uri)
        alpha = client.get_experiment_by_name("traces-alpha").experiment_id
        newest_end = max(t.info.timestamp_ms + (t.info.execution_time_ms or 0)
                         for t in client.search_traces(experiment_ids=[alpha], include_spans=False))
        started = (newest_end - 60_000) * 1_000_000  # ends a minute before the newest streamed trace
        span = client.start_trace("out-of-order", experiment_id=alpha, start_time_ns=started)
        client.end_trace(span.trace_id, end_time_ns=started + 10**9)
        client.set_trace_tag(ids["solo"], "reviewed", "later")  # a streamed trace: not emitted again
        mlflow.log_feedback(trace_id=ids["answer-2"], name="helpful", value=0.5)
        notes = next(a for a in client.get_trace(ids["solo"]).info.assessments if a.name == "notes")
        mlflow.update_assessment(trace_id=ids["solo"], assessment_id=notes.assessment_id,
                                 assessment=Feedback(name="notes", value="line one only"))
        safety = next(a for a in client.get_trace(ids["answer"]).info.assessments if a.name == "safety")
        mlflow.override_feedback(trace_id=ids["answer"], assessment_id=safety.assessment_id, value=True)
        # a trace in progress: one span logged as an OpenTelemetry exporter does, its root still open
        root = client.start_trace("agent", experiment_id=alpha)
        step = client.start_span("step", trace_id=root.trace_id, parent_id=root.span_id)
        client.end_span(trace_id=root.trace_id, span_id=step.span_id)
        client._tracking_client.store.log_spans(alpha, [step])

    batches = _ran(_run_stream(spark, uri, "traces", *paths["traces"]))
    assert sum(b["numInputRows"] for b in batches) == 1
    streamed = _sink(spark, paths["traces"][1], "traces")
    assert len(streamed) == len({row[0] for row in streamed}) == 5  # each trace once
    assert span.trace_id in {row[0] for row in streamed}

    batches = _ran(_run_stream(spark, uri, "assessments", *paths["assessments"]))
    # the feedback, the update of notes, the override (the overridden one is not emitted again)
    assert sum(b["numInputRows"] for b in batches) == 3
    states = _sink(spark, paths["assessments"][1], "assessments")
    now = _batch(spark, uri, "assessments")
    assert set(now) - set(states) == {row for row in now if row[0] == safety.assessment_id}
    assert [row[7] for row in states if row[0] == notes.assessment_id] in (
        ['"line one\\nline two"', '"line one only"'], ['"line one only"', '"line one\\nline two"'])

    # 3. The trace in progress ends: emitted now, once. A restart with nothing new adds nothing.
    with mlflow_tracking_uri(uri):
        client.end_trace(root.trace_id)
    batches = _ran(_run_stream(spark, uri, "traces", *paths["traces"]))
    assert sum(b["numInputRows"] for b in batches) == 1
    streamed = _sink(spark, paths["traces"][1], "traces")
    assert len(streamed) == len({row[0] for row in streamed}) == 6
    assert [row[4] for row in streamed if row[0] == root.trace_id] == ["OK"]
    assert _ran(_run_stream(spark, uri, "assessments", *paths["assessments"])) == []

    # 4. A trace ending an hour before the newest one streamed: later than lateArrivalSeconds.
    with mlflow_tracking_uri(uri):
        late = client.start_trace("too-late", experiment_id=alpha, start_time_ns=started - 3600 * 10**9)
        client.end_trace(late.trace_id, end_time_ns=started - 3599 * 10**9)
    query = _run_stream(spark, uri, "traces", *paths["traces"])
    assert query.exception() is not None
    assert "1 trace(s) arrived with a time before this stream's horizon" in str(query.exception())
    assert len(_sink(spark, paths["traces"][1], "traces")) == 6


def test_a_traces_stream_refuses_traces_in_progress(spark, tmp_path, trace_sqlite_store):
    query = (spark.readStream.format("experiments").option("trackingUri", trace_sqlite_store[0])
             .option("table", "traces").option("traceStates", "OK,IN_PROGRESS").load()
             .writeStream.format("memory").queryName("in_progress_stream")
             .option("checkpointLocation", str(tmp_path / "checkpoint")).start())
    with pytest.raises(Exception, match="a traces stream emits each trace once, when it has ended"):
        try:
            query.awaitTermination(300)
        finally:
            query.stop()
