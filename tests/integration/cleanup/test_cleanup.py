"""``pyspark-experiments cleanup`` on real stores written by real mlflow (SQLite and file store).

Deletions go through mlflow's client; the checks read the store back through mlflow
(``search_runs(ViewType.ALL)``): the dry run changes nothing, ``--yes`` deletes exactly the listed
runs, ``--restore`` brings them back, every deletion is recorded once, and a cleanup while
another job holds the target's lock exits 75 without touching anything.
"""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from pyspark_experiments.cleanup import cli as cleanup_cli  # noqa: E402
from pyspark_experiments.cleanup import job as cleanup_job  # noqa: E402
from pyspark_experiments.cleanup.config import CleanupConfig  # noqa: E402
from pyspark_experiments.cleanup.records import RECORD_TABLE  # noqa: E402
from pyspark_experiments.jobs import EXIT_CONFIG, EXIT_LOCKED, EXIT_OK  # noqa: E402

from .mlflow_runs import cleanup_process, stages, write_store  # noqa: E402


@pytest.fixture(params=(pytest.param("sqlite", marks=pytest.mark.slow), pytest.param("file", marks=pytest.mark.slow)))
def store(request, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if request.param == "sqlite" else str(tmp_path / "mlruns")
    return uri, write_store(uri, tmp_path)


def test_dry_run_delete_and_restore(spark, store, tmp_path, capsys):
    uri, ids = store
    target = str(tmp_path / "delta")
    before = stages(uri)
    args = ["--tracking-uri", uri, "--target-path", target, "--statuses", "FAILED,KILLED", "--older-than-days", "30", "--no-progress"]

    assert cleanup_cli.main(args) == EXIT_OK  # dry run
    listing = capsys.readouterr().out
    assert stages(uri) == before, "the dry run changed the store"
    expected = {ids[n] for n in ("alpha-old-failed", "alpha-old-killed", "beta-old-failed", "beta-old-killed")}
    assert "dry run: 4 run(s) selected" in listing and "nothing deleted" in listing
    assert {i for i in ids.values() if i in listing} == expected

    assert cleanup_cli.main(args + ["--yes"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "deleted 4 run(s)" in out
    after = stages(uri)
    assert {i for i, s in after.items() if s == "deleted"} == expected
    assert {i: s for i, s in after.items() if i not in expected} == {i: s for i, s in before.items() if i not in expected}

    records = [r for r in spark.read.format("delta").load(f"{target}/{RECORD_TABLE}").collect() if r.action == "delete"]
    assert sorted(r.run_id for r in records) == sorted(expected)  # one row per deleted run
    batches = {r.batch_id for r in records}
    assert len(batches) == 1
    assert all(r.reason and r.by and r.at and r.experiment_id for r in records)
    batch = batches.pop()
    assert f"--restore {batch}" in out

    # A second dry run no longer lists them: deleted runs are never candidates.
    assert cleanup_cli.main(args) == EXIT_OK
    assert "dry run: 0 run(s) selected" in capsys.readouterr().out

    assert cleanup_cli.main(["--tracking-uri", uri, "--target-path", target, "--restore", batch, "--no-progress"]) == EXIT_OK
    assert f"restored 4 run(s) of batch {batch}" in capsys.readouterr().out
    assert stages(uri) == before
    actions = spark.read.format("delta").load(f"{target}/{RECORD_TABLE}").groupBy("action").count().collect()
    assert {r.action: r["count"] for r in actions} == {"intent": 4, "delete": 4, "restore": 4}


@pytest.mark.slow
def test_databricks_deletes_in_bulk_where_a_time_bound_selects_the_runs(tmp_path):
    """Experiments and an age only: the bulk ``databricks/runs/delete-runs`` endpoint, behind a
    Databricks-shaped proxy (Bearer token, /api/2.0/mlflow/ only, 429s) in front of a real
    ``mlflow server``, which the proxy serves that endpoint from with MLflow's own API."""
    from mlflow import MlflowClient

    from support.mlflow_server import running_mlflow_server
    from support.proxies import DatabricksProxy

    token = "dapi-cleanup-test-token"
    record = tmp_path / "cleanup.jsonl"
    with running_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path)) as url:
        ids = write_store(url, tmp_path)
        before = stages(url)
        alpha = MlflowClient(url).get_experiment_by_name("alpha").experiment_id
        with DatabricksProxy(url, token, throttle_every=5) as proxy:
            env = {"DATABRICKS_HOST": proxy.url, "DATABRICKS_TOKEN": token, "HOME": str(tmp_path)}
            done = cleanup_process(["--tracking-uri", "databricks", "--record-file", str(record),
                         "--experiment-ids", alpha, "--older-than-days", "30", "--yes"], env)
            assert done.returncode == EXIT_OK, done.stderr[-3000:]
            assert proxy.bulk_deletions == 1, "one bulk request for the one experiment"
        expected = {ids[n] for n in ("alpha-old-failed", "alpha-old-killed", "alpha-old-ok")}
        assert "deleted 3 run(s)" in done.stdout, done.stdout
        after = stages(url)
        assert {i for i, s in after.items() if s == "deleted"} == expected
        records = [json.loads(line) for line in record.read_text().splitlines()]
        assert sorted(r["run_id"] for r in records if r["action"] == "delete") == sorted(expected)
        assert sorted(r["run_id"] for r in records if r["action"] == "intent") == sorted(expected)
        assert token not in done.stdout + done.stderr + record.read_text()

        with DatabricksProxy(url, token, throttle_every=5) as proxy:
            env["DATABRICKS_HOST"] = proxy.url
            restored = cleanup_process(["--tracking-uri", "databricks", "--record-file", str(record),
                                        "--restore", records[0]["batch_id"]], env)
            assert restored.returncode == EXIT_OK, restored.stderr[-3000:]
        assert stages(url) == before


def test_keep_newest_and_jsonl_record_without_target(spark, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = write_store(uri, tmp_path)
    before = stages(uri)
    record = tmp_path / "records" / "cleanup.jsonl"
    cfg = CleanupConfig(tracking_uri=uri, cleanup_experiments=None, keep_newest=3, record_file=str(record)).validate()
    result = cleanup_job.run_cleanup(spark, cfg, yes=True)
    # the two oldest runs of each experiment: old-ok (90 days) and old-failed (60 days)
    expected = {ids[f"{e}-{n}"] for e in ("alpha", "beta") for n in ("old-ok", "old-failed")}
    assert {r["run_id"] for r in result.runs} == expected
    after = stages(uri)
    assert {i for i, s in after.items() if s == "deleted"} == expected
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(line["run_id"] for line in lines if line["action"] == "delete") == sorted(expected)
    assert {line["batch_id"] for line in lines} == {result.batch_id}
    cleanup_job.run_cleanup(spark, cfg, restore=result.batch_id)
    assert stages(uri) == before


def test_cleanup_while_another_job_holds_the_target_exits_75(spark, tmp_path, capsys):
    from pyspark_experiments.jobs.lock import TargetLock
    from pyspark_experiments.jobs.target import DeltaTarget

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_store(uri, tmp_path)
    before = stages(uri)
    target = str(tmp_path / "delta")
    lock = TargetLock(DeltaTarget.at_path(spark, target), job="sync")
    lock.ensure_table()
    lock.acquire()
    try:
        code = cleanup_cli.main(["--tracking-uri", uri, "--target-path", target, "--statuses", "FAILED", "--yes", "--no-progress"])
    finally:
        lock.release()
    assert code == EXIT_LOCKED
    out = capsys.readouterr().out
    assert "NOT RUN" in out and "another sync holds" in out
    assert stages(uri) == before


def test_no_condition_and_bad_config_are_clear_errors(tmp_path, capsys):
    assert cleanup_cli.main(["--tracking-uri", "sqlite:///x.db", "--yes", "--restore", "b"]) == EXIT_CONFIG
    assert "--yes and --restore" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[cleanup]\nolder_than_days = 'thirty'\n")
    assert cleanup_cli.main(["--config", str(bad)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert str(bad) in err and "[cleanup] older_than_days" in err
