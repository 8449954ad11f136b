"""The Delta sync of the optional tables: ``artifacts``, ``models``, ``registered_models`` and
``model_versions``, from stores written by real mlflow (tests/support/models_store.py) into real
Delta tables.

What must hold: a full sync writes each table equal to what the data source reads; after
changes logged with real mlflow (a new run with artifacts, an artifact logged into a resumed
run, a new logged model and a changed one, a new registered version, an alias moved, a version
and a registered model deleted, a run deleted, a run and a logged model purged) an incremental
sync equals a fresh full sync; a sync with nothing changed writes nothing; an artifact logged
into a run that changes in no other way is the documented blind spot, seen by
``relist_artifacts``; a sync killed while it writes these tables and run again ends the same.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyspark_experiments import tables
from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.sync import KILL_ENV, sync
from support.compare import assert_same, source_tables, target_tables
from support.models_store import *  # noqa: F401,F403  (the session fixtures)
from support.models_store import copy_sqlite_store, log_model_changes, log_models_data, log_registry_changes
from support.paths import REPO

OPTIONAL = (tables.ARTIFACTS, tables.MODELS, tables.REGISTERED_MODELS, tables.MODEL_VERSIONS)
NAMES = tables.TABLE_NAMES + OPTIONAL


def synced(spark, target: str) -> dict:
    return target_tables(spark, target, names=NAMES)


def source(spark, uri: str, active_only=()) -> dict:
    return source_tables(spark, uri, names=NAMES, active_only=active_only)


def artifact_paths(spark, target: str, run_id: str) -> set[str]:
    rows = spark.read.format("delta").load(f"{target}/artifacts").where(f"run_id = '{run_id}'").collect()
    return {r["path"] for r in rows}


def models_store(kind: str, tmp_path) -> dict:
    """A new store of ``kind`` holding the models content of :func:`log_models_data` (SQLite:
    artifacts in a folder beside it; file store: inside ``mlruns``, MLflow's default)."""
    folder = tmp_path / f"store-{kind}"
    folder.mkdir()
    if kind == "sqlite":
        return log_models_data(f"sqlite:///{folder / 'mlflow.db'}", str(folder), artifact_root=str(folder / "artifacts"))
    return log_models_data(str(folder / "mlruns"), str(folder))


# ------------------------------------------------------------------------------------------------
# the shared SQLite models store, copied
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow  # two syncs of every table: about a minute on 2 cores, beyond the default tier's budget
def test_full_sync_equals_source_then_registry_and_artifact_changes(spark, tmp_path, models_sqlite_store):
    """The optional tables only are compared here (the run tables: tests/integration/sync/test_sync.py)."""
    store = copy_sqlite_store(models_sqlite_store, tmp_path)
    uri, target = store["uri"], str(tmp_path / "delta")

    first = sync(uri, target, spark=spark, tables=OPTIONAL)
    assert first.mode == "full"
    expected = source_tables(spark, uri, names=OPTIONAL)
    assert all(expected[t] for t in OPTIONAL)  # the store holds rows of every optional table
    assert_same(target_tables(spark, target, names=OPTIONAL), expected)
    for table in OPTIONAL:
        assert first.tables[table].inserted == len(expected[table]), first.summary()
        assert f"  {table}" in first.summary()

    changed = log_registry_changes(store, str(tmp_path / "gamma-artifacts"))
    second = sync(uri, target, spark=spark, tables=OPTIONAL)
    assert second.mode == "incremental" and second.new_runs == 1, second.summary()
    assert artifact_paths(spark, target, changed["run"]) == {"notes", "notes/new.txt"}
    # Only what changed is written: a new model and a changed one, a new version.
    assert (second.tables["models"].inserted, second.tables["models"].updated) == (1, 1), second.summary()
    assert second.tables["model_versions"].inserted == 1, second.summary()
    assert second.tables["artifacts"].deleted == 0
    assert_same(target_tables(spark, target, names=OPTIONAL), source_tables(spark, uri, names=OPTIONAL))


def test_tables_setting_is_checked(spark, tmp_path, models_sqlite_store):
    with pytest.raises(ConfigurationError, match="'runs' is always synced"):
        sync(models_sqlite_store["uri"], str(tmp_path / "delta"), spark=spark, tables=["runs", "models"])
    with pytest.raises(ConfigurationError, match="'modles' is not a table"):
        sync(models_sqlite_store["uri"], str(tmp_path / "delta"), spark=spark, tables="modles")


# ------------------------------------------------------------------------------------------------
# slow tier: fresh stores, every kind of change
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_incremental_sync_of_every_change_equals_fresh_full_sync(spark, tmp_path, kind):
    from mlflow import MlflowClient

    store = models_store(kind, tmp_path)
    uri, target = store["uri"], str(tmp_path / "delta")
    sync(uri, target, spark=spark, tables=OPTIONAL)
    assert_same(synced(spark, target), source(spark, uri))

    # Nothing changed: every table is compared, none is written.
    again = sync(uri, target, spark=spark, tables=OPTIONAL)
    assert again.mode == "incremental"
    assert all(t.version is None and t.inserted == t.updated == t.deleted == 0 for t in again.tables.values()), \
        again.summary()
    assert set(OPTIONAL) <= set(again.tables)

    changed = log_model_changes(store)
    incremental = sync(uri, target, spark=spark, tables=OPTIONAL, reconcile_purged=True)
    assert incremental.mode == "incremental" and incremental.new_runs == 1 and incremental.purged_runs == 1
    fresh = str(tmp_path / "fresh")
    sync(uri, fresh, spark=spark, tables=OPTIONAL)
    expected = source(spark, uri)
    assert_same(synced(spark, target), expected)
    assert_same(synced(spark, fresh), expected)
    assert "late/late.txt" in artifact_paths(spark, target, store["runs"]["beta-run"])
    assert not artifact_paths(spark, target, store["runs"]["deleted-run"])
    assert {"new/deeper/a.txt", "new/b.json"} <= artifact_paths(spark, target, changed["run"])

    # The blind spot: an artifact logged into a finished run that changes in no other way is
    # not seen by an incremental sync ...
    sk_run = store["runs"]["sk-run"]
    note = tmp_path / "late-note.txt"
    note.write_text("after the fact\n")
    MlflowClient(tracking_uri=uri).log_artifact(sk_run, str(note))
    blind = sync(uri, target, spark=spark, tables=OPTIONAL)
    assert blind.tables["artifacts"].version is None
    assert "late-note.txt" not in artifact_paths(spark, target, sk_run)
    # ... until the artifacts are re-listed.
    relisted = sync(uri, target, spark=spark, tables=OPTIONAL, relist_artifacts=True)
    assert relisted.tables["artifacts"].inserted == 1, relisted.summary()
    assert_same(synced(spark, target), source(spark, uri))


@pytest.mark.slow
def test_optional_tables_added_to_an_existing_target_and_left_out(spark, tmp_path, models_sqlite_store):
    """A target synced without the optional tables gets them whole when they are asked for; a
    table left out later is left alone (not written, not deleted)."""
    store = copy_sqlite_store(models_sqlite_store, tmp_path)
    uri, target = store["uri"], str(tmp_path / "delta")
    plain = sync(uri, target, spark=spark, tables="none")
    assert not set(OPTIONAL) & set(plain.tables)
    assert not any(os.path.exists(f"{target}/{t}") for t in OPTIONAL)

    added = sync(uri, target, spark=spark, tables=OPTIONAL)
    assert added.mode == "incremental" and added.new_runs == added.changed_runs == 0
    assert_same(synced(spark, target), source(spark, uri))

    without_artifacts = sync(uri, target, spark=spark)  # the default: models and the registry
    assert tables.ARTIFACTS not in without_artifacts.tables and tables.MODELS in without_artifacts.tables
    assert_same(synced(spark, target), source(spark, uri))


@pytest.mark.slow
def test_killed_syncs_run_again_end_as_a_full_sync(spark, tmp_path, models_sqlite_store):
    """SIGKILLed while the models table is written, after the artifacts commit, before the state
    commit: the rerun merges everything it reads and ends with the source's tables."""
    store = copy_sqlite_store(models_sqlite_store, tmp_path)
    uri, target = store["uri"], str(tmp_path / "delta")
    sync(uri, target, spark=spark, tables=OPTIONAL)
    log_registry_changes(store, str(tmp_path / "gamma-artifacts"))
    path = os.pathsep.join(p for p in (os.path.join(REPO, "src"), os.environ.get("PYTHONPATH")) if p)
    for phase in ("during:models", "after-write:artifacts", "before-state"):
        env = dict(os.environ, **{KILL_ENV: phase, "PYTHONPATH": path, "PYSPARK_PYTHON": sys.executable})
        killed = subprocess.run(
            [sys.executable, "-m", "pyspark_experiments.sync", "--master", "local[2]", "--no-progress",
             "--tracking-uri", uri, "--target-path", target, "--tables", ",".join(OPTIONAL)],
            env=env, capture_output=True, text=True, timeout=900, cwd=REPO,
        )
        assert killed.returncode == -9, (phase, killed.stderr[-3000:])
    rerun = sync(uri, target, spark=spark, tables=OPTIONAL)
    assert rerun.mode == "incremental"
    assert_same(synced(spark, target), source(spark, uri))


@pytest.mark.slow
def test_sync_over_rest_equals_the_server_tables(spark, tmp_path, monkeypatch):
    """Through a real ``mlflow server`` (artifacts proxied, ``mlflow-artifacts:/``): the logged
    models and versions the server serves are the active ones, so a deleted version or model
    leaves the synced table."""
    from support.mlflow_server import running_mlflow_server

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    active_only = (tables.MODELS, tables.MODEL_VERSIONS)
    with running_mlflow_server(backend, str(tmp_path)) as url:
        store = log_models_data(url, str(tmp_path))
        target = str(tmp_path / "delta")
        first = sync(url, target, spark=spark, tables=OPTIONAL)
        assert first.mode == "full"
        assert_same(synced(spark, target), source(spark, url, active_only))

        log_model_changes(store, backend_uri=backend)
        second = sync(url, target, spark=spark, tables=OPTIONAL, reconcile_purged=True)
        assert second.mode == "incremental" and second.new_runs == 1
        assert second.tables["model_versions"].deleted >= 1 and second.tables["registered_models"].deleted == 1
        fresh = str(tmp_path / "fresh")
        sync(url, fresh, spark=spark, tables=OPTIONAL)
        expected = source(spark, url, active_only)
        assert_same(synced(spark, target), expected)
        assert_same(synced(spark, fresh), expected)
