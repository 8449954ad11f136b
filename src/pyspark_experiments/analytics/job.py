"""The scheduled analytics job: compute :mod:`pyspark_experiments.analytics` results from the
synced Delta tables (or a store) and write them as Delta tables next to the synced ones.

Tables written (overwritten each run; see ``docs/analytics.md`` for their columns):

=================================  =========================================================
``analytics_metric_trend``         :func:`~pyspark_experiments.analytics.metric_trend` per
                                   configured metric, with ``metric`` and ``mode`` columns
``analytics_runs_per_user``        :func:`~pyspark_experiments.analytics.runs_per_user`
``analytics_runs_over_time``       :func:`~pyspark_experiments.analytics.runs_over_time`
``analytics_run_totals``           :func:`~pyspark_experiments.run_totals` by user,
                                   experiment and status: ``by``, ``key``, ``runs``
``analytics_total_runs``           :func:`~pyspark_experiments.analytics.total_runs`
``analytics_run_health``           :func:`~pyspark_experiments.analytics.run_health`
``analytics_stuck_runs``           :func:`~pyspark_experiments.analytics.stuck_runs`
``analytics_leaderboard``          :func:`~pyspark_experiments.analytics.leaderboard` per
                                   metric, with a ``metric`` column
``analytics_metric_history``       :func:`~pyspark_experiments.metric_history_summary`
``analytics_quota_usage``          :func:`~pyspark_experiments.analytics.quota_usage`, every
                                   row (``level``: ``over``, ``near`` or ``ok``)
=================================  =========================================================

When the store holds GenAI traces, eight more (:mod:`.trace_job`), from ``analytics_trace_volume``
to ``analytics_traces_per_session``.

The functions see the active runs (``lifecycle_stage = 'active'``); quota usage sees every run
the tables hold, deleted ones included, since they count against a limit until purged.

Example::

    >>> from pyspark_experiments.analytics.job import run_analytics
    >>> from pyspark_experiments.analytics.config import AnalyticsConfig
    >>> run_analytics(spark, AnalyticsConfig(target_path="/data/mlflow-delta")).tables   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..jobs.lock import locked
from ..jobs.output import Progress
from .activity import run_totals, runs_over_time, runs_per_user, total_runs
from .common import require_metrics
from .config import AnalyticsConfig
from .health import run_health, stuck_runs
from .history import metric_history_summary
from .inputs import read_tables, source_display
from .leaderboard import leaderboard
from .quota import quota_usage
from .trace_job import trace_tables
from .trend import metric_trend

log = logging.getLogger("pyspark_experiments.analytics")

PREFIX = "analytics_"


@dataclass
class AnalyticsResult:
    """What one analytics run did: the tables written and their row counts.

    Example::

        >>> print(AnalyticsResult("s", "t", "target", {"analytics_total_runs": 1}, 2.0).summary().splitlines()[0])
        pyspark-experiments analytics: OK in 2.0 s, 1 tables from target s -> t
    """

    source: str
    target: str
    read_from: str
    tables: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def summary(self) -> str:
        lines = [f"pyspark-experiments analytics: OK in {self.elapsed_s:.1f} s, {len(self.tables)} tables from "
                 f"{self.read_from} {self.source} -> {self.target}"]
        width = max((len(name) for name in self.tables), default=0)
        lines += [f"  {name:<{width}}  {rows:>10,} rows" for name, rows in self.tables.items()]
        return "\n".join(lines)


def default_metrics(runs: DataFrame, count: int = 1) -> list[str]:
    """The metric keys most runs logged (ties by name).

    Example::

        >>> default_metrics(runs)                                               # doctest: +SKIP
        ['loss']
    """
    rows = (runs.select(F.explode(F.map_keys("metrics")).alias("key")).groupBy("key").count()
            .orderBy(F.desc("count"), "key").limit(count).collect())
    return [row.key for row in rows]


def active(runs: DataFrame) -> DataFrame:
    """The runs that are not deleted."""
    return runs.where(F.coalesce(F.col("lifecycle_stage"), F.lit("active")) != "deleted")


def analytics_tables(tables: dict[str, DataFrame], cfg: AnalyticsConfig, metrics: list[str],
                     now: dt.datetime | None = None) -> dict[str, Callable[[], DataFrame]]:
    """``{table name: function returning its DataFrame}``: what the job writes, from the
    ``runs``, ``metrics`` and ``experiments`` DataFrames (lazy; nothing is computed here).

    Example::

        >>> plan = analytics_tables(tables, AnalyticsConfig(target_path="/d"), ["loss"])  # doctest: +SKIP
        >>> plan["analytics_total_runs"]().show()                                      # doctest: +SKIP
    """
    runs, every_run = active(tables["runs"]), tables["runs"]
    period = cfg.table_period()

    def per_metric(build: Callable[[str, str], DataFrame]) -> DataFrame:
        frames = [build(m, cfg.mode_of(m)).withColumn("metric", F.lit(m)).withColumn("mode", F.lit(cfg.mode_of(m)))
                  for m in metrics]
        if not frames:  # no metric at all: an empty table with the columns
            return build("", "max").withColumn("metric", F.lit("")).withColumn("mode", F.lit("max")).limit(0)
        out = frames[0]
        for frame in frames[1:]:
            out = out.unionByName(frame)
        return out

    def totals() -> DataFrame:
        out = None
        for by, column in (("user", "user_id"), ("experiment", "experiment_id"), ("status", "status")):
            frame = run_totals(runs, by=by).select(F.lit(by).alias("by"), F.col(column).alias("key"), "runs")
            out = frame if out is None else out.unionByName(frame)
        return out

    def history() -> DataFrame:
        kept = tables["metrics"].join(runs.select("run_id"), "run_id", "left_semi")
        return metric_history_summary(kept, exact=cfg.exact_history)

    return {
        PREFIX + "metric_trend": lambda: per_metric(lambda m, mode: metric_trend(runs, m, period=period, mode=mode)),
        PREFIX + "runs_per_user": lambda: runs_per_user(runs, period=period),
        PREFIX + "runs_over_time": lambda: runs_over_time(runs, period=period),
        PREFIX + "run_totals": totals,
        PREFIX + "total_runs": lambda: total_runs(runs),
        PREFIX + "run_health": lambda: run_health(runs),
        PREFIX + "stuck_runs": lambda: stuck_runs(runs, older_than=dt.timedelta(hours=cfg.stuck_hours), now=now),
        PREFIX + "leaderboard": lambda: per_metric(lambda m, mode: leaderboard(runs, m, n=cfg.leaderboard_size, mode=mode)),
        PREFIX + "metric_history": history,
        PREFIX + "quota_usage": lambda: quota_usage(every_run, metrics=tables["metrics"], experiments=tables["experiments"],
                                                              limits=cfg.limits(), margin=cfg.margin, only_flagged=False),
    }


def run_analytics(spark, cfg: AnalyticsConfig, *, progress: bool = False, now: dt.datetime | None = None) -> AnalyticsResult:
    """Compute the analytics tables and overwrite them in the target (through
    :meth:`~pyspark_experiments.jobs.target.DeltaTarget.write`), holding the target's lock (the
    sync's: sync, cleanup and analytics never write one target at once).

    Raises :class:`~pyspark_experiments.errors.TargetLockedError` when another job holds the
    target, :class:`~pyspark_experiments.errors.ConfigurationError` for invalid settings.

    Example::

        >>> run_analytics(spark, AnalyticsConfig(target_path="/data/mlflow-delta", metrics=("loss",)))  # doctest: +SKIP
    """
    started = time.monotonic()
    cfg = cfg.validate()
    target = cfg.target(spark)
    reading = cfg.read_from()
    source = source_display(cfg, reading)
    log.info("analytics: %s %s -> %s", reading, source, target.display)
    tables = read_tables(spark, cfg, source=reading)
    traces = trace_tables(spark, cfg, reading, target, tables["experiments"], PREFIX)
    show = Progress("analytics", progress, steps=12 + len(traces.tables), logger=log)
    show.step("taking the target's lock")
    result = AnalyticsResult(source, target.display, reading)
    runs = tables["runs"]
    runs.cache()
    try:
        with locked(target, job="analytics", timeout_minutes=cfg.lock_timeout_minutes):
            require_metrics(active(runs), cfg.metrics, "metrics (--metrics, [analytics] metrics):")
            metrics = list(cfg.metrics or ()) or default_metrics(active(runs))
            for name, build in {**analytics_tables(tables, cfg, metrics, now=now), **traces.tables}.items():
                show.step(f"writing {name}")
                target.write(build(), name, "overwrite", overwrite_schema=True)
                result.tables[name] = target.read(name).count()
            show.step("releasing the lock")
    finally:
        runs.unpersist()
        traces.release()
        show.done()
    result.elapsed_s = time.monotonic() - started
    return result
