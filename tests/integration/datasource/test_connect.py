"""Every public read-side API from a Spark Connect session gives the classic session's answers.

A local Connect server cannot share a process with a classic session: the Connect side runs in
a subprocess (``SparkSession.builder.remote("local[2]")`` with the Delta jars and extensions as
configs, through ``pyspark_experiments.session(remote=...)``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pyspark_experiments.session import local_delta_jars
from support.paths import REPO


@pytest.fixture(scope="module")
def connect_stores(tmp_path_factory):
    from support.small import write_small_stores

    return write_small_stores(tmp_path_factory.mktemp("connect-stores"))


@pytest.mark.slow
@pytest.mark.skipif(local_delta_jars() is None, reason="the Delta jars are not in the local Maven repository")
def test_public_apis_from_a_connect_session_equal_the_classic_session(spark, connect_stores, tmp_path):
    from support.public_api import exercise

    (tmp_path / "classic").mkdir()
    (tmp_path / "connect").mkdir()
    classic = exercise(spark, connect_stores, str(tmp_path / "classic"))

    script = textwrap.dedent(
        f"""
        import json, sys
        import pyspark_experiments
        from support.public_api import exercise
        spark = pyspark_experiments.session(remote="local[2]", config={{"spark.log.level": "ERROR",
            "spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4"}})
        assert type(spark).__module__.startswith("pyspark.sql.connect"), type(spark)
        results = exercise(spark, {connect_stores!r}, {str(tmp_path / "connect")!r})
        print("RESULTS " + json.dumps(results))
        spark.stop()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=1500,
        cwd=str(tmp_path), env={**__import__("os").environ, "PYTHONPATH": _pythonpath()},
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULTS ")), None)
    assert line is not None, result.stderr[-4000:]
    connect = json.loads(line[len("RESULTS "):])
    # session() starts the server without config noise
    assert "Failed to set" not in result.stderr and "CANNOT_MODIFY_CONFIG" not in result.stderr, result.stderr[-3000:]
    classic = json.loads(json.dumps(classic))
    assert connect.keys() == classic.keys()
    for key in classic:
        assert connect[key] == classic[key], key
    assert all(classic[f"{kind}/runs"] for kind in connect_stores)  # the stores were not empty
    assert len(classic["sqlite/stream-metrics"]) == len(classic["sqlite/metrics"]) == 6


def _pythonpath() -> str:
    import os

    import pyspark_experiments

    tests = str(REPO / "tests")
    src = os.path.dirname(os.path.dirname(os.path.abspath(pyspark_experiments.__file__)))
    return os.pathsep.join([src, tests, os.environ.get("PYTHONPATH", "")])
