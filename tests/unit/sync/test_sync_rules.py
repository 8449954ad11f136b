"""The sync's smaller decisions without Spark (plan, scope and state header rules): which tables a sync keeps, when it may skip its
scan (the store's change token and the state commit's header), which saved positions and
series it reuses where the store takes marks, where it reads, and what it does to the
experiments table."""

from __future__ import annotations

import json

import pytest

from pyspark_experiments import tables
from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.stores.base import StoreCapabilities
from pyspark_experiments.sync.config import DEFAULT_TABLES
from pyspark_experiments.sync.plan import (
    COMMIT_ORDER,
    DRIVER_READ_POINTS,
    OPTIONAL_TABLES,
    UNSYNCED_POSITION,
    Flags,
    Scan,
    average_series_length,
    estimated_points,
    experiment_changes,
    make_plan,
    moved_series,
    moves_saved_positions,
    reads_metrics_on_driver,
    series_needed,
    series_read_by_run,
)
from pyspark_experiments.sync.scope import chosen_optional_tables, kept_tables, scope_digest, takes_store_token
from pyspark_experiments.sync.state import MAX_STATE_APPENDS, SyncState, state_header, unchanged_since

SQLITE = StoreCapabilities("sql", "sql", "rowid", True, 1, True, metric_marks=True, change_token=True)
FILE = StoreCapabilities("file", "file", "bytes", True, 32, True)


def marked_scan(experiments=("1",), mark="9") -> Scan:
    return Scan(tuple(experiments), {"a": ("1", "fa"), "b": ("1", "fb")}, None, SQLITE.state_key,
                SQLITE.positions_key, SQLITE.metric_positions, SQLITE.exact_metric_ranges, metrics_mark=mark)


def marked_state(**meta) -> SyncState:
    return SyncState(
        runs={"a": ("1", "fa"), "b": ("1", "fb")}, series={("a", "loss"): 3, ("b", "loss"): 5},
        meta={"sync": {"sync_id": 1}, "state_key": SQLITE.state_key, "positions_key": SQLITE.positions_key,
              "metrics_mark": {"mark": "7", "experiments": ["1"]}, **meta},
        stored_rows=4,
    )


# -- the tables kept -----------------------------------------------------------------------------


def test_kept_tables_are_the_run_tables_then_the_optional_ones_in_commit_order():
    assert kept_tables(()) == tuple(t for t in COMMIT_ORDER if t in tables.TABLE_NAMES)
    assert kept_tables(reversed(OPTIONAL_TABLES)) == COMMIT_ORDER
    assert kept_tables(["model_versions", "artifacts"])[-2:] == ("artifacts", "model_versions")


def test_optional_tables_default_to_those_the_store_serves_and_asked_ones_must_be_served():
    served = (*tables.TABLE_NAMES, "artifacts", "models")
    assert chosen_optional_tables(served, None, DEFAULT_TABLES, "/m") == tuple(t for t in DEFAULT_TABLES if t in served)
    assert chosen_optional_tables(served, ("artifacts",), DEFAULT_TABLES, "/m") == ("artifacts",)
    assert chosen_optional_tables(served, (), DEFAULT_TABLES, "/m") == ()
    with pytest.raises(ConfigurationError, match=r"sqlite:///x.db does not serve registered_models \(it serves "
                                                 r"artifacts, models\)"):
        chosen_optional_tables(served, ("models", "registered_models"), DEFAULT_TABLES, "sqlite:///x.db")


# -- skipping the scan of an unchanged store -------------------------------------------------------


@pytest.mark.parametrize("full, reconcile, relist, expected", [
    (False, False, False, True), (True, False, False, False), (False, True, False, False), (False, False, True, False),
])
def test_a_store_token_is_taken_only_by_a_sync_that_looks_no_further_than_the_tables(full, reconcile, relist, expected):
    assert takes_store_token(True, full, reconcile, relist) is expected
    assert takes_store_token(False, full, reconcile, relist) is False


def test_the_state_is_read_by_run_only_with_marks_and_neither_full_nor_reconcile():
    assert series_read_by_run(True, False, False)
    assert not series_read_by_run(False, False, False)
    assert not series_read_by_run(True, True, False)
    assert not series_read_by_run(True, False, True)


def test_the_scope_digest_changes_with_everything_that_decides_the_reads():
    base = ("sqlite:///x.db", None, ("models",), "FAILFAST", "sql", "sql:rowid:exact")
    digests = {scope_digest(*base)}
    for i, other in enumerate(["sqlite:///y.db", ("1",), (), "PERMISSIVE", "sql:hashed", "sql:count:whole"]):
        changed = list(base)
        changed[i] = other
        digests.add(scope_digest(*changed))
    assert len(digests) == 7
    assert scope_digest(*base) == scope_digest("sqlite:///x.db", [], ["models"], "FAILFAST", "sql", "sql:rowid:exact")


def test_a_state_header_read_back_shows_the_store_unchanged_only_for_the_same_token_and_scope():
    header = state_header("t1", "scope", sync_id=4, experiment_count=2, run_count=9, appends=3,
                          rows={"runs": 9, "metrics": 120}, skipped=False)
    head = json.loads(header)
    assert head == {"store_token": "t1", "scope": "scope", "sync_id": 4, "experiment_count": 2, "run_count": 9,
                    "appends": 3, "rows": {"runs": 9, "metrics": 120}}
    assert unchanged_since(head, "t1", "scope")
    assert not unchanged_since(head, "t2", "scope")
    assert not unchanged_since(head, "t1", "another scope")
    assert not unchanged_since({k: v for k, v in head.items() if k != "appends"}, "t1", "scope")
    assert not unchanged_since(dict(head, rows=[9]), "t1", "scope")


