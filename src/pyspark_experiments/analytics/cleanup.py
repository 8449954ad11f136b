"""Selecting runs to clean up (the selection only: nothing here deletes anything)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ..errors import ConfigurationError
from .common import check_positive_int, now_micros, require_columns, to_timedelta


def _as_list(value, argument: str) -> list[str]:
    values = [value] if isinstance(value, str) else [str(v) for v in value]
    if not values:
        raise ConfigurationError(f"cleanup_candidates(): {argument} is empty; pass None to not filter on it")
    return values


def cleanup_candidates(
    runs: DataFrame,
    *,
    experiment_ids=None,
    statuses=None,
    older_than: dt.timedelta | float | None = None,
    users=None,
    tags: dict[str, str] | None = None,
    where: str | Column | None = None,
    keep_newest: int | None = None,
    now: dt.datetime | None = None,
) -> DataFrame:
    """The runs that match every given condition: candidates for deletion, nothing deleted.

    Conditions (at least one is required; all given ones must hold):

    - ``experiment_ids``, ``statuses`` (e.g. ``["FAILED", "KILLED"]``), ``users``: an id/value or a list
    - ``older_than``: started more than this (a timedelta, or days) before ``now`` (default:
      the query's current time). Age is measured from the start time, as Databricks' bulk
      ``delete-runs`` selects runs created before a time.
    - ``tags``: ``{key: value}`` pairs the run's tags must all equal
    - ``where``: any condition on the ``runs`` columns, as SQL text or a Column, e.g.
      ``"metrics['loss'] > 1.0"`` or ``"tags['stage'] = 'debug'"``
    - ``keep_newest``: only runs beyond the newest ``keep_newest`` of their experiment (by
      start time; the oldest go first): with the runs limit, the runs to delete to get under it.
      Ranked among all non-deleted runs of the DataFrame, before the other conditions.

    Runs already deleted (``lifecycle_stage = 'deleted'``) are never candidates.

    Output columns, ordered by ``experiment_id``, ``start_time``, ``run_id``: ``experiment_id``,
    ``run_id``, ``run_name``, ``user_id``, ``status``, ``start_time``, ``end_time``,
    ``age_days`` (double, from start time to ``now``), ``reason`` (string: the conditions).

    Example::

        >>> cleanup_candidates(runs, statuses=["FAILED", "KILLED"], older_than=30).show()
        >>> cleanup_candidates(runs, experiment_ids="7", keep_newest=450_000).count()
    """
    function = "cleanup_candidates"
    require_columns(runs, ("experiment_id", "run_id", "run_name", "user_id", "status", "start_time", "end_time", "tags"), "runs", function)
    if all(c is None for c in (experiment_ids, statuses, older_than, users, tags, where, keep_newest)):
        raise ConfigurationError(
            f"{function}(): no condition given; pass at least one of experiment_ids, statuses, older_than, users, "
            f"tags, where, keep_newest (selecting every run is never a default)"
        )
    selected = runs
    if "lifecycle_stage" in runs.columns:
        selected = selected.where(F.coalesce(F.col("lifecycle_stage"), F.lit("active")) != "deleted")
    now_us = now_micros(now, function)
    reasons: list[Column] = []

    if keep_newest is not None:
        keep_newest = check_positive_int(keep_newest, "keep_newest", function, allow_zero=True)
        window = Window.partitionBy("experiment_id").orderBy(F.desc_nulls_last("start_time"), F.desc("run_id"))
        selected = selected.withColumn("_newest_rank", F.row_number().over(window)).where(F.col("_newest_rank") > keep_newest)
        reasons.append(F.lit(f"beyond the newest {keep_newest} runs of its experiment"))
    if experiment_ids is not None:
        ids = _as_list(experiment_ids, "experiment_ids")
        selected = selected.where(F.col("experiment_id").isin(ids))
        reasons.append(F.lit(f"experiment in ({', '.join(ids)})"))
    if statuses is not None:
        wanted = [s.upper() for s in _as_list(statuses, "statuses")]
        selected = selected.where(F.col("status").isin(wanted))
        reasons.append(F.concat(F.lit("status "), F.col("status")))
    if users is not None:
        names = _as_list(users, "users")
        selected = selected.where(F.col("user_id").isin(names))
        reasons.append(F.concat(F.lit("user "), F.col("user_id")))
    if older_than is not None:
        threshold = to_timedelta(older_than, "older_than", function)
        limit_us = int(threshold / dt.timedelta(microseconds=1))
        selected = selected.where(F.col("start_time").isNotNull() & (now_us - F.unix_micros("start_time") > F.lit(limit_us)))
        reasons.append(F.lit(f"started more than {threshold.total_seconds() / 86400:g} days ago"))
    if tags is not None:
        if not isinstance(tags, dict) or not tags:
            raise ConfigurationError(f"{function}(): tags={tags!r} is not valid; expected a non-empty dict of key: value")
        for key, value in tags.items():
            selected = selected.where(F.col("tags").getItem(key) == F.lit(str(value)))
        reasons.append(F.lit("tags " + ", ".join(f"{k}={v}" for k, v in tags.items())))
    if where is not None:
        if isinstance(where, str):
            condition, text = F.expr(where), where
        elif isinstance(where, Column):
            condition, text = where, "custom condition"
        else:
            raise ConfigurationError(f"{function}(): where={where!r} is not valid; expected SQL text or a Column")
        selected = selected.where(condition)
        reasons.append(F.lit(f"where {text}"))
    return selected.select(
        "experiment_id", "run_id", "run_name", "user_id", "status", "start_time", "end_time",
        ((now_us - F.unix_micros("start_time")) / F.lit(86_400e6)).alias("age_days"),
        F.concat_ws("; ", *reasons).alias("reason"),
    ).orderBy("experiment_id", F.asc_nulls_first("start_time"), "run_id")
