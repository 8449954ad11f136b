"""A ``metrics`` stream over REST, driven as Spark drives a stream reader (offsets, planning,
replays, restarts from a checkpointed offset) without Spark: a real ``mlflow server`` on
loopback over a SQLite store, more points logged through it with real mlflow.

What must hold: every point of the store is emitted exactly once across micro-batches, a
restart from the last committed offset and a replayed batch; ``maxRowsPerTrigger`` splits a
series without losing or repeating a point; a point logged with an older timestamp than points
already emitted stops the stream with a clear error instead of emitting wrongly.
"""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter

import pytest

from pyspark_experiments.datasource import ReadRequest
from pyspark_experiments.datasource.stream import ExperimentsStreamReader
from pyspark_experiments.errors import UnsupportedStoreError
from support.mlflow_server import running_mlflow_server
from support.stores import BASE_MS, new_store

ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


# A server of its own (~20 s to start): the slow tier. Streams from local stores run by default.
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(url, sqlite_uri, manifest)``: a small store (three runs) served by a new ``mlflow server``."""
    folder = tmp_path_factory.mktemp("stream-rest")
    uri, manifest = new_store("sqlite", folder, reference=False)
    with running_mlflow_server(uri, str(folder)) as url:
        yield url, uri, manifest


def reader(url: str, **options) -> ExperimentsStreamReader:
    request = ReadRequest.from_options({"trackingUri": url, "table": "metrics", "viewType": "ALL", **options}, environ={})
    return ExperimentsStreamReader(request)


def batch(stream: ExperimentsStreamReader, start: dict, end: dict) -> list[tuple]:
    """One micro-batch as Spark runs it: offsets through JSON, partitions pickled to executors."""
    start, end = json.loads(json.dumps(start)), json.loads(json.dumps(end))
    rows = []
    for partition in stream.partitions(start, end):
        for record in stream.read(pickle.loads(pickle.dumps(partition))):
            rows += [point(r) for r in record.to_pylist()]
    return rows


def point(row: dict) -> tuple:
    value = row["value"]
    return (row["run_id"], row["key"], row["step"], str(row["timestamp"]),
            "NaN" if value is not None and math.isnan(value) else value)


def store_points(uri: str) -> Counter:
    """Every point of the store, read directly (no Spark)."""
    from pyspark_experiments.datasource import plan_read
    from pyspark_experiments.stores import open_store

    options = {"trackingUri": uri, "table": "metrics", "viewType": "ALL"}
    _, partitions = plan_read(options, environ={})
    store = open_store(ReadRequest.from_options(options, environ={}).uri)
    return Counter(point(r) for p in partitions for b in store.read(p) for r in b.to_pylist())


def run_until_caught_up(stream: ExperimentsStreamReader, start: dict, emitted: list, batches: int = 50) -> dict:
    for _ in range(batches):
        end = stream.latestOffset(start, stream.getDefaultReadLimit())
        if end == start:
            return end
        emitted += batch(stream, start, end)
        stream.commit(end)
        start = end
    raise AssertionError("the stream did not catch up")


def test_every_point_once_across_batches_a_replay_and_a_restart(served):
    from mlflow.tracking import MlflowClient

    url, sqlite_uri, manifest = served
    emitted: list[tuple] = []
    stream = reader(url, maxRowsPerTrigger="2")
    start = stream.initialOffset()
    first_end = stream.latestOffset(start, stream.getDefaultReadLimit())
    first = batch(stream, start, first_end)
    assert len(first) == 2
    emitted += first
    offset = run_until_caught_up(stream, first_end, emitted)
    assert Counter(emitted) == store_points(sqlite_uri)

    # More points through the server (new ones have later timestamps, as MLflow logs them):
    # to a run that runs again, then ends; a new run.
    client = MlflowClient(tracking_uri=url)
    running = manifest["runs"]["s-1"]
    later = BASE_MS + 400 * 86_400_000
    client.update_run(running, "RUNNING")
    for step in range(5):
        client.log_metric(running, "loss", 0.1 * step, timestamp=later + step, step=100 + step)
    client.log_metric(running, "loss", math.nan, timestamp=later + 9, step=1)  # a lower step, later
    client.log_metric(running, "acc", 0.5, timestamp=later + 9, step=0)  # a new series
    client.set_terminated(running, "FINISHED", end_time=later + 10)
    new = client.create_run(manifest["experiments"]["small"], start_time=later).info.run_id
    for step in range(30):
        client.log_metric(new, "acc", step / 30, timestamp=later + step, step=step)

    # A replay of the first batch (Spark re-runs an uncommitted batch) emits the same points.
    assert batch(stream, start, first_end) == first

    # A restart: a new reader from the checkpointed offset, limited batches.
    restarted = reader(url, maxRowsPerTrigger="7")
    run_until_caught_up(restarted, json.loads(json.dumps(offset)), emitted)
    assert Counter(emitted) == store_points(sqlite_uri)


def test_a_point_older_than_those_emitted_stops_the_stream_clearly(served, tmp_path):
    from mlflow.tracking import MlflowClient

    url, _, manifest = served
    stream = reader(url)
    offset = run_until_caught_up(stream, stream.initialOffset(), [])
    client = MlflowClient(tracking_uri=url)
    run = client.create_run(manifest["experiments"]["small"], start_time=BASE_MS).info.run_id
    client.log_metric(run, "late", 1.0, timestamp=BASE_MS + 100, step=0)
    offset = run_until_caught_up(stream, offset, [])
    # An older timestamp, and a new latest step: the digest moves, the order does not hold.
    client.log_metric(run, "late", 2.0, timestamp=BASE_MS + 50, step=5)
    with pytest.raises(UnsupportedStoreError, match=f"series 'late' of run {run} no longer starts with the 1 point"):
        stream.latestOffset(offset, stream.getDefaultReadLimit())
