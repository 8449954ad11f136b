"""The sync's state read without its series, where the store takes metric marks (SQL stores).

Such a sync reads the state's runs and meta, then only the series of the runs whose points
moved since the saved mark: no other series can change in it. What must hold: it saves the
state a sync reading the whole state saves, entry for entry, and writes the same rows; a sync
that rewrites the state (compaction) reads every series first; the counts kept in the meta
for the next such read are the table's own.
"""

from __future__ import annotations

import shutil

import pytest

from pyspark_experiments.sync import runner, sync
from pyspark_experiments.sync import scan as scan_module
from pyspark_experiments.sync import state as state_module
from pyspark_experiments.sync.state import STATE_TABLE, SyncState
from support.compare import assert_same, source_tables, target_tables
from support.stores import BASE_MS, log_changes, new_store


def whole_state(spark, folder: str) -> SyncState:
    return SyncState.from_arrow(spark.read.format("delta").load(f"{folder}/{STATE_TABLE}").toArrow())


def assert_counts_are_the_tables(state: SyncState) -> None:
    assert state.meta["series_count"] == len(state.series)
    assert state.meta["series_rows"] == state.stored_series_rows


def written(result) -> dict:
    return {name: (t.inserted, t.updated, t.deleted) for name, t in result.tables.items()}


@pytest.fixture
def series_reads(monkeypatch) -> list:
    """The runs whose series each sync read on top of the state's runs and meta (None: all)."""
    calls: list = []
    read_series = state_module.read_series

    def recorded(target, version, state, run_ids=None):
        if state.partial:
            calls.append(None if run_ids is None else set(run_ids))
        return read_series(target, version, state, run_ids)

    monkeypatch.setattr(scan_module, "read_series", recorded)
    return calls


def more_changes(uri: str, manifest: dict) -> None:
    """New points in known runs (one in a new series), a new run, a tag changed, a run deleted."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = manifest["runs"]
    client.log_batch(runs["a-01"], metrics=[Metric("loss", 0.1 * s, BASE_MS + 1000 + s, 100 + s) for s in range(5)])
    client.log_metric(runs["a-02"], "grad_norm", 3.5, timestamp=BASE_MS + 2000, step=0)
    new = client.create_run(manifest["experiments"]["ref-alpha"], start_time=BASE_MS + 3000, run_name="a-more").info.run_id
    client.log_metric(new, "loss", 0.5, timestamp=BASE_MS + 3000, step=0)
    client.set_tag(runs["a-03"], "stage", "again")
    client.delete_run(runs["a-04"])


def test_reading_only_the_moved_runs_series_saves_the_state_a_whole_read_saves(spark, tmp_path, monkeypatch,
                                                                                 series_reads):
    uri, manifest = new_store("sqlite", tmp_path)
    by_run, whole = str(tmp_path / "by-run"), str(tmp_path / "whole")
    sync(uri, by_run, spark=spark, progress=False)
    log_changes(uri, manifest)  # a new experiment among them: every position is scanned again
    sync(uri, by_run, spark=spark, progress=False)
    assert sync(uri, by_run, spark=spark, progress=False).store_unchanged  # keeps the counts
    assert series_reads == [None]
    shutil.copytree(by_run, whole)

    more_changes(uri, manifest)
    result = sync(uri, by_run, spark=spark, progress=False)
    assert series_reads[1:] == [{manifest["runs"]["a-01"], manifest["runs"]["a-02"]}]

    with monkeypatch.context() as patched:
        patched.setattr(runner, "series_read_by_run", lambda *flags: False)
        reference = sync(uri, whole, spark=spark, progress=False)
    assert written(result) == written(reference)
    assert (result.new_runs, result.changed_runs, result.series_read) == (
        reference.new_runs, reference.changed_runs, reference.series_read)

    saved, expected = whole_state(spark, by_run), whole_state(spark, whole)
    assert (saved.runs, saved.series, saved.series_checks) == (expected.runs, expected.series, expected.series_checks)
    assert {k: v for k, v in saved.meta.items() if k != "sync"} == {k: v for k, v in expected.meta.items() if k != "sync"}
    assert saved.stored_rows == expected.stored_rows
    assert_counts_are_the_tables(saved)
    assert_same(target_tables(spark, by_run), source_tables(spark, uri))


def test_a_sync_that_rewrites_the_state_reads_every_series_first(spark, tmp_path, monkeypatch, series_reads):
    from mlflow.tracking import MlflowClient

    uri, manifest = new_store("sqlite", tmp_path, reference=False)
    folder = str(tmp_path / "delta")
    sync(uri, folder, spark=spark, progress=False)
    client = MlflowClient(tracking_uri=uri)
    client.log_metric(manifest["runs"]["s-1"], "loss", 0.25, step=1)
    sync(uri, folder, spark=spark, progress=False)
    assert series_reads == [{manifest["runs"]["s-1"]}]
    before = whole_state(spark, folder)
    assert before.stored_rows > before.live_rows  # appended: the old position of s-1/loss is there

    monkeypatch.setattr(state_module, "MAX_STATE_APPENDS", 1)  # the next sync rewrites the state
    client.log_metric(manifest["runs"]["s-2"], "acc", 0.5, step=0)
    sync(uri, folder, spark=spark, progress=False)
    assert series_reads[1:] == [None]
    after = whole_state(spark, folder)
    assert after.stored_rows == after.live_rows  # rewritten: only live entries
    assert set(after.series) == set(before.series) | {(manifest["runs"]["s-2"], "acc")}
    assert_counts_are_the_tables(after)
    assert_same(target_tables(spark, folder), source_tables(spark, uri))

