"""pyspark-experiments: MLflow tracking stores as Spark DataFrames and Delta Lake tables.

Installing the package is enough: Spark discovers ``DefaultSource`` in packages named
``pyspark_*``, so ``spark.read.format("experiments")`` works with no further call. Keep this
module's imports cheap and safe: one failing ``pyspark_*`` import disables Spark's discovery
of every such package. This module only re-exports; nothing in the package imports it.

Example::

    >>> import pyspark_experiments
    >>> spark = pyspark_experiments.session()  # doctest: +SKIP
    >>> runs = spark.read.format("experiments").option("trackingUri", "sqlite:///mlflow.db").load()  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import metadata

from .datasource import ALIASES, ExperimentsDataSource, register
from .session import session

try:
    __version__ = metadata.version("pyspark-experiments")
except metadata.PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0+unknown"

#: The class Spark's data-source discovery looks for.
DefaultSource = ExperimentsDataSource

__all__ = ["ALIASES", "DefaultSource", "ExperimentsDataSource", "register", "session", "__version__"]
