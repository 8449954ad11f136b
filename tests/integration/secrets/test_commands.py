"""The jobs run as commands (slow tier: each starts its own Spark): a random password in the
tracking URI, the environment or a REST option never shows in their stdout or stderr (``--log-level
DEBUG`` where they succeed, ``--debug`` tracebacks with the Python workers' where they fail), nor
in any file they write (``--json``, the report, the cleanup plan, the Delta tables and their
state); nor in the summary, the JSON and the log records of a sync run in this process.

Store kinds: PostgreSQL (the real server of conftest.py: the URL's userinfo, right and wrong,
and ``PGPASSWORD``), REST (the loopback server answering 401 with the credential echoed:
``--rest-option token=...``, ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``). Few secrets, generated
with a fixed seed: each one runs every command.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings

from pyspark_experiments.jobs import EXIT_FAILED
from support.commands import run_command
from support.stores import environ

from .conftest import EXPERIMENT
from .shown import EVERY_SPECIAL, assert_hidden, log_everything, secrets

pytestmark = pytest.mark.slow

ONCE = settings(max_examples=1, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def written(folder: Path) -> dict[str, str]:
    """Every file a command wrote under ``folder``, as text (bytes beyond UTF-8 replaced)."""
    return {str(path.relative_to(folder)): path.read_bytes().decode("utf-8", "replace")
            for path in sorted(folder.rglob("*")) if path.is_file()}


def outputs(name: str, done: subprocess.CompletedProcess) -> dict[str, str]:
    return {f"{name} stdout": done.stdout, f"{name} stderr": done.stderr}


def _jobs(uri: str, out: Path) -> dict[str, list[str]]:
    """Each command's arguments, reading the store at ``uri``, writing under ``out``."""
    return {
        "sync": ["--tracking-uri", uri, "--target-path", str(out / "delta"), "--json", str(out / "sync.json")],
        "analytics": ["--tracking-uri", uri, "--target-path", str(out / "analytics")],
        "report": ["--tracking-uri", uri, "--out", str(out / "report")],
        "cleanup": ["--tracking-uri", uri, "--statuses", "FINISHED", "--plan-file", str(out / "plan.json"),
                    "--record-file", str(out / "record.jsonl")],
    }


@ONCE
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_commands_never_show_a_postgresql_password(secret_postgres, tmp_path_factory, secret):
    pg = secret_postgres
    pg.set_password(secret)
    out = tmp_path_factory.mktemp("commands")
    shown: dict = {}
    for name, args in _jobs(pg.uri(secret), out).items():
        done = run_command(name, *args, "--log-level", "DEBUG")
        assert done.returncode == 0, (name, done.stdout[-2000:], done.stderr[-3000:])
        shown.update(outputs(name, done))
    assert json.loads((out / "sync.json").read_text())["runs"] == 1
    assert "<html" in (out / "report" / "report.html").read_text().lower()
    for name in ("sync", "analytics"):  # wrong password: the error, with every traceback
        done = run_command(name, *_jobs(pg.uri(secret, role=pg.decoy), out / "wrong")[name], "--debug")
        assert done.returncode == EXIT_FAILED, (name, done.stdout[-2000:])
        assert "password authentication failed" in done.stdout
        shown.update(outputs(f"{name}, wrong password", done))
    with environ(PGPASSWORD=secret):  # libpq's variable, inherited by the command and its workers
        done = run_command("analytics", *_jobs(f"postgresql://{pg.reader}@{pg.host}:{pg.port}/{pg.database}",
                                               out / "pgpassword")["analytics"], "--log-level", "DEBUG")
    assert done.returncode == 0, done.stderr[-3000:]
    shown.update(outputs("analytics, PGPASSWORD", done))
    shown.update(written(out))
    assert_hidden(shown, (pg.reader, pg.decoy), secret)


@ONCE
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_sync_never_shows_a_tracking_server_credential(echo_server, tmp_path_factory, secret):
    echo_server.status = 401
    out = tmp_path_factory.mktemp("rest-commands")
    shown: dict = {}
    runs = {
        "--rest-option token": ([f"--rest-option=token={secret}"], {}),
        "--rest-option password": (["--rest-option", "username=alice", "--rest-option", f"password={secret}"], {}),
        "MLFLOW_TRACKING_USERNAME/PASSWORD": ([], {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": secret}),
    }
    for name, (args, variables) in runs.items():
        with environ(**variables):
            done = run_command("sync", "--tracking-uri", echo_server.url, "--target-path", str(out / "delta"),
                               "--rest-option", "maxRetries=0", *args, "--debug", "--json", str(out / f"{len(shown)}.json"))
        assert done.returncode != 0, name
        shown.update(outputs(name, done))
    shown.update(written(out))
    assert any("HTTP 401" in text or "cannot be sent over HTTP" in text for text in shown.values())
    assert_hidden(shown, ("alice",), secret)


@ONCE
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_a_sync_summary_json_and_log_never_show_the_password(spark, secret_postgres, tmp_path_factory, caplog, secret):
    from pyspark_experiments.sync import STATE_TABLE, sync

    pg = secret_postgres
    pg.set_password(secret)
    log_everything(caplog)
    target = str(tmp_path_factory.mktemp("sync") / "delta")
    result = sync(pg.uri(secret), target, spark=spark, experiments=[EXPERIMENT])
    again = sync(pg.uri(secret), target, spark=spark, experiments=[EXPERIMENT])
    state = spark.read.format("delta").load(os.path.join(target, STATE_TABLE)).toArrow().to_pylist()
    assert result.runs == 1 and again.mode == "incremental"
    shown = {"summary": result.summary(), "again": again.summary(), "repr": repr(result),
             "json": json.dumps(result.to_dict(), default=str), "state": json.dumps(state, default=str),
             "log": caplog.text}
    with pytest.raises(Exception) as refused:
        sync(pg.uri(secret, role=pg.decoy), target, spark=spark)
    shown["wrong password"] = f"{refused.value}\n{refused.value!r}"
    assert_hidden(shown, (pg.reader, pg.decoy), secret)
