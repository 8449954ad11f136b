"""The target lock's rules without Spark: whether a holder may still run, and which claim holds
the lock; real processes stand for live and dead holders."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from pyspark_experiments.jobs.lock import (
    LOCK_PREFIX,
    LOCK_TABLE,
    claim_versions,
    first_claim,
    holder_alive,
    locked_message,
    new_holder,
    process_start,
)

HOST = socket.gethostname()


def test_this_process_is_alive():
    me = new_holder("sync")
    assert me["job"] == "sync" and me["host"] == HOST and me["pid"] == os.getpid()
    assert holder_alive(me, timeout_minutes=1)


def test_a_finished_process_is_dead():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not holder_alive({"host": HOST, "pid": gone.pid, "since": datetime.now(UTC).isoformat()}, 360)


def test_a_reused_pid_is_another_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        holder = {"host": HOST, "pid": child.pid, "pid_start": process_start(child.pid)}
        assert holder_alive(holder, 360)
        assert not holder_alive(dict(holder, pid_start="1"), 360)
    finally:
        child.kill()
        child.wait()


def test_a_failed_holder_is_taken_over_at_once():
    assert not holder_alive(dict(new_holder("sync"), failed="2026-01-01T00:00:00+00:00"), 360)


def test_other_hosts_hold_until_the_timeout():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    holder = {"host": "another-host", "pid": 1, "since": (now - timedelta(minutes=30)).isoformat()}
    assert holder_alive(holder, 60, now=now)
    assert not holder_alive(holder, 20, now=now)
    assert not holder_alive({"host": "another-host", "since": "yesterday"}, 60, now=now)
    assert not holder_alive({"host": "another-host"}, 60, now=now)
    naive = {"host": "another-host", "since": "2026-01-01T11:50:00"}  # taken as UTC
    assert holder_alive(naive, 60, now=now)


def test_claims_of_0_1_0_without_job_are_a_syncs():
    legacy = {"holder": "x", "host": "h", "pid": 7, "since": "2026-01-01T00:00:00+00:00"}
    assert locked_message(legacy, "/d", 360).startswith("another sync holds /d since 2026-01-01")
    assert locked_message(dict(legacy, job="cleanup"), "/d", 360).startswith("another cleanup holds")
    assert LOCK_TABLE == "_sync_lock" and LOCK_PREFIX == "pyspark_experiments.sync.lock."


def _set(version: int, **props) -> dict:
    return {"version": version, "operation": "SET TBLPROPERTIES",
            "operationParameters": {"properties": json.dumps(props)}}


def test_the_earliest_claim_in_the_log_holds_the_lock():
    a, b, c = (LOCK_PREFIX + x for x in "abc")
    history = [  # newest first, as DESCRIBE HISTORY lists it
        _set(7, **{a: "{}"}),  # a re-set later: its latest SET counts
        {"version": 6, "operation": "UNSET TBLPROPERTIES", "operationParameters": {"properties": "[]"}},
        _set(5, **{c: "{}"}),
        _set(4, **{b: "{}"}),
        _set(3, **{a: "{}"}),
        {"version": 2, "operation": "WRITE", "operationParameters": {}},
        {"version": 1, "operation": "SET TBLPROPERTIES", "operationParameters": {"properties": "not json"}},
    ]
    versions = claim_versions(history, {a, b, c})
    assert versions == {a: 7, c: 5, b: 4}
    assert first_claim([a, b, c], versions) == b
    assert first_claim([a, c], versions) == c
    # A claim whose SET is not in the history read comes last.
    assert first_claim([a, b, LOCK_PREFIX + "z"], versions) == b
    assert first_claim([LOCK_PREFIX + "z", LOCK_PREFIX + "y"], {}) == LOCK_PREFIX + "y"
