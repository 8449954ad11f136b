"""The sync's plan without Spark: from (store scan, saved state, flags) to what is read and how
it is written."""

from __future__ import annotations

import pytest

from pyspark_experiments.stores.base import StoreCapabilities
from pyspark_experiments.stores.fingerprints import fingerprint
from pyspark_experiments.sync.plan import Flags, Scan, is_recovery, make_plan, next_state, purged_runs
from pyspark_experiments.sync.state import SyncState, migrate_meta

FILE = StoreCapabilities("file", "file", "bytes", True, 32, True)
SQLITE = StoreCapabilities("sql", "sql", "rowid", True, 1, True)
POSTGRES = StoreCapabilities("sql", "sql", "count", False, 1, True)
DIGEST = StoreCapabilities("rest", "rest", "digest", False, 1, True)


def fp(run="r", params="p", tags="t", inputs="i") -> str:
    return fingerprint({"run": run, "params": params, "tags": tags, "inputs": inputs})


def scan(runs: dict, positions: dict, caps: StoreCapabilities = FILE, experiments=("1",)) -> Scan:
    return Scan(tuple(experiments), {r: ("1", v) for r, v in runs.items()}, dict(positions),
                state_key=caps.state_key, positions_key=caps.positions_key,
                position_kind=caps.metric_positions, exact_ranges=caps.exact_metric_ranges)


def saved(runs: dict, positions: dict, caps: StoreCapabilities = FILE, exact: bool = True, **meta) -> SyncState:
    return SyncState(
        runs={r: ("1", v) for r, v in runs.items()}, series=dict(positions),
        meta={"sync": {"sync_id": 1, "holder": "h1"}, "state_key": caps.state_key,
              "positions_key": caps.positions_key, "metrics_exact": exact, **meta},
    )


BASE_RUNS = {"a": fp(), "b": fp()}
BASE_SERIES = {("a", "loss"): 64, ("b", "loss"): 96}


def test_first_sync_reads_everything_and_merges_into_empty_tables():
    plan = make_plan(scan(BASE_RUNS, BASE_SERIES), SyncState())
    assert plan.mode == "full" and plan.full
    assert plan.ranges == {("a", "loss"): (0, 64), ("b", "loss"): (0, 96)}
    for table in ("params", "tags", "inputs", "runs"):
        assert plan.changed[table] == {"a", "b"}
        assert not plan.appends(table)
    assert not plan.append_metrics and plan.metrics_exact
    assert (plan.new_run_count, plan.changed_run_count, plan.series_read) == (2, 0, 2)


def test_nothing_changed_reads_nothing():
    plan = make_plan(scan(BASE_RUNS, BASE_SERIES), saved(BASE_RUNS, BASE_SERIES))
    assert plan.mode == "incremental"
    assert not any(plan.changed.values()) and not plan.ranges and not plan.whole_series
    assert (plan.new_run_count, plan.changed_run_count, plan.series_read) == (0, 0, 0)


def test_new_runs_are_appended():
    runs = dict(BASE_RUNS, c=fp(run="c"))
    plan = make_plan(scan(runs, {**BASE_SERIES, ("c", "loss"): 32}), saved(BASE_RUNS, BASE_SERIES))
    assert plan.new_runs == {"c"}
    assert all(plan.changed[t] == {"c"} for t in ("params", "tags", "inputs", "runs"))
    assert all(plan.appends(t) for t in ("params", "tags", "inputs", "runs"))
    assert plan.ranges == {("c", "loss"): (0, 32)} and plan.append_metrics
    assert (plan.new_run_count, plan.changed_run_count) == (1, 0)


@pytest.mark.parametrize("part, tables", [
    ("run", {"runs"}),
    ("params", {"params", "runs"}),
    ("tags", {"tags", "runs"}),
    ("inputs", {"inputs"}),
])
def test_a_changed_fingerprint_part_rereads_its_tables_and_merges(part, tables):
    runs = dict(BASE_RUNS, a=fp(**{part: "changed"}))
    plan = make_plan(scan(runs, BASE_SERIES), saved(BASE_RUNS, BASE_SERIES))
    assert {t for t, changed in plan.changed.items() if changed} == tables
    assert all(plan.changed[t] == {"a"} and not plan.appends(t) for t in tables)
    assert (plan.new_run_count, plan.changed_run_count) == (0, 1)


