"""What the ``analytics``, ``report`` and ``cleanup`` commands share: common flags, the config
file under them, reading the tables from a store or a target, the Spark session."""

from __future__ import annotations

import argparse
import contextlib

from .. import jobs
from ..errors import ConfigurationError
from ..jobs import EXIT_CONFIG, EXIT_FAILED, EXIT_LOCKED, EXIT_OK
from .config import JobConfig

EPILOG = (f"Exit codes: {EXIT_OK} success, {EXIT_FAILED} failed, {EXIT_CONFIG} invalid configuration, "
          f"{EXIT_LOCKED} another job holds the target, {jobs.EXIT_INTERRUPTED} interrupted.")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A command's parser with the flags all three commands take."""
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=EPILOG)
    jobs.add_job_flags(p, "conf/analytics.toml", "the synced Delta tables")
    return p


def add_metric_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", help="metric keys to plot / rank by, comma separated (default: the key most runs logged)")
    p.add_argument("--lower-is-better", help="metric keys where lower is better, comma separated")
    p.add_argument("--higher-is-better", help="metric keys where higher is better, comma separated "
                   "(unlisted metrics: lower is better when the name says loss, error, rmse...)")
    p.add_argument("--period", choices=("day", "week", "month", "auto"), help="time buckets of the trends")


def config(args: argparse.Namespace, **extra) -> JobConfig:
    """The config file (if any) with the flags over it.

    Example::

        >>> p = parser("x", "x"); cfg = config(p.parse_args(["--target-path", "/d"]))
        >>> cfg.target_path
        '/d'
    """
    cfg = JobConfig.from_toml(args.config) if args.config else JobConfig()
    flags = jobs.job_flag_values(args, cfg.spark_conf)
    for name in ("metrics", "lower_is_better", "higher_is_better", "period"):
        if hasattr(args, name):
            flags[name] = getattr(args, name)
    flags.update(extra)
    cfg = cfg.override(**flags)
    jobs.add_secret(jobs.password_in(cfg.tracking_uri or ""))
    return cfg


@contextlib.contextmanager
def session(command: str, cfg: JobConfig):
    """The job's SparkSession, with the ``experiments`` source registered: the active one if
    there is one (left running), else a new one, stopped at the end."""
    from pyspark.sql import SparkSession

    from .. import register

    spark = SparkSession.getActiveSession()
    owned = spark is None
    if owned:
        spark = jobs.job_session(command, master=cfg.master, conf=cfg.spark_conf, log_level=cfg.spark_log_level)
    register(spark)
    try:
        yield spark
    finally:
        if owned:
            try:
                spark.stop()
            except Exception:  # pragma: no cover
                pass


def target_of(spark, cfg: JobConfig):
    from ..target import DeltaTarget

    return DeltaTarget(spark, path=cfg.target_path, schema=cfg.target_schema)


def read_tables(spark, cfg: JobConfig, view_type: str = "ALL") -> dict:
    """``{"runs", "metrics", "experiments"}`` DataFrames from the store or the synced target
    (:meth:`JobConfig.read_from`), narrowed to ``cfg.experiments``.

    The store is read with ``viewType`` ALL by default, as the sync copies it (deleted runs
    included, ``lifecycle_stage`` tells them).
    """
    from pyspark.sql import functions as F

    from ..errors import TargetError

    wanted = list(cfg.experiments or ())
    if cfg.read_from() == "store":
        def read(table: str):
            reader = spark.read.format("experiments").option("table", table).option("viewType", view_type)
            if cfg.tracking_uri:
                reader = reader.option("trackingUri", cfg.tracking_uri)
            return reader.load(",".join(wanted))

        return {name: read(name) for name in ("runs", "metrics", "experiments")}
    target = target_of(spark, cfg)
    found = {}
    for name in ("runs", "metrics", "experiments"):
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
