"""The `experiments` source as users meet it: discovery, options, resolution, clear errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pyspark_experiments import tables
from pyspark_experiments.stores import open_store
from pyspark_experiments.uri import resolve_tracking_uri


@pytest.fixture(scope="module")
def small_stores(tmp_path_factory):
    """A SQLite and a file store, each with two experiments written by real mlflow."""
    from support.small import write_small_stores

    return write_small_stores(tmp_path_factory.mktemp("small"))


def read(spark, uri, table="runs", path="", **options):
    reader = spark.read.format("experiments").option("trackingUri", uri).option("table", table)
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load(path) if path else reader.load()


@pytest.mark.slow
def test_discovered_without_register_in_a_fresh_process(small_stores):
    # Spark 4 finds DefaultSource in installed pyspark_* packages: no register() call.
    script = textwrap.dedent(
        f"""
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.master("local[1]").getOrCreate()
        df = spark.read.format("experiments").option("trackingUri", {small_stores['sqlite']!r}).load("alpha")
        print("ROWS", df.count())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "ROWS 3" in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_runs_table_has_the_contract_schema_and_rows(spark, small_stores, kind):
    df = read(spark, small_stores[kind], path="alpha,beta")
    assert df.schema == tables.spark_schema("runs")
    assert df.columns[:9] == [
        "run_id", "experiment_id", "metrics", "params", "tags", "start_time", "end_time", "status", "artifact_uri",
    ]
    rows = df.collect()
    assert sorted(r.run_name for r in rows) == [f"{n}-{i}" for n in ("alpha", "beta") for i in range(3)]
    assert {r.status for r in rows} == {"FINISHED"}
    assert {r.user_id for r in rows} == {"ann"}
    assert {r.params["i"] for r in rows} == {"0", "1", "2"}
    assert sorted(r.metrics["loss"] for r in rows if r.run_name.startswith("alpha")) == [1 / 3, 0.5, 1.0]


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_small_partitions_read_the_same_rows(spark, small_stores, kind):
    whole = {r.run_id for r in read(spark, small_stores[kind]).collect()}
    split = read(spark, small_stores[kind], partitionSize="1")
    assert split.rdd.getNumPartitions() == len(whole)
    assert {r.run_id for r in split.collect()} == whole


def test_options_are_case_insensitive(spark, small_stores):
    reader = spark.read.format("experiments").option("TRACKINGURI", small_stores["sqlite"])
    df = reader.option("Table", "Params").option("VIEWTYPE", "all").load("alpha")
    assert df.count() == 3


def test_bad_option_reaches_the_spark_user(spark, small_stores):
    with pytest.raises(Exception) as error:
        read(spark, small_stores["sqlite"], viewType="SOME").count()
    assert "option 'viewType'" in str(error.value)


def test_mlflow_experiment_alias_only_on_request(spark, small_stores):
    import pyspark_experiments

    with pytest.raises(Exception, match="mlflow-experiment"):
        spark.read.format("mlflow-experiment").option("trackingUri", small_stores["sqlite"]).load("alpha").count()
    pyspark_experiments.register(spark, alias="mlflow-experiment")
    aliased = spark.read.format("mlflow-experiment").option("trackingUri", small_stores["sqlite"]).load("alpha")
    plain = read(spark, small_stores["sqlite"], path="alpha")
    assert sorted(aliased.collect()) == sorted(plain.collect()) and aliased.count() == 3


def test_unknown_experiment_is_named(spark, small_stores):
    for kind in ("sqlite", "file"):
        with pytest.raises(Exception) as error:
            read(spark, small_stores[kind], path="alpha,gamma").count()
        assert "no experiment with id or name 'gamma'" in str(error.value)
        assert "'alpha'" in str(error.value)  # it lists what the store has


def _copy_file_store(source, target):
    import shutil

    shutil.copytree(source, target)
    return str(target)


def test_corrupt_meta_yaml_names_the_file_and_line(spark, small_stores, tmp_path):
    root = _copy_file_store(small_stores["file"], tmp_path / "mlruns")
    store = open_store(resolve_tracking_uri(root))
    experiment = next(e for e in store.list_experiments() if e.name == "alpha")
    run_dir = next(
        d for d in (tmp_path / "mlruns" / experiment.experiment_id).iterdir() if (d / "meta.yaml").exists() and d.name != "tags"
    )
    meta = run_dir / "meta.yaml"
    meta.write_text(meta.read_text() + "status: [unclosed\n")
    with pytest.raises(Exception) as error:
        read(spark, root, path="alpha").count()
    assert str(meta) in str(error.value) and "line" in str(error.value)
    permissive = read(spark, root, path="alpha", mode="PERMISSIVE").collect()
    assert len(permissive) == 2 and run_dir.name not in {r.run_id for r in permissive}


def test_malformed_metric_line_names_the_file_and_line(spark, small_stores, tmp_path):
    root = _copy_file_store(small_stores["file"], tmp_path / "mlruns")
    metric_file = next((tmp_path / "mlruns").glob("*/*/metrics/loss"))
    metric_file.write_text(metric_file.read_text() + "1700000000000 oops 3\n1700000000001 0.5 4\n")
    for table in ("metrics", "runs"):
        with pytest.raises(Exception) as error:
            read(spark, root, table=table).count()
        assert f"{metric_file}, line 2" in str(error.value)
    points = read(spark, root, table="metrics", mode="PERMISSIVE").where(f"run_id = '{metric_file.parent.parent.name}'").collect()
    # The bad line is skipped (and reported in the executor log); the good ones all arrive.
    assert sorted(p.step for p in points) == sorted([int(metric_file.read_text().split()[2]), 4])


def test_a_store_being_written_reads_without_error(spark, tmp_path):
    """A run still logging (SQLite and file store) while Spark reads it over and over."""
    from mlflow import MlflowClient

    uris = [f"sqlite:///{tmp_path}/live.db", str(tmp_path / "mlruns")]
    clients = [MlflowClient(tracking_uri=u) for u in uris]
    runs = [c.create_run(c.create_experiment("live")).info.run_id for c in clients]
    stop = threading.Event()
    errors = []

    def log_points():
        step = 0
        while not stop.is_set() and step < 5000:
            for client, run_id in zip(clients, runs):
                try:
                    client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
                    client.set_tag(run_id, f"tag{step % 7}", str(step))
                except Exception as error:  # the writer is not under test
                    errors.append(error)
            step += 1

    writer = threading.Thread(target=log_points)
    writer.start()
    try:
        counts = []
        deadline = time.monotonic() + 60
        while len(counts) < 6 and time.monotonic() < deadline:
            for uri in uris:
                counts.append((uri, read(spark, uri, table="metrics", path="live").count()))
                assert read(spark, uri, path="live").count() == 1
    finally:
        stop.set()
        writer.join()
    assert not errors
    for uri in uris:
        seen = [n for u, n in counts if u == uri]
        assert seen == sorted(seen)  # points only ever arrive
    final = [read(spark, uri, table="metrics", path="live").count() for uri in uris]
    assert final[0] == final[1] > 0


def test_explain_and_planning_errors_hide_credentials(spark, capsys):
    uri = "postgresql://ann:hunter2@127.0.0.1:9/mlflow"
    df = spark.read.format("experiments").option("trackingUri", uri).load("1")
    df.explain(True)
    assert "hunter2" not in capsys.readouterr().out + repr(df)
    with pytest.raises(Exception) as error:
        df.count()  # no server there: planning fails, without the password in the message
    assert "hunter2" not in str(error.value)
    assert "ann:***@127.0.0.1:9" in str(error.value) or "psycopg" in str(error.value)
