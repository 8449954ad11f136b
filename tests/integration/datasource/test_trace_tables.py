"""The ``traces``, ``spans`` and ``assessments`` tables through Spark equal what mlflow answers.

Stores written by real mlflow 3.18 (tests/support/traces_store.py): SQLite, a file store,
PostgreSQL, a real ``mlflow server`` and (in the slow tier) MariaDB, read with
``spark.read.format("experiments").option("table", ...)``; references are
``mlflow.search_traces(return_type="list")`` for which traces exist and
``MlflowClient.get_trace`` for each trace. Field by field equality of every form is
``tests/integration/stores/traces/test_equivalence.py``'s; here the DataFrames as users get
them: the deleted trace absent, tags set after the fact, assessments with their override, the
narrowing options, a store older than the trace tables, malformed records and Spark SQL.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from pyspark_experiments import tables
from support.stores import mysql_server, postgres_server  # noqa: F401  (the session fixtures)
from support.traces_store import *  # noqa: F401,F403  (the session fixtures)
from support.traces_store import TRACE_EXPERIMENTS

STORES = ("sqlite", "file", "postgres", "rest", pytest.param("mysql", marks=pytest.mark.slow))
FIXTURES = {"sqlite": "trace_sqlite_store", "file": "trace_file_store", "postgres": "trace_postgres_store",
            "rest": "trace_server", "mysql": "trace_mysql_store"}
#: The trace tables of MLflow's SQL schema, as a store written before them lacks them.
SQL_TRACE_TABLES = ("span_metrics", "spans", "assessments", "trace_metrics", "trace_request_metadata",
                    "trace_tags", "trace_info")


def read(spark, uri, table, path="", **options):
    reader = spark.read.format("experiments").option("trackingUri", uri).option("table", table)
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load(path) if path else reader.load()


def _mlflow_traces(uri: str) -> tuple[tuple[str, ...], dict]:
    """The experiment ids of the reference traces, and ``{trace_id: Trace}`` as mlflow reads them."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment_ids = tuple(client.get_experiment_by_name(name).experiment_id for name in TRACE_EXPERIMENTS)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # mlflow resolves mlflow-artifacts:/ locations through it
    try:
        found = mlflow.search_traces(locations=list(experiment_ids), return_type="list")
        return experiment_ids, {trace.info.trace_id: client.get_trace(trace.info.trace_id) for trace in found}
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module", params=STORES)
def store(request):
    """``{"kind", "uri", "ids", "path", "traces"}``: a store, its load path and mlflow's traces."""
    uri, ids = request.getfixturevalue(FIXTURES[request.param])
    experiment_ids, traces = _mlflow_traces(uri)
    return {"kind": request.param, "uri": uri, "ids": ids, "path": ",".join(experiment_ids), "traces": traces}


def test_traces_equal_mlflow_trace_infos(spark, store):
    df = read(spark, store["uri"], "traces", store["path"], partitionSize="1")
    assert df.schema == tables.spark_schema("traces")
    rows = {row["trace_id"]: row for row in df.selectExpr("*", "unix_millis(request_time) AS request_ms").collect()}
    assert set(rows) == set(store["traces"]) and store["ids"]["doomed"] not in rows
    for trace_id, trace in store["traces"].items():
        row, info = rows[trace_id], trace.info
        assert row["experiment_id"] == info.experiment_id
        assert row["state"] == info.state.value
        assert row["request_ms"] == info.request_time
        assert row["execution_duration_ms"] == info.execution_duration
        assert dict(row["tags"]) == info.tags
        assert dict(row["request_metadata"]) == info.trace_metadata
        assert row["request_preview"] == info.request_preview
        assert row["total_tokens"] == (info.token_usage or {}).get("total_tokens")
    answer = rows[store["ids"]["answer"]]
    assert (answer["tags"]["reviewed"], json.loads(answer["tags"]["team.owner"])) == ("yes", {"name": "ml"})


def test_spans_equal_mlflow_spans(spark, store):
    df = read(spark, store["uri"], "spans", store["path"], withSpanContent="true")
    assert df.columns[-3:] == ["inputs", "outputs", "events"]
    rows = {(row["trace_id"], row["span_id"]): row for row in df.collect()}
    expected = {(trace_id, span.span_id): span for trace_id, trace in store["traces"].items() for span in trace.data.spans}
    assert set(rows) == set(expected)
    for key, span in expected.items():
        row = rows[key]
        assert (row["parent_span_id"], row["name"], row["span_type"]) == (span.parent_id, span.name, span.span_type)
        assert (row["start_time_ns"], row["end_time_ns"]) == (span.start_time_ns, span.end_time_ns)
        assert (json.loads(row["inputs"]) if row["inputs"] is not None else None) == span.inputs
        assert (json.loads(row["outputs"]) if row["outputs"] is not None else None) == span.outputs
    plain = read(spark, store["uri"], "spans", store["path"])
    assert "inputs" not in plain.columns and plain.count() == len(expected)


