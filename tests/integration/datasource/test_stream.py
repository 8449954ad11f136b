"""Streaming reads of ``metrics`` and ``runs`` into Delta: exactly once, across restarts.

Points and run changes are logged with real mlflow between micro-batches; the stream runs with
``trigger(availableNow=True)`` and a checkpoint, restarts from it, and writes into Delta.
"""

from __future__ import annotations

import glob
import os
import uuid

import pytest

from pyspark_experiments import tables
from support.compare import plain, sorted_rows
from support.stores import BASE_MS


def _store(kind: str, tmp_path, request=None):
    from mlflow.tracking import MlflowClient

    folder = tmp_path / f"store-{kind}"
    folder.mkdir()
    if kind in ("postgresql", "mysql"):
        from support import mysql, postgres

        server = request.getfixturevalue("postgres_server" if kind == "postgresql" else "mysql_server")
        uri = (postgres if kind == "postgresql" else mysql).create_database(*server, f"stream_{uuid.uuid4().hex[:12]}")
    else:
        uri = f"sqlite:///{folder / 'mlflow.db'}" if kind == "sqlite" else str(folder / "mlruns")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("stream")
    runs = []
    for i in range(2):
        run = client.create_run(experiment, start_time=BASE_MS + i, run_name=f"r-{i}").info.run_id
        for step in range(5):
            client.log_metric(run, "loss", 1.0 / (step + 1 + i), timestamp=BASE_MS + step, step=step)
        runs.append(run)
    return uri, client, experiment, runs


def _run_stream(spark, uri: str, table: str, checkpoint: str, sink: str, max_rows: int | None = None):
    reader = (spark.readStream.format("experiments").option("trackingUri", uri)
              .option("table", table).option("viewType", "ALL"))
    if max_rows:
        reader = reader.option("maxRowsPerTrigger", str(max_rows))
    query = (reader.load().writeStream.format("delta")
             .option("checkpointLocation", checkpoint)
             .trigger(availableNow=True)
             .start(sink))
    query.awaitTermination(600)
    assert query.exception() is None, query.exception()
    return [p for p in query.recentProgress if p["numInputRows"] > 0]


def _batch(spark, uri: str, table: str) -> list[tuple]:
    df = (spark.read.format("experiments").option("trackingUri", uri)
          .option("table", table).option("viewType", "ALL").load())
    return sorted_rows(df.select(*tables.spark_schema(table).fieldNames()))


