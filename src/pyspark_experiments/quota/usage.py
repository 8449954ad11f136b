"""Measuring quota usage for the quota command: the tables read as the analytics job reads them
(:func:`~pyspark_experiments.analytics.inputs.read_tables`: the store, deleted runs included,
or the synced tables), counted by :func:`~pyspark_experiments.analytics.quota_usage` over every
run and experiment; the driver receives the level counts, every experiment's rows and the
``top`` heaviest runs of each run quota, never a row per run.

Example::

    >>> run_quota(spark, QuotaConfig(tracking_uri="sqlite:///mlflow.db", runs_per_experiment=100)).exit_code   # doctest: +SKIP
    4
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..analytics.inputs import read_tables, source_display
from ..analytics.quota import QuotaLimits, quota_usage
from ..jobs.output import Progress
from .config import QuotaConfig
from .result import QuotaResult, usage_row

log = logging.getLogger("pyspark_experiments.quota")


def named_usage(tables: dict[str, DataFrame], limits: QuotaLimits, margin: float) -> DataFrame:
    """Every row of :func:`~pyspark_experiments.analytics.quota_usage` (flagged or not) over the
    ``runs``, ``metrics`` and ``experiments`` DataFrames, with ``experiment_name`` and
    ``run_name`` beside the ids.

    Example::

        >>> named_usage(read_tables(spark, cfg, source="store"), QuotaLimits(), 0.8).where("level != 'ok'").show()   # doctest: +SKIP
    """
    runs, experiments = tables["runs"], tables["experiments"]
    usage = quota_usage(runs, metrics=tables["metrics"], experiments=experiments, limits=limits, margin=margin,
                        only_flagged=False)
    names = experiments.select("experiment_id", F.col("name").alias("experiment_name"))
    return (usage.join(names, "experiment_id", "left")
            .join(runs.select("run_id", "run_name"), "run_id", "left"))


def measure(tables: dict[str, DataFrame], limits: QuotaLimits, margin: float, top: int) -> dict:
    """``{"rows", "counts", "runs", "experiments"}``: every experiment's rows and the ``top``
    heaviest runs of each run quota (ties by run id) as :func:`~.result.usage_row` dicts, the
    rows at each level over everything, and how many runs and experiments were counted.

    Example::

        >>> measure(tables, QuotaLimits(), 0.8, top=5)["counts"]                # doctest: +SKIP
        {'ok': 212}
    """
    usage = named_usage(tables, limits, margin).cache()  # three queries read it
    try:
        totals = usage.groupBy("scope", "quota", "level").count().collect()
        heaviest = Window.partitionBy("quota").orderBy(F.desc("usage"), "run_id")
        listed = usage.where(F.col("scope") == "experiment").unionByName(
            usage.where(F.col("scope") == "run").withColumn("_rank", F.row_number().over(heaviest))
            .where(F.col("_rank") <= top).drop("_rank")
        ).collect()
    finally:
        usage.unpersist()
    counts: dict[str, int] = {}
    for row in totals:
        counts[row.level] = counts.get(row.level, 0) + row["count"]
    return {
        "rows": [usage_row(r.scope, r.quota, r.experiment_id, r.experiment_name, r.run_id, r.run_name, r.used, r["limit"],
                           r.level) for r in listed],
        "counts": counts,
        "runs": sum(row["count"] for row in totals if row.quota == "params_per_run"),
        "experiments": sum(row["count"] for row in totals if row.quota == "tags_per_experiment"),
    }


def run_quota(spark, cfg: QuotaConfig, *, as_json: bool = False, progress: bool = False) -> QuotaResult:
    """Measure the usage of the store or the target ``cfg`` names against its limits; the
    result's ``exit_code`` says whether a quota is near (3) or over (4) its limit.

    Raises :class:`~pyspark_experiments.errors.ConfigurationError` for invalid settings.

    Example::

        >>> print(run_quota(spark, QuotaConfig(tracking_uri="sqlite:///mlflow.db")).table())   # doctest: +SKIP
    """
    started = time.monotonic()
    cfg = cfg.validate()
    reading = cfg.read_from()
    source = source_display(cfg, reading)
    log.info("quota: %s %s", reading, source)
    show = Progress("quota", progress, steps=2, logger=log)
    show.step("reading the tables")
    tables = read_tables(spark, cfg, source=reading)
    show.step("counting usage")
    try:
        found = measure(tables, cfg.limits(), cfg.margin, cfg.top)
    finally:
        show.done()
    return QuotaResult(source, reading, cfg.limits(), cfg.margin, cfg.top, found["rows"], found["counts"],
                       runs=found["runs"], experiments=found["experiments"], as_json=as_json,
                       elapsed_s=time.monotonic() - started)
