"""A SparkSession with Delta Lake configured and the ``experiments`` source registered.

On a laptop, :func:`session` starts a local Spark with Delta Lake. It takes the Delta jars that
match the installed ``delta-spark`` from the local Maven repository (``~/.m2``, where
``.ci/run`` puts them with ``mvn dependency:get``), or else lets Spark resolve them from Maven
Central (``spark.jars.packages``).

On a cluster that already has Delta (Databricks, or ``--packages io.delta:...``), do not call
:func:`session`: use the cluster's ``spark`` and call ``pyspark_experiments.register(spark)``
(or nothing at all: Spark discovers the source once the package is installed on the cluster).

A Spark Connect session works too: ``session(remote="local[2]")`` (or ``SPARK_REMOTE`` set)
starts a local Connect server with the same Delta settings; ``session(remote="sc://host")``
connects to a running one, whose Delta setup is the server's.

Example::

    >>> from pyspark_experiments import session
    >>> spark = session()  # doctest: +SKIP
    >>> spark.read.format("experiments").option("trackingUri", "sqlite:///mlflow.db").load()  # doctest: +SKIP
    DataFrame[run_id: string, ...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from importlib import metadata

from .errors import MissingDependencyError

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def delta_package() -> str:
    """The Maven coordinate of the Delta jar matching the installed pyspark and delta-spark.

    ``PYSPARK_EXPERIMENTS_DELTA_PACKAGE`` overrides it (for a mirror that lacks that version).

    Example::

        >>> delta_package()  # doctest: +SKIP
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

        >>> local_delta_jars("io.delta:delta-spark_4.2_2.13:4.4.0")  # doctest: +SKIP
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
    remote: str | None = None,
):
    """Get or create a SparkSession ready for the ``experiments`` source and Delta Lake.

    ``master`` defaults to ``local[*]`` (or ``spark.master`` from the environment, as
    ``spark-submit`` sets it); ``config`` adds Spark settings. ``remote`` (default:
    ``SPARK_REMOTE``) gives a Spark Connect session instead: ``"local[2]"`` starts a local
    Connect server with these settings, ``"sc://host:port"`` connects to a running server.

    When the Delta jars are neither in the local Maven repository nor resolvable by Spark, a
    :class:`~pyspark_experiments.errors.MissingDependencyError` names the artifact and the ways
    out (instead of Spark's "Java gateway process exited").

    Example::

        >>> spark = session(config={"spark.sql.shuffle.partitions": "8"})  # doctest: +SKIP
        >>> spark.conf.get("spark.sql.extensions")  # doctest: +SKIP
        'io.delta.sql.DeltaSparkSessionExtension'
    """
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import SparkSession

    from .datasource import register

    remote = remote or os.environ.get("SPARK_REMOTE") or None
    builder = SparkSession.builder.appName(app_name)
    if remote:
        builder = builder.remote(remote)
    elif master or not os.environ.get("SPARK_MASTER"):
        builder = builder.master(master or os.environ.get("SPARK_MASTER") or "local[*]")
    starts_spark = not remote or not remote.startswith("sc://")
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.showConsoleProgress": "false",
    }
    package = None
    if delta and starts_spark:
        jars = local_delta_jars()
        if jars is None:
            package = delta_package()
        settings.update(
            {
                **({"spark.jars": ",".join(jars)} if jars else {"spark.jars.packages": package}),
                "spark.sql.extensions": DELTA_EXTENSION,
                "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
            }
        )
    settings.update(config or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        with warnings.catch_warnings():
            # A local Connect server starts with these settings; the client then sets them
            # again, and the server warns for each static one (CANNOT_MODIFY_CONFIG, 46110).
            warnings.filterwarnings("ignore", message=r"(?s).*(CANNOT_MODIFY_CONFIG|SQLSTATE: 46110)")
            spark = builder.getOrCreate()
    except PySparkRuntimeError as error:
        if package and settings.get("spark.jars.packages") == package and _java_found():
            raise _missing_delta(package) from error
        raise
    if not (starts_spark and _discovered_by_spark(settings)):
        # Spark found no DefaultSource by itself (another worker Python, or a remote server):
        # register explicitly. Registering a discovered source makes Spark warn that it
        # "replaced a statically registered data source", a warning our own setup caused.
        register(spark)
    return spark


def _java_found() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    return bool(java_home and os.path.isfile(os.path.join(java_home, "bin", "java"))) or shutil.which("java") is not None


def _missing_delta(package: str) -> MissingDependencyError:
    version = package.rsplit(":", 1)[-1]
    return MissingDependencyError(
        f"Spark could not start: the Delta Lake artifact {package} could not be resolved (it is "
        f"not in the local Maven repository, and Ivy's report above shows the repositories it "
        f"tried). Ways out: (1) install a delta-spark version whose jars your Maven repository "
        f"serves, e.g. pip install 'delta-spark==4.4.0' (the Python package and the jar must be the "
        f"same version; asked for now: {version}), or fetch the jars into ~/.m2 with mvn "
        f"dependency:get -Dartifact={package}; (2) point Spark at jars you have: "
        f"session(config={{'spark.jars': '<delta-spark jar>,<delta-storage jar>'}}) or "
        f"spark-submit --packages <group:artifact:version> from a repository that serves them "
        f"(PYSPARK_EXPERIMENTS_DELTA_PACKAGE overrides the coordinate); or session(delta=False) "
        f"to read without Delta"
    )


def _worker_python(settings: dict[str, str]) -> str:
    # The interpreter Spark starts its Python workers with (pyspark's own rule).
    return settings.get("spark.pyspark.python") or os.environ.get("PYSPARK_PYTHON") or "python3"


def _discovered_by_spark(settings: dict[str, str]) -> bool:
    """Whether Spark's own discovery will find this package: its lookup, run by the worker
    Python, lists the ``pyspark_*`` modules that ``pkgutil.iter_modules()`` sees."""
    python = _worker_python(settings)
    probe = f"import pkgutil, sys; sys.exit(0 if any(m.name == {__package__!r} for m in pkgutil.iter_modules()) else 1)"
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
