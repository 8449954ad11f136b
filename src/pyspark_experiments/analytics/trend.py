"""How a metric moved over time: per period of run start, per experiment or overall."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from .common import MODES, PERIODS, check_choice, require_columns, require_metrics, usable, utc_period


def metric_trend(runs: DataFrame, metric: str, *, period: str = "day", mode: str = "max", by_experiment: bool = True) -> DataFrame:
    """A metric's trend over time, from each run's latest value of ``metric`` (the ``metrics`` map).

    Runs are grouped by the UTC ``period`` (``day``, ``week`` starting Monday, or ``month``) of
    their start time and, with ``by_experiment``, by experiment. Runs that never logged the
    metric, whose latest value is NaN, or that have no start time are left out (as pandas'
    ``max``/``mean`` skip NaN).

    Output columns, one row per (experiment and) period that has runs, ordered by them:

    - ``experiment_id`` (only with ``by_experiment``)
    - ``period_start`` (date): first UTC day of the period
    - ``runs`` (long): runs started in the period with a value
    - ``best`` (double): the period's best value: max or min as ``mode`` says
    - ``mean`` (double): the period's mean value
    - ``best_so_far`` (double): the best value of all periods up to and including this one

    Example::

        >>> runs = spark.read.format("experiments").option("trackingUri", "sqlite:///mlflow.db").load()
        >>> metric_trend(runs, "test_r2", period="week", mode="max").show()
        +-------------+------------+----+------+------+-----------+
        |experiment_id|period_start|runs|  best|  mean|best_so_far|
        ...
    """
    function = "metric_trend"
    require_columns(runs, ("metrics", "start_time", "experiment_id"), "runs", function)
    period = check_choice(period, PERIODS, "period", function)
    mode = check_choice(mode, MODES, "mode", function)
    require_metrics(runs, metric, f"{function}(): metric")
    value = F.col("metrics").getItem(metric)
    keys = ["experiment_id"] if by_experiment else []
    best = F.max if mode == "max" else F.min
    per_period = (
        runs.where(usable(value) & F.col("start_time").isNotNull())
        .select(*keys, utc_period(F.col("start_time"), period).alias("period_start"), value.alias("value"))
        .groupBy(*keys, "period_start")
        .agg(F.count("*").alias("runs"), best("value").alias("best"), F.avg("value").alias("mean"))
    )
    window = Window.partitionBy(*keys).orderBy("period_start").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return per_period.withColumn("best_so_far", best("best").over(window)).orderBy(*keys, "period_start")
