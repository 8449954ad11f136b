"""The sync state's rows: reading (latest entry wins, removals), writing only what changed,
compaction, and the migration of state written by 0.1.0."""

from __future__ import annotations

import json

from pyspark_experiments.sync.state import STATE_COLUMNS, SyncState, migrate_meta, should_compact, state_update


def rows(columns: dict) -> list[tuple]:
    return list(zip(*(columns[name] for name in STATE_COLUMNS)))


def test_latest_entry_wins_and_nulls_remove():
    state = SyncState.from_rows([
        ("run", "a", None, "1", "v2", None, 2),
        ("run", "a", None, "1", "v1", None, 1),
        ("run", "b", None, "1", "v1", None, 1),
        ("run", "b", None, None, None, None, 2),
        ("series", "a", "loss", None, None, 10, 1),
        ("series", "a", "loss", None, None, 20, 2),
        ("series", "b", "loss", None, None, 5, 1),
        ("series", "b", "loss", None, None, None, 2),
        ("meta", None, "sync", None, json.dumps({"sync_id": 2}), None, 2),
    ])
    assert state.runs == {"a": ("1", "v2")}
    assert state.series == {("a", "loss"): 20}
    assert state.last_sync == {"sync_id": 2} and not state.empty
    assert state.stored_rows == 9 and state.live_rows == 3


def test_empty_state():
    state = SyncState.from_rows([])
    assert state.empty and state.last_sync == {} and state.live_rows == 0


def test_update_appends_only_differences_and_removals():
    old = SyncState(runs={"a": ("1", "x"), "b": ("1", "y")}, series={("a", "loss"): 3, ("b", "loss"): 4})
    columns = state_update(old, {"a": ("1", "x"), "c": ("2", "z")}, {("a", "loss"): 5}, {"k": [1]}, 7, compact=False)
    assert rows(columns) == [
        ("run", "c", None, "2", "z", None, 7),
        ("series", "a", "loss", None, None, 5, 7),
        ("run", "b", None, None, None, None, 7),
        ("series", "b", "loss", None, None, None, 7),
        ("meta", None, "k", None, "[1]", None, 7),
    ]
    # Read back over the old rows, the state is the new one.
    before = state_update(SyncState(), old.runs, old.series, {}, 6, compact=True)
    again = SyncState.from_rows(rows(before) + rows(columns))
    assert again.runs == {"a": ("1", "x"), "c": ("2", "z")} and again.series == {("a", "loss"): 5}


def test_compact_writes_every_live_entry():
    old = SyncState(runs={"a": ("1", "x")}, series={("a", "loss"): 3})
    columns = state_update(old, old.runs, old.series, {"sync": {}}, 2, compact=True)
    assert [r[0] for r in rows(columns)] == ["run", "series", "meta"]


def test_compaction_every_fifty_appends_or_when_mostly_dead_rows():
    assert should_compact(SyncState(meta={"appends": 3}), full=False) == (False, 4)
    assert should_compact(SyncState(meta={"appends": 50}), full=False) == (True, 0)
    assert should_compact(SyncState(), full=True) == (True, 0)
    assert should_compact(SyncState(stored_rows=20_001), full=False)[0]


def test_legacy_meta_from_saved_rows_is_migrated():
    legacy = [
        ("meta", None, "fingerprints", None, '"FileStore"', None, 3),
        ("meta", None, "positions", None, '"FileStore:file:exact"', None, 3),
        ("meta", None, "sync", None, '{"sync_id": 3}', None, 3),
    ]
    state = SyncState.from_rows(legacy)
    assert state.meta["state_key"] == "file" and state.meta["positions_key"] == "file:bytes:exact"
    assert "fingerprints" not in state.meta and "positions" not in state.meta
    # A later sync's new keys win over the legacy rows still in the table.
    later = legacy + [("meta", None, "state_key", None, '"sql"', None, 4),
                      ("meta", None, "positions_key", None, '"sql:rowid:exact"', None, 4)]
    assert SyncState.from_rows(later).meta["state_key"] == "sql"


def test_unknown_legacy_kinds_map_to_nothing():
    meta = migrate_meta({"fingerprints": "RestStore", "positions": "RestStore:http:exact"})
    assert meta == {"state_key": None, "positions_key": None}
    assert migrate_meta({"positions": "garbled"}) == {"positions_key": None}


def test_series_checks_are_saved_and_read_back_with_positions():
    old = SyncState(series={("a", "loss"): 10}, series_checks={("a", "loss"): "c10"})
    columns = state_update(old, {}, {("a", "loss"): 10, ("b", "loss"): 5}, {}, 2, compact=False,
                           checks={("a", "loss"): "c10-edited", ("b", "loss"): "c5"})
    written = rows(columns)
    assert [(r[1], r[4], r[5]) for r in written] == [("a", "c10-edited", 10), ("b", "c5", 5)]
    state = SyncState.from_rows([("series", "a", "loss", None, "c10", 10, 1), *written])
    assert state.series == {("a", "loss"): 10, ("b", "loss"): 5}
    assert state.series_checks == {("a", "loss"): "c10-edited", ("b", "loss"): "c5"}
    removed = SyncState.from_rows([*written, ("series", "a", "loss", None, None, None, 3)])
    assert ("a", "loss") not in removed.series_checks


def test_summary_and_failed_line_report_permissive_skips():
    from datetime import datetime

    from pyspark_experiments.jobs import outcome_line
    from pyspark_experiments.sync.runner import SyncResult

    result = SyncResult(store="/m", target="/d", mode="full", started_at=datetime(2026, 1, 1), runs=9, new_runs=8,
                        skipped_records=1, skipped_runs=1, skipped_where=["/m/1/abc/meta.yaml, line 1: not valid YAML"])
    text = result.summary()
    assert "OK with 1 skipped records" in text.splitlines()[0]
    assert "9 runs: 8 new, 0 changed, 1 skipped" in text and "/m/1/abc/meta.yaml" in text
    assert result.to_dict()["skipped_where"] == ["/m/1/abc/meta.yaml, line 1: not valid YAML"]
    assert "skipped" not in SyncResult(store="/m", target="/d", mode="full", started_at=datetime(2026, 1, 1)).summary()
    error = RuntimeError("disk full")
    error.skipped_records = 3
    assert "FAILED after 1.0 s with 3 skipped records: " in outcome_line("sync", error, 1.0)