def test_an_unstructured_fingerprint_rereads_every_part():
    plan = make_plan(scan(dict(BASE_RUNS, a="opaque-2"), BASE_SERIES), saved(dict(BASE_RUNS, a="opaque-1"), BASE_SERIES))
    assert all(plan.changed[t] == {"a"} for t in ("params", "tags", "inputs", "runs"))


@pytest.mark.parametrize("caps", [FILE, SQLITE], ids=["bytes", "rowid"])
def test_new_points_are_read_between_positions_and_appended(caps):
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 64, ("b", "loss"): 160, ("b", "acc"): 10}, caps),
                     saved(BASE_RUNS, BASE_SERIES, caps))
    assert plan.ranges == {("b", "loss"): (96, 160), ("b", "acc"): (0, 10)}
    assert plan.append_metrics and not plan.whole_series
    assert plan.changed["runs"] == {"b"} and not plan.changed["params"]  # the row's latest metrics
    assert (plan.new_run_count, plan.changed_run_count, plan.series_read) == (0, 1, 2)


def test_counted_positions_are_read_whole_and_merged():
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 5, ("b", "loss"): 3}, POSTGRES),
                     saved(BASE_RUNS, {("a", "loss"): 4, ("b", "loss"): 3}, POSTGRES, exact=False))
    assert plan.ranges == {("a", "loss"): (4, 5)}
    assert not plan.append_metrics and not plan.metrics_exact


def test_previous_sync_with_inexact_ranges_means_merge():
    plan = make_plan(scan(BASE_RUNS, {**BASE_SERIES, ("a", "loss"): 99}), saved(BASE_RUNS, BASE_SERIES, exact=False))
    assert plan.ranges == {("a", "loss"): (64, 99)} and not plan.append_metrics


def test_a_shrunk_series_is_read_whole_and_replaced():
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 32, ("b", "loss"): 96}), saved(BASE_RUNS, BASE_SERIES))
    assert plan.whole_series == {("a", "loss")} and not plan.ranges
    assert not plan.append_metrics and plan.changed["runs"] == {"a"}
    assert plan.series_read == 1


def test_digest_positions_reread_a_changed_series_whole_and_merge():
    positions = {("a", "loss"): 111, ("b", "loss"): 222}
    state = saved(BASE_RUNS, positions, DIGEST, exact=False)
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 5, ("b", "loss"): 222, ("b", "acc"): 7}, DIGEST), state)
    assert plan.whole_series == {("a", "loss"), ("b", "acc")} and not plan.ranges
    assert not plan.append_metrics
    assert make_plan(scan(BASE_RUNS, positions, DIGEST), state).series_read == 0


def test_a_killed_previous_sync_merges_everything():
    runs = dict(BASE_RUNS, c=fp(run="c"))
    positions = {**BASE_SERIES, ("c", "loss"): 32, ("a", "loss"): 80}
    plan = make_plan(scan(runs, positions), saved(BASE_RUNS, BASE_SERIES), Flags(recovering=True))
    assert plan.mode == "incremental" and plan.recovering
    assert plan.changed["runs"] == {"a", "c"}
    assert not any(plan.appends(t) for t in ("params", "tags", "inputs", "runs", "metrics"))
    assert plan.ranges == {("c", "loss"): (0, 32), ("a", "loss"): (64, 80)}


def test_recovery_is_a_claim_of_another_holder_than_the_last_saved_sync():
    assert is_recovery([{"holder": "h2"}], {"holder": "h1"})
    assert not is_recovery([{"holder": "h1"}], {"holder": "h1"})  # it saved its state, then died
    assert not is_recovery([], {"holder": "h1"})


def test_full_flag_rereads_and_merges_everything():
    plan = make_plan(scan(BASE_RUNS, BASE_SERIES), saved(BASE_RUNS, BASE_SERIES), Flags(full=True))
    assert plan.mode == "full" and plan.changed["runs"] == {"a", "b"} and len(plan.ranges) == 2
    assert not plan.appends("runs") and not plan.append_metrics


