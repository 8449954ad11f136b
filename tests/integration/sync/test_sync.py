"""The Delta sync: real MLflow stores (SQLite and file store), real Delta tables.

What must hold: a full sync equals the data source's own tables; after more logging with real
mlflow (new runs, points, tag changes, deletions), an incremental sync equals a fresh full sync
into an empty target; a sync killed with SIGKILL at several points and run again ends the same;
two syncs at once do not corrupt the target.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime

import pytest

from pyspark_experiments.sync import (
    EXIT_LOCKED,
    EXIT_USAGE,
    KILL_ENV,
    LOCK_PREFIX,
    LOCK_TABLE,
    STATE_TABLE,
    ConfigError,
    SyncConfig,
    SyncLockedError,
    SyncState,
    config_from_args,
    main,
    sync,
)
from support.compare import assert_same, sorted_rows, source_tables, target_tables
from support.paths import REPO
from support.stores import BASE_MS, log_changes, new_store

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def hard_delete(uri: str, run_id: str) -> None:
    """Purge a run as `mlflow gc` does."""
    from mlflow.tracking import MlflowClient

    store = MlflowClient(tracking_uri=uri)._tracking_client.store
    store._hard_delete_run(run_id)


# ------------------------------------------------------------------------------------------------
# full, incremental, fresh full
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("file", marks=pytest.mark.slow)])
def test_incremental_sync_equals_fresh_full_sync(spark, tmp_path, kind):
    uri, manifest = new_store(kind, tmp_path)
    target = str(tmp_path / "delta")

    first = sync(uri, target, spark=spark)
    assert first.mode == "full" and first.tables["runs"].inserted == first.runs
    assert_same(target_tables(spark, target), source_tables(spark, uri))

    # Nothing changed: nothing is read, no table gets a new version.
    again = sync(uri, target, spark=spark)
    assert again.mode == "incremental"
    assert again.new_runs == again.changed_runs == again.series_read == 0
    assert all(t.version is None and t.inserted == t.updated == t.deleted == 0 for t in again.tables.values())

    log_changes(uri, manifest)
    incremental = sync(uri, target, spark=spark)
    assert incremental.mode == "incremental"
    assert incremental.new_runs == 2
    # a-running, a-01 (points), a-02..a-05 (tags, deletion), a-deleted (restored)
    assert incremental.changed_runs == 7, incremental.summary()
    assert incremental.series_read <= 6, incremental.summary()
    metrics = incremental.tables["metrics"]
    assert metrics.inserted == 21 + 3 + 1 + 1 and metrics.updated == 0
    assert incremental.tables["tags"].deleted == 1

    fresh = str(tmp_path / "fresh")
    sync(uri, fresh, spark=spark)
    expected = source_tables(spark, uri)
    assert_same(target_tables(spark, target), expected)
    assert_same(target_tables(spark, fresh), expected)

    # The state knows every run and series; no claim is left on the lock.
    state = SyncState.from_arrow(spark.read.format("delta").load(f"{target}/{STATE_TABLE}").toArrow())
    assert set(state.runs) == {row[0] for row in expected["runs"]}
    assert sum(1 for _ in state.series) == len({(r[1], r[2]) for r in expected["metrics"]})
    assert not lock_claims(spark, target)


@pytest.mark.slow
def test_full_option_and_purged_runs(spark, tmp_path):
    uri, manifest = new_store("sqlite", tmp_path, reference=False)
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark)
    # --full re-reads everything and merges it: nothing changes.
    result = sync(uri, target, spark=spark, full=True)
    assert result.mode == "full"
    for name, table in result.tables.items():
        assert table.inserted == table.updated == table.deleted == 0, (name, result.summary())

    # A run purged from the store (mlflow gc) stays, until a reconcile is asked for.
    from mlflow.tracking import MlflowClient

    gone = manifest["runs"]["s-1"]
    MlflowClient(tracking_uri=uri).delete_run(gone)
    hard_delete(uri, gone)
    kept = sync(uri, target, spark=spark)
    assert kept.purged_runs == 0
    assert spark.read.format("delta").load(f"{target}/runs").where(f"run_id = '{gone}'").count() == 1

    reconciled = sync(uri, target, spark=spark, reconcile_purged=True)
    assert reconciled.purged_runs == 1
    assert reconciled.tables["metrics"].deleted == 1 and reconciled.tables["runs"].deleted == 1
    assert_same(target_tables(spark, target), source_tables(spark, uri))


@pytest.mark.slow
def test_rowids_reused_after_a_purge_are_caught(spark, tmp_path):
    """SQLite reuses the rowids of rows deleted at the end of a table: after the run holding the
    latest points is purged, new points may take rowids the saved mark already covers. The sync
    sees the mark's row changed and scans every series; nothing is missed."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    uri, manifest = new_store("sqlite", tmp_path, reference=False)
    path = uri.split("sqlite:///", 1)[1]
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark)

    def latest() -> tuple[int, str]:
        with sqlite3.connect(path) as connection:
            return connection.execute("SELECT rowid, run_uuid FROM metrics ORDER BY rowid DESC LIMIT 1").fetchone()

    top, holder = latest()
    client = MlflowClient(tracking_uri=uri)
    client.delete_run(holder)
    hard_delete(uri, holder)
    other = next(run for run in manifest["runs"].values() if run != holder)
    client.log_metric(other, "after_purge", 1.0, timestamp=BASE_MS + 500, step=0)
    assert latest()[0] <= top, "the new point took a rowid the mark covers"

    result = sync(uri, target, spark=spark, reconcile_purged=True)
    assert result.tables["metrics"].inserted == 1, result.summary()
    assert_same(target_tables(spark, target), source_tables(spark, uri))


