"""A sync of a store that has not changed since the last sync (the sync's fixed cost).

Where the store takes change tokens (SQLite, PostgreSQL), the state commit keeps the token taken
before the sync's scan; a sync that finds the same token, for the same scope, records itself in
the state and reads nothing else. What must hold: the first write mlflow makes afterwards is
seen by the next sync, and the tables then equal the data source's; a failed sync's claim, a
different scope or ``full`` never take this path.
"""

from __future__ import annotations

import logging

import pytest

from pyspark_experiments.jobs.lock import TargetLock
from pyspark_experiments.jobs.target import DeltaTarget
from pyspark_experiments.stores import open_store
from pyspark_experiments.sync import STATE_TABLE, sync
from pyspark_experiments.uri import resolve_tracking_uri
from support.compare import assert_same, source_tables, target_tables
from support.stores import BASE_MS, new_store


def state_rows_added(spark, target: str, version: int) -> list:
    """The state rows the commit at ``version`` added."""
    path = f"{target}/{STATE_TABLE}"
    now = spark.read.format("delta").option("versionAsOf", version).load(path)
    before = spark.read.format("delta").option("versionAsOf", version - 1).load(path)
    return now.exceptAll(before).collect()


def test_an_unchanged_store_is_recorded_without_reading_it_and_the_next_write_is_seen(spark, tmp_path):
    from mlflow import MlflowClient

    uri, manifest = new_store("sqlite", tmp_path, reference=False)
    target = str(tmp_path / "delta")
    first = sync(uri, target, spark=spark)
    assert not first.store_unchanged

    again = sync(uri, target, spark=spark)
    assert again.store_unchanged and again.mode == "incremental"
    assert again.sync_id == first.sync_id + 1
    assert (again.experiments, again.runs) == (first.experiments, first.runs) == (2, 3)  # and "Default"
    assert again.new_runs == again.changed_runs == again.series_read == 0
    for name, table in again.tables.items():
        assert table.version is None and table.commits == 0
        assert table.unchanged == spark.read.format("delta").load(f"{target}/{name}").count(), name
    assert f"unchanged since sync #{first.sync_id}: nothing read" in again.summary()
    # One state commit, holding the sync's own entry and the appends count: no run, no series.
    added = state_rows_added(spark, target, again.state_version)
    assert sorted((r["kind"], r["key"]) for r in added) == [("meta", "appends"), ("meta", "sync")]
    assert '"store_unchanged": true' in next(r["value"] for r in added if r["key"] == "sync")

    client = MlflowClient(tracking_uri=uri)
    client.log_metric(manifest["runs"]["s-1"], "loss", 0.125, timestamp=BASE_MS + 20, step=1)
    points = sync(uri, target, spark=spark)
    assert not points.store_unchanged and points.series_read == 1
    assert points.tables["metrics"].inserted == 1
    assert_same(target_tables(spark, target), source_tables(spark, uri))

    assert sync(uri, target, spark=spark).store_unchanged
    client.set_tag(manifest["runs"]["s-2"], "team", "blue")
    tagged = sync(uri, target, spark=spark)
    assert not tagged.store_unchanged and tagged.changed_runs == 1
    assert tagged.tables["tags"].inserted == 1
    assert_same(target_tables(spark, target), source_tables(spark, uri))


@pytest.mark.slow
def test_a_failed_syncs_claim_a_new_scope_or_full_read_the_store(spark, tmp_path, caplog):
    uri, manifest = new_store("sqlite", tmp_path, reference=False)
    target = str(tmp_path / "delta")
    experiment = manifest["experiments"]["small"]
    sync(uri, target, spark=spark, experiments=[experiment])
    assert sync(uri, target, spark=spark, experiments=[experiment]).store_unchanged

    # A sync that failed may have written tables after its state: the next one merges everything.
    lock = TargetLock(DeltaTarget.at_path(spark, target))
    lock.acquire()
    lock.give_up()
    with caplog.at_level(logging.WARNING, logger="pyspark_experiments.sync"):
        recovered = sync(uri, target, spark=spark, experiments=[experiment])
    assert not recovered.store_unchanged
    assert "did not finish" in caplog.text

    # Other experiments asked for (here: all of them, the same runs), other optional tables,
    # or a full sync: the scope differs, the store is read.
    assert not sync(uri, target, spark=spark).store_unchanged
    assert sync(uri, target, spark=spark).store_unchanged
    assert not sync(uri, target, spark=spark, tables=()).store_unchanged
    full = sync(uri, target, spark=spark, tables=(), full=True)
    assert full.mode == "full" and not full.store_unchanged
    assert_same(target_tables(spark, target), source_tables(spark, uri))


def test_a_sqlite_store_in_wal_mode_is_scanned_every_time(spark, tmp_path):
    import sqlite3

    uri, _ = new_store("sqlite", tmp_path, reference=False)
    connection = sqlite3.connect(str(tmp_path / "store-sqlite" / "mlflow.db"))
    assert connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    connection.close()
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark)
    again = sync(uri, target, spark=spark)
    assert not again.store_unchanged and again.mode == "incremental" and again.series_read == 0


@pytest.mark.slow
def test_postgresql_token_moves_with_every_write_and_the_sync_sees_it(spark, tmp_path, postgres_server):
    from mlflow import MlflowClient

    from support.postgres import create_database

    uri = create_database(*postgres_server, "mlflow_tokens")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("tokens")
    run = client.create_run(experiment, start_time=BASE_MS).info.run_id
    client.log_metric(run, "loss", 0.5, timestamp=BASE_MS, step=0)
    store = open_store(resolve_tracking_uri(uri))
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark)

    before = store.change_token()
    assert before and before.startswith("postgresql:")
    client.set_tag(run, "team", "red")
    assert store.change_token() != before
    tagged = sync(uri, target, spark=spark)
    assert not tagged.store_unchanged and tagged.changed_runs == 1
    assert_same(target_tables(spark, target), source_tables(spark, uri))
