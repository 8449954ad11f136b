"""The ``experiments`` Spark data source: options in, store partitions out, Arrow batches back.

This adapter is thin on purpose: it validates options (:mod:`.options`), resolves the tracking
URI and the experiments (on the driver), asks the store backend for partitions, and on each
executor yields the backend's record batches. Streaming reads live in :mod:`.stream`.

Example::

    >>> df = (spark.read.format("experiments")
    ...       .option("trackingUri", "sqlite:///mlflow.db")
    ...       .option("table", "metrics")
    ...       .option("metricKeys", "loss,val/acc")
    ...       .load("my-experiment"))
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

from .. import tables
from ..errors import ConfigurationError, ExperimentsError
from ..stores.problems import collect_skipped
from .options import OPTIONS, ReadRequest
from .stream import ExperimentsStreamReader, RefusedStream


class ExperimentsDataSource(DataSource):
    """``spark.read.format("experiments")``: MLflow tracking stores as DataFrames.

    Example::

        >>> spark.dataSource.register(ExperimentsDataSource)
        >>> spark.read.format("experiments").option("table", "experiments").load().count()
        3
    """

    @classmethod
    def name(cls) -> str:
        return "experiments"

    def __init__(self, options) -> None:
        super().__init__(options)
        self.request = ReadRequest.from_options(options)

    def schema(self):
        return self.request.schema

    def reader(self, schema) -> ExperimentsReader:
        return ExperimentsReader(self.request)

    def streamReader(self, schema):
        try:
            return ExperimentsStreamReader(self.request)
        except ExperimentsError as error:
            return RefusedStream(error)


class StorePartition(InputPartition):
    """A Spark input partition wrapping one backend :class:`~.stores.base.Partition`."""

    def __init__(self, partition) -> None:
        super().__init__(partition.index)
        self.partition = partition

    def __repr__(self) -> str:
        return f"StorePartition({self.partition.index})"


class ExperimentsReader(DataSourceReader):
    """Plans on the driver, reads on the executors."""

    def __init__(self, request: ReadRequest) -> None:
        self.request = request

    def partitions(self) -> list[StorePartition]:
        store = self.request.open_store()
        return [StorePartition(p) for p in store.plan(self.request.selection(store))]

    def read(self, partition) -> Iterator:
        if not isinstance(partition, StorePartition):
            return  # a plan with no partitions: Spark still asks for one
        yield from read_partition(self.request.open_store(), partition.partition, self.request)


def read_partition(store, partition, request: ReadRequest) -> Iterator:
    """A store partition's batches as Spark receives them: with option
    ``columnNameOfCorruptRecord``, good rows carry a null in that column and every record a
    PERMISSIVE read skipped follows as a row of its own (place and reason in the column)."""
    column = request.corrupt_record_column
    if not column:
        yield from store.read(partition)
        return
    schema = tables.arrow_with_corrupt_record(request.table, column)
    with collect_skipped() as skipped:
        for batch in store.read(partition):
            nulls = pa.nulls(batch.num_rows, type=pa.string())
            yield pa.RecordBatch.from_arrays([*batch.columns, nulls], schema=schema)
    if skipped:
        yield skipped_batch(schema, column, skipped)


def skipped_batch(schema, column: str, skipped) -> pa.RecordBatch:
    """Rows for skipped records: experiment and run id where known, the place and reason in
    ``column``, null elsewhere.

    Example::

        >>> from pyspark_experiments.stores.problems import SkippedRecord
        >>> schema = tables.arrow_with_corrupt_record("params", "_bad")
        >>> skipped_batch(schema, "_bad", [SkippedRecord("/m/1/r/params/p: not UTF-8", "1", "r")]).to_pylist()
        [{'experiment_id': '1', 'run_id': 'r', 'key': None, 'value': None, '_bad': '/m/1/r/params/p: not UTF-8'}]
    """
    known = {
        "experiment_id": [s.experiment_id for s in skipped],
        "run_id": [s.run_id for s in skipped],
        column: [s.where for s in skipped],
    }
    arrays = [pa.array(known.get(f.name, [None] * len(skipped)), type=f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def plan_read(options: dict, environ=None):
    """Plan a read without Spark: the resolved selection and its partitions (for tools and tests).

    Example::

        >>> selection, parts = plan_read({"trackingUri": "sqlite:///mlflow.db", "table": "runs"})
        >>> len(parts) >= 1
        True
    """
    request = ReadRequest.from_options(options, environ)
    store = request.open_store()
    selection = request.selection(store, environ)
    return selection, store.plan(selection)


class MlflowExperimentDataSource(ExperimentsDataSource):
    """The ``experiments`` source under Databricks' format name ``mlflow-experiment``.

    Registered only on request (:func:`register` with ``alias="mlflow-experiment"``): on
    Databricks the name belongs to the platform's own source.
    """

    @classmethod
    def name(cls) -> str:
        return "mlflow-experiment"


#: Other names the source can be registered under, on request only.
ALIASES = {"mlflow-experiment": MlflowExperimentDataSource}


def register(spark, alias: str | None = None) -> None:
    """Register the ``experiments`` data source on ``spark`` explicitly (classic or Connect).

    With ``alias="mlflow-experiment"`` the source is also registered under Databricks' format
    name, so notebooks written for Databricks' source run unchanged on open-source Spark. Never
    done by default: on Databricks it would shadow the platform's own source.

    Example::

        >>> from pyspark.sql import SparkSession
        >>> spark = SparkSession.builder.getOrCreate()  # doctest: +SKIP
        >>> register(spark, alias="mlflow-experiment")  # doctest: +SKIP
        >>> spark.read.format("mlflow-experiment").load("1").columns[:2]  # doctest: +SKIP
        ['run_id', 'experiment_id']
        >>> register(None, alias="mlflow")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: register(alias='mlflow'): unknown alias; expected None or one of 'mlflow-experiment'
    """
    if alias is not None and alias not in ALIASES:
        raise ConfigurationError(
            f"register(alias={alias!r}): unknown alias; expected None or one of "
            f"{', '.join(repr(a) for a in ALIASES)}"
        )
    spark.dataSource.register(ExperimentsDataSource)
    if alias is not None:
        spark.dataSource.register(ALIASES[alias])


__all__ = [
    "ALIASES", "OPTIONS", "ExperimentsDataSource", "ExperimentsReader", "MlflowExperimentDataSource", "ReadRequest",
    "StorePartition", "plan_read", "read_partition", "register", "skipped_batch",
]
