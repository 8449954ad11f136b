"""The old import paths kept for one release: ``pyspark_experiments.target`` and
``pyspark_experiments.analytics_job`` warn on import and give the names they gave before."""

from __future__ import annotations

import importlib
import sys

import pytest


def fresh_import(name: str):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_target_module_warns_and_reexports_the_target_and_the_lock():
    from pyspark_experiments.jobs import lock, target

    with pytest.warns(DeprecationWarning, match="pyspark_experiments.jobs.target"):
        old = fresh_import("pyspark_experiments.target")
    assert old.DeltaTarget is target.DeltaTarget and old.TargetLock is lock.TargetLock
    assert (old.LOCK_TABLE, old.LOCK_PREFIX) == ("_sync_lock", "pyspark_experiments.sync.lock.")
    assert old.is_table_path("/data/events") and not old.is_table_path("main.ml.events")
    assert old.sql_string("it's") == target.sql_string("it's")
    for name in old.__all__:
        assert getattr(old, name) is getattr(target, name, None) or getattr(old, name) is getattr(lock, name)


def test_analytics_job_module_warns_and_reexports_the_analytics_job():
    from pyspark_experiments.analytics import config, job

    with pytest.warns(DeprecationWarning, match="pyspark_experiments.analytics.job"):
        old = fresh_import("pyspark_experiments.analytics_job")
    assert (old.run_analytics, old.analytics_tables, old.AnalyticsResult) == (
        job.run_analytics, job.analytics_tables, job.AnalyticsResult)
    assert old.JobConfig is config.AnalyticsConfig
    cfg = old.JobConfig(target_path="/d", metrics=("loss",)).validate()
    assert (cfg.mode_of("loss"), cfg.leaderboard_size) == ("min", 10)
