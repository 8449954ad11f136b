"""Quota usage: how close runs and experiments are to Databricks' tracking limits.

Databricks enforces, since 2024-03-27, per run 1,600 params, 1,600 tags and 1,000,000 "total
metric steps", per experiment 500,000 runs and 1,000 tags. Its wording ("Experiment tracking
total metric steps", scope "MLflow run") counts logged metric values, not distinct step numbers:
here a run's **metric steps** are its metric points, one per logged ``(key, step, timestamp,
value)``, over all keys: the rows of the ``metrics`` table for the run (an exact duplicate
point, which the table lists once, counts once). Tags per run count every tag the run holds,
``mlflow.*`` system tags included; runs per experiment count the runs the ``runs`` DataFrame
holds (read with ``viewType=ALL`` to count deleted runs too).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..errors import ConfigurationError
from .common import require_columns

OVER = "over"
NEAR = "near"
OK = "ok"
DEFAULT_MARGIN = 0.8


@dataclass(frozen=True)
class QuotaLimits:
    """Limits to check against; the defaults are Databricks' quotas.

    Example::

        >>> QuotaLimits(runs_per_experiment=1000).runs_per_experiment
        1000
    """

    params_per_run: int = 1_600
    tags_per_run: int = 1_600
    metric_steps_per_run: int = 1_000_000
    runs_per_experiment: int = 500_000
    tags_per_experiment: int = 1_000

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"quota limit {name}={value!r} is not valid; expected a positive integer")


def check_margin(margin) -> float:
    """``margin`` as a float if it is a fraction in (0, 1], else ``ConfigurationError``.

    Example::

        >>> check_margin(0.8)
        0.8
    """
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0.0 < float(margin) <= 1.0:
        raise ConfigurationError(f"quota margin {margin!r} is not valid; expected a fraction above 0 and at most 1 (0.8 = 80%)")
    return float(margin)


def usage_level(used: int, limit: int, margin: float = DEFAULT_MARGIN) -> str:
    """``"over"`` above the limit, ``"near"`` from ``margin * limit`` up to the limit, else ``"ok"``.

    A count equal to the limit is ``"near"``: nothing more can be logged, but nothing was refused.

    Example::

        >>> usage_level(1601, 1600), usage_level(1280, 1600), usage_level(10, 1600)
        ('over', 'near', 'ok')
    """
    margin = check_margin(margin)
    if used > limit:
        return OVER
    if used >= margin * limit:
        return NEAR
    return OK


def _level(used: Column, limit: Column, margin: float) -> Column:
    # The same rule as usage_level, as a column.
    return F.when(used > limit, F.lit(OVER)).when(used >= limit * F.lit(margin), F.lit(NEAR)).otherwise(F.lit(OK))


def quota_usage(
    runs: DataFrame,
    *,
    metrics: DataFrame | None = None,
    experiments: DataFrame | None = None,
    limits: QuotaLimits | None = None,
    margin: float = DEFAULT_MARGIN,
    only_flagged: bool = True,
) -> DataFrame:
    """Each run's params, tags and metric steps and each experiment's runs and tags, against limits.

    Metric steps are counted only when ``metrics`` (the metric history table) is given, and
    experiment tags only when ``experiments`` is given. With ``only_flagged`` (default) only
    rows at ``"over"`` or ``"near"`` level are kept. See the module documentation for what is
    counted.

    Output columns, most urgent first (``usage`` descending, then quota, experiment, run):

    - ``scope`` (``run`` or ``experiment``), ``quota`` (a :class:`QuotaLimits` field name)
    - ``experiment_id``, ``run_id`` (null for experiment quotas)
    - ``used``, ``limit`` (longs), ``usage`` (double: used / limit), ``level`` (``over``,
      ``near`` or ``ok``, see :func:`usage_level`)

    Example::

        >>> quota_usage(runs, metrics=metrics, experiments=experiments,
        ...             limits=QuotaLimits(runs_per_experiment=10_000), margin=0.9).show()
    """
    function = "quota_usage"
    require_columns(runs, ("experiment_id", "run_id", "params", "tags"), "runs", function)
    limits = limits if limits is not None else QuotaLimits()
    if not isinstance(limits, QuotaLimits):
        raise ConfigurationError(f"{function}(): limits={limits!r} is not valid; expected a QuotaLimits")
    margin = check_margin(margin)

    def rows(df: DataFrame, scope: str, quota: str, run_id: Column, used: Column) -> DataFrame:
        return df.select(
            F.lit(scope).alias("scope"), F.lit(quota).alias("quota"), F.col("experiment_id"),
            run_id.cast("string").alias("run_id"), used.cast("long").alias("used"),
            F.lit(getattr(limits, quota)).cast("long").alias("limit"),
        )

    parts = [
        rows(runs, "run", "params_per_run", F.col("run_id"), F.size("params")),
        rows(runs, "run", "tags_per_run", F.col("run_id"), F.size("tags")),
        rows(runs.groupBy("experiment_id").agg(F.count("*").alias("n")), "experiment", "runs_per_experiment", F.lit(None), F.col("n")),
    ]
    if metrics is not None:
        require_columns(metrics, ("experiment_id", "run_id"), "metrics", function)
        # Only the runs of the runs DataFrame: the two tables may have been read with different views.
        steps = metrics.groupBy("run_id").agg(F.count("*").alias("n")).join(runs.select("run_id", "experiment_id"), "run_id")
        parts.append(rows(steps, "run", "metric_steps_per_run", F.col("run_id"), F.col("n")))
    if experiments is not None:
        require_columns(experiments, ("experiment_id", "tags"), "experiments", function)
        parts.append(rows(experiments, "experiment", "tags_per_experiment", F.lit(None), F.size("tags")))
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    result = result.withColumn("usage", F.col("used") / F.col("limit")).withColumn("level", _level(F.col("used"), F.col("limit"), margin))
    if only_flagged:
        result = result.where(F.col("level") != OK)
    return result.orderBy(F.desc("usage"), "quota", "experiment_id", F.asc_nulls_first("run_id"))
