"""``pyspark-experiments analytics`` run as a command with what it cannot use: a store that is
not there (the store's own message, the path or the server, not Spark's wrapping of it, and the
exit code of its kind: 2 for a missing store, 1 for an unreachable server) and a metric that no
run logged (2, with the closest logged names)."""

from __future__ import annotations

import subprocess

import pytest

from pyspark_experiments.jobs import EXIT_CONFIG, EXIT_FAILED
from support.commands import run_command
from support.ports import free_port

SPARK_NOISE = ("Traceback", "SQLSTATE", "PYTHON_DATA_SOURCE_ERROR", "org.apache.spark", "File \"")


# Each test runs a command in a new process (its own Spark): the slow tier, as the jobs' other
# end-to-end runs.
pytestmark = pytest.mark.slow

def analytics(*args: str) -> subprocess.CompletedProcess:
    return run_command("analytics", *args)


def spark_lines_removed(stderr: str) -> str:
    """stderr without the lines Spark's launcher prints before the job starts."""
    return "\n".join(line for line in stderr.splitlines() if "pyspark_experiments" in line or line.startswith("\t"))


def test_a_missing_sqlite_store_in_a_config_file_exits_2_naming_the_file(tmp_path):
    missing = tmp_path / "nonexistent.db"
    conf = tmp_path / "analytics.toml"
    conf.write_text(f'[store]\ntracking_uri = "sqlite:///{missing}"\n[target]\npath = "{tmp_path / "out"}"\n')
    done = analytics("--config", str(conf))
    assert done.returncode == EXIT_CONFIG, done.stdout + done.stderr
    assert f"no SQLite database at '{missing}'" in done.stdout
    assert f"no SQLite database at '{missing}'" in done.stderr
    assert "NOT RUN" in done.stdout
    for noise in SPARK_NOISE:
        assert noise not in done.stdout and noise not in spark_lines_removed(done.stderr), noise


def test_an_unreachable_postgresql_server_exits_1_naming_it_and_debug_shows_the_traceback(tmp_path):
    port = free_port()  # nothing listens there
    uri = f"postgresql://mlflow:Secret-42@127.0.0.1:{port}/mlflow"
    done = analytics("--tracking-uri", uri, "--target-path", str(tmp_path / "out"))
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    for stream in (done.stdout, done.stderr):
        assert f"cannot connect to postgresql://mlflow:***@127.0.0.1:{port}/mlflow" in stream
        assert "Secret-42" not in stream
    assert "FAILED" in done.stdout
    for noise in SPARK_NOISE:
        assert noise not in done.stdout and noise not in spark_lines_removed(done.stderr), noise

    debug = analytics("--tracking-uri", uri, "--target-path", str(tmp_path / "out"), "--debug")
    assert debug.returncode == EXIT_FAILED
    assert "Traceback" in debug.stderr and "PYTHON_DATA_SOURCE_ERROR" in debug.stderr
    assert "Traceback" not in debug.stdout and "Secret-42" not in debug.stdout + debug.stderr


def test_a_metric_no_run_logged_exits_2_with_the_closest_names(tmp_path):
    from support.small import write_small_stores

    uri = write_small_stores(tmp_path, kinds=("sqlite",))["sqlite"]  # every run logs "loss"
    done = analytics("--tracking-uri", uri, "--target-path", str(tmp_path / "out"), "--metrics", "loss,Los")
    assert done.returncode == EXIT_CONFIG, done.stdout + done.stderr
    for stream in (done.stdout, done.stderr):
        assert "'Los': no run logged it; did you mean 'loss'?" in stream
    assert "NOT RUN" in done.stdout and not (tmp_path / "out" / "analytics_metric_trend").exists()