@pytest.mark.parametrize("kind", ["sqlite"] + [pytest.param(k, marks=pytest.mark.slow) for k in ("file", "postgresql", "mysql")])
def test_metric_points_arrive_once_across_batches_and_restarts(spark, tmp_path, kind, request):
    """SQLite and file stores read exact ranges between positions; PostgreSQL and MySQL count
    points: their changed series are re-read whole and the new points of a stable order emitted."""
    uri, client, experiment, (r0, r1) = _store(kind, tmp_path, request)
    checkpoint, sink = str(tmp_path / "checkpoint"), str(tmp_path / "sink")

    def sinksorted_rows():
        return sorted_rows(spark.read.format("delta").load(sink).select(*tables.spark_schema("metrics").fieldNames()))

    # 1. Everything logged so far, in several micro-batches (about 4 points each).
    batches = _run_stream(spark, uri, "metrics", checkpoint, sink, max_rows=4)
    assert len(batches) >= 2 and sum(b["numInputRows"] for b in batches) == 10
    assert sinksorted_rows() == _batch(spark, uri, "metrics")

    # 2. Points logged between micro-batches: new run, more points, NaN, an exact duplicate.
    r2 = client.create_run(experiment, start_time=BASE_MS + 9, run_name="r-2").info.run_id
    client.log_metric(r2, "acc", 0.5, timestamp=BASE_MS + 20, step=0)
    client.log_metric(r0, "loss", 0.05, timestamp=BASE_MS + 30, step=9)
    client.log_metric(r0, "loss", 0.05, timestamp=BASE_MS + 30, step=9)  # exact duplicate
    client.log_metric(r1, "loss", float("nan"), timestamp=BASE_MS + 31, step=2)
    client.log_metric(r1, "val/loss", 0.7, timestamp=BASE_MS + 32, step=0)
    batches = _run_stream(spark, uri, "metrics", checkpoint, sink)
    assert sum(b["numInputRows"] for b in batches) == 4
    expected = _batch(spark, uri, "metrics")
    assert sinksorted_rows() == expected and len(expected) == 14

    # 3. Restart with nothing new: nothing is read again.
    assert _run_stream(spark, uri, "metrics", checkpoint, sink) == []
    assert sinksorted_rows() == expected

    # 4. A crash after the sink committed a batch but before the checkpoint recorded it: the
    #    restarted query replays that batch (same offsets), and Delta's sink skips it.
    client.log_metric(r2, "acc", 0.6, timestamp=BASE_MS + 40, step=1)
    _run_stream(spark, uri, "metrics", checkpoint, sink)
    last = max(glob.glob(os.path.join(checkpoint, "commits", "[0-9]*")), key=lambda p: int(os.path.basename(p)))
    os.remove(last)
    crc = os.path.join(os.path.dirname(last), f".{os.path.basename(last)}.crc")
    if os.path.exists(crc):
        os.remove(crc)
    client.log_metric(r2, "acc", 0.7, timestamp=BASE_MS + 50, step=2)
    _run_stream(spark, uri, "metrics", checkpoint, sink)
    expected = _batch(spark, uri, "metrics")
    assert sinksorted_rows() == expected and len(expected) == 16


@pytest.mark.slow
def test_runs_stream_emits_each_change_once(spark, tmp_path):
    uri, client, experiment, (r0, r1) = _store("sqlite", tmp_path)
    checkpoint, sink = str(tmp_path / "checkpoint"), str(tmp_path / "sink")

    def sink_df():
        return spark.read.format("delta").load(sink)

    _run_stream(spark, uri, "runs", checkpoint, sink, max_rows=1)
    assert sink_df().count() == 2
    assert sorted(r["status"] for r in sink_df().collect()) == ["RUNNING", "RUNNING"]

    client.set_terminated(r0, "FINISHED", end_time=BASE_MS + 100)
    client.set_tag(r1, "stage", "tuned")
    r2 = client.create_run(experiment, start_time=BASE_MS + 5, run_name="r-2").info.run_id
    _run_stream(spark, uri, "runs", checkpoint, sink)
    rows = sink_df().collect()
    assert len(rows) == 5
    latest = {r["run_id"]: r for r in rows if r["run_id"] == r0 and r["status"] == "FINISHED"}
    assert len(latest) == 1
    assert any(r["run_id"] == r1 and r["tags"].get("stage") == "tuned" for r in rows)
    assert any(r["run_id"] == r2 for r in rows)

    # Nothing changed: a restart adds nothing.
    assert _run_stream(spark, uri, "runs", checkpoint, sink) == []
    assert sink_df().count() == 5
    # The last state of every run equals the batch table.
    assert sorted(plain(r["run_id"]) for r in _batch_runs(spark, uri)) == sorted({r["run_id"] for r in rows})


def _batch_runs(spark, uri):
    return (spark.read.format("experiments").option("trackingUri", uri).option("table", "runs")
            .option("viewType", "ALL").load().collect())


def test_other_tables_have_no_stream(spark, tmp_path):
    uri, *_ = _store("sqlite", tmp_path)
    with pytest.raises(Exception, match="streaming reads support 'metrics', 'runs', 'traces' and 'assessments', not 'params'"):
        query = (spark.readStream.format("experiments").option("trackingUri", uri).option("table", "params")
                 .load().writeStream.format("memory").queryName("no_stream")
                 .option("checkpointLocation", str(tmp_path / "checkpoint")).start())
        try:
            query.awaitTermination(300)
        finally:
            query.stop()
