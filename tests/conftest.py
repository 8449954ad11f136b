"""Shared fixtures: one local SparkSession with Delta Lake for the whole test run."""

from __future__ import annotations

import os

import pytest

# The reference stores written by real mlflow (tests/fixtures_stores.py).
pytest_plugins = ["fixtures_stores"]

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ.setdefault("PYSPARK_PYTHON", __import__("sys").executable)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from pyspark_experiments import session

    spark = session(
        app_name="pyspark-experiments-tests",
        master="local[2]",
        config={
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()
