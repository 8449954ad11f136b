"""The sync from a Spark Connect session (no SparkContext) writes the same tables as from a
classic session.

A local Connect server cannot share a process with a classic session, so the Connect side runs
in a subprocess: ``SparkSession.builder.remote("local[2]")`` with the Delta jars and extensions
as configs (the builder starts the server).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pyspark_experiments.session import local_delta_jars
from pyspark_experiments.sync import sync
from support.compare import target_tables
from support.stores import log_reference_data

pytestmark = pytest.mark.slow  # a Spark Connect server in a subprocess

SCRIPT = textwrap.dedent("""
    import json, sys
    from pyspark.sql import SparkSession
    from pyspark_experiments.session import DELTA_CATALOG, DELTA_EXTENSION, local_delta_jars
    from pyspark_experiments.sync import sync

    uri, target, out = sys.argv[1:4]
    spark = (SparkSession.builder.remote("local[2]")
             .config("spark.jars", ",".join(local_delta_jars()))
             .config("spark.sql.extensions", DELTA_EXTENSION)
             .config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "4")
             .getOrCreate())
    assert spark.__class__.__module__.startswith("pyspark.sql.connect"), type(spark)
    first = sync(uri, target, spark=spark)
    again = sync(uri, target, spark=spark)
    with open(out, "w") as handle:
        json.dump({"first": first.to_dict(), "again": again.to_dict()}, handle, default=str)
    spark.stop()
""")


@pytest.mark.skipif(not local_delta_jars(), reason="the Delta jars are not in the local Maven repository")
def test_sync_from_a_spark_connect_session_equals_classic(spark, tmp_path):
    pytest.importorskip("grpc")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_reference_data(uri)
    connect_target, classic_target, out = str(tmp_path / "connect"), str(tmp_path / "classic"), tmp_path / "result.json"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    done = subprocess.run([sys.executable, "-c", SCRIPT, uri, connect_target, str(out)], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["first"]["mode"] == "full" and results["again"]["mode"] == "incremental"
    assert results["again"]["new_runs"] == results["again"]["changed_runs"] == results["again"]["series_read"] == 0

    classic = sync(uri, classic_target, spark=spark)
    assert classic.runs == results["first"]["runs"]
    assert target_tables(spark, connect_target) == target_tables(spark, classic_target)