def test_purged_runs_stay_in_the_state_until_reconciled():
    state = saved(dict(BASE_RUNS, gone=fp()), {**BASE_SERIES, ("gone", "loss"): 10})
    plan = make_plan(scan(BASE_RUNS, BASE_SERIES), state)
    assert not any(plan.changed.values()) and not plan.ranges  # the gone run is not read
    runs, series = next_state(state, plan)
    assert "gone" in runs and ("gone", "loss") in series
    purged = purged_runs({"a": "1", "b": "1", "gone": "1"}, plan.fingerprints, plan.experiment_ids, all_experiments=True)
    assert purged == {"gone"}
    runs, series = next_state(state, plan, purged)
    assert set(runs) == {"a", "b"} and set(series) == set(BASE_SERIES)


def test_purge_is_limited_to_the_selected_experiments():
    found = {"a": "1", "x": "2"}
    assert purged_runs(found, set(), ["1"], all_experiments=False) == {"a"}
    assert purged_runs(found, set(), ["1"], all_experiments=True) == {"a", "x"}


def test_a_store_of_another_kind_rereads_everything_and_merges():
    state = saved(BASE_RUNS, BASE_SERIES, FILE)
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 5, ("b", "loss"): 9}, SQLITE), state)
    assert plan.mode == "full"
    assert plan.changed["runs"] == {"a", "b"} and plan.new_runs == {"a", "b"}
    assert not plan.appends("runs") and not plan.append_metrics  # never appended twice
    assert plan.ranges == {("a", "loss"): (0, 5), ("b", "loss"): (0, 9)}
    assert plan.state_key == "sql" and plan.positions_key == "sql:rowid:exact"


def test_other_position_meaning_rereads_series_from_zero():
    state = saved(BASE_RUNS, BASE_SERIES, FILE)
    state.meta["positions_key"] = "file:bytes:whole"
    plan = make_plan(scan(BASE_RUNS, BASE_SERIES), state)
    assert plan.mode == "incremental" and not plan.changed["params"]
    assert plan.ranges == {("a", "loss"): (0, 64), ("b", "loss"): (0, 96)} and not plan.append_metrics


@pytest.mark.parametrize("legacy, caps", [
    ({"fingerprints": "SqlStore", "positions": "SqlStore:sqlite:exact"}, SQLITE),
    ({"fingerprints": "SqlStore", "positions": "SqlStore:postgresql:count"}, POSTGRES),
    ({"fingerprints": "FileStore", "positions": "FileStore:file:exact"}, FILE),
])
def test_legacy_state_meta_is_migrated_and_nothing_is_reread(legacy, caps):
    meta = migrate_meta({"sync": {"sync_id": 4, "holder": "old"}, "metrics_exact": caps.exact_metric_ranges, **legacy})
    state = SyncState(runs={r: ("1", v) for r, v in BASE_RUNS.items()}, series=dict(BASE_SERIES), meta=meta)
    plan = make_plan(scan(BASE_RUNS, BASE_SERIES, caps), state)
    assert plan.mode == "incremental"
    assert not any(plan.changed.values()) and plan.series_read == 0
    grown = make_plan(scan(BASE_RUNS, {**BASE_SERIES, ("a", "loss"): 70}, caps), state)
    assert grown.ranges == {("a", "loss"): (64, 70)}
    assert grown.append_metrics == caps.exact_metric_ranges


def test_no_experiments_selected_is_an_empty_plan():
    plan = make_plan(scan({}, {}, experiments=()), SyncState())
    assert plan.mode == "full" and not plan.ranges and not any(plan.changed.values())


def test_too_many_series_to_list_is_not_exact():
    positions = {("a", f"m{i}"): 10 for i in range(5)}
    plan = make_plan(scan(BASE_RUNS, positions), saved(BASE_RUNS, {}), Flags(max_listed_series=3))
    assert not plan.bounded and not plan.metrics_exact and not plan.append_metrics


# ------------------------------------------------------------------------------------------------
# PERMISSIVE skips are never recorded as synced
# ------------------------------------------------------------------------------------------------


