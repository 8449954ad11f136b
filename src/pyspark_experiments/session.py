"""A SparkSession with Delta Lake configured and the ``experiments`` source registered.

On a laptop, :func:`session` starts a local Spark with Delta Lake. It takes the Delta jars that
match the installed ``delta-spark`` from the local Maven repository (``~/.m2``, where
``.ci/run`` puts them with ``mvn dependency:get``), or else lets Spark resolve them from Maven
Central (``spark.jars.packages``).

On a cluster that already has Delta (Databricks, or ``--packages io.delta:...``), do not call
:func:`session`: use the cluster's ``spark`` and call ``pyspark_experiments.register(spark)``
(or nothing at all: Spark discovers the source once the package is installed on the cluster).

Spark starts its Python workers with ``spark.pyspark.python`` or ``PYSPARK_PYTHON``, else with
``python3`` from PATH, not with the driver's interpreter. When :func:`session` starts a local
Spark itself and neither is set, it starts the workers with the interpreter running the program
(``sys.executable``), so ``/venv/bin/python app.py`` works without the venv on PATH (cron,
Airflow); a setting of the user's, a cluster or a Connect server decide for themselves.

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

import contextlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping

from .dependencies import connect_only, connect_only_error, delta_spark_version
from .errors import MissingDependencyError

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
WORKER_PYTHON = "spark.pyspark.python"

# The worker interpreter of the last session session() started (None: not one of ours).
_started_worker_python: str | None = None


def delta_package() -> str:
    """The Maven coordinate of the Delta jar matching the installed pyspark and delta-spark.

    ``PYSPARK_EXPERIMENTS_DELTA_PACKAGE`` overrides it (for a mirror that lacks that version);
    without it and without delta-spark, a
    :class:`~pyspark_experiments.errors.MissingDependencyError` says how to get one.

    Example::

        >>> delta_package()  # doctest: +SKIP
        'io.delta:delta-spark_4.2_2.13:4.4.0'
    """
    override = os.environ.get("PYSPARK_EXPERIMENTS_DELTA_PACKAGE", "").strip()
    if override:
        return override
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{delta_spark_version()}"


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
    out (instead of Spark's "Java gateway process exited"). Only a Spark started here needs
    delta-spark (its version picks the jars) and the full pyspark: with ``pyspark-client`` alone,
    pass ``remote="sc://..."``; a server brings its own Delta.

    Starting a local Spark with neither ``PYSPARK_PYTHON`` nor ``spark.pyspark.python`` set,
    it sets ``spark.pyspark.python`` to ``sys.executable``: the workers run this interpreter,
    which has this package, rather than whatever ``python3`` is first on PATH.

    Example::

        >>> spark = session(config={"spark.sql.shuffle.partitions": "8"})  # doctest: +SKIP
        >>> spark.conf.get("spark.sql.extensions")  # doctest: +SKIP
        'io.delta.sql.DeltaSparkSessionExtension'
    """
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import SparkSession

    from .datasource import register

    global _started_worker_python
    remote = remote or os.environ.get("SPARK_REMOTE") or None
    builder = SparkSession.builder.appName(app_name)
    if remote:
        builder = builder.remote(remote)
    elif master or not os.environ.get("SPARK_MASTER"):
        builder = builder.master(master or os.environ.get("SPARK_MASTER") or "local[*]")
    # The master Spark will use: workers on this machine, in this environment, for "local...".
    master = master or os.environ.get("SPARK_MASTER") or "local[*]"
    starts_spark = not remote or not remote.startswith("sc://")
    if starts_spark and connect_only():
        raise connect_only_error()
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
    ours = bool(sys.executable) and not remote and master.startswith("local") and not worker_python_chosen(settings)
    if ours:
        settings[WORKER_PYTHON] = sys.executable
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        with warnings.catch_warnings(), _worker_python_env(settings[WORKER_PYTHON] if ours else None):
            # A local Connect server starts with these settings; the client then sets them
            # again, and the server warns for each static one (CANNOT_MODIFY_CONFIG, 46110).
            warnings.filterwarnings("ignore", message=r"(?s).*(CANNOT_MODIFY_CONFIG|SQLSTATE: 46110)")
            spark = builder.getOrCreate()
    except PySparkRuntimeError as error:
        if package and settings.get("spark.jars.packages") == package and _java_found():
            raise _missing_delta(package) from error
        raise
    _started_worker_python = worker_python(settings) if not remote else None
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


