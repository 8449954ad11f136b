"""The Delta sync and the ``runs`` stream over REST: a real ``mlflow server`` on loopback over a
SQLite store, real Delta tables.

What must hold: a sync from the server equals a sync from its SQLite store directly (every
table); after more logging with real mlflow through the server (new runs, new points, tags, a
deleted run, a renamed experiment), an incremental sync equals a fresh full sync of the SQLite
store; no credential appears in the summary, the logs, the state or the lock; a 503 burst during
a sync either is retried through (the tables exact) or fails without recording anything as
synced; a ``runs`` stream over the server emits each state of a run once across a restart.
"""

from __future__ import annotations

import json
import logging
import math

import pytest

from pyspark_experiments.jobs.lock import LOCK_TABLE
from pyspark_experiments.sync import STATE_TABLE, SyncState, sync
from support.compare import assert_same, sorted_rows, source_tables, target_tables
from support.mlflow_server import running_mlflow_server
from support.proxies import Proxy, every
from support.stores import BASE_MS, log_changes, new_store

ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
       "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE")
# A token the plain server ignores: it must reach no output.
TOKEN = "tok-Sync-Secret-9f3a7"
# Fast retries for the fault tests: the policy is the same, the waits shorter.
FAST = {"backoffFactor": "0.05", "backoffJitter": "0.05"}
SERVER_ERROR = ("status", 503, [("Content-Type", "text/plain")], b"upstream unavailable")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def served(tmp_path):
    """``(url, sqlite_uri, manifest)``: a small store (three runs), served by a new ``mlflow server``."""
    uri, manifest = new_store("sqlite", tmp_path, reference=False)
    with running_mlflow_server(uri, str(tmp_path)) as url:
        yield url, uri, manifest


@pytest.fixture
def reference_served(tmp_path):
    """``(url, sqlite_uri, manifest)``: the reference store, served by a new ``mlflow server``."""
    uri, manifest = new_store("sqlite", tmp_path)
    with running_mlflow_server(uri, str(tmp_path)) as url:
        yield url, uri, manifest


def log_small_changes(url: str, manifest: dict, wave: int = 0) -> None:
    """More logging with real mlflow through the server, on the small store: a new run with
    points, params, tags and a dataset input; points to a run that runs again and ends; a tag
    changed and one deleted; a run deleted; an experiment renamed; a new experiment."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from support.stores import _datasets, mlflow_tracking_uri

    client = MlflowClient(tracking_uri=url)
    runs, small = manifest["runs"], manifest["experiments"]["small"]
    later = BASE_MS + (400 + wave) * 86_400_000
    train, _ = _datasets()
    with mlflow_tracking_uri(url), mlflow.start_run(experiment_id=small, run_name=f"new-{wave}") as run:
        mlflow.log_params({"lr": "0.3", "round": str(wave)})
        mlflow.set_tag("stage", "new")
        mlflow.log_input(train, context="training", tags={"split": "train"})
        for step in range(10):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=later + step)
        mlflow.log_metric("nan", math.nan, step=0, timestamp=later)
    again = runs["s-0"]
    client.update_run(again, "RUNNING")
    for value, step, ts in ((0.5, 3, later + 1), (0.7, 1, later + 2), (math.nan, 4, later + 3)):
        client.log_metric(again, "loss", value, timestamp=ts, step=step)
    client.set_terminated(again, "FAILED", end_time=later + 10)
    client.set_tag(runs["s-1"], "stage", f"retuned-{wave}")
    if wave == 0:
        client.set_tag(runs["s-2"], "gone", "soon")
        client.delete_run(runs["s-2"])
        client.rename_experiment(small, "small-renamed")
        other = client.create_experiment("other")
        r = client.create_run(other, start_time=later, run_name="o-01").info.run_id
        client.log_metric(r, "acc", 0.1, timestamp=later, step=0)
    else:
        client.delete_tag(runs["s-1"], "stage")
        client.restore_run(runs["s-2"])
    return run.info.run_id


def no_secret(spark, target: str, *texts) -> None:
    """The token is in none of ``texts``, the state table or the lock's properties."""
    for text in texts:
        assert TOKEN not in str(text)
    state = spark.read.format("delta").load(f"{target}/{STATE_TABLE}").toArrow().to_pylist()
    assert TOKEN not in json.dumps(state, default=str)
    properties = spark.sql(f"SHOW TBLPROPERTIES delta.`{target}/{LOCK_TABLE}`").collect()
    assert TOKEN not in json.dumps([tuple(r) for r in properties])