@pytest.mark.slow
def test_catalog_schema_target(spark, tmp_path):
    uri, _ = new_store("file", tmp_path, reference=False)
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS sync_test LOCATION '{tmp_path / 'warehouse'}'")
    try:
        result = sync(uri, target_schema="sync_test", spark=spark)
        assert "catalog schema" in result.target
        assert_same(target_tables(spark, schema="sync_test"), source_tables(spark, uri))
        again = sync(uri, target_schema="sync_test", spark=spark)
        assert again.mode == "incremental" and again.new_runs == 0
    finally:
        spark.sql("DROP SCHEMA IF EXISTS sync_test CASCADE")


def test_metric_ranges_read_each_point_once(spark, tmp_path):
    """The data source's metricRanges option: consecutive ranges read every point exactly once."""
    from mlflow.tracking import MlflowClient

    from pyspark_experiments.stores import open_store
    from pyspark_experiments.stores.base import Selection
    from pyspark_experiments.uri import resolve_tracking_uri

    for kind in ("sqlite", "file"):
        uri, manifest = new_store(kind, tmp_path, reference=False)
        store = open_store(resolve_tracking_uri(uri))
        experiment = manifest["experiments"]["small"]
        selection = Selection("metrics", (experiment,), view_type="ALL")
        first = store.metric_positions(selection)
        client = MlflowClient(tracking_uri=uri)
        run = manifest["runs"]["s-0"]
        client.log_metric(run, "loss", 0.25, timestamp=BASE_MS + 20, step=1)
        client.log_metric(run, "loss", 1.0, timestamp=BASE_MS + 10, step=0)  # exact duplicate
        client.log_metric(run, "acc", float("nan"), timestamp=BASE_MS + 20, step=1)
        second = store.metric_positions(selection)
        assert second[(run, "loss")] > first[(run, "loss")] and (run, "acc") in second

        def read(after: dict, upto: dict):
            ranges = {}
            for (run_id, key), position in upto.items():
                ranges.setdefault(run_id, {})[key] = [after.get((run_id, key), 0), position]
            df = (spark.read.format("experiments").option("trackingUri", uri).option("table", "metrics")
                  .option("viewType", "ALL").option("metricRanges", json.dumps(ranges)).load(experiment))
            return sorted_rows(df)

        both = read({}, first) + read(first, second)
        full = sorted_rows(spark.read.format("experiments").option("trackingUri", uri).option("table", "metrics")
                     .option("viewType", "ALL").load(experiment))
        assert sorted(both, key=repr) == full
        assert len(read(first, second)) == 2


