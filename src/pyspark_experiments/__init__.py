"""pyspark-experiments: MLflow tracking stores as Spark DataFrames and Delta Lake tables.

Installing the package is enough: Spark discovers ``DefaultSource`` in packages named
``pyspark_*``, so ``spark.read.format("experiments")`` works with no further call. Keep this
module's imports cheap and safe: one failing ``pyspark_*`` import disables Spark's discovery
of every such package.

Example::

    >>> import pyspark_experiments
    >>> spark = pyspark_experiments.session()  # doctest: +SKIP
    >>> runs = spark.read.format("experiments").option("trackingUri", "sqlite:///mlflow.db").load()  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import metadata

from .datasource import ExperimentsDataSource
from .errors import ConfigurationError
from .session import session

try:
    __version__ = metadata.version("pyspark-experiments")
except metadata.PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0+unknown"

#: The class Spark's data-source discovery looks for.
DefaultSource = ExperimentsDataSource


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

__all__ = ["ALIASES", "DefaultSource", "ExperimentsDataSource", "register", "session", "__version__"]


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
