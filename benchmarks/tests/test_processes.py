"""benchmarks/processes.py: the process tree and CPU split the sync benchmark reports."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys

import pytest

from benchmarks import processes

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads Linux's /proc")


def test_descendants_find_a_child_and_its_child():
    script = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import sys; sys.stdin.read()'])"
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    try:
        for _ in range(200):  # until the child has started its own child
            below_parent = processes.descendants(parent.pid)
            if below_parent:
                break
            subprocess.run(["sleep", "0.05"])
        assert parent.pid in [pid for pid, _ in processes.descendants(os.getpid())]
        assert len(below_parent) == 1 and below_parent[0][1].startswith("python")
    finally:
        parent.communicate(b"")


def test_cpu_split_counts_this_process_and_grows():
    before = processes.cpu_split()
    total = 0
    while processes.cpu_split()["driver_python"] - before["driver_python"] < 0.05:
        total += sum(range(10_000))
    spent = processes.cpu_spent(before, processes.cpu_split())
    assert spent["driver_python"] >= 0.05
    assert all(value is None or value >= 0 for value in spent.values())  # None: a process ended unseen


def test_doctests():
    result = doctest.testmod(processes)
    assert result.attempted > 0 and result.failed == 0
