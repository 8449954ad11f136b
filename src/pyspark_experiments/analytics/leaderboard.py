"""The best runs by a metric, and what a parameter does to a metric."""

from __future__ import annotations

import re

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from .common import MODES, check_choice, check_positive_int, require_columns, require_metrics, usable

#: Metric names that usually mean "lower is better" (the default direction otherwise is higher).
LOWER_IS_BETTER = re.compile(r"loss|error|err\b|rmse|mse|mae|mape|perplexity|latency|duration|time|cost|regret|wer|cer", re.IGNORECASE)


def default_mode(metric: str) -> str:
    """``"min"`` when the metric's name suggests lower is better (loss, error, rmse...), else ``"max"``.

    Example::

        >>> default_mode("val_loss"), default_mode("accuracy")
        ('min', 'max')
    """
    return "min" if LOWER_IS_BETTER.search(metric) else "max"


def leaderboard(runs: DataFrame, metric: str, *, experiment_ids=None, n: int = 10, mode: str = "max") -> DataFrame:
    """The top ``n`` runs of each experiment by their latest value of ``metric``.

    ``mode="max"`` ranks the highest value first, ``"min"`` the lowest. Ties are broken by the
    earlier start time, then by run id. Runs without the metric, or whose latest value is NaN,
    are not ranked. ``experiment_ids`` (an id or a list of ids) restricts the experiments.

    Output columns, ordered by ``experiment_id`` and ``rank``: ``experiment_id``, ``rank``
    (int, 1 = best), ``run_id``, ``run_name``, ``user_id``, ``status``, ``start_time``,
    ``value`` (double: the metric), ``params`` (map<string,string>: the run's params).

    Where ``runs`` has the column ``parent_run_id`` (the source's ``runs`` table and Delta
    tables synced since it exists), two more follow ``run_name``: ``parent_run_id`` (string:
    the run's ``mlflow.parentRunId`` tag, null for a top-level run) and ``parent_run_name``
    (string: that parent's ``run_name``, looked up in ``runs`` itself; null when the run has
    no parent or its parent is not in ``runs``, e.g. filtered out or deleted).

    Example::

        >>> leaderboard(runs, "test_r2", experiment_ids="1", n=3).show()
        >>> leaderboard(runs, "mean_test_score").select("rank", "run_name", "parent_run_name").show()
    """
    function = "leaderboard"
    require_columns(runs, ("experiment_id", "run_id", "run_name", "user_id", "status", "start_time", "metrics", "params"), "runs", function)
    n = check_positive_int(n, "n", function)
    mode = check_choice(mode, MODES, "mode", function)
    parents = ["parent_run_id"] if "parent_run_id" in runs.columns else []
    require_metrics(runs, metric, f"{function}(): metric")
    value = F.col("metrics").getItem(metric)
    selected = runs.where(usable(value))
    if experiment_ids is not None:
        ids = [experiment_ids] if isinstance(experiment_ids, str) else [str(i) for i in experiment_ids]
        selected = selected.where(F.col("experiment_id").isin(ids))
    order = F.desc("value") if mode == "max" else F.asc("value")
    window = Window.partitionBy("experiment_id").orderBy(order, F.asc_nulls_last("start_time"), "run_id")
    top = (
        selected.select("experiment_id", "run_id", "run_name", *parents, "user_id", "status", "start_time", value.alias("value"), "params")
        .withColumn("rank", F.row_number().over(window))
        .where(F.col("rank") <= n)
    )
    if parents:
        # The parent's name from the same runs: a left join keeps runs whose parent is absent.
        names = runs.select(F.col("run_id").alias("parent_run_id"), F.col("run_name").alias("parent_run_name"))
        top = top.join(names, "parent_run_id", "left")
        parents.append("parent_run_name")
    return (
        top.select("experiment_id", "rank", "run_id", "run_name", *parents, "user_id", "status", "start_time", "value", "params")
        .orderBy("experiment_id", "rank")
    )


def param_effect(runs: DataFrame, param: str, metric: str, *, by_experiment: bool = True) -> DataFrame:
    """A metric summarized per value of a parameter (per experiment, or overall).

    Uses each run's latest value of ``metric``; runs without it, or whose value is NaN, are left
    out. Runs that did not log ``param`` form the group whose ``param_value`` is null.

    Output columns, ordered by (``experiment_id``,) ``param_value`` (nulls last):

    - ``experiment_id`` (only with ``by_experiment``), ``param_value`` (string)
    - ``runs`` (long), ``mean``, ``stddev`` (sample; null for one run), ``min``, ``median``,
      ``max`` (doubles)

    Example::

        >>> param_effect(runs, "alpha", "test_r2").show()
    """
    function = "param_effect"
    require_columns(runs, ("experiment_id", "metrics", "params"), "runs", function)
    require_metrics(runs, metric, f"{function}(): metric")
    value = F.col("metrics").getItem(metric)
    keys = ["experiment_id"] if by_experiment else []
    return (
        runs.where(usable(value))
        .select(*keys, F.col("params").getItem(param).alias("param_value"), value.alias("value"))
        .groupBy(*keys, "param_value")
        .agg(
            F.count("*").alias("runs"),
            F.avg("value").alias("mean"),
            F.stddev_samp("value").alias("stddev"),
            F.min("value").alias("min"),
            F.percentile("value", F.lit(0.5)).alias("median"),
            F.max("value").alias("max"),
        )
        .orderBy(*keys, F.asc_nulls_last("param_value"))
    )
