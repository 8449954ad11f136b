"""The ``spark`` fixture: one local SparkSession with Delta Lake for the whole test run."""

from __future__ import annotations

import pytest


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
            "spark.log.level": "ERROR",
            # Delta rebuilds a snapshot with 50 tasks by default: slow for tiny tables on 2 cores
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.ui.enabled": "false",
            # Python workers connect back within this; the default (15 s) is too short on a
            # loaded 2-core machine where a worker's imports alone can take that long.
            "spark.python.authenticate.socketTimeout": "120s",
        },
    )
    yield spark
    spark.stop()
