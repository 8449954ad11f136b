"""The Delta sync of the trace tables (``traces``, ``spans``, ``assessments``): stores written by
real mlflow (tests/support/traces_store.py), real Delta tables.

What must hold: a first sync writes each trace table equal to what the data source reads; a
sync with nothing changed writes nothing; after real changes (a trace logged with a start time
before every other's, a tag set on a trace after the fact, a new assessment, an overridden one,
a deleted trace, a trace in progress that gains spans and ends) an incremental sync ends with
exactly the store's rows, writing only what changed; a sync SIGKILLed while it writes the trace tables, run again, ends the same (and
deletes a trace the killed sync wrote that was deleted from the store before the rerun).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from pyspark_experiments import tables
from pyspark_experiments.sync import KILL_ENV, sync
from support.compare import assert_same, source_tables, target_tables
from support.paths import REPO
from support.stores import mlflow_tracking_uri
from support.traces_store import *  # noqa: F401,F403  (the session fixtures)
from support.traces_store import log_trace_data

TRACE_TABLES = (tables.TRACES, tables.SPANS, tables.ASSESSMENTS)


def copied_store(store, tmp_path) -> tuple[str, dict]:
    """A copy of the session's SQLite trace store (its spans are in the database)."""
    uri, ids = store
    copy = tmp_path / "mlflow.db"
    shutil.copy(uri.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}", ids


def synced(spark, target: str) -> dict:
    return target_tables(spark, target, names=TRACE_TABLES)


def source(spark, uri: str) -> dict:
    return source_tables(spark, uri, names=TRACE_TABLES)


def change_traces(uri: str, ids: dict) -> dict:
    """Change the reference traces with real mlflow: a trace whose start time is an hour before
    every other's, a tag set after the fact, a new feedback, an override, a deleted trace.
    Returns the ids of the new trace and of the new and overriding assessments."""
    import mlflow
    from mlflow import MlflowClient

    with mlflow_tracking_uri(uri):
        client = MlflowClient(uri)
        alpha = client.get_experiment_by_name("traces-alpha").experiment_id
        started = time.time_ns() - 3600 * 10**9
        span = client.start_trace("late", experiment_id=alpha, start_time_ns=started, inputs={"q": "late"})
        client.end_trace(span.trace_id, outputs={"a": 1}, end_time_ns=started + 2 * 10**9)
        client.set_trace_tag(ids["solo"], "reviewed", "later")
        helpful = mlflow.log_feedback(trace_id=ids["answer-2"], name="helpful", value=0.5)
        relevance = next(a for a in client.get_trace(ids["answer"]).info.assessments if a.name == "relevance")
        overriding = mlflow.override_feedback(trace_id=ids["answer"], assessment_id=relevance.assessment_id,
                                              value=0.25, rationale="a second look")
        client.delete_traces(experiment_id=alpha, trace_ids=[ids["failing"]])
    return {"late": span.trace_id, "helpful": helpful.assessment_id, "overriding": overriding.assessment_id,
            "overridden": relevance.assessment_id}


class TraceInProgress:
    """A trace whose spans reach the store one at a time before its root span ends, as an
    OpenTelemetry exporter sends them (``log_spans`` of the tracking store): MLflow keeps it
    ``IN_PROGRESS`` until the root arrives."""

    def __init__(self, uri: str) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(uri)
        self.experiment = self.client.get_experiment_by_name("traces-alpha").experiment_id
        self.root = self.client.start_trace("agent", experiment_id=self.experiment)
        self.trace_id = self.root.trace_id

    def log_step(self, name: str) -> None:
        step = self.client.start_span(name, trace_id=self.trace_id, parent_id=self.root.span_id)
        self.client.end_span(trace_id=self.trace_id, span_id=step.span_id)
        self.client._tracking_client.store.log_spans(self.experiment, [step])

    def end(self) -> None:
        self.client.end_trace(self.trace_id)


def spans_of(spark, target: str, trace_id: str) -> list[str]:
    return sorted(row[4] for row in synced(spark, target)[tables.SPANS] if row[0] == trace_id)


