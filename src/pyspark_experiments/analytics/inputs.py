"""The tables the analytics job, the report and the cleanup read: from the tracking store (the
``experiments`` source) or from the synced Delta tables of a target.

Example::

    >>> tables = read_tables(spark, cfg, source="target")                       # doctest: +SKIP
    >>> sorted(tables)                                                          # doctest: +SKIP
    ['experiments', 'metrics', 'runs']
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .. import tables
from ..datasource.options import ReadRequest
from ..errors import ConfigurationError, TargetError
from ..jobs.config import CommandConfig
from ..uri import resolve_tracking_uri

log = logging.getLogger("pyspark_experiments.analytics")

#: The tables read, whatever the source.
TABLES = ("runs", "metrics", "experiments")


def read_tables(spark, cfg: CommandConfig, *, source: str, view_type: str = "ALL") -> dict:
    """``{"runs", "metrics", "experiments"}`` DataFrames from the store (``source="store"``) or
    the synced target (``"target"``), narrowed to ``cfg.experiments``.

    The store is read with ``viewType`` ALL by default, as the sync copies it (deleted runs
    included, ``lifecycle_stage`` tells them).

    Example::

        >>> read_tables(spark, cfg, source="store", view_type="ACTIVE_ONLY")["runs"].count()   # doctest: +SKIP
        12
    """
    wanted = list(cfg.experiments or ())
    if source == "store":
        return read_tables_of(spark, cfg, TABLES, view_type)
    target = cfg.target(spark)
    found = {}
    for name in TABLES:
        if not target.exists(name):
            raise TargetError(f"{target.display} has no {name} table: run `pyspark-experiments sync` into it first")
        found[name] = target.read(name)
    if wanted:
        ids = found["experiments"].where(F.col("experiment_id").isin(wanted) | F.col("name").isin(wanted))
        ids = [row.experiment_id for row in ids.select("experiment_id").collect()]
        missing = [w for w in wanted if w not in ids and not found["experiments"].where(F.col("name") == w).limit(1).count()]
        if missing:
            raise ConfigurationError(f"experiment(s) {', '.join(missing)} not in {target.display}")
        found = {name: df.where(F.col("experiment_id").isin(ids)) for name, df in found.items()}
    return found


def read_tables_of(spark, cfg: CommandConfig, names, view_type: str = "ALL") -> dict:
    """``{name: DataFrame}``: the tables ``names`` of the store (the ``experiments`` source),
    narrowed to ``cfg.experiments``.

    Example::

        >>> read_tables_of(spark, cfg, ["runs"], "ACTIVE_ONLY")["runs"].count()   # doctest: +SKIP
        12
    """
    def read(table: str):
        reader = spark.read.format("experiments").option("table", table).option("viewType", view_type)
        if cfg.tracking_uri:
            reader = reader.option("trackingUri", cfg.tracking_uri)
        return reader.load(",".join(cfg.experiments or ()))

    return {name: read(name) for name in names}


def store_has_traces(cfg: CommandConfig, view_type: str = "ALL") -> bool:
    """Whether the store holds a trace of ``cfg.experiments`` (all when unset), known without
    Spark: the store's declared tables, then its plan of the ``traces`` table, on the driver as
    the source plans it (on a SQLite store without traces: a few milliseconds, where a Spark
    query to find the table empty takes a quarter of a second).

    Example::

        >>> store_has_traces(CommandConfig(tracking_uri="sqlite:///mlflow.db"))     # doctest: +SKIP
        False
    """
    options = {"table": tables.TRACES, "viewType": view_type, "path": ",".join(cfg.experiments or ())}
    if cfg.tracking_uri:
        options["trackingUri"] = cfg.tracking_uri
    request = ReadRequest.from_options(options)
    store = request.open_store()
    if tables.TRACES not in store.capabilities.tables:
        return False
    return bool(store.plan(request.selection(store)))


def read_trace_tables(spark, cfg: CommandConfig, *, source: str, experiments: DataFrame) -> dict | None:
    """``{"traces", "spans", "assessments"}`` DataFrames of the experiments of ``experiments``
    (the ``experiments`` table as :func:`read_tables` narrowed it) that are not deleted, from
    the store or the synced target; ``None`` when there is no trace to read, found cheaply: a
    store that serves no trace table or plans no trace (:func:`store_has_traces`), a target
    without the synced trace tables (their sync is optional) or with an empty ``traces`` table.

    Example::

        >>> found = read_trace_tables(spark, cfg, source="store", experiments=tables["experiments"])  # doctest: +SKIP
        >>> None if found is None else found["spans"].count()                                        # doctest: +SKIP
        412
    """
    if source == "store":
        if not store_has_traces(cfg):
            return None
        found = read_tables_of(spark, cfg, tables.TRACE_TABLE_NAMES)
    else:
        target = cfg.target(spark)
        missing = next((name for name in tables.TRACE_TABLE_NAMES if not target.exists(name)), None)
        if missing:
            log.info("analytics: %s has no %s table: no trace analytics", target.display, missing)
            return None
        found = {name: target.read(name) for name in tables.TRACE_TABLE_NAMES}
        if found[tables.TRACES].isEmpty():
            return None
    active = experiments.where(F.coalesce(F.col("lifecycle_stage"), F.lit("active")) != "deleted").select("experiment_id")
    return {name: df.join(active, "experiment_id", "left_semi") for name, df in found.items()}


def source_display(cfg: CommandConfig, source: str) -> str:
    """Where the tables are read, for logs and summaries (credentials hidden).

    Example::

        >>> source_display(CommandConfig(target_path="/d"), "target")
        '/d (folder of Delta tables)'
        >>> source_display(CommandConfig(tracking_uri="postgresql://u:pw@db/mlflow"), "store")
        'postgresql://u:***@db/mlflow'
    """
    if source == "target":
        return cfg.target(None).display
    return resolve_tracking_uri(cfg.tracking_uri).display
