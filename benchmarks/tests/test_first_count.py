"""benchmarks/first_count.py: the timeline of a fresh session's first count, from a real run.

The tool runs as a user runs it, in a process of its own (its Spark session must be fresh), on
a SQLite store written by real mlflow; its timeline must show the Python processes Spark starts
for a Python data source and the counts it returned.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from support.paths import REPO

ROOT = str(REPO)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="watches Linux's /proc")


def test_timeline_shows_each_python_process_and_both_counts(sqlite_store):
    from mlflow import MlflowClient

    active_experiments = len(MlflowClient(sqlite_store).search_experiments())
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.first_count", "--uri", sqlite_store, "--table", "experiments"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    times = [float(line.split()[0]) for line in lines]
    assert times == sorted(times)
    for step in ("create_data_source", "plan_data_source_read", "pyspark.worker"):
        assert any(step in line and "process" in line for line in lines), f"no process for {step}:\n{done.stdout}"
    counts = [int(m.group(1).replace(",", "")) for m in re.finditer(r"count\(\) returned \(([\d,]+) rows\)", done.stdout)]
    assert counts == [active_experiments] * 2
    assert any(re.search(r"stage \d+ task \d+ launched, ran \d+\.\d\d s", line) for line in lines)


def test_needs_a_uri_except_for_the_tiny_source():
    done = subprocess.run([sys.executable, "-m", "benchmarks.first_count", "--table", "runs"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--uri is needed unless --table tiny" in done.stderr
