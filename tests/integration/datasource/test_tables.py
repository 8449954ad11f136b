"""Every table at scale: narrowing at the source, balanced partitions, malformed records."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pyspark_experiments.datasource import plan_read

BASE_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def uneven_stores(tmp_path_factory):
    """One run with a long history (2,000 points on one key, 500 on another) beside 30 short runs."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    root = tmp_path_factory.mktemp("uneven")
    uris = {"sqlite": f"sqlite:///{root}/mlflow.db", "file": str(root / "mlruns")}
    for uri in uris.values():
        client = MlflowClient(tracking_uri=uri)
        experiment_id = client.create_experiment("uneven", artifact_location=str(root / "artifacts"))
        big = client.create_run(experiment_id, run_name="big", start_time=BASE_MS).info.run_id
        for key, points in (("loss", 2000), ("val/acc", 500)):
            for start in range(0, points, 1000):
                client.log_batch(big, metrics=[
                    Metric(key, 1.0 / (step + 1), BASE_MS + step, step) for step in range(start, min(points, start + 1000))
                ])
        for i in range(30):
            run_id = client.create_run(experiment_id, run_name=f"small-{i:02d}", start_time=BASE_MS + 1000 * (i + 1)).info.run_id
            client.log_batch(run_id, metrics=[Metric(k, float(s), BASE_MS + s, s) for k in ("loss", "val/acc") for s in range(5)])
            client.log_param(run_id, "i", str(i))
    return uris


def read(spark, uri, table, **options):
    reader = spark.read.format("experiments").option("trackingUri", uri).option("table", table)
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load("uneven")


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_partitions_stay_balanced_for_uneven_runs(uneven_stores, kind):
    options = {"trackingUri": uneven_stores[kind], "table": "metrics", "partitionSize": "600"}
    small_runs = 30
    if kind == "sqlite":
        from mlflow import MlflowClient

        from pyspark_experiments.stores.sql.reads import RowidSpan

        # Every run: spans of the table's 2,800 rowids, at most 600 each, one after another.
        _, partitions = plan_read(options, environ={})
        spans = [p.work for p in partitions]
        assert all(isinstance(span, RowidSpan) and 0 < span.upto - span.after <= 600 for span in spans)
        assert len(spans) == 5 and spans[0].after == 0 and spans[-1].upto == 2800
        assert all(left.upto == right.after for left, right in zip(spans, spans[1:]))
        # Fewer than half of the runs: planned per run, as the file store plans.
        client = MlflowClient(tracking_uri=options["trackingUri"])
        runs = client.search_runs([client.get_experiment_by_name("uneven").experiment_id], order_by=["attributes.start_time"])
        small_runs = 10
        options["runIds"] = ",".join(run.info.run_id for run in runs[: 1 + small_runs])
    selection, partitions = plan_read(options, environ={})
    units = [unit for p in partitions for unit in p.work]
    assert len(units) == len(set(units))
    # Units go in run id order, so how many partitions depends on where the big run's random id
    # falls (two when it comes first: 2,000 | 500 + 10 x 10); none holding more than one unit
    # goes past the 600 points asked for.
    points = {"loss": 2000, "val/acc": 500, None: 10}
    assert len(partitions) >= 2
    assert all(len(p.work) == 1 or sum(points[key] for _, key in p.work) <= 600 for p in partitions)
    # Small runs are whole units, grouped: far fewer partitions than runs.
    whole_runs = [run for run, key in units if key is None]
    assert len(whole_runs) == small_runs and len(partitions) < small_runs + 1
    # The big run's history is split by key, its longest key in a partition of its own.
    split = sorted(key for run, key in units if key is not None)
    assert split == ["loss", "val/acc"]
    assert any(len(p.work) == 1 and p.work[0][1] == "loss" for p in partitions)


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_partition_options_change_layout_not_content(spark, uneven_stores, kind):
    uri = uneven_stores[kind]
    default = read(spark, uri, "metrics")
    expected = sorted(map(tuple, default.select("run_id", "key", "step", "value").collect()))
    assert len(expected) == 2000 + 500 + 30 * 10
    for options in ({"partitionSize": "300"}, {"numPartitions": "5"}):
        df = read(spark, uri, "metrics", **options)
        assert df.rdd.getNumPartitions() > 1
        assert sorted(map(tuple, df.select("run_id", "key", "step", "value").collect())) == expected


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_narrowing_options_equal_filtering_in_spark(spark, uneven_stores, kind):
    uri = uneven_stores[kind]
    all_points = read(spark, uri, "metrics")
    runs = read(spark, uri, "runs").collect()
    some = sorted(r.run_id for r in runs if r.run_name in ("big", "small-03", "small-07"))

    def rows(df):
        return sorted(map(tuple, df.select("run_id", "key", "step", "value").collect()))

    assert rows(read(spark, uri, "metrics", metricKeys="val/acc")) == rows(all_points.where("key = 'val/acc'"))
    assert rows(read(spark, uri, "metrics", runIds=",".join(some))) == rows(all_points.where(all_points.run_id.isin(some)))
    cutoff = BASE_MS + 1000 * 20
    late = {r.run_id for r in runs if r.start_time.timestamp() * 1000 >= cutoff}
    assert len(late) == 11
    assert {r.run_id for r in read(spark, uri, "runs", startTimeAfter=str(cutoff)).collect()} == late
    iso = "2023-11-14T22:13:40Z"  # BASE_MS + 20,000 ms
    assert {r.run_id for r in read(spark, uri, "params", startTimeAfter=iso).collect()} == late


@pytest.mark.slow
def test_permissive_reports_skipped_records_in_the_job_log(uneven_stores, tmp_path):
    import shutil

    root = tmp_path / "mlruns"
    shutil.copytree(uneven_stores["file"], root)
    metric_file = next(root.glob("*/*/metrics/loss"))
    with open(metric_file, "a") as handle:
        handle.write("not a metric line\n")
    script = textwrap.dedent(
        f"""
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.master("local[1]").getOrCreate()
        df = (spark.read.format("experiments").option("trackingUri", {str(root)!r})
              .option("table", "metrics").option("mode", "PERMISSIVE").load())
        print("ROWS", df.count())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "ROWS 2800" in result.stdout, result.stderr[-3000:]
    assert "PERMISSIVE: skipped 1 malformed record(s)" in result.stderr
    assert f"{metric_file}, line" in result.stderr
