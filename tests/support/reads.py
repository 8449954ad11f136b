"""Reading a table without Spark, as its executors would: plan on the driver, read each
partition through the store, collect what PERMISSIVE skipped."""

from __future__ import annotations

from pyspark_experiments.datasource import plan_read
from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.problems import collect_skipped
from pyspark_experiments.uri import resolve_tracking_uri


def read_as_executors(store: str, table: str, mode: str, **options):
    """(rows, skipped records) of ``table`` of the store at ``store``."""
    selection, partitions = plan_read({"trackingUri": store, "table": table, "mode": mode, **options})
    backend = open_store(resolve_tracking_uri(store))
    with collect_skipped() as skipped:
        rows = [row for partition in partitions for batch in backend.read(partition) for row in batch.to_pylist()]
    return rows, skipped
