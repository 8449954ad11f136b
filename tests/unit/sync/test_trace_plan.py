"""The sync's plan of the trace tables (``traces``, ``spans``, ``assessments``) and the traces
its state keeps, without Spark."""

from __future__ import annotations

import pytest

from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.stores.base import StoreCapabilities
from pyspark_experiments.stores.fingerprints import TRACE_FINGERPRINT_PARTS, fingerprint
from pyspark_experiments.sync import SyncConfig
from pyspark_experiments.sync.config import DEFAULT_TABLES
from pyspark_experiments.sync.plan import COMMIT_ORDER, OPTIONAL_TABLES, Flags, Scan, make_plan
from pyspark_experiments.sync.scope import chosen_optional_tables
from pyspark_experiments.sync.state import UNSYNCED, SyncState, state_update
from pyspark_experiments.sync.traces import TRACE_TABLES, next_traces, plan_traces

SQLITE = StoreCapabilities("sql", "sql", "rowid", True, 1, True)


def tfp(trace="t", spans="s", assessments="a") -> str:
    return fingerprint({"trace": trace, "spans": spans, "assessments": assessments}, TRACE_FINGERPRINT_PARTS)


TRACES = {"t1": ("1", tfp()), "t2": ("1", tfp()), "t3": ("2", tfp())}


def scan(traces=TRACES, experiments=("1", "2")) -> Scan:
    return Scan(experiments, {}, {}, SQLITE.state_key, SQLITE.positions_key, SQLITE.metric_positions,
                SQLITE.exact_metric_ranges, traces=dict(traces))


def saved(traces=TRACES, kept=TRACE_TABLES) -> SyncState:
    return SyncState(traces=dict(traces), meta={
        "sync": {"sync_id": 1, "holder": "h"}, "state_key": SQLITE.state_key, "positions_key": SQLITE.positions_key,
        "metrics_exact": True, "tables": list(kept)})


def flags(**changes) -> Flags:
    return Flags(**{"tables": TRACE_TABLES, **changes})


def test_trace_tables_are_optional_kept_when_asked_and_last_in_commit_order():
    assert set(TRACE_TABLES) <= set(OPTIONAL_TABLES) and not set(TRACE_TABLES) & set(DEFAULT_TABLES)
    assert COMMIT_ORDER[-3:] == TRACE_TABLES
    assert SyncConfig(target_path="/d").override(tables="traces,assessments").tables == ("traces", "assessments")
    served = ("runs", "models", *TRACE_TABLES)
    assert chosen_optional_tables(served, None, DEFAULT_TABLES, "/m") == ("models",)
    with pytest.raises(ConfigurationError, match="does not serve spans"):
        chosen_optional_tables(("runs", "traces"), ["spans"], DEFAULT_TABLES, "/m")


def test_first_sync_reads_every_trace_into_mirrored_tables():
    plan = make_plan(scan(), SyncState(), flags()).traces
    assert plan.kept == TRACE_TABLES and plan.mirrored == set(TRACE_TABLES)
    assert all(plan.changed[t] == {"t1", "t2", "t3"} for t in TRACE_TABLES)
    assert not any(plan.appends(t) for t in TRACE_TABLES)  # mirrored: merged (into an empty table: appended)


def test_nothing_changed_reads_nothing():
    plan = make_plan(scan(), saved(), flags()).traces
    assert not plan.read and not plan.gone and not plan.mirrored and plan.changed_count == 0


def test_each_changed_part_reads_its_table_and_new_traces_are_appended():
    now = {**TRACES, "t1": ("1", tfp(trace="t2")), "t2": ("1", tfp(spans="s2", assessments="a2")),
           "t4": ("1", tfp())}
    plan = make_plan(scan(now), saved(), flags()).traces
    assert plan.changed == {"traces": {"t1", "t4"}, "spans": {"t2", "t4"}, "assessments": {"t2", "t4"}}
    assert plan.new == {"t4"} and plan.changed_count == 2
    assert not plan.appends("traces")  # t1 is known: merged
    only_new = make_plan(scan({**TRACES, "t4": ("1", tfp())}), saved(), flags()).traces
    assert all(only_new.appends(t) for t in TRACE_TABLES)


