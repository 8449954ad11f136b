"""pyspark-experiments: MLflow tracking stores as Spark DataFrames and Delta Lake tables.

Installing the package is enough: Spark discovers ``DefaultSource`` in packages named
``pyspark_*``, so ``spark.read.format("experiments")`` works with no further call. Keep this
module's imports cheap and safe: one failing ``pyspark_*`` import disables Spark's discovery
of every such package. This module only re-exports (after checking that pyspark can be
imported: it is not a base requirement, see :mod:`.dependencies`); nothing in the package
imports it.

Example::

    >>> import pyspark_experiments
    >>> spark = pyspark_experiments.session()  # doctest: +SKIP
    >>> runs = spark.read.format("experiments").option("trackingUri", "sqlite:///mlflow.db").load()  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import metadata

from .dependencies import require_pyspark

# pyspark is the platform's or the [spark] extra's: without one (or with one too old for Python
# data sources) every import of the package stops here with a message that says how to get it.
require_pyspark()

from .datasource import ALIASES, ExperimentsDataSource, register  # noqa: E402
from .session import session  # noqa: E402

try:
    __version__ = metadata.version("pyspark-experiments")
except metadata.PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0+unknown"

#: The class Spark's data-source discovery looks for.
DefaultSource = ExperimentsDataSource

__all__ = ["ALIASES", "DefaultSource", "ExperimentsDataSource", "register", "session", "__version__"]
