"""Who starts runs and how many: runs per user over time, totals per user, experiment, status."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from .common import PERIODS, check_choice, require_columns, utc_period

TOTALS_BY = {"user": "user_id", "experiment": "experiment_id", "status": "status"}


def runs_per_user(runs: DataFrame, *, period: str = "day") -> DataFrame:
    """Runs started per user and UTC period (``day``, ``week`` from Monday, ``month``).

    Runs without a start time are left out. A run's user is the ``user_id`` column (MLflow's
    ``mlflow.user``; runs logged without one have MLflow's ``unknown`` or null).

    Output columns, ordered by ``user_id`` and ``period_start``:

    - ``user_id`` (string)
    - ``period_start`` (date): first UTC day of the period
    - ``runs`` (long): runs the user started in the period
    - ``cumulative_runs`` (long): runs the user started up to the end of the period

    Example::

        >>> runs_per_user(runs, period="month").where("user_id = 'alice'").show()
    """
    function = "runs_per_user"
    require_columns(runs, ("user_id", "start_time"), "runs", function)
    period = check_choice(period, PERIODS, "period", function)
    counts = (
        runs.where(F.col("start_time").isNotNull())
        .groupBy("user_id", utc_period(F.col("start_time"), period).alias("period_start"))
        .agg(F.count("*").alias("runs"))
    )
    window = Window.partitionBy("user_id").orderBy("period_start").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return counts.withColumn("cumulative_runs", F.sum("runs").over(window)).orderBy("user_id", "period_start")


def runs_over_time(runs: DataFrame, *, period: str = "month") -> DataFrame:
    """Runs started by all users per UTC period (``day``, ``week`` from Monday, ``month``).

    Output columns, ordered by ``period_start``: ``period_start`` (date), ``runs`` (long),
    ``users`` (long: distinct users who started runs in the period), ``cumulative_runs`` (long).
    Runs without a start time are left out.

    Example::

        >>> runs_over_time(runs, period="month").show()
    """
    function = "runs_over_time"
    require_columns(runs, ("user_id", "start_time"), "runs", function)
    period = check_choice(period, PERIODS, "period", function)
    counts = (
        runs.where(F.col("start_time").isNotNull())
        .groupBy(utc_period(F.col("start_time"), period).alias("period_start"))
        .agg(F.count("*").alias("runs"), F.countDistinct("user_id").alias("users"))
    )
    window = Window.orderBy("period_start").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return counts.withColumn("cumulative_runs", F.sum("runs").over(window)).orderBy("period_start")


def run_totals(runs: DataFrame, by: str = "user") -> DataFrame:
    """Total runs per ``user``, ``experiment`` or ``status``.

    Output columns, ordered by ``runs`` descending then the key: the key column (``user_id``,
    ``experiment_id`` or ``status``) and ``runs`` (long). Null keys form their own row.

    Example::

        >>> run_totals(runs, by="status").show()
        +--------+----+
        |  status|runs|
        +--------+----+
        |FINISHED|  12|
        ...
    """
    by = check_choice(by, tuple(TOTALS_BY), "by", "run_totals")
    column = TOTALS_BY[by]
    require_columns(runs, (column,), "runs", "run_totals")
    return runs.groupBy(column).agg(F.count("*").alias("runs")).orderBy(F.desc("runs"), F.asc_nulls_last(column))


def total_runs(runs: DataFrame) -> DataFrame:
    """One row: ``runs`` (all runs), ``users`` and ``experiments`` (distinct, longs).

    Example::

        >>> total_runs(runs).first().runs
        14
    """
    require_columns(runs, ("user_id", "experiment_id"), "runs", "total_runs")
    return runs.agg(
        F.count("*").alias("runs"),
        F.countDistinct("user_id").alias("users"),
        F.countDistinct("experiment_id").alias("experiments"),
    )