def test_trace_tables_sync_incrementally_to_the_store_rows(spark, tmp_path, trace_sqlite_store):
    uri, ids = copied_store(trace_sqlite_store, tmp_path)
    target = str(tmp_path / "delta")

    first = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert first.mode == "full" and first.traces == 4 and first.new_traces == 4, first.summary()
    expected = source(spark, uri)
    assert all(expected[t] for t in TRACE_TABLES)
    assert_same(synced(spark, target), expected)
    for table in TRACE_TABLES:
        assert first.tables[table].inserted == len(expected[table]), first.summary()
    assert "4 traces: 4 new, 0 changed, 0 deleted" in first.summary()

    # Nothing changed: no trace table is written.
    again = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert again.mode == "incremental" and again.new_traces == again.changed_traces == 0, again.summary()
    assert all(again.tables[t].version is None for t in TRACE_TABLES), again.summary()

    changed = change_traces(uri, ids)
    with mlflow_tracking_uri(uri):
        running = TraceInProgress(uri)
        running.log_step("step-1")
    incremental = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert incremental.mode == "incremental", incremental.summary()
    # solo (a tag), answer-2 and answer (assessments); the late trace and the one in progress; failing deleted
    assert (incremental.new_traces, incremental.changed_traces, incremental.deleted_traces) == (2, 3, 1), \
        incremental.summary()
    after = source(spark, uri)
    assert_same(synced(spark, target), after)
    traces, spans, assessments = (incremental.tables[t] for t in TRACE_TABLES)
    assert (traces.inserted, traces.updated, traces.deleted) == (2, 1, 1), incremental.summary()
    assert spans.inserted == 2 and spans.updated == 0 and spans.deleted >= 1, incremental.summary()
    assert spans_of(spark, target, running.trace_id) == ["step-1"]
    # the new feedback and the override inserted, the overridden one updated (no longer valid)
    assert (assessments.inserted, assessments.updated) == (2, 1), incremental.summary()
    assert ids["failing"] not in {row[0] for row in synced(spark, target)[tables.TRACES]}
    valid = {row[0]: row[15] for row in synced(spark, target)[tables.ASSESSMENTS]}
    assert valid[changed["overridden"]] is False and valid[changed["overriding"]] is True

    # The trace in progress gains a span, then ends (its root span arrives): re-read, merged.
    with mlflow_tracking_uri(uri):
        running.log_step("step-2")
        running.end()
    ended = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert (ended.new_traces, ended.changed_traces) == (0, 1), ended.summary()
    assert (ended.tables[tables.TRACES].updated, ended.tables[tables.SPANS].inserted) == (1, 2), ended.summary()
    assert spans_of(spark, target, running.trace_id) == ["agent", "step-1", "step-2"]
    assert_same(synced(spark, target), source(spark, uri))

    # The state holds each trace once: the next sync finds nothing to do.
    quiet = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert quiet.new_traces == quiet.changed_traces == quiet.deleted_traces == 0, quiet.summary()
    assert all(quiet.tables[t].version is None for t in TRACE_TABLES), quiet.summary()


@pytest.mark.slow  # a second full sync or job run; the default tier keeps one
def test_a_trace_table_kept_later_is_read_whole(spark, tmp_path, trace_sqlite_store):
    """A target that kept ``traces`` only gets ``spans`` and ``assessments`` whole when they are
    asked for; a sync that keeps none leaves the trace tables as they are."""
    uri, ids = copied_store(trace_sqlite_store, tmp_path)
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark, tables=[tables.TRACES])
    assert not os.path.exists(f"{target}/{tables.SPANS}")
    added = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert added.mode == "incremental" and added.tables[tables.TRACES].version is None, added.summary()
    assert_same(synced(spark, target), source(spark, uri))

    change_traces(uri, ids)
    plain = sync(uri, target, spark=spark, tables="none")
    assert not set(TRACE_TABLES) & set(plain.tables) and plain.traces == 0
    back = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert back.new_traces == 1 and back.deleted_traces == 1, back.summary()
    assert_same(synced(spark, target), source(spark, uri))


# ------------------------------------------------------------------------------------------------
# slow tier
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow  # three sync processes started and SIGKILLed: minutes on 2 cores
def test_killed_syncs_of_the_trace_tables_run_again_end_as_the_store(spark, tmp_path, trace_sqlite_store):
    """SIGKILLed while ``spans`` is written, after the ``traces`` commit, before the state commit:
    the rerun merges what it reads and ends with the store's rows, no duplicate. A trace the
    killed sync appended and that was deleted from the store before the rerun leaves the tables
    (the state never knew it)."""
    from mlflow import MlflowClient

    uri, ids = copied_store(trace_sqlite_store, tmp_path)
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark, tables=TRACE_TABLES)
    changed = change_traces(uri, ids)
    path = os.pathsep.join(p for p in (os.path.join(REPO, "src"), os.environ.get("PYTHONPATH")) if p)
    for phase in ("during:spans", "after-write:traces", "before-state"):
        env = dict(os.environ, **{KILL_ENV: phase, "PYTHONPATH": path, "PYSPARK_PYTHON": sys.executable})
        killed = subprocess.run(
            [sys.executable, "-m", "pyspark_experiments.sync", "--master", "local[2]", "--no-progress",
             "--tracking-uri", uri, "--target-path", target, "--tables", ",".join(TRACE_TABLES)],
            env=env, capture_output=True, text=True, timeout=900, cwd=REPO,
        )
        assert killed.returncode == -9, (phase, killed.stderr[-3000:])
    assert changed["late"] in {row[0] for row in synced(spark, target)[tables.TRACES]}
    alpha = MlflowClient(uri).get_experiment_by_name("traces-alpha").experiment_id
    MlflowClient(uri).delete_traces(experiment_id=alpha, trace_ids=[changed["late"]])

    rerun = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert rerun.mode == "incremental" and rerun.deleted_traces >= 1, rerun.summary()
    assert_same(synced(spark, target), source(spark, uri))
    quiet = sync(uri, target, spark=spark, tables=TRACE_TABLES)
    assert all(quiet.tables[t].version is None for t in TRACE_TABLES), quiet.summary()


@pytest.mark.slow
def test_file_store_trace_tables_sync_incrementally(spark, tmp_path):
    """A file store (``mlruns/``): fingerprints from the files' sizes and times, spans from
    ``traces.json``."""
    root = str(tmp_path / "mlruns")
    ids = log_trace_data(root)
    target = str(tmp_path / "delta")
    sync(root, target, spark=spark, tables=TRACE_TABLES)
    assert_same(synced(spark, target), source(spark, root))
    again = sync(root, target, spark=spark, tables=TRACE_TABLES)
    assert all(again.tables[t].version is None for t in TRACE_TABLES), again.summary()

    change_traces(root, ids)
    incremental = sync(root, target, spark=spark, tables=TRACE_TABLES)
    assert (incremental.new_traces, incremental.deleted_traces) == (1, 1), incremental.summary()
    assert_same(synced(spark, target), source(spark, root))
