"""pyspark-experiments: MLflow tracking stores as Spark DataFrames and Delta Lake tables.

Installing the package is enough: Spark discovers ``DefaultSource`` in packages named
``pyspark_*``, so ``spark.read.format("experiments")`` works with no further call. Keep this
module's imports cheap and safe: one failing ``pyspark_*`` import disables Spark's discovery
of every such package.

Example::

    >>> import pyspark_experiments
    >>> spark = pyspark_experiments.session()
    >>> runs = spark.read.format("experiments").option("trackingUri", "sqlite:///mlflow.db").load()
"""

from __future__ import annotations

from .datasource import ExperimentsDataSource
from .session import session

__version__ = "0.1.0"

#: The class Spark's data-source discovery looks for.
DefaultSource = ExperimentsDataSource

__all__ = ["DefaultSource", "ExperimentsDataSource", "register", "session", "__version__"]


def register(spark) -> None:
    """Register the ``experiments`` data source on ``spark`` explicitly.

    Example::

        >>> from pyspark.sql import SparkSession
        >>> spark = SparkSession.builder.getOrCreate()
        >>> register(spark)
        >>> spark.read.format("experiments")
        <pyspark.sql.readwriter.DataFrameReader ...>
    """
    spark.dataSource.register(ExperimentsDataSource)
