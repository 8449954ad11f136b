"""Planning helpers and the file store's plan, without Spark."""

from __future__ import annotations

import os

import pytest

from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.planning import metric_units, pack_partitions
from pyspark_experiments.uri import resolve_tracking_uri


def test_pack_partitions_keeps_order_and_isolates_big_units():
    s = Selection("metrics", ("1",), rows_per_partition=10)
    parts = pack_partitions(s, [("a", 4), ("b", 4), ("c", 30), ("d", 2), ("e", 9)], 1000)
    assert [p.work for p in parts] == [("a", "b"), ("c",), ("d",), ("e",)]
    assert [p.index for p in parts] == [0, 1, 2, 3]
    assert all(p.selection is s for p in parts)


def test_pack_partitions_num_partitions_sets_the_target():
    s = Selection("runs", ("1",), num_partitions=2)
    parts = pack_partitions(s, [(i, 1) for i in range(10)], 1000)
    assert [len(p.work) for p in parts] == [5, 5]
    assert pack_partitions(s, [], 1000) == []


def test_metric_units_whole_runs_unless_too_big():
    s = Selection("metrics", ("1",), rows_per_partition=100)
    counts = [("a", "loss", 10), ("a", "acc", 10), ("b", "loss", 500), ("b", "acc", 5), ("c", "only", 900)]
    assert metric_units(s, counts, 1000) == [
        (("a", None), 20), (("b", "acc"), 5), (("b", "loss"), 500), (("c", None), 900),
    ]


def test_metric_units_apply_metric_keys():
    s = Selection("metrics", ("1",), metric_keys=("loss",))
    assert metric_units(s, [("a", "loss", 3), ("a", "acc", 4)], 1000) == [(("a", None), 3)]


@pytest.mark.parametrize(
    "selection, run, expected",
    [
        (Selection("runs", ("1",)), ("r", "active", 5), True),
        (Selection("runs", ("1",)), ("r", "deleted", 5), False),
        (Selection("runs", ("1",), view_type="DELETED_ONLY"), ("r", "deleted", 5), True),
        (Selection("runs", ("1",), view_type="ALL"), ("r", "deleted", 5), True),
        (Selection("runs", ("1",), run_ids=("x",)), ("r", "active", 5), False),
        (Selection("runs", ("1",), run_ids=("r",)), ("r", "active", 5), True),
        (Selection("runs", ("1",), min_start_time_ms=5), ("r", "active", 5), True),
        (Selection("runs", ("1",), min_start_time_ms=6), ("r", "active", 5), False),
        (Selection("runs", ("1",), min_start_time_ms=6), ("r", "active", None), False),
    ],
)
def test_selection_admits_run(selection, run, expected):
    assert selection.admits_run(*run) is expected


def test_selection_admits_metric_key():
    assert Selection("metrics", ()).admits_metric_key("anything")
    s = Selection("metrics", (), metric_keys=("loss",))
    assert s.admits_metric_key("loss") and not s.admits_metric_key("acc")


def test_file_store_plan_on_a_real_mlruns(small_stores):
    store = open_store(resolve_tracking_uri(small_stores["file"], {}))
    assert store.capabilities.kind == "file" and store.capabilities.exact_metric_ranges
    experiments = {e.name: e.experiment_id for e in store.list_experiments()}
    selection = Selection("runs", (experiments["alpha"], experiments["beta"]), rows_per_partition=2)
    parts = store.plan(selection)
    run_dirs = [run for p in parts for run in p.work]
    assert [len(p.work) for p in parts] == [2, 2, 2]
    assert len({name for _, name in run_dirs}) == 6
    assert all(os.path.isfile(os.path.join(path, name, "meta.yaml")) for path, name in run_dirs)
    metrics = store.plan(Selection("metrics", (experiments["alpha"],)))
    assert len(metrics) == 1 and len(metrics[0].work) == 3  # three whole runs, one partition
    # every planned partition reads as Arrow batches of the table's schema, without Spark
    rows = sum(b.num_rows for p in parts for b in store.read(p))
    assert rows == 6
    positions = store.metric_positions(Selection("metrics", (experiments["alpha"],)))
    assert len(positions) == 3 and all(key == "loss" and size > 0 for (_, key), size in positions.items())


def test_sql_store_capabilities_follow_the_dialect():
    sqlite = open_store(resolve_tracking_uri("sqlite:////tmp/x.db", {})).capabilities
    postgres = open_store(resolve_tracking_uri("postgresql://u@h/db", {})).capabilities
    assert (sqlite.metric_positions, sqlite.exact_metric_ranges, sqlite.position_units_per_point) == ("rowid", True, 1)
    assert (postgres.metric_positions, postgres.exact_metric_ranges) == ("count", False)
    assert sqlite.state_key == postgres.state_key == "sql"


@pytest.mark.slow  # writes and plans file stores of up to 5,000 runs: 40 s
def test_file_store_per_run_tables_split_in_quarters_of_1000_to_5000_runs(tmp_path):
    from benchmarks import generate_store
    from pyspark_experiments.stores.file.store import default_partition_runs

    # the cap, without writing 20,000 runs
    assert [default_partition_runs(n) for n in (100_000, 20_000, 12_000, 4_000, 10)] == [5_000, 5_000, 3_000, 1_000, 1_000]

    spec = generate_store.Spec(runs=12_000, metrics=1, steps=1, params=1, experiments=1, seed=3, big_run_points=0, nan_rate=0)
    manifest = generate_store.generate(str(tmp_path), spec, ("file",), progress=lambda *_: None)
    store = open_store(resolve_tracking_uri(manifest["stores"]["file"]["uri"], {}))
    experiment_id = manifest["stores"]["file"]["experiments"][0]["id"]
    for table in ("runs", "params", "tags", "inputs"):
        parts = store.plan(Selection(table, (experiment_id,)))
        assert [len(p.work) for p in parts] == [3_000] * 4, table
    first_runs = tuple(name for _, name in store.plan(Selection("runs", (experiment_id,)))[0].work[:2_000])
    some = Selection("runs", (experiment_id,), run_ids=first_runs)
    assert [len(p.work) for p in store.plan(some)] == [1_000, 1_000]  # at least 1,000 runs a partition
