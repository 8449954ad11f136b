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
    from pyspark_experiments.sync.result import SyncResult

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


def replay(rows_: list[tuple]) -> tuple[dict, dict, dict, dict]:
    """The state as its history reads, one row at a time in sync order: the definition
    :meth:`SyncState.from_rows` implements with last-wins dicts."""
    runs, series, checks, meta = {}, {}, {}, {}
    for kind, run_id, key, experiment_id, value, position, _ in sorted(rows_, key=lambda row: row[6]):
        if kind == "run":
            runs.pop(run_id, None)
            if value is not None:
                runs[run_id] = (experiment_id, value)
        elif kind == "series":
            series.pop((run_id, key), None)
            checks.pop((run_id, key), None)
            if position is not None:
                series[(run_id, key)] = position
                if value is not None:
                    checks[(run_id, key)] = value
        else:
            meta[key] = json.loads(value)
    return runs, series, checks, meta


def random_history(rng, syncs: int) -> list[tuple]:
    """State rows of ``syncs`` syncs over a few runs and keys: each entry at most once a sync."""
    history = []
    for sync_id in range(1, syncs + 1):
        for run_id in rng.sample("abcdef", rng.randint(0, 6)):
            value = rng.choice([None, f"fp{rng.randint(0, 2)}"])
            history.append(("run", run_id, None, rng.choice("12"), value, None, sync_id))
        for run_id, key in rng.sample([(r, k) for r in "abcd" for k in ("loss", "acc")], rng.randint(0, 8)):
            position = rng.choice([None, rng.randint(0, 3)])
            history.append(("series", run_id, key, None, rng.choice([None, f"c{rng.randint(0, 2)}"]), position, sync_id))
        history.append(("meta", None, "sync", None, json.dumps({"sync_id": sync_id}), None, sync_id))
    rng.shuffle(history)
    return history


def test_reading_random_histories_agrees_with_replaying_them_row_by_row():
    import random

    import pyarrow as pa

    from pyspark_experiments.sync.state import arrow_state_schema

    rng = random.Random(13)
    for _ in range(300):
        history = random_history(rng, rng.randint(0, 5))
        expected = replay(history)
        for state in (SyncState.from_rows(history),
                      SyncState.from_arrow(pa.Table.from_pylist(
                          [dict(zip(STATE_COLUMNS, row)) for row in history], schema=arrow_state_schema()))):
            assert (state.runs, state.series, state.series_checks, state.meta) == expected, history
            assert state.stored_rows == len(history)


def test_an_update_over_random_states_writes_exactly_the_entries_that_differ():
    import random

    rng = random.Random(29)
    for _ in range(300):
        old = SyncState.from_rows(random_history(rng, 3))
        new = SyncState.from_rows(random_history(rng, 3))
        columns = state_update(old, new.runs, new.series, {}, 9, compact=False, checks=new.series_checks)
        written = rows(columns)
        # Read back over the old state, the state is the new one ...
        base = rows(state_update(SyncState(), old.runs, old.series, {}, 1, compact=True, checks=old.series_checks))
        again = SyncState.from_rows(base + written)
        assert (again.runs, again.series, again.series_checks) == (new.runs, new.series, new.series_checks)
        # ... and nothing that did not change was written.
        differing_runs = {r for r in old.runs.keys() | new.runs.keys() if old.runs.get(r) != new.runs.get(r)}
        differing_series = {p for p in old.series.keys() | new.series.keys()
                            if (old.series.get(p), old.series_checks.get(p)) != (new.series.get(p), new.series_checks.get(p))}
        assert sorted(r[1] for r in written if r[0] == "run") == sorted(differing_runs)
        assert sorted((r[1], r[2]) for r in written if r[0] == "series") == sorted(differing_series)