def test_assessments_equal_mlflow_assessments_with_the_override(spark, store):
    df = read(spark, store["uri"], "assessments", store["path"]).selectExpr("*", "unix_millis(create_time) AS create_ms")
    rows = {row["assessment_id"]: row for row in df.collect()}
    expected = {a.assessment_id: a for trace in store["traces"].values() for a in trace.info.assessments}
    assert set(rows) == set(expected)
    for assessment_id, assessment in expected.items():
        row = rows[assessment_id]
        assert (row["trace_id"], row["name"]) == (assessment.trace_id, assessment.name)
        assert json.loads(row["value"]) == assessment.value
        assert row["valid"] == (True if assessment.valid is None else assessment.valid)
        assert row["overrides"] == assessment.overrides
        assert row["create_ms"] == assessment.create_time_ms
    overridden = [row for row in rows.values() if row["overrides"] is not None]
    assert len(overridden) == 1 and rows[overridden[0]["overrides"]]["valid"] is False


def test_options_narrow_the_trace_tables(spark, store):
    uri, path, ids = store["uri"], store["path"], store["ids"]
    failing = read(spark, uri, "traces", path, traceStates="error").collect()
    assert [row["trace_id"] for row in failing] == [ids["failing"]]
    assert {row["trace_id"] for row in read(spark, uri, "spans", path, traceStates="ERROR").collect()} == {ids["failing"]}
    answer = read(spark, uri, "assessments", path, traceIds=f"{ids['answer']},tr-missing").collect()
    assert {row["trace_id"] for row in answer} == {ids["answer"]} and len(answer) == 5
    times = sorted(trace.info.request_time for trace in store["traces"].values())
    between = read(spark, uri, "traces", path, startTimeAfter=str(times[1]), startTimeBefore=str(times[-1]))
    assert sorted(row[0] for row in between.selectExpr("unix_millis(request_time)").collect()) == times[1:-1]
    beta = read(spark, uri, "traces", TRACE_EXPERIMENTS[1]).collect()
    assert [row["trace_id"] for row in beta] == [ids["solo"]]


def test_trace_options_are_checked(spark, trace_sqlite_store):
    uri = trace_sqlite_store[0]
    with pytest.raises(Exception, match="option 'traceIds' only applies to tables traces, spans, assessments"):
        read(spark, uri, "runs", traceIds="tr-1").schema
    with pytest.raises(Exception, match="option 'withSpanContent' does not apply to table 'traces'"):
        read(spark, uri, "traces", withSpanContent="true").schema
    with pytest.raises(Exception, match="option 'traceStates': unknown value 'DONE'; expected one of OK, ERROR"):
        read(spark, uri, "traces", traceStates="DONE").schema
    with pytest.raises(Exception, match="unknown option"):
        read(spark, uri, "traces", traceStatus="OK").schema


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_a_store_older_than_the_trace_tables_reads_empty(spark, tmp_path, kind):
    from support.small import write_small_stores

    uri = write_small_stores(tmp_path, kinds=(kind,))[kind]
    if kind == "sqlite":
        connection = sqlite3.connect(uri.removeprefix("sqlite:///"))
        with connection:
            for table in SQL_TRACE_TABLES:
                connection.execute(f"DROP TABLE {table}")
        connection.close()
    for table in ("traces", "spans", "assessments"):
        df = read(spark, uri, table, "alpha,beta")
        assert df.count() == 0 and df.columns[0] in ("trace_id", "assessment_id")


def test_a_malformed_trace_fails_or_is_reported(spark, trace_file_store, tmp_path):
    root = str(tmp_path / "mlruns")
    shutil.copytree(trace_file_store[0], root)
    solo = trace_file_store[1]["solo"]
    _, traces = _mlflow_traces(root)
    info_file = f"{root}/{traces[solo].info.experiment_id}/traces/{solo}/trace_info.yaml"
    with open(info_file, "w") as handle:
        handle.write("trace_id: [unclosed\n")
    with pytest.raises(Exception, match=f"malformed record at {info_file}"):
        read(spark, root, "traces").collect()
    rows = read(spark, root, "traces", mode="PERMISSIVE", columnNameOfCorruptRecord="_bad").collect()
    bad = [row for row in rows if row["_bad"] is not None]
    assert len(rows) == 4 and len(bad) == 1 and info_file in bad[0]["_bad"] and "not valid YAML" in bad[0]["_bad"]


def test_spark_sql_view_of_the_traces(spark, trace_sqlite_store):
    uri, ids = trace_sqlite_store
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW t USING experiments OPTIONS (trackingUri '{uri}', table 'traces')")
    states = {row["trace_id"]: row["state"] for row in spark.sql("SELECT trace_id, state FROM t").collect()}
    assert states == {ids["answer"]: "OK", ids["answer-2"]: "OK", ids["failing"]: "ERROR", ids["solo"]: "OK"}
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW s USING experiments OPTIONS (trackingUri '{uri}', table 'spans', "
              f"traceIds '{ids['answer']}', withSpanContent 'true')")
    names = sorted(row["name"] for row in spark.sql("SELECT name, inputs FROM s WHERE inputs IS NOT NULL").collect())
    assert names == ["answer", "chat", "retrieve"]
