"""A target synced before ``runs.parent_run_id`` existed gains the column, rightly filled.

``tests/data/before-parent-run-id`` holds a SQLite store of nested runs written by real mlflow and
the Delta target that the sync of the version before the column wrote from it (twelve ``runs``
columns). The current sync must add the column to that table, fill it for the rows already
there from their ``tags`` maps (nothing else changed in the store: no run is re-read), and keep
it right as mlflow logs more: the tables then equal what the source reads.
"""

from __future__ import annotations

import shutil

from pyspark_experiments import tables
from pyspark_experiments.sync import sync
from support.compare import assert_same, source_tables, target_tables
from support.paths import TEST_DATA

FIXTURE = TEST_DATA / "before-parent-run-id"
PARENT_TAG = "mlflow.parentRunId"


def parents_in_mlflow(store: str) -> dict[str, str | None]:
    """Every run's parent tag, as mlflow answers: ``{run id: mlflow.parentRunId or None}``."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs = client.search_runs(experiments, run_view_type=ViewType.ALL, max_results=1000)
    return {r.info.run_id: r.data.tags.get(PARENT_TAG) for r in runs}


def parents_in_target(spark, target: str) -> dict[str, str | None]:
    return {r["run_id"]: r["parent_run_id"] for r in spark.read.format("delta").load(f"{target}/runs").collect()}


def test_target_synced_before_the_column_gains_it(spark, tmp_path):
    from mlflow.tracking import MlflowClient

    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    shutil.copytree(FIXTURE / "target", tmp_path / "target")
    store, target = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", str(tmp_path / "target")
    old = spark.read.format("delta").load(f"{target}/runs")
    assert "parent_run_id" not in old.columns and len(old.columns) == 12  # what the older sync wrote

    first = sync(store, target, spark=spark)
    assert first.mode == "incremental", first.summary()
    assert (first.new_runs, first.changed_runs, first.series_read) == (0, 0, 0), first.summary()
    runs = spark.read.format("delta").load(f"{target}/runs")
    assert runs.columns == tables.spark_schema(tables.RUNS).fieldNames()
    expected = parents_in_mlflow(store)
    assert parents_in_target(spark, target) == expected
    # The rows of the 8 nested runs were filled from their tags: one update each, nothing else.
    assert sum(parent is not None for parent in expected.values()) == 8
    assert first.tables["runs"].updated == 8 and first.tables["runs"].inserted == 0, first.summary()
    assert all(t.inserted == t.updated == t.deleted == 0 for name, t in first.tables.items() if name != "runs"), first.summary()

    # Migrated once: the next sync of an unchanged store writes nothing to runs.
    version = spark.sql(f"DESCRIBE HISTORY delta.`{target}/runs` LIMIT 1").first()["version"]
    assert sync(store, target, spark=spark).tables["runs"].version is None
    assert spark.sql(f"DESCRIBE HISTORY delta.`{target}/runs` LIMIT 1").first()["version"] == version

    # More nesting logged by mlflow: a new child, a parent tag set, one deleted.
    client = MlflowClient(tracking_uri=store)
    by_name = {r.info.run_name: r.info for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=1000)}
    grid, trial = by_name["grid-search"], by_name["trial"]
    child = client.create_run(grid.experiment_id, run_name="grid-4", tags={PARENT_TAG: grid.run_id}).info.run_id
    client.set_terminated(child, "FINISHED")
    client.set_tag(by_name["solo"].run_id, PARENT_TAG, trial.run_id)
    client.delete_tag(by_name["adopted"].run_id, PARENT_TAG)

    second = sync(store, target, spark=spark)
    assert (second.new_runs, second.changed_runs) == (1, 2), second.summary()
    found = parents_in_target(spark, target)
    assert found == parents_in_mlflow(store)
    assert (found[child], found[by_name["solo"].run_id], found[by_name["adopted"].run_id]) == (grid.run_id, trial.run_id, None)
    assert_same(target_tables(spark, target), source_tables(spark, store))
