"""Selecting runs to clean up (the selection only: nothing here deletes anything): the runs the
conditions match, and the runs nested under them (:func:`with_nested_runs`), so that a parent
and its children are cleaned up together."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ..errors import ConfigurationError
from ..tables import PARENT_RUN_TAG
from .common import check_positive_int, now_micros, require_columns, to_timedelta

#: How the reason of a run selected with the run it is nested under begins.
NESTED_REASON = "nested under selected run "


def _as_list(value, argument: str) -> list[str]:
    values = [value] if isinstance(value, str) else [str(v) for v in value]
    if not values:
        raise ConfigurationError(f"cleanup_candidates(): {argument} is empty; pass None to not filter on it")
    return values


def parent_of(runs: DataFrame) -> Column:
    """A run's parent run id: the ``parent_run_id`` column, or where a table has none (synced by
    an older version) the ``mlflow.parentRunId`` tag it is read from.

    Example::

        >>> runs.select("run_id", parent_of(runs).alias("parent")).show()     # doctest: +SKIP
    """
    tag = F.col("tags").getItem(PARENT_RUN_TAG)
    return F.coalesce(F.col("parent_run_id"), tag) if "parent_run_id" in runs.columns else tag


def with_nested_runs(runs: DataFrame, selected: DataFrame) -> DataFrame:
    """``selected`` (columns ``run_id``, ``reason``) and every run of ``runs`` nested under one
    of them, at any depth, as ``run_id``, ``reason``, ``selected_with``: null for a selected run,
    for a nested one the nearest selected run above it (its reason says so).

    A run selected itself keeps its own reason, and the runs under it are reached through it.
    One Spark query per nesting level tells whether a deeper level has runs; parent links that
    loop end there (a run is never reached twice).

    Example::

        >>> failed = runs.where("status = 'FAILED'").select("run_id", F.lit("failed").alias("reason"))
        >>> with_nested_runs(runs, failed).show()                                 # doctest: +SKIP
    """
    links = runs.select("run_id", parent_of(runs).alias("_parent")).where(F.col("_parent").isNotNull())
    chosen = selected.select("run_id")
    found = selected.select("run_id", "reason", F.lit(None).cast("string").alias("selected_with"))
    level = selected.select(F.col("run_id").alias("_parent"), F.col("run_id").alias("selected_with"))
    while True:
        below = links.join(level, "_parent").join(chosen, "run_id", "left_anti").select("run_id", "selected_with")
        if below.isEmpty():
            return found
        found = found.unionByName(below.select(
            "run_id", F.concat(F.lit(NESTED_REASON), F.col("selected_with")).alias("reason"), "selected_with"))
        level = below.select(F.col("run_id").alias("_parent"), "selected_with")


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
    keep_children: bool = False,
) -> DataFrame:
    """The runs that match every given condition, and the runs nested under them: candidates
    for deletion, nothing deleted.

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

    A selected run brings the runs nested under it (``mlflow.parentRunId``, any depth, any
    experiment of ``runs``) whatever the conditions, so that no child outlives its parent
    (:func:`with_nested_runs`; one Spark query per nesting level); ``keep_children=True`` leaves
    them out. Selecting a child never selects its parent.

    Output columns, ordered by ``experiment_id``, ``start_time``, ``run_id``: ``experiment_id``,
    ``run_id``, ``run_name``, ``user_id``, ``status``, ``start_time``, ``end_time``,
    ``age_days`` (double, from start time to ``now``), ``reason`` (string: the conditions, or
    ``nested under selected run <id>``), ``parent_run_id``, ``selected_with`` (the selected run
    a nested run came with, null for a run the conditions selected).

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
    if not isinstance(keep_children, bool):
        raise ConfigurationError(f"{function}(): keep_children={keep_children!r} is not valid; expected True or False")
    if "lifecycle_stage" in runs.columns:
        runs = runs.where(F.coalesce(F.col("lifecycle_stage"), F.lit("active")) != "deleted")
    selected = runs
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
    selected = selected.select("run_id", F.concat_ws("; ", *reasons).alias("reason"))
    if keep_children:
        found = selected.withColumn("selected_with", F.lit(None).cast("string"))
    else:
        found = with_nested_runs(runs, selected)
    return runs.join(found, "run_id").select(
        "experiment_id", "run_id", "run_name", "user_id", "status", "start_time", "end_time",
        ((now_us - F.unix_micros("start_time")) / F.lit(86_400e6)).alias("age_days"),
        "reason", parent_of(runs).alias("parent_run_id"), "selected_with",
    ).orderBy("experiment_id", F.asc_nulls_first("start_time"), "run_id")
