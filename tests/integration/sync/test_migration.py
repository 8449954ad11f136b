"""A target written by pyspark-experiments 0.1.0 keeps syncing incrementally.

``tests/data/legacy-0.1`` holds a SQLite store and the Delta target that the 0.1.0 sync wrote
from it (its state records store kinds as class names). The current sync must understand that
state: nothing new, no metric re-read, nothing written; then, after one more run logged with real mlflow, the
tables must equal a fresh full sync of the store.
"""

from __future__ import annotations

import os
import shutil

import pytest

from pyspark_experiments.sync import STATE_TABLE, SyncState, sync
from support.compare import target_tables
from support.paths import TEST_DATA
from support.stores import BASE_MS

pytestmark = pytest.mark.slow  # syncs a 0.1.0 target, then a fresh full sync to compare

LEGACY = str(TEST_DATA / "legacy-0.1")


def test_target_of_0_1_0_keeps_syncing_incrementally(spark, tmp_path):
    from mlflow.tracking import MlflowClient

    shutil.copytree(os.path.join(LEGACY, "store"), tmp_path / "store")
    shutil.copytree(os.path.join(LEGACY, "target"), tmp_path / "target")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    target = str(tmp_path / "target")
    legacy_meta = {r["key"]: r["value"] for r in spark.read.format("delta").load(f"{target}/{STATE_TABLE}")
                   .where("kind = 'meta'").collect()}
    assert legacy_meta["fingerprints"] == '"SqlStore"', legacy_meta  # the fixture is what 0.1.0 wrote

    # SQL run fingerprints are now taken with Arrow (other digests than 0.1.0's): the first sync re-reads
    # each run's row, params and tags once and finds nothing to write; no metric is re-read.
    first = sync(uri, target, spark=spark)
    assert first.mode == "incremental", first.summary()
    assert (first.new_runs, first.series_read) == (0, 0), first.summary()
    assert all(t.inserted == t.updated == t.deleted == 0 for t in first.tables.values()), first.summary()
    settled = sync(uri, target, spark=spark)
    assert (settled.new_runs, settled.changed_runs, settled.series_read) == (0, 0, 0), settled.summary()
    state = SyncState.from_arrow(spark.read.format("delta").load(f"{target}/{STATE_TABLE}").toArrow())
    assert state.meta["state_key"] == "sql" and state.meta["positions_key"] == "sql:rowid:exact"

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("legacy-0")
    run = client.create_run(experiment.experiment_id, start_time=BASE_MS + 99, run_name="after-upgrade").info.run_id
    for step in range(3):
        client.log_metric(run, "loss", 1.0 / (step + 1), timestamp=BASE_MS + 100 + step, step=step)
    client.log_param(run, "lr", "0.5")
    client.set_terminated(run, "FINISHED", end_time=BASE_MS + 200)

    second = sync(uri, target, spark=spark)
    assert second.mode == "incremental" and second.new_runs == 1 and second.changed_runs == 0, second.summary()
    assert second.tables["metrics"].inserted == 3

    fresh = str(tmp_path / "fresh")
    sync(uri, fresh, spark=spark)
    assert target_tables(spark, target) == target_tables(spark, fresh)
