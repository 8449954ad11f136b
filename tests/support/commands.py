"""A ``pyspark-experiments`` command run as a subprocess, this checkout's package first."""

from __future__ import annotations

import os
import subprocess
import sys

import pyspark_experiments


def run_command(name: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m pyspark_experiments <name> --no-progress --master local[1] args``, its output
    captured as text (deadline 15 minutes)."""
    src = os.path.dirname(os.path.dirname(pyspark_experiments.__file__))
    env = dict(os.environ, PYTHONPATH=src, PYSPARK_PYTHON=sys.executable)
    return subprocess.run([sys.executable, "-m", "pyspark_experiments", name, "--no-progress",
                           "--master", "local[1]", *args], env=env, capture_output=True, text=True, timeout=900)
