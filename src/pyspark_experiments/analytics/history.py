"""Summaries of full metric histories (the ``metrics`` table), per run and key."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..errors import ConfigurationError
from .common import require_columns, require_metrics, usable

HISTORY_PERCENTILES = (0.5, 0.9)


def _percentile_name(fraction: float) -> str:
    return "p" + f"{fraction * 100:g}".replace(".", "_")


def metric_history_summary(metrics: DataFrame, *, keys=None, percentiles=HISTORY_PERCENTILES, exact: bool = True) -> DataFrame:
    """Per run and metric key: point counts, min, max, mean, percentiles and the latest value.

    ``last`` is chosen by MLflow's rule for a run's latest metric: the point with the largest
    ``(step, timestamp, value)``, so it equals the run's ``metrics`` map in the ``runs`` table.
    ``min``, ``max``, ``mean`` and percentiles (exact, linear interpolation as pandas'
    ``quantile``) skip NaN points, as pandas does; they are null when every point is NaN.
    ``keys`` (a key or a list) restricts the metric keys. Exact percentiles hold a series'
    values in memory on one executor; ``exact=False`` uses ``percentile_approx`` (bounded
    memory, relative rank error about 1/10,000) for very long series.

    Output columns, ordered by ``experiment_id``, ``run_id``, ``key``:

    - ``experiment_id``, ``run_id``, ``key`` (strings)
    - ``count`` (long: points), ``nan_count`` (long: NaN points)
    - ``min``, ``max``, ``mean`` (doubles), one ``p<percent>`` per entry of ``percentiles``
      (default ``p50``, ``p90``)
    - ``last`` (double), ``last_step`` (long), ``last_timestamp`` (timestamp)
    - ``first_timestamp`` (timestamp): the earliest point's time

    Example::

        >>> metrics = spark.read.format("experiments").option("table", "metrics").load("1")
        >>> metric_history_summary(metrics, keys="loss").show()
    """
    function = "metric_history_summary"
    require_columns(metrics, ("experiment_id", "run_id", "key", "value", "step", "timestamp"), "metrics", function)
    fractions = [float(p) for p in percentiles]
    for fraction in fractions:
        if not 0.0 <= fraction <= 1.0:
            raise ConfigurationError(f"{function}(): percentile {fraction!r} is not valid; expected fractions from 0 to 1")
    selected = metrics
    if keys is not None:
        require_metrics(metrics, keys, f"{function}(): key")
        selected = selected.where(F.col("key").isin([keys] if isinstance(keys, str) else list(keys)))
    number = F.when(usable(F.col("value")), F.col("value"))
    latest = F.max_by(F.struct("value", "step", "timestamp"), F.struct("step", "timestamp", "value"))
    aggregates = [
        F.count("*").alias("count"),
        F.count_if(F.isnan("value")).alias("nan_count"),
        F.min(number).alias("min"),
        F.max(number).alias("max"),
        F.avg(number).alias("mean"),
    ]
    if exact:
        aggregates += [F.percentile(number, F.lit(f)).alias(_percentile_name(f)) for f in fractions]
    else:
        aggregates += [F.percentile_approx(number, f, 10_000).alias(_percentile_name(f)) for f in fractions]
    aggregates += [latest.alias("latest"), F.min("timestamp").alias("first_timestamp")]
    names = ["count", "nan_count", "min", "max", "mean"] + [_percentile_name(f) for f in fractions]
    return (
        selected.groupBy("experiment_id", "run_id", "key")
        .agg(*aggregates)
        .select(
            "experiment_id", "run_id", "key", *names,
            F.col("latest.value").alias("last"), F.col("latest.step").alias("last_step"),
            F.col("latest.timestamp").alias("last_timestamp"), "first_timestamp",
        )
        .orderBy("experiment_id", "run_id", "key")
    )
