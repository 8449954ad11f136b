"""The tables the analytics job, the report and the cleanup read: from the tracking store (the
``experiments`` source) or from the synced Delta tables of a target.

Example::

    >>> tables = read_tables(spark, cfg, source="target")                       # doctest: +SKIP
    >>> sorted(tables)                                                          # doctest: +SKIP
    ['experiments', 'metrics', 'runs']
"""

from __future__ import annotations

from pyspark.sql import functions as F

from ..errors import ConfigurationError, TargetError
from ..jobs.config import CommandConfig
from ..uri import resolve_tracking_uri

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
        def read(table: str):
            reader = spark.read.format("experiments").option("table", table).option("viewType", view_type)
            if cfg.tracking_uri:
                reader = reader.option("trackingUri", cfg.tracking_uri)
            return reader.load(",".join(wanted))

        return {name: read(name) for name in TABLES}
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
