"""Two cleanups at once: into a fresh target (the lock table created while another job creates
it), and with no target (one JSON-lines record file): one works, the other exits 75 or finds
nothing left; no run is deleted or recorded twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from pyspark_experiments.cleanup import cli as cleanup_cli  # noqa: E402
from pyspark_experiments.cleanup.records import Records  # noqa: E402
from pyspark_experiments.jobs import EXIT_LOCKED, EXIT_OK  # noqa: E402
from pyspark_experiments.jobs.config import CommandConfig  # noqa: E402
from pyspark_experiments.jobs.lock import LOCK_TABLE  # noqa: E402

from .mlflow_runs import stages, write_store  # noqa: E402

FAILED = ("alpha-old-failed", "alpha-new-failed", "beta-old-failed", "beta-new-failed")


def _started(args: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "pyspark_experiments", "cleanup", "--master", "local[1]", "--no-progress", *args]
    return subprocess.Popen(command, env={**os.environ, "PYSPARK_PYTHON": sys.executable},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_lock_table_another_job_is_creating_means_locked_not_failed(spark, tmp_path, capsys):
    """The moment two first jobs race on: the lock table's log folder is there, its first commit
    not yet (Delta's CREATE TABLE IF NOT EXISTS then does nothing, and reading it fails)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_store(uri, tmp_path)
    before = stages(uri)
    target = tmp_path / "delta"
    (target / LOCK_TABLE / "_delta_log").mkdir(parents=True)
    code = cleanup_cli.main(["--tracking-uri", uri, "--target-path", str(target), "--statuses", "FAILED", "--yes", "--no-progress"])
    out = capsys.readouterr().out
    assert code == EXIT_LOCKED, out
    assert "NOT RUN" in out and "creating the lock table" in out
    assert stages(uri) == before


def test_a_cleanup_while_another_records_into_the_same_file_exits_75(spark, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_store(uri, tmp_path)
    before = stages(uri)
    record = tmp_path / "cleanup.jsonl"
    with Records(None, CommandConfig(), str(record)).held():  # another cleanup holds the file
        code = cleanup_cli.main(["--tracking-uri", uri, "--record-file", str(record), "--statuses", "FAILED", "--yes",
                                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == EXIT_LOCKED, out
    assert "another cleanup is recording into" in out
    assert stages(uri) == before and not record.exists()


@pytest.mark.slow
@pytest.mark.parametrize("place", ["fresh target", "record file"])
def test_two_cleanups_at_once_delete_and_record_each_run_once(spark, tmp_path, place):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = write_store(uri, tmp_path)
    record, target = tmp_path / "cleanup.jsonl", tmp_path / "delta"
    where = ["--target-path", str(target)] if place == "fresh target" else ["--record-file", str(record)]
    args = ["--tracking-uri", uri, *where, "--statuses", "FAILED", "--yes"]
    processes = [_started(args), _started(args)]
    outcomes = [(p.wait(timeout=900), *p.communicate()) for p in processes]
    for code, out, err in outcomes:
        assert code in (EXIT_OK, EXIT_LOCKED), out[-2000:] + err[-2000:]
    expected = {ids[n] for n in FAILED}
    assert {i for i, s in stages(uri).items() if s == "deleted"} == expected
    if place == "record file":
        rows = [json.loads(line) for line in record.read_text().splitlines()]
    else:
        rows = [r.asDict() for r in spark.read.format("delta").load(str(target / "cleanup_log")).collect()]
    deletions = [r["run_id"] for r in rows if r["action"] == "delete"]
    assert sorted(deletions) == sorted(expected)  # each run recorded once, by one batch
    assert len({r["batch_id"] for r in rows if r["action"] == "delete"}) == 1
