"""Rowid spans: on SQLite, a read of most runs' metric history is planned as spans of
the ``metrics`` table's rowids, each scanned in table order, instead of counting each run's
points first. Checked against mlflow's own ``get_metric_history`` on a real store whose runs
logged their points interleaved, with deleted runs, NaN and infinities, and every narrowing
option; and against the per-run plan, which small selections keep.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from pyspark_experiments.datasource import plan_read
from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.sql.reads import RowidSpan
from pyspark_experiments.uri import resolve_tracking_uri

KEYS = ("loss", "acc", "lr")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three experiments of three runs, their points logged round-robin (so one run's rowids are
    far apart); one run deleted, one experiment deleted. Returns (uri, client, runs by id)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("spans") / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri)
    runs = {}
    for name in ("a", "b", "c"):
        experiment = client.create_experiment(name)
        for index in range(3):
            run = client.create_run(experiment, start_time=1_000 * (index + 1)).info.run_id
            runs[run] = experiment
    values = [0.5, math.nan, math.inf, -math.inf, 0.0, -1.25]
    for step in range(6):
        for number, run in enumerate(runs):
            for key in KEYS[: 1 + number % 3]:
                client.log_metric(run, key, values[(step + number) % len(values)], step=step, timestamp=10 * step)
    deleted_run = list(runs)[1]
    client.delete_run(deleted_run)
    client.delete_experiment(runs[list(runs)[-1]])
    return uri, client, runs, deleted_run


def read(uri: str, **options) -> tuple[list, list[dict]]:
    _, partitions = plan_read({"trackingUri": uri, "table": "metrics", **options}, environ={})
    backend = open_store(resolve_tracking_uri(uri, {}))
    rows = [row for partition in partitions for batch in backend.read(partition) for row in batch.to_pylist()]
    return partitions, rows


def reference(client, runs: dict, keys=KEYS) -> Counter:
    """What mlflow answers, one get_metric_history call per run and key."""
    found = Counter()
    for run, experiment in runs.items():
        for key in keys:
            for metric in client.get_metric_history(run, key):
                value = "nan" if math.isnan(metric.value) else metric.value
                found[(experiment, run, key, value, metric.step, metric.timestamp * 1000)] += 1
    return found


def as_reference(rows: list[dict]) -> Counter:
    found = Counter()
    for row in rows:
        value = "nan" if row["value"] != row["value"] else row["value"]
        micros = round(row["timestamp"].timestamp() * 1_000_000)
        found[(row["experiment_id"], row["run_id"], row["key"], value, row["step"], micros)] += 1
    return found


def live_runs(client, runs: dict, deleted_run: str) -> dict:
    active = {e.experiment_id for e in client.search_experiments()}
    return {run: experiment for run, experiment in runs.items() if run != deleted_run and experiment in active}


def test_a_read_of_every_run_is_planned_as_spans_and_equals_mlflow(store):
    uri, client, runs, deleted_run = store
    partitions, rows = read(uri)
    assert partitions and all(isinstance(p.work, RowidSpan) for p in partitions)
    expected = reference(client, live_runs(client, runs, deleted_run))
    assert as_reference(rows) == expected
    assert sum(expected.values()) == len(rows) > 0


def test_spans_cover_the_table_once_whatever_the_partition_size(store):
    uri, client, runs, deleted_run = store
    _, whole = read(uri)
    for options in ({"partitionSize": "7"}, {"numPartitions": "5"}, {"numPartitions": "1000"}):
        partitions, rows = read(uri, **options)
        spans = [p.work for p in partitions]
        assert all(isinstance(span, RowidSpan) and span.after < span.upto for span in spans)
        assert all(left.upto == right.after for left, right in zip(spans, spans[1:]))
        assert as_reference(rows) == as_reference(whole)
    partitions, _ = read(uri, numPartitions="5")
    assert len(partitions) == 5


@pytest.mark.parametrize("view_type", ["ACTIVE_ONLY", "DELETED_ONLY", "ALL"])
def test_view_types_keys_and_start_times_narrow_a_span_read_as_mlflow_does(store, view_type):
    uri, client, runs, deleted_run = store
    experiments = {e.experiment_id: e.lifecycle_stage for e in client.search_experiments(view_type=3)}
    keys = ("acc", "lr")
    # ACTIVE_ONLY refuses a deleted experiment named explicitly; by default it reads the active ones.
    named = {} if view_type == "ACTIVE_ONLY" else {"experimentIds": ",".join(sorted(experiments))}
    partitions, rows = read(uri, viewType=view_type, metricKeys=",".join(keys), startTimeAfter="1500", **named)
    stage = {"ACTIVE_ONLY": ("active",), "DELETED_ONLY": ("deleted",), "ALL": ("active", "deleted")}[view_type]
    chosen = {
        run: experiment for run, experiment in runs.items()
        if client.get_run(run).info.lifecycle_stage in stage and client.get_run(run).info.start_time >= 1500
    }
    assert as_reference(rows) == reference(client, chosen, keys)
    # Spans where the selection holds at least half of the store's runs (ALL: 6 of 9), else per run.
    spans = [isinstance(p.work, RowidSpan) for p in partitions]
    assert rows and (all(spans) if view_type == "ALL" else not any(spans))


def test_a_small_selection_keeps_the_per_run_plan_with_the_same_answer(store):
    uri, client, runs, deleted_run = store
    run = next(iter(live_runs(client, runs, deleted_run)))
    partitions, rows = read(uri, runIds=run)
    assert partitions and not any(isinstance(p.work, RowidSpan) for p in partitions)
    assert as_reference(rows) == reference(client, {run: runs[run]})
    _, everything = read(uri)
    assert Counter(r for r in as_reference(everything).elements() if r[1] == run) == as_reference(rows)
