"""The benchmark store generator writes stores that mlflow and ``format("experiments")`` read back.

A tiny store of each kind (with NaN points and one bigger run) is generated, checked against the
real mlflow client (``search_runs`` and ``get_metric_history`` on a sample of runs), then read
through Spark and its row counts compared with the generator's spec.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import generate_store

SPEC = generate_store.Spec(runs=12, metrics=3, steps=4, params=2, experiments=2, seed=7,
                           big_run_points=30, nan_rate=0.2)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("generated"))
    manifest = generate_store.generate(out, SPEC, ("sqlite", "file"), progress=lambda *_: None)
    return out, manifest


def test_spec_is_deterministic_and_uneven():
    first, again = generate_store.run_data(SPEC, 3), generate_store.run_data(SPEC, 3)
    assert first.run_id == again.run_id and first.params == again.params
    assert [len(v) for v in generate_store.run_data(SPEC, 0).metrics.values()] == [10, 10, 10]
    assert SPEC.points == 30 + 11 * 3 * 4
    values = [v for i in range(SPEC.runs) for vs in generate_store.run_data(SPEC, i).metrics.values() for v in vs]
    assert any(math.isnan(v) for v in values), "the tiny spec should exercise NaN points"


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_mlflow_reads_back_what_was_generated(generated, kind):
    _, manifest = generated
    store = manifest["stores"][kind]
    problems = generate_store.check_store(store["uri"], SPEC, store["experiments"], sample=SPEC.runs, keys=SPEC.metrics)
    assert problems == []


def test_check_command_line(generated):
    out, _ = generated
    assert generate_store.main(["--check", "--out", out, "--sample", "3"]) == 0


def test_sqlite_latest_metrics_follow_mlflow_rule(generated):
    import sqlite3

    _, manifest = generated
    path = manifest["stores"]["sqlite"]["uri"].split("sqlite:///", 1)[1]
    connection = sqlite3.connect(path)
    nan_rows = connection.execute("SELECT value FROM metrics WHERE is_nan = 1").fetchall()
    assert nan_rows and all(value == 0 for (value,) in nan_rows)
    # latest_metrics holds, per (run, key), the point with the largest (step, timestamp, value).
    mismatches = connection.execute(
        "SELECT COUNT(*) FROM latest_metrics l WHERE NOT EXISTS ("
        " SELECT 1 FROM metrics m WHERE m.run_uuid = l.run_uuid AND m.key = l.key"
        " AND m.step = l.step AND m.timestamp = l.timestamp AND m.value = l.value AND m.is_nan = l.is_nan"
        " AND m.step = (SELECT MAX(step) FROM metrics x WHERE x.run_uuid = l.run_uuid AND x.key = l.key))"
    ).fetchone()[0]
    assert mismatches == 0
    # mlflow's own indexes exist, as mlflow's migrations created them.
    indexes = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"index_metrics_run_uuid", "index_latest_metrics_run_uuid", "index_params_run_uuid", "index_tags_run_uuid"} <= indexes


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_spark_reads_the_generated_store(spark, generated, kind):
    _, manifest = generated
    uri = manifest["stores"][kind]["uri"]

    def count(table):
        return spark.read.format("experiments").option("trackingUri", uri).option("table", table).load().count()

    assert count("runs") == SPEC.runs
    assert count("metrics") == SPEC.points
    assert count("params") == SPEC.runs * SPEC.params
    assert count("tags") == SPEC.runs * 5
    assert count("experiments") == SPEC.experiments + 1  # and mlflow's Default experiment
    nan_points = (
        spark.read.format("experiments").option("trackingUri", uri).option("table", "metrics").load()
        .where("isnan(value)").count()
    )
    expected_nan = sum(
        math.isnan(v)
        for i in range(SPEC.runs)
        for values in generate_store.run_data(SPEC, i).metrics.values()
        for v in values
    )
    assert nan_points == expected_nan