# ------------------------------------------------------------------------------------------------
# concurrency and the lock
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_syncs_at_once_one_fails_clearly_or_both_commit(spark, tmp_path):
    uri, _ = new_store("sqlite", tmp_path, reference=False)
    target = str(tmp_path / "delta")
    outcomes: list = [None, None]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = sync(uri, target, spark=spark)
        except Exception as error:  # noqa: BLE001 - recorded and checked below
            outcomes[i] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    failures = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failures) <= 1, failures
    for failure in failures:
        assert isinstance(failure, SyncLockedError), repr(failure)
        assert "another sync" in str(failure)
    assert_same(target_tables(spark, target), source_tables(spark, uri))
    assert not lock_claims(spark, target)
    # The lock is free again, and a later sync runs.
    assert sync(uri, target, spark=spark).mode == "incremental"


@pytest.mark.slow
def test_two_first_syncs_on_a_new_target(spark, tmp_path):
    """Two sync processes started at once on a target that does not exist yet: both create the
    lock and state tables; each must end in success or "locked" (75), never a failure (1)."""
    uri, _ = new_store("sqlite", tmp_path, reference=False)
    target = str(tmp_path / "new-target")
    args = ["--tracking-uri", uri, "--target-path", target]
    processes = [_start_cli(args) for _ in range(2)]
    outcomes = [p.communicate(timeout=900) + (p.returncode,) for p in processes]
    codes = sorted(code for _, _, code in outcomes)
    assert codes in ([0, 0], [0, EXIT_LOCKED]), [(code, err[-2000:]) for _, err, code in outcomes]
    for out, _, code in outcomes:
        if code == EXIT_LOCKED:
            assert "NOT RUN" in out and "another sync" in out, out
    assert_same(target_tables(spark, target), source_tables(spark, uri))
    assert not lock_claims(spark, target)


@pytest.mark.slow
def test_sync_cli_never_prints_the_password(tmp_path):
    """A PostgreSQL store that cannot be reached, with a password holding a raw '/', '@' and
    ':': the FAILED summary, the logs and the JSON never show it."""
    import socket

    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = "Hunter/Two22@x:y"
    uri = f"postgresql://bob:{password}@127.0.0.1:{port}/mlflow"
    report = tmp_path / "result.json"
    done = _cli(["--tracking-uri", uri, "--target-path", str(tmp_path / "t"), "--json", str(report)])
    assert done.returncode == 1, done.stderr[-3000:]
    assert "FAILED" in done.stdout
    for text in (done.stdout, done.stderr, report.read_text() if report.exists() else ""):
        assert password not in text and "Hunter" not in text, text[-3000:]


