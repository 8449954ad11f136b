"""A cleanup SIGKILLed in the middle of its deletions (for real: the process kills itself after N
deletions, ``KILL_ENV``) leaves every deleted run recorded, and ``--restore`` brings every one
back, as mlflow itself reports their lifecycle stage."""

from __future__ import annotations

import json
import os
import signal

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from pyspark_experiments.cleanup.deletion import KILL_ENV  # noqa: E402
from pyspark_experiments.cleanup.records import RECORD_TABLE  # noqa: E402
from pyspark_experiments.jobs import EXIT_OK  # noqa: E402

from .mlflow_runs import DAY_MS, NOW, cleanup_process, stages  # noqa: E402

RUNS, KILLED_AFTER = 12, 5


def _failed_runs(uri: str, root) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("crash", artifact_location=str(root / "artifacts"))
    ids = []
    for number in range(RUNS):
        start = int(NOW.timestamp() * 1000) - (40 + number) * DAY_MS
        run = client.create_run(experiment, start_time=start, run_name=f"failed-{number}")
        client.set_terminated(run.info.run_id, status="FAILED", end_time=start + 1000)
        ids.append(run.info.run_id)
    return ids


@pytest.mark.slow
def test_a_cleanup_killed_mid_delete_is_recorded_and_restored_whole(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = _failed_runs(uri, tmp_path)
    before = stages(uri)
    record = tmp_path / "cleanup.jsonl"
    killed = cleanup_process(["--tracking-uri", uri, "--record-file", str(record), "--statuses", "FAILED", "--yes"],
                             {KILL_ENV: str(KILLED_AFTER)})
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    deleted = {i for i, s in stages(uri).items() if s == "deleted"}
    assert len(deleted) == KILLED_AFTER and deleted <= set(ids)
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert {r["run_id"] for r in rows if r["action"] == "intent"} >= deleted  # each recorded before its deletion
    batch = rows[0]["batch_id"]

    restored = cleanup_process(["--tracking-uri", uri, "--record-file", str(record), "--restore", batch], {})
    assert restored.returncode == EXIT_OK, restored.stdout[-2000:] + restored.stderr[-2000:]
    assert f"restored {KILLED_AFTER} run(s) of batch {batch}" in restored.stdout
    assert stages(uri) == before


@pytest.mark.slow
def test_a_cleanup_killed_mid_delete_into_a_target_is_restored_from_its_intents(spark, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = _failed_runs(uri, tmp_path)
    before = stages(uri)
    target = tmp_path / "delta"
    killed = cleanup_process(["--tracking-uri", uri, "--target-path", str(target), "--statuses", "FAILED", "--yes"],
                             {KILL_ENV: str(KILLED_AFTER)})
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    deleted = {i for i, s in stages(uri).items() if s == "deleted"}
    assert len(deleted) == KILLED_AFTER
    rows = spark.read.format("delta").load(str(target / RECORD_TABLE)).collect()
    assert {r.run_id for r in rows if r.action == "intent"} == set(ids)  # the batch's intents: one commit, first
    assert not [r for r in rows if r.action == "delete"]  # killed before its outcomes
    batch = rows[0].batch_id

    restored = cleanup_process(["--tracking-uri", uri, "--target-path", str(target), "--restore", batch], {})
    assert restored.returncode == EXIT_OK, restored.stdout[-2000:] + restored.stderr[-2000:]
    assert f"restored {KILLED_AFTER} run(s) of batch {batch}" in restored.stdout
    assert stages(uri) == before
