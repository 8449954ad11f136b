"""What the package needs from the Spark it runs beside, checked where it is first needed.

pyspark is not a base requirement: Databricks Runtime brings its own, databricks-connect ships
the ``pyspark`` module without the ``pyspark`` distribution, and ``pyspark-client`` is enough
for a Spark Connect server. A pyspark from the package index would replace or shadow theirs, so
it comes only with the ``spark`` extra (``pip install 'pyspark-experiments[spark]'``), together
with delta-spark, which only a local session needs (its version picks the Delta jars).

Example::

    >>> require_pyspark()  # doctest: +SKIP
    '4.2.0'
    >>> delta_spark_version()  # doctest: +SKIP
    '4.4.0'
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

from .errors import MissingDependencyError

#: The extra that installs pyspark and delta-spark from the package index.
SPARK_EXTRA = "pip install 'pyspark-experiments[spark]'"
#: The Spark version whose pyspark has the Python data source API (``pyspark.sql.datasource``).
DATA_SOURCE_SPARK = "4.0"


def require_pyspark() -> str:
    """The version of the pyspark this interpreter imports, once it is known to have the Python
    data source API; else a :class:`~pyspark_experiments.errors.MissingDependencyError` that
    names both ways to get one (the ``spark`` extra, or the platform's own pyspark).

    Example::

        >>> require_pyspark()  # doctest: +SKIP
        '4.2.0'
    """
    try:
        import pyspark
    except ModuleNotFoundError as error:
        if error.name != "pyspark":
            raise
        raise MissingDependencyError(
            f"pyspark-experiments needs pyspark {DATA_SOURCE_SPARK} or newer, and {sys.executable} cannot import "
            f"pyspark. Install it with the package: {SPARK_EXTRA}; or use the Spark your platform "
            f"provides (Databricks Runtime's own pyspark, pyspark-client for a Spark Connect server, or "
            f"databricks-connect), installed before this package."
        ) from None
    try:
        import pyspark.sql.datasource  # noqa: F401
    except ModuleNotFoundError as error:
        if error.name != "pyspark.sql.datasource":
            raise
        where = os.path.dirname(pyspark.__file__ or "") or "?"
        raise MissingDependencyError(
            f"pyspark {pyspark.__version__} ({where}) has no Python data source API (pyspark.sql.datasource), "
            f"which the 'experiments' source is built on: it needs Spark {DATA_SOURCE_SPARK} or newer. Upgrade the "
            f"platform's Spark, or install one with the package: {SPARK_EXTRA}."
        ) from None
    return pyspark.__version__


def delta_spark_version() -> str:
    """The installed delta-spark's version, which picks the Delta jars a local session loads;
    a :class:`~pyspark_experiments.errors.MissingDependencyError` with the ways out when it is
    not installed (a Connect server or Databricks brings its own Delta and needs none here).

    Example::

        >>> delta_spark_version()  # doctest: +SKIP
        '4.4.0'
    """
    try:
        return metadata.version("delta-spark")
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"a local Spark session with Delta Lake needs delta-spark (its version picks the Delta jars), and "
            f"{sys.executable} has none. Install it: {SPARK_EXTRA} (or pip install 'delta-spark==<the version whose "
            f"jars your Maven repository serves>'); or name the jars' coordinate in PYSPARK_EXPERIMENTS_DELTA_PACKAGE; "
            f"or connect to a server that has Delta (session(remote='sc://host:15002'), Databricks); or "
            f"session(delta=False) to read without Delta."
        ) from None


def connect_only() -> bool:
    """Whether the installed pyspark can only connect to a Spark Connect server and cannot start
    a Spark of its own (``pyspark-client``, databricks-connect).

    Example::

        >>> connect_only()  # doctest: +SKIP
        False
    """
    try:
        from pyspark.util import is_remote_only
    except ImportError:  # a pyspark older than 4.0 has no Connect-only form
        return False
    return bool(is_remote_only())


def connect_only_error() -> MissingDependencyError:
    """The error for asking a Connect-only pyspark to start a Spark: it says how to connect.

    Example::

        >>> print(connect_only_error())  # doctest: +ELLIPSIS
        this pyspark (pyspark-client or databricks-connect) can only connect to a Spark Connect server...
    """
    return MissingDependencyError(
        f"this pyspark (pyspark-client or databricks-connect) can only connect to a Spark Connect server, not "
        f"start a Spark of its own: pass session(remote='sc://host:15002') or set SPARK_REMOTE; with "
        f"databricks-connect, take DatabricksSession.builder.getOrCreate() and call pyspark_experiments.register(spark). "
        f"To start a local Spark, install the full pyspark instead (pip uninstall pyspark-client, then {SPARK_EXTRA})."
    )