def test_no_header_without_a_token_or_after_a_skipped_record():
    kwargs = {"sync_id": 1, "experiment_count": 1, "run_count": 1, "appends": 0, "rows": {}}
    assert state_header(None, "scope", skipped=False, **kwargs) is None
    assert state_header("t1", "scope", skipped=True, **kwargs) is None


# -- positions where the store takes marks ---------------------------------------------------------


def test_saved_positions_are_moved_only_after_a_clean_sync_of_the_same_experiments():
    scan, state = marked_scan(), marked_state()
    assert moves_saved_positions(scan, state, full=False, recovering=False)
    assert not moves_saved_positions(scan, state, full=True, recovering=False)
    assert not moves_saved_positions(scan, state, full=False, recovering=True)
    assert not moves_saved_positions(marked_scan(experiments=("1", "2")), state, False, False)
    assert not moves_saved_positions(scan, marked_state(metrics_mark=None), False, False)
    assert not moves_saved_positions(scan, marked_state(positions_key="sql:count:whole"), False, False)
    unsynced = marked_state()
    unsynced.series[("b", "loss")] = UNSYNCED_POSITION
    assert not moves_saved_positions(scan, unsynced, False, False)


def test_only_the_series_of_known_runs_that_moved_are_read_unless_the_state_is_rewritten():
    scan, state = marked_scan(), marked_state()
    assert series_needed([("a", "loss"), ("a", "acc"), ("new", "loss")], scan, state) == {"a"}
    assert series_needed([], scan, state) == set()
    assert series_needed(None, scan, state) is None
    assert series_needed([("a", "loss")], scan, marked_state(state_key="sql:hashed")) is None
    assert series_needed([("a", "loss")], scan, marked_state(appends=MAX_STATE_APPENDS)) is None


def test_moved_series_are_listed_from_the_saved_position_or_zero():
    positions = {("r", "loss"): 96, ("r", "acc"): 8, ("s", "loss"): 32}
    scan = Scan(("1",), {}, positions, FILE.state_key, FILE.positions_key, "bytes", True)
    state = SyncState(series={("r", "loss"): 40, ("r", "acc"): 8}, meta={"positions_key": FILE.positions_key})
    assert moved_series(scan, state) == (("r", "loss", 40, 96), ("s", "loss", 0, 32))
    other_kind = SyncState(series=dict(state.series), meta={"positions_key": "file:bytes:other"})
    assert moved_series(scan, other_kind) == (("r", "acc", 0, 8), ("r", "loss", 0, 96), ("s", "loss", 0, 32))
    unsynced = SyncState(series={("r", "loss"): UNSYNCED_POSITION}, meta={"positions_key": FILE.positions_key})
    assert moved_series(scan, unsynced)[1] == ("r", "loss", 0, 96)


# -- where the points are read ---------------------------------------------------------------------


def test_points_are_estimated_from_bytes_or_from_ranges_capped_at_the_average_series():
    assert estimated_points({("r", "loss"): (0, 320), ("r", "acc"): (320, 320)}, "bytes", 32, 0) == 11 + 1
    assert estimated_points({("r", "loss"): (10, 20)}, "bytes", 0, 0) == 11
    assert estimated_points({("r", "loss"): (0, 50_000), ("s", "loss"): (5, 8)}, "rowid", 1, 0) == 1_000 + 3
    assert estimated_points({("r", "loss"): (0, 50_000)}, "rowid", 1, 200) == 200


def test_metrics_go_to_the_executors_beyond_the_driver_budget():
    def plan(ranges, whole=()):
        scan = Scan(("1",), {"r": ("1", "f")}, {pair: upto for pair, (_, upto) in ranges.items()}, "sql", "sql:rowid:exact")
        built = make_plan(scan, SyncState(), Flags())
        built.ranges, built.whole_series = dict(ranges), set(whole)
        return built

    small = plan({("r", "loss"): (0, 10)})
    assert reads_metrics_on_driver(small, "rowid", 1, 100)
    assert not reads_metrics_on_driver(plan({("r", "loss"): (0, DRIVER_READ_POINTS + 1)}), "rowid", 1,
                                       DRIVER_READ_POINTS + 1)
    whole = [("r", f"m{i}") for i in range(11)]
    assert not reads_metrics_on_driver(plan({}, whole), "rowid", 1, DRIVER_READ_POINTS // 10)
    assert reads_metrics_on_driver(plan({}, whole[:10]), "rowid", 1, DRIVER_READ_POINTS // 10)
    assert average_series_length(1_000, 30) == 33 and average_series_length(5, 0) == 0


# -- the experiments table -------------------------------------------------------------------------


def test_experiments_that_left_the_store_stay_with_their_digests_unless_reconciled():
    wanted, known = {"1": "a", "2": "b2", "4": "d"}, {"1": "a", "2": "b", "3": "c"}
    assert experiment_changes(wanted, known, reconcile=False) == (1, 1, {"3"}, {"1": "a", "2": "b2", "4": "d", "3": "c"})
    assert experiment_changes(wanted, known, reconcile=True) == (1, 1, {"3"}, {"1": "a", "2": "b2", "4": "d"})
    assert experiment_changes(known, known, reconcile=True) == (0, 0, set(), known)
    assert experiment_changes({}, {}, reconcile=False) == (0, 0, set(), {})
