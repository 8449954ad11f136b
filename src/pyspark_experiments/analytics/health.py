"""Run health: outcomes, success ratio, durations, runs stuck in RUNNING."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..errors import ConfigurationError
from .common import ENDED_STATUSES, now_micros, require_columns, seconds_between, to_timedelta

DURATION_PERCENTILES = (0.5, 0.9, 0.99)


def _percentile_name(fraction: float) -> str:
    return "duration_p" + f"{fraction * 100:g}".replace(".", "_")


def run_health(runs: DataFrame, *, by_experiment: bool = True, percentiles=DURATION_PERCENTILES) -> DataFrame:
    """Outcome counts, rates and duration percentiles, per experiment or overall.

    Ended runs are those FINISHED, FAILED or KILLED. Rates are over ended runs and null when
    none ended. Durations are ``end_time - start_time`` in seconds of ended runs that have both
    times; percentiles are exact, interpolated linearly (as pandas' ``quantile``).

    Output columns (ordered by ``experiment_id`` with ``by_experiment``):

    - ``experiment_id`` (only with ``by_experiment``)
    - ``runs``, ``running``, ``scheduled``, ``finished``, ``failed``, ``killed``, ``ended`` (longs)
    - ``success_ratio``, ``failure_rate``, ``kill_rate`` (doubles, 0..1): finished, failed and
      killed runs over ended runs
    - ``duration_mean`` and one ``duration_p<percent>`` per entry of ``percentiles``
      (default ``duration_p50``, ``duration_p90``, ``duration_p99``), in seconds

    Example::

        >>> run_health(runs).select("experiment_id", "success_ratio", "duration_p50").show()
    """
    function = "run_health"
    require_columns(runs, ("experiment_id", "status", "start_time", "end_time"), "runs", function)
    fractions = [float(p) for p in percentiles]
    for fraction in fractions:
        if not 0.0 <= fraction <= 1.0:
            raise ConfigurationError(f"{function}(): percentile {fraction!r} is not valid; expected fractions from 0 to 1")
    keys = ["experiment_id"] if by_experiment else []
    status = F.col("status")
    ended = status.isin(*ENDED_STATUSES)
    duration = F.when(
        ended & F.col("start_time").isNotNull() & F.col("end_time").isNotNull(),
        seconds_between(F.col("start_time"), F.col("end_time")),
    )
    counts = [
        F.count("*").alias("runs"),
        F.count_if(status == "RUNNING").alias("running"),
        F.count_if(status == "SCHEDULED").alias("scheduled"),
        F.count_if(status == "FINISHED").alias("finished"),
        F.count_if(status == "FAILED").alias("failed"),
        F.count_if(status == "KILLED").alias("killed"),
        F.count_if(ended).alias("ended"),
        F.avg(duration).alias("duration_mean"),
    ]
    counts += [F.percentile(duration, F.lit(fraction)).alias(_percentile_name(fraction)) for fraction in fractions]
    result = runs.groupBy(*keys).agg(*counts)
    ratio = lambda part: F.when(F.col("ended") > 0, F.col(part) / F.col("ended"))  # noqa: E731
    result = (
        result.withColumn("success_ratio", ratio("finished"))
        .withColumn("failure_rate", ratio("failed"))
        .withColumn("kill_rate", ratio("killed"))
    )
    ordered = keys + ["runs", "running", "scheduled", "finished", "failed", "killed", "ended", "success_ratio", "failure_rate",
                      "kill_rate", "duration_mean"] + [_percentile_name(f) for f in fractions]
    result = result.select(*ordered)
    return result.orderBy(*keys) if keys else result


def stuck_runs(runs: DataFrame, *, older_than: dt.timedelta | float = dt.timedelta(hours=24), now: dt.datetime | None = None) -> DataFrame:
    """Runs still RUNNING that started more than ``older_than`` (a timedelta, or days) before ``now``.

    ``now`` defaults to the query's current time; pass a datetime (naive means UTC) to pin it.

    Output columns, longest running first: ``experiment_id``, ``run_id``, ``run_name``,
    ``user_id``, ``start_time`` (timestamp), ``running_hours`` (double: hours from start to now).

    Example::

        >>> import datetime as dt
        >>> stuck_runs(runs, older_than=dt.timedelta(hours=12)).show()
    """
    function = "stuck_runs"
    require_columns(runs, ("experiment_id", "run_id", "run_name", "user_id", "status", "start_time"), "runs", function)
    threshold = to_timedelta(older_than, "older_than", function)
    now_us = now_micros(now, function)
    age_us = now_us - F.unix_micros(F.col("start_time"))
    limit_us = int(threshold / dt.timedelta(microseconds=1))
    return (
        runs.where((F.col("status") == "RUNNING") & F.col("start_time").isNotNull() & (age_us > F.lit(limit_us)))
        .select("experiment_id", "run_id", "run_name", "user_id", "start_time", (age_us / F.lit(3.6e9)).alias("running_hours"))
        .orderBy(F.desc("running_hours"), "run_id")
    )