def full_then_noop_sync(spark, url: str, sqlite_uri: str, target: str, options: dict, tmp_path):
    """A full sync over REST, checked equal to a sync of the server's SQLite store directly, then
    a sync with nothing changed, checked to read and write nothing: ``(first, again)`` results."""
    first = sync(url, target, rest_options=options, spark=spark)
    assert first.mode == "full" and first.tables["runs"].inserted == first.runs
    direct = str(tmp_path / "direct")
    sync(sqlite_uri, direct, spark=spark)
    assert_same(target_tables(spark, target), target_tables(spark, direct))

    again = sync(url, target, rest_options=options, spark=spark)
    assert again.mode == "incremental" and again.new_runs == again.changed_runs == again.series_read == 0
    assert all(t.version is None for t in again.tables.values())
    return first, again


def assert_like_fresh_sync_and_no_secret(spark, url: str, sqlite_uri: str, target: str, tmp_path, caplog, *results):
    """The REST-synced target equals a fresh sync of the server's SQLite store, its state says
    it came from ``url`` over REST, and no output of the syncs (``results``) holds the token."""
    fresh = str(tmp_path / "fresh")
    sync(sqlite_uri, fresh, spark=spark)
    assert_same(target_tables(spark, target), target_tables(spark, fresh))

    state = SyncState.from_arrow(spark.read.format("delta").load(f"{target}/{STATE_TABLE}").toArrow())
    assert state.meta["state_key"] == "rest" and state.meta["sync"]["store"] == url
    no_secret(spark, target, *(r.summary() for r in results), json.dumps(results[-1].to_dict(), default=str), caplog.text)


@pytest.mark.slow
def test_sync_over_rest_equals_the_direct_sync_and_stays_exact_incrementally(spark, tmp_path, served, caplog):
    url, sqlite_uri, manifest = served
    target = str(tmp_path / "rest")
    options = {"token": TOKEN, "maxConcurrentRequests": "4"}
    caplog.set_level(logging.INFO, logger="pyspark_experiments")

    first, again = full_then_noop_sync(spark, url, sqlite_uri, target, options, tmp_path)
    assert first.runs == 3 and first.tables["runs"].inserted == 3

    log_small_changes(url, manifest)
    incremental = sync(url, target, rest_options=options, spark=spark)
    assert incremental.mode == "incremental" and incremental.new_runs == 2
    assert incremental.changed_runs == 3, incremental.summary()
    # Digest positions: each moved series is read whole (s-0's, s-2's, the new runs'), no other.
    assert incremental.series_read == 5, incremental.summary()
    assert_same(target_tables(spark, target), source_tables(spark, sqlite_uri))

    log_small_changes(url, manifest, wave=1)  # a tag deleted, the run restored
    incremental = sync(url, target, rest_options=options, spark=spark)
    assert incremental.new_runs == 1 and incremental.tables["tags"].deleted >= 1, incremental.summary()
    assert_like_fresh_sync_and_no_secret(spark, url, sqlite_uri, target, tmp_path, caplog, first, again, incremental)


@pytest.mark.slow
def test_sync_of_the_reference_store_over_rest(spark, tmp_path, reference_served, caplog):
    url, sqlite_uri, manifest = reference_served
    target = str(tmp_path / "rest")
    options = {"token": TOKEN, "maxConcurrentRequests": "4"}
    caplog.set_level(logging.INFO, logger="pyspark_experiments")

    first, again = full_then_noop_sync(spark, url, sqlite_uri, target, options, tmp_path)

    log_changes(url, manifest, over_rest=True)
    incremental = sync(url, target, rest_options=options, spark=spark)
    assert incremental.mode == "incremental" and incremental.new_runs == 2
    # a-running (points, status), a-02..a-05 (tags, deletion), a-deleted (restored)
    assert incremental.changed_runs == 6, incremental.summary()
    assert_like_fresh_sync_and_no_secret(spark, url, sqlite_uri, target, tmp_path, caplog, first, again, incremental)