def _state_after(state: SyncState, plan, skipped=()) -> SyncState:
    """The state the next sync reads back, as next_state records it."""
    runs, series = next_state(state, plan, skipped=skipped)
    return SyncState(runs=runs, series=series, meta={"sync": {"sync_id": 9, "holder": "h"}, "state_key": "file",
                                                     "positions_key": FILE.positions_key, "metrics_exact": True})


def test_a_skipped_new_run_is_reread_whole_and_merged_by_the_next_sync():
    from pyspark_experiments.stores.problems import SkippedRecord
    from pyspark_experiments.sync.plan import UNSYNCED, UNSYNCED_POSITION, skipped_runs

    runs = dict(BASE_RUNS, c=fp(run="c"))
    series = {**BASE_SERIES, ("c", "loss"): 32, ("c", "acc"): 40}
    first = make_plan(scan(runs, series), saved(BASE_RUNS, BASE_SERIES))
    skipped = skipped_runs(first, [SkippedRecord("/m/1/c/meta.yaml: not valid YAML", "1", "c")])
    assert skipped == {"c"}
    state = _state_after(saved(BASE_RUNS, BASE_SERIES), first, skipped)
    assert state.runs["c"] == ("1", UNSYNCED) and state.runs["a"] == ("1", fp())
    assert state.series[("c", "loss")] == state.series[("c", "acc")] == UNSYNCED_POSITION
    assert state.series[("a", "loss")] == 64

    # The store did not change (or the file was repaired): the run is read again, all of it.
    again = make_plan(scan(runs, series), state)
    assert all(again.changed[t] == {"c"} for t in ("params", "tags", "inputs", "runs"))
    assert again.whole_series == {("c", "loss"), ("c", "acc")} and not again.ranges
    # Known to the target: merged, never appended (some of its rows may have been written).
    assert again.new_runs == set() and not any(again.appends(t) for t in ("params", "tags", "inputs", "runs"))
    assert not again.append_metrics
    assert (again.new_run_count, again.changed_run_count) == (0, 1)

    # Once read without skips, it is recorded and the sync after reads nothing.
    synced = _state_after(state, again)
    assert synced.runs["c"] == ("1", fp(run="c")) and synced.series[("c", "loss")] == 32
    assert not make_plan(scan(runs, series), synced).touched_runs


def test_a_skipped_known_run_keeps_nothing_of_this_syncs_positions():
    from pyspark_experiments.sync.plan import UNSYNCED

    grown = {**BASE_SERIES, ("a", "loss"): 128}
    runs = dict(BASE_RUNS, a=fp(params="p2"))
    plan = make_plan(scan(runs, grown), saved(BASE_RUNS, BASE_SERIES))
    assert plan.ranges == {("a", "loss"): (64, 128)}
    state = _state_after(saved(BASE_RUNS, BASE_SERIES), plan, {"a"})
    assert state.runs["a"][1] == UNSYNCED and state.runs["b"] == ("1", fp())
    again = make_plan(scan(runs, grown), state)
    assert again.whole_series == {("a", "loss")} and again.changed["params"] == {"a"}
    assert again.changed["runs"] == {"a"} and not again.appends("params")


def test_skips_without_a_run_name_their_experiment_or_every_run():
    from pyspark_experiments.stores.problems import SkippedRecord
    from pyspark_experiments.sync.plan import skipped_runs

    plan = make_plan(Scan(("1", "2"), {"a": ("1", fp()), "b": ("2", fp())}, {}, "file", FILE.positions_key), SyncState())
    assert skipped_runs(plan, []) == set()
    assert skipped_runs(plan, [SkippedRecord("/m/2/meta.yaml: bad", "2")]) == {"b"}
    assert skipped_runs(plan, [SkippedRecord("somewhere: bad")]) == {"a", "b"}


# ------------------------------------------------------------------------------------------------
# A metric file changed in place
# ------------------------------------------------------------------------------------------------


