"""The trace store generator writes stores that mlflow and ``format("experiments")`` read back,
and the trace benchmark prints its ratio lines on them.

A tiny store (50 traces x 10 spans) of each SQL kind is generated from template traces that
real mlflow logs, checked against the real mlflow client (``get_trace`` and ``search_traces`` on
a sample), read through Spark, then benchmarked once.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

from benchmarks import bench_traces, generate_traces
from support.postgres import postgres_bin

SPEC = generate_traces.TraceSpec(traces=50, spans=10, experiments=2, days=3, seed=5, error_rate=0.1)
KINDS = ("sqlite", "postgres") if postgres_bin() else ("sqlite",)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("traces"))
    return out, generate_traces.generate(out, SPEC, KINDS, progress=lambda *_: None)


def test_traces_are_deterministic_and_varied():
    first, again = generate_traces.trace_data(SPEC, 3), generate_traces.trace_data(SPEC, 3)
    assert first == again
    traces = [generate_traces.trace_data(SPEC, i) for i in range(SPEC.traces)]
    assert len({t.trace_id for t in traces}) == SPEC.traces
    assert {t.state for t in traces} == {"OK", "ERROR"}
    assert {t.name for t in traces} == {"qa_agent", "support_agent"}
    assert len({t.duration_ms for t in traces}) > SPEC.traces // 2
    days = {t.request_ms // generate_traces.DAY_MS for t in traces}
    assert len(days) == SPEC.days
    usage, cost = generate_traces.trace_totals(first)
    chats = [s for s in first.spans if s["usage"]]
    assert usage["total_tokens"] == sum(s["usage"]["total_tokens"] for s in chats) > 0
    assert cost["total_cost"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_mlflow_reads_back_what_was_generated(generated, kind):
    out, manifest = generated
    with generate_traces.store_uris(out, (kind,)) as uris:
        problems = generate_traces.check_store(uris[kind], SPEC, manifest["stores"][kind]["experiments"],
                                               sample=SPEC.traces)
    assert problems == []


def test_check_command_line(generated):
    out, _ = generated
    assert generate_traces.main(["--check", "--out", out, "--kind", "sqlite", "--sample", "3"]) == 0


def test_sqlite_store_keeps_mlflow_indexes_and_rows(generated):
    out, _ = generated
    connection = sqlite3.connect(f"{out}/mlflow.db")
    indexes = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"index_spans_experiment_id_start_time", "index_trace_info_experiment_id_timestamp_ms",
            "index_assessments_trace_id_created_timestamp", "index_trace_tags_request_id"} <= indexes
    count = dict(connection.execute("SELECT 'spans', COUNT(*) FROM spans UNION ALL "
                                    "SELECT 'assessments', COUNT(*) FROM assessments").fetchall())
    assert count == {"spans": SPEC.traces * SPEC.spans, "assessments": SPEC.traces + SPEC.traces // 2}
    # the stored duration column is mlflow's own computed one
    assert connection.execute("SELECT COUNT(*) FROM spans WHERE duration_ns != end_time_unix_nano - "
                              "start_time_unix_nano").fetchone()[0] == 0


def test_spark_reads_the_generated_store(spark, generated):
    out, manifest = generated
    ids = ",".join(e["id"] for e in manifest["stores"]["sqlite"]["experiments"])
    uri = f"sqlite:///{out}/mlflow.db"

    def load(table):
        return spark.read.format("experiments").option("trackingUri", uri).option("table", table).load(ids)

    traces = load("traces")
    assert traces.count() == SPEC.traces
    assert traces.filter("state = 'ERROR'").count() == sum(
        generate_traces.trace_data(SPEC, i).state == "ERROR" for i in range(SPEC.traces))
    assert load("spans").count() == SPEC.traces * SPEC.spans
    assert load("assessments").count() == SPEC.traces + SPEC.traces // 2


def test_bench_prints_its_ratios_and_equal_answers(spark, generated, capsys, tmp_path):
    out, _ = generated
    results = str(tmp_path / "results.json")
    assert bench_traces.main(["--store", out, "--kind", KINDS[-1], "--repeat", "1", "--results", results]) == 0
    printed = capsys.readouterr().out
    ratios = re.findall(r"^ratio \w+ .+ = [\d.]+×$", printed, re.MULTILINE)
    assert len(ratios) == 5, printed
    assert re.findall(r"^equal \w+ (\w+) \(Spark vs pandas\): equal\b", printed, re.MULTILINE) == ["latency", "daily"]