def worker_python_chosen(config: Mapping[str, str]) -> bool:
    """Whether the user chose the Python of Spark's workers: ``spark.pyspark.python`` in
    ``config`` or ``PYSPARK_PYTHON`` in the environment.

    Example::

        >>> worker_python_chosen({"spark.pyspark.python": "/venv/bin/python"})
        True
    """
    return bool(str(config.get(WORKER_PYTHON) or "").strip() or os.environ.get("PYSPARK_PYTHON", "").strip())


def worker_python(config: Mapping[str, str] | None = None) -> str:
    """The interpreter Spark starts its Python workers with (pyspark's own rule):
    ``spark.pyspark.python`` in ``config``, else ``PYSPARK_PYTHON``, else ``python3``.

    Example::

        >>> worker_python({"spark.pyspark.python": "/venv/bin/python"})
        '/venv/bin/python'
    """
    return (config or {}).get(WORKER_PYTHON) or os.environ.get("PYSPARK_PYTHON") or "python3"


@contextlib.contextmanager
def _worker_python_env(python: str | None) -> Iterator[None]:
    """``PYSPARK_PYTHON`` set to ``python`` while Spark starts: pyspark reads it for its workers
    (not ``spark.pyspark.python``), and so does the JVM that Spark launches, which keeps it."""
    if python is None:
        yield
        return
    before = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = python
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYSPARK_PYTHON", None)
        else:
            os.environ["PYSPARK_PYTHON"] = before


# What the source needs in a worker before any of its code runs (the package and what it imports).
_MISSING_MODULE = re.compile(r"No module named '(?:pyspark_experiments|pyspark|pyarrow)(?:\.[\w.]+)?'")


def worker_python_error(error: BaseException) -> MissingDependencyError | None:
    """For an error raised because Spark's Python workers could not import this package (or
    pyspark or pyarrow, which it imports), an error that says in two lines which interpreter
    Spark started and how to choose another; ``None`` for any other error.

    Example::

        >>> error = RuntimeError("ModuleNotFoundError: No module named 'pyspark_experiments'")
        >>> print(worker_python_error(error))  # doctest: +SKIP
        Spark started its Python workers with python3 (/usr/bin/python3 on PATH), which cannot import pyspark_experiments (No ...).
        Choose the interpreter that has it: PYSPARK_PYTHON=/path/to/python, or the Spark setting ...
        >>> worker_python_error(RuntimeError("boom")) is None
        True
    """
    if isinstance(error, MissingDependencyError):
        return None
    found = _MISSING_MODULE.search(str(error))
    if found is None:
        return None
    python = _started_worker_python or worker_python()
    where = shutil.which(python)
    shown = python if where in (None, python) else f"{python} ({where} on PATH)"
    return MissingDependencyError(
        f"Spark started its Python workers with {shown}, which cannot import {__package__} ({found.group(0)}).\n"
        f"Choose the interpreter that has it: PYSPARK_PYTHON=/path/to/python, or the Spark setting "
        f"spark.pyspark.python (session(config=...) or --conf); this one is {sys.executable}."
    )


def _discovered_by_spark(settings: dict[str, str]) -> bool:
    """Whether Spark's own discovery will find this package: its lookup, run by the worker
    Python, imports the ``pyspark_*`` modules it sees and takes their ``DefaultSource``."""
    python = worker_python(settings)
    # Discovery imports the package in that interpreter, and with it pyspark and pyarrow.
    probe = f"import sys, {__package__} as p; sys.exit(0 if hasattr(p, 'DefaultSource') else 1)"
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