def test_a_series_changed_before_its_saved_position_is_read_whole():
    from pyspark_experiments.sync.plan import next_checks

    state = saved(BASE_RUNS, BASE_SERIES)
    state.series_checks = {("a", "loss"): "line-a-64", ("b", "loss"): "line-b-96"}
    grown = {("a", "loss"): 71, ("b", "loss"): 128}
    # a: a line before byte 64 was edited (the file grew by 7 bytes): the line ending at 64 is
    # not the one saved; b: appended to, its line at 96 is still there.
    checked = Scan(("1",), {r: ("1", v) for r, v in BASE_RUNS.items()}, grown, "file", FILE.positions_key, "bytes", True,
                   checks={("a", "loss"): "line-a-71", ("b", "loss"): "line-b-128"},
                   checks_after={("a", "loss"): "something-else", ("b", "loss"): "line-b-96"})
    plan = make_plan(checked, state)
    assert plan.whole_series == {("a", "loss")}
    assert plan.ranges == {("b", "loss"): (96, 128)}
    assert not plan.append_metrics  # a series read whole replaces what the table holds of it
    runs, series = next_state(state, plan)
    assert next_checks(state, plan, series) == {("a", "loss"): "line-a-71", ("b", "loss"): "line-b-128"}


def test_unchecked_positions_and_unmoved_series_keep_working():
    from pyspark_experiments.sync.plan import next_checks

    state = saved(BASE_RUNS, BASE_SERIES)
    # no checks saved (a state of an older sync, or a store without checks): ranges as before
    plan = make_plan(scan(BASE_RUNS, {**BASE_SERIES, ("a", "loss"): 80}), state)
    assert plan.ranges == {("a", "loss"): (64, 80)} and not plan.whole_series
    # a series that did not move keeps its saved check
    state.series_checks = {("b", "loss"): "line-b-96"}
    runs, series = next_state(state, plan)
    assert next_checks(state, plan, series) == {("b", "loss"): "line-b-96"}


# ------------------------------------------------------------------------------------------------
# digest positions (tracking servers over REST)
# ------------------------------------------------------------------------------------------------


def test_digest_positions_first_sync_reads_every_series_whole():
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 11, ("b", "loss"): 22}, DIGEST), SyncState())
    assert plan.mode == "full" and plan.whole_series == {("a", "loss"), ("b", "loss")} and not plan.ranges
    assert not plan.append_metrics and not plan.metrics_exact


def test_digest_positions_never_append_even_after_an_exact_state():
    # A digest that happens to be larger is no range: the series is read whole and merged.
    state = saved(BASE_RUNS, {("a", "loss"): 5}, DIGEST, exact=True)
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 9}, DIGEST), state)
    assert plan.whole_series == {("a", "loss")} and not plan.ranges and not plan.append_metrics
    assert plan.changed["runs"] == {"a"} and not plan.changed["tags"]


def test_digest_positions_of_a_deleted_run_reread_the_run_and_its_series():
    runs = dict(BASE_RUNS, b=fp(run="deleted"))
    state = saved(BASE_RUNS, {("a", "loss"): 1, ("b", "loss"): 2, ("b", "acc"): 3}, DIGEST, exact=False)
    plan = make_plan(scan(runs, {("a", "loss"): 1, ("b", "loss"): 7, ("b", "acc"): 8}, DIGEST), state)
    assert plan.whole_series == {("b", "loss"), ("b", "acc")}
    assert plan.changed["runs"] == {"b"} and plan.changed["params"] == set()
    assert plan.changed_run_count == 1 and plan.new_run_count == 0


def test_digest_positions_after_a_skipped_run_are_read_whole():
    state = saved(BASE_RUNS, {("a", "loss"): -1, ("b", "loss"): 2}, DIGEST, exact=False)
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 5, ("b", "loss"): 2}, DIGEST), state)
    assert plan.whole_series == {("a", "loss")}


def test_digest_positions_after_a_store_of_another_kind_reread_everything():
    state = saved(BASE_RUNS, BASE_SERIES, SQLITE)
    plan = make_plan(scan(BASE_RUNS, {("a", "loss"): 64, ("b", "loss"): 96}, DIGEST), state)
    assert plan.full and plan.whole_series == {("a", "loss"), ("b", "loss")} and not plan.ranges
    runs, series = next_state(state, plan)
    assert series == {("a", "loss"): 64, ("b", "loss"): 96}
