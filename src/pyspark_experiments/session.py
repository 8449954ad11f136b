"""A SparkSession with Delta Lake configured and the ``experiments`` source registered.

On a laptop, :func:`session` starts a local Spark with Delta Lake. It takes the Delta jars that
match the installed ``delta-spark`` from the local Maven repository (``~/.m2``, where
``.ci/run`` puts them with ``mvn dependency:get``), or else lets Spark resolve them from Maven
Central (``spark.jars.packages``).

On a cluster that already has Delta (Databricks, or ``--packages io.delta:...``), do not call
:func:`session`: use the cluster's ``spark`` and call ``pyspark_experiments.register(spark)``
(or nothing at all: Spark discovers the source once the package is installed on the cluster).

Example::

    >>> from pyspark_experiments import session
    >>> spark = session()
    >>> spark.read.format("experiments").option("trackingUri", "sqlite:///mlflow.db").load()
    DataFrame[run_id: string, ...]
"""

from __future__ import annotations

import os
from importlib import metadata

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def delta_package() -> str:
    """The Maven coordinate of the Delta jar matching the installed pyspark and delta-spark.

    ``PYSPARK_EXPERIMENTS_DELTA_PACKAGE`` overrides it (for a mirror that lacks that version).

    Example::

        >>> delta_package()
        'io.delta:delta-spark_4.2_2.13:4.4.0'
    """
    override = os.environ.get("PYSPARK_EXPERIMENTS_DELTA_PACKAGE", "").strip()
    if override:
        return override
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{metadata.version('delta-spark')}"


def local_delta_jars(package: str | None = None) -> list[str] | None:
    """The Delta jars for ``package`` in the local Maven repository, or ``None`` if absent.

    Delta's Spark plugin needs two jars at run time, ``delta-spark`` and ``delta-storage``.
    Taking them straight from ``~/.m2`` avoids Ivy, which stops at the first repository that
    has a dependency's ``.pom`` even when its ``.jar`` is missing there.

    Example::

        >>> local_delta_jars("io.delta:delta-spark_4.2_2.13:4.4.0")
        ['/root/.m2/repository/io/delta/delta-spark_4.2_2.13/4.4.0/delta-spark_4.2_2.13-4.4.0.jar', ...]
    """
    group, artifact, version = (package or delta_package()).split(":")
    repository = os.environ.get("MAVEN_REPOSITORY") or os.path.expanduser("~/.m2/repository")
    jars = [
        os.path.join(repository, *group.split("."), name, version, f"{name}-{version}.jar")
        for name in (artifact, "delta-storage")
    ]
    return jars if all(os.path.isfile(jar) for jar in jars) else None


def session(
    app_name: str = "pyspark-experiments",
    master: str | None = None,
    delta: bool = True,
    config: dict[str, str] | None = None,
):
    """Get or create a SparkSession ready for the ``experiments`` source and Delta Lake.

    ``master`` defaults to ``local[*]`` (or ``spark.master`` from the environment, as
    ``spark-submit`` sets it); ``config`` adds Spark settings.

    Example::

        >>> spark = session(config={"spark.sql.shuffle.partitions": "8"})
        >>> spark.conf.get("spark.sql.extensions")
        'io.delta.sql.DeltaSparkSessionExtension'
    """
    from pyspark.sql import SparkSession

    from . import register

    builder = SparkSession.builder.appName(app_name)
    if master or not os.environ.get("SPARK_MASTER"):
        builder = builder.master(master or os.environ.get("SPARK_MASTER") or "local[*]")
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.showConsoleProgress": "false",
    }
    if delta:
        jars = local_delta_jars()
        settings.update(
            {
                **({"spark.jars": ",".join(jars)} if jars else {"spark.jars.packages": delta_package()}),
                "spark.sql.extensions": DELTA_EXTENSION,
                "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
            }
        )
    settings.update(config or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    register(spark)
    return spark