def test_an_unsynced_trace_is_read_into_every_table_and_merged():
    plan = make_plan(scan(), saved({**TRACES, "t2": ("1", UNSYNCED)}), flags()).traces
    assert all(plan.changed[t] == {"t2"} for t in TRACE_TABLES)
    assert not plan.appends("spans")


def test_deleted_traces_leave_the_tables_within_the_synced_experiments():
    now = {"t1": TRACES["t1"]}
    narrowed = make_plan(scan(now, experiments=("1",)), saved(), flags()).traces
    assert narrowed.gone == {"t2"}  # t3 belongs to an experiment this sync does not cover
    assert not narrowed.appends("traces")
    everywhere = make_plan(scan(now, experiments=("1",)), saved(), flags(all_experiments=True)).traces
    assert everywhere.gone == {"t2", "t3"}
    # the state keeps what it cannot tell about, drops what was deleted
    assert set(next_traces(saved().traces, narrowed, narrowed.gone)) == {"t1", "t3"}


def test_a_recovering_sync_merges_and_a_full_one_mirrors():
    new = {**TRACES, "t4": ("1", tfp())}
    recovering = make_plan(scan(new), saved(), flags(recovering=True)).traces
    assert recovering.changed["traces"] == {"t4"} and not recovering.appends("traces")
    full = make_plan(scan(new), saved(), flags(full=True)).traces
    assert full.mirrored == set(TRACE_TABLES) and not full.gone and full.changed["spans"] == set(new)


def test_a_table_kept_for_the_first_time_is_mirrored_alone():
    plan = make_plan(scan(), saved(kept=("traces",)), flags()).traces
    assert plan.mirrored == {"spans", "assessments"} and plan.changed["traces"] == set()
    assert plan.changed["spans"] == {"t1", "t2", "t3"}


def test_no_trace_table_kept_no_trace_plan_and_the_state_keeps_its_traces():
    plan = make_plan(scan(), saved(), Flags(tables=("models",)))
    assert plan.traces is None
    assert next_traces(saved().traces, None) == saved().traces


def test_skipped_traces_are_saved_unsynced():
    plan = plan_traces({"t": ("1", tfp(trace="x"))}, {"t": ("1", tfp())}, kept=["traces"])
    assert next_traces({"t": ("1", tfp())}, plan, skipped=plan.read) == {"t": ("1", UNSYNCED)}


def test_the_state_writes_traces_that_changed_and_removes_deleted_ones():
    state = SyncState.from_rows([
        ("meta", None, "sync", None, '{"sync_id": 1}', None, 1),
        ("trace", None, "t1", "1", tfp(), None, 1),
        ("trace", None, "t2", "1", tfp(), None, 1),
    ])
    assert state.traces == {"t1": ("1", tfp()), "t2": ("1", tfp())} and state.live_rows == 3
    columns = state_update(state, {}, {}, {}, 2, compact=False, traces={"t1": ("1", tfp(trace="x"))})
    rows = list(zip(columns["kind"], columns["key"], columns["value"]))
    assert rows == [("trace", "t1", tfp(trace="x")), ("trace", "t2", None)]
    after = SyncState.from_rows([
        ("meta", None, "sync", None, '{"sync_id": 1}', None, 1), ("trace", None, "t1", "1", tfp(), None, 1),
        ("trace", None, "t2", "1", tfp(), None, 1),
        *[(k, None, key, "1", v, None, 2) for k, key, v in rows],
    ])
    assert after.traces == {"t1": ("1", tfp(trace="x"))}
    # A rewrite keeps every trace, and a sync that does not touch them writes none.
    compacted = state_update(state, {}, {}, {}, 2, compact=True)
    assert sorted(k for k, kind in zip(compacted["key"], compacted["kind"]) if kind == "trace") == ["t1", "t2"]
    assert "trace" not in state_update(state, {}, {}, {}, 2, compact=False)["kind"]