@pytest.mark.slow
def test_a_503_burst_is_retried_through_or_fails_without_recording_anything(spark, tmp_path, served):
    url, sqlite_uri, manifest = served
    target = str(tmp_path / "rest")

    # A burst of 503s (the first 3 metric history requests): retried, the sync exact.
    with Proxy(url, plan=every(1, SERVER_ERROR, "get-history", limit=3)) as proxy:
        result = sync(proxy.url, target, rest_options=FAST, spark=spark)
        assert proxy.count("get-history", "fault 503") == 3
    assert result.mode == "full"
    assert_same(target_tables(spark, target), source_tables(spark, sqlite_uri))

    # More logging, then a server that answers 503 to every history request: the sync fails
    # after its retries, and records nothing as synced; the next one completes the work.
    log_small_changes(url, manifest)
    before = spark.read.format("delta").load(f"{target}/{STATE_TABLE}").count()
    down = {"maxRetries": "1", **FAST}
    with Proxy(url, plan=every(1, SERVER_ERROR, "get-history")) as proxy:
        with pytest.raises(Exception, match="503"):
            sync(proxy.url, target, rest_options=down, spark=spark)
    assert spark.read.format("delta").load(f"{target}/{STATE_TABLE}").count() == before
    after = sync(url, target, spark=spark)
    assert after.mode == "incremental" and after.new_runs == 2
    assert_same(target_tables(spark, target), source_tables(spark, sqlite_uri))


def _stream(spark, url: str, table: str, sink: str, checkpoint: str) -> None:
    query = (spark.readStream.format("experiments").option("trackingUri", url).option("table", table)
             .option("viewType", "ALL").option("token", TOKEN).load()
             .writeStream.format("delta").option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start(sink))
    query.awaitTermination()
    assert query.exception() is None


def _direct(spark, uri: str, table: str) -> list[tuple]:
    return sorted_rows(spark.read.format("experiments").option("trackingUri", uri).option("table", table)
                       .option("viewType", "ALL").load())


@pytest.mark.slow
def test_streams_over_rest_deliver_once_across_a_restart(spark, tmp_path, served):
    url, sqlite_uri, manifest = served
    sinks = {t: (str(tmp_path / f"sink-{t}"), str(tmp_path / f"checkpoint-{t}")) for t in ("metrics", "runs")}
    for table, (sink, checkpoint) in sinks.items():
        _stream(spark, url, table, sink, checkpoint)
    runs = _direct(spark, sqlite_uri, "runs")
    assert sorted_rows(spark.read.format("delta").load(sinks["runs"][0])) == runs
    assert sorted_rows(spark.read.format("delta").load(sinks["metrics"][0])) == _direct(spark, sqlite_uri, "metrics")

    new = log_small_changes(url, manifest)
    # Restarts from the checkpoints: each new point once; each changed run once, in its new state.
    for table, (sink, checkpoint) in sinks.items():
        _stream(spark, url, table, sink, checkpoint)
    assert sorted_rows(spark.read.format("delta").load(sinks["metrics"][0])) == _direct(spark, sqlite_uri, "metrics")
    now = _direct(spark, sqlite_uri, "runs")
    streamed = sorted_rows(spark.read.format("delta").load(sinks["runs"][0]))
    assert set(now) <= set(streamed) and len(streamed) == len(set(streamed))
    changed = set(now) - set(runs)
    assert len(streamed) == len(runs) + len(changed) and any(new in row for row in changed)
    # With nothing new, a restart emits nothing.
    for table, (sink, checkpoint) in sinks.items():
        before = spark.read.format("delta").load(sink).count()
        _stream(spark, url, table, sink, checkpoint)
        assert spark.read.format("delta").load(sink).count() == before
