"""The analytics job's trace tables: written from a store holding traces, each equal to the
analytics function called on the source's trace tables; skipped where there is no trace (and
an earlier run's emptied); read from a target's synced trace tables when they are there.

One job run (the trace history of tests/support/trace_history.py, read from the store); the
rest calls what the job calls, without writing its twenty tables."""

from __future__ import annotations

import logging

import pytest
from pyspark.sql import functions as F

from pyspark_experiments import analytics, tables
from pyspark_experiments.analytics import cli
from pyspark_experiments.analytics.config import AnalyticsConfig
from pyspark_experiments.analytics.inputs import read_tables, read_trace_tables, store_has_traces
from pyspark_experiments.analytics.job import PREFIX
from pyspark_experiments.analytics.trace_job import TRACE_OUTPUTS, trace_tables
from pyspark_experiments.jobs import EXIT_OK
from pyspark_experiments.jobs.target import DeltaTarget
from support.compare import sorted_rows
from support.small import write_small_stores
from support.trace_history import *  # noqa: F401,F403  (the session fixtures)


def read_source(spark, uri: str) -> dict:
    return {table: spark.read.format("experiments").option("trackingUri", uri).option("table", table).load()
            for table in (*tables.TRACE_TABLE_NAMES, "experiments")}


def test_job_writes_the_trace_tables_as_the_functions_compute_them(spark, trace_history_sqlite_store, tmp_path, capsys):
    uri, _ = trace_history_sqlite_store
    target = str(tmp_path / "delta")
    assert cli.main(["--tracking-uri", uri, "--target-path", target, "--period", "day", "--no-progress"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "18 tables" in out and f"{PREFIX}traces_per_session" in out

    source = read_source(spark, uri)
    traces, spans, assessments = source["traces"], source["spans"], source["assessments"]
    expected = {
        "trace_volume": analytics.trace_volume(traces, period="day"),
        "token_usage_by_period": analytics.token_usage(traces, spans, by="day"),
        "token_usage_by_model": analytics.token_usage(traces, spans, by="model"),
        "token_usage_by_trace_name": analytics.token_usage(traces, spans, by="trace_name"),
        "slowest_spans": analytics.slowest_spans(spans),
        "assessment_outcomes": analytics.assessment_outcomes(assessments, period="day"),
        "traces_per_user": analytics.traces_per_user(traces, period="day"),
        "traces_per_session": analytics.traces_per_session(traces, spans),
    }
    assert tuple(expected) == TRACE_OUTPUTS
    for name, want in expected.items():
        got = spark.read.format("delta").load(f"{target}/{PREFIX}{name}")
        assert got.columns == want.columns, name
        expected_rows = sorted_rows(want, digits=9)
        assert sorted_rows(got, digits=9) == expected_rows, name
        assert expected_rows, f"{name} is empty: the check would prove nothing"


def test_no_trace_no_table_and_an_earlier_runs_are_emptied(spark, tmp_path, caplog):
    uri = write_small_stores(tmp_path / "store", kinds=("sqlite",))["sqlite"]
    cfg = AnalyticsConfig(tracking_uri=uri, target_path=str(tmp_path / "delta")).validate()
    target = cfg.target(spark)
    experiments = read_tables(spark, cfg, source="store")["experiments"]
    assert not store_has_traces(cfg)
    logger = logging.getLogger("pyspark_experiments.analytics")  # a job run stops it propagating: listen on it
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            assert trace_tables(spark, cfg, "store", target, experiments, PREFIX).tables == {}
    finally:
        logger.removeHandler(caplog.handler)
    assert "no trace to read: trace tables skipped" in caplog.text

    # An earlier run's table, from when the store held traces: all eight are overwritten empty.
    target.write(spark.createDataFrame([(1,)], "requests long"), PREFIX + "trace_volume", "overwrite")
    emptied = trace_tables(spark, cfg, "store", target, experiments, PREFIX)
    try:
        assert list(emptied.tables) == [PREFIX + name for name in TRACE_OUTPUTS]
        volume = emptied.tables[PREFIX + "trace_volume"]()
        assert volume.columns[:3] == ["experiment_id", "period_start", "requests"] and volume.count() == 0
    finally:
        emptied.release()
    # Left out by the setting: nothing, whatever the target holds.
    assert trace_tables(spark, cfg.override(trace_tables=False), "store", target, experiments, PREFIX).tables == {}


@pytest.mark.slow  # a second full sync or job run; the default tier keeps one
def test_trace_tables_of_a_target_when_synced(spark, trace_history_sqlite_store, tmp_path):
    uri, ids = trace_history_sqlite_store
    source = read_source(spark, uri)
    cfg = AnalyticsConfig(target_path=str(tmp_path / "delta")).validate()
    target = DeltaTarget.at_path(spark, cfg.target_path)
    experiments = source["experiments"]
    target.write(source["traces"], "traces", "overwrite")
    assert read_trace_tables(spark, cfg, source="target", experiments=experiments) is None  # no spans, assessments yet
    for name in ("spans", "assessments"):
        target.write(source[name], name, "overwrite")

    # The traces of the experiments that are not deleted.
    one_deleted = experiments.withColumn(
        "lifecycle_stage", F.when(F.col("name") == "agent-eval", "deleted").otherwise(F.col("lifecycle_stage")))
    found = read_trace_tables(spark, cfg, source="target", experiments=one_deleted)
    assert {r.trace_id for r in found["traces"].collect()} == set(ids["agent-prod"])
    kept = source["experiments"].where("name = 'agent-prod'").select("experiment_id")
    for name in tables.TRACE_TABLE_NAMES:
        want = source[name].join(kept, "experiment_id", "left_semi")
        assert sorted_rows(found[name]) == sorted_rows(want), name

    # An empty traces table: nothing to read.
    target.write(source["traces"].limit(0), "traces", "overwrite")
    assert read_trace_tables(spark, cfg, source="target", experiments=experiments) is None


@pytest.mark.slow  # a whole job run, to show the job as it runs on a store without traces
def test_job_on_a_store_without_traces_writes_the_run_tables_only(spark, tmp_path, capsys):
    uri = write_small_stores(tmp_path / "store", kinds=("sqlite",))["sqlite"]
    target = tmp_path / "delta"
    assert cli.main(["--tracking-uri", uri, "--target-path", str(target), "--no-progress"]) == EXIT_OK
    assert "10 tables" in capsys.readouterr().out
    assert not any(path.name.startswith(PREFIX + "trace") for path in target.iterdir())