def lock_claims(spark, target: str) -> dict:
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{target}/{LOCK_TABLE}`").collect()[0]
    return {k: v for k, v in (detail["properties"] or {}).items() if k.startswith(LOCK_PREFIX)}


def _set_lock(spark, target: str, holder: dict) -> None:
    for key in lock_claims(spark, target):
        spark.sql(f"ALTER TABLE delta.`{target}/{LOCK_TABLE}` UNSET TBLPROPERTIES ('{key}')")
    value = json.dumps(holder, sort_keys=True)
    spark.sql(f"ALTER TABLE delta.`{target}/{LOCK_TABLE}` SET TBLPROPERTIES ('{LOCK_PREFIX}{holder['holder']}' = '{value}')")


@pytest.mark.slow  # the lock rules: tests/unit/jobs/test_lock.py
def test_lock_of_a_live_sync_is_respected_and_of_a_dead_one_taken_over(spark, tmp_path):
    import socket

    uri, _ = new_store("sqlite", tmp_path, reference=False)
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark)

    live = {"holder": "x", "host": socket.gethostname(), "pid": os.getpid(), "pid_start": None,
            "since": "2026-01-01T00:00:00+00:00"}
    _set_lock(spark, target, live)
    with pytest.raises(SyncLockedError, match="another sync holds .* since 2026-01-01"):
        sync(uri, target, spark=spark)

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _set_lock(spark, target, dict(live, pid=dead.pid))
    assert sync(uri, target, spark=spark).mode == "incremental"


# ------------------------------------------------------------------------------------------------
# SIGKILL at several points, then a rerun
# ------------------------------------------------------------------------------------------------


def _cli_command(args: list[str], kill_at: str | None = None) -> tuple[list[str], dict]:
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", PYSPARK_PYTHON=sys.executable)
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    command = [sys.executable, "-m", "pyspark_experiments.sync", "--master", "local[2]",
               "--conf", "spark.sql.shuffle.partitions=4", "--no-progress", *args]
    return command, env


def _start_cli(args: list[str]) -> subprocess.Popen:
    command, env = _cli_command(args)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def _cli(args: list[str], kill_at: str | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    command, env = _cli_command(args, kill_at)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.mark.slow
def test_sync_killed_at_several_points_then_rerun_equals_clean_full_sync(spark, tmp_path):
    uri, manifest = new_store("file", tmp_path)
    target = str(tmp_path / "delta")
    args = ["--tracking-uri", uri, "--target-path", target]

    # 1. The first (full) sync dies while a Spark job reads the store's metrics (and writes them).
    killed = _cli(args, kill_at="during:metrics")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # 2. A rerun takes over the dead process's lock and completes.
    assert sync(uri, target, spark=spark).mode == "full"
    # 3. More logging; the incremental sync dies between two table commits (tags done, inputs not).
    log_changes(uri, manifest)
    killed = _cli(args, kill_at="after-write:tags")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # 4. Then once every table is committed but the state is not.
    killed = _cli(args, kill_at="before-state")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # 5. A clean rerun from the command line: exit code 0, the summary on stdout.
    done = _cli(args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pyspark-experiments sync #" in done.stdout and ": OK, incremental" in done.stdout, done.stdout
    assert "taking over the lock" in done.stderr

    fresh = str(tmp_path / "fresh")
    sync(uri, fresh, spark=spark)
    expected = target_tables(spark, fresh)
    assert_same(target_tables(spark, target), expected)
    assert_same(expected, source_tables(spark, uri))


# ------------------------------------------------------------------------------------------------
# config and command line (no Spark)
# ------------------------------------------------------------------------------------------------


def test_example_config_loads_and_flags_override(tmp_path):
    cfg = SyncConfig.from_toml(os.path.join(REPO, "conf", "sync.toml"))
    assert cfg.tracking_uri == "sqlite:///mlflow.db" and cfg.target_path == "mlflow-delta"
    assert cfg.experiments is None and cfg.full is False and cfg.progress is None
    assert cfg.spark_conf["spark.sql.shuffle.partitions"] == "8"

    cfg, _ = config_from_args([
        "--config", os.path.join(REPO, "conf", "sync.toml"), "--full", "--experiments", "a, 3",
        "--conf", "spark.x=1", "--target-path", "/tmp/elsewhere",
    ])
    assert cfg.full and cfg.experiments == ("a", "3") and cfg.target_path == "/tmp/elsewhere"
    assert cfg.spark_conf == {"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "2g", "spark.x": "1"}


def test_invalid_configs_are_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[target]\npath = "/a"\nfolder = "/b"\n')
    with pytest.raises(ConfigError, match="unknown key 'folder' in \\[target\\]; expected one of path, schema"):
        SyncConfig.from_toml(str(bad))
    both = tmp_path / "both.toml"
    both.write_text('[target]\npath = "/a"\nschema = "s"\n')
    assert main(["--config", str(both)]) == EXIT_USAGE
    assert "exactly one target" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml")]) == EXIT_USAGE
    assert main(["--tracking-uri", "x", "--no-such-flag"]) == EXIT_USAGE
    with pytest.raises(ConfigError, match="read_mode"):
        SyncConfig(target_path="/a", read_mode="LENIENT").validate()


def test_summary_fits_one_screen_and_hides_credentials():
    from pyspark_experiments.sync import SyncResult, TableResult

    result = SyncResult(store="postgresql://bob:***@db/mlflow", target="/data (folder of Delta tables)",
                        mode="incremental", started_at=datetime(2026, 1, 1), duration_s=3.2, runs=10,
                        tables={"runs": TableResult("runs", inserted=1, updated=2, unchanged=7, version=4)})
    text = result.summary()
    assert len(text.splitlines()) <= 20 and max(len(line) for line in text.splitlines()) <= 100
    assert "***" in text and "runs" in text and " 4" in text
    assert EXIT_LOCKED == 75
