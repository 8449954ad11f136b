"""The tables ``artifacts``, ``models``, ``registered_models`` and ``model_versions`` answer as
mlflow does, on SQLite and file stores written by real mlflow (tests/support/models_store.py).

References: ``MlflowClient.list_artifacts`` walked recursively, ``search_logged_models`` /
``get_logged_model``, ``search_registered_models``, ``search_model_versions``. Where the stores
or mlflow differ on purpose (a file store's model metrics, the SQL registry's model ids), the
difference is asserted explicitly.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import sqlite3
import tempfile
from collections import defaultdict

import pytest

from support.models_store import *  # noqa: F401,F403  (the session fixtures)
from support.models_store import LARGE_FILE_BYTES, UNICODE_PATH

STORES = ("sqlite", "file", "postgres", pytest.param("mysql", marks=pytest.mark.slow))


@pytest.fixture(params=STORES)
def store(request):
    return request.getfixturevalue(f"models_{request.param}_store") | {"kind": request.param}


def read(spark, uri, table, path=None, **options):
    reader = spark.read.format("experiments").option("trackingUri", uri).option("table", table)
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load(path) if path is not None else reader.load()


def client_for(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ms(value):
    """A timestamp column read back as epoch milliseconds (independent of the session zone)."""
    return None if value is None else round(value.timestamp() * 1000)


def mlflow_artifacts(client, run_id, path=None, max_depth=None, depth=1):
    """``list_artifacts`` walked recursively: {(path, is_dir, file_size)}."""
    found = set()
    for info in client.list_artifacts(run_id, path):
        found.add((info.path, info.is_dir, None if info.is_dir else info.file_size))
        if info.is_dir and (max_depth is None or depth < max_depth):
            found |= mlflow_artifacts(client, run_id, info.path, max_depth, depth + 1)
    return found


def all_runs(client, view_type):
    from mlflow.entities import ViewType

    experiments = client.search_experiments(view_type=ViewType.ALL)
    return client.search_runs([e.experiment_id for e in experiments], run_view_type=getattr(ViewType, view_type), max_results=10_000)


# --------------------------------------------------------------------------------------------
# artifacts


@pytest.mark.parametrize("view_type", ["ACTIVE_ONLY", "DELETED_ONLY", "ALL"])
def test_artifacts_equal_list_artifacts_walked(spark, store, view_type):
    client = client_for(store["uri"])
    expected = set()
    for run in all_runs(client, view_type):
        expected |= {(run.info.experiment_id, run.info.run_id, *item) for item in mlflow_artifacts(client, run.info.run_id)}
    rows = read(spark, store["uri"], "artifacts", viewType=view_type).collect()
    got = [(r.experiment_id, r.run_id, r.path, r.is_dir, r.file_size) for r in rows]
    assert len(got) == len(set(got)) and set(got) == expected
    assert rows[0].asDict().keys() == {"experiment_id", "run_id", "path", "is_dir", "file_size"}
    by_run = defaultdict(set)
    for experiment_id, run_id, path, is_dir, size in got:
        by_run[run_id].add((path, is_dir, size))
    art = by_run[store["runs"]["art-run"]] if view_type != "DELETED_ONLY" else set()
    if view_type == "DELETED_ONLY":
        assert set(by_run) == {store["runs"]["deleted-run"]}
    else:
        # what the fixture logged is there: nested and empty folders, unicode names, the large file
        assert {("deep/a/b/c/leaf.txt", False, 5), ("empty", True, None), (UNICODE_PATH, False, len("ünïcødé ✓\n".encode())),
                ("large.bin", False, LARGE_FILE_BYTES), ("deep/a/b", True, None)} <= art
        assert store["runs"]["deleted-run"] not in by_run or view_type == "ALL"


def test_artifacts_narrowing_matches_mlflow(spark, store):
    client = client_for(store["uri"])
    art, beta = store["runs"]["art-run"], store["runs"]["beta-run"]
    uri = store["uri"]
    # artifactPath: paths stay relative to the run's root, as list_artifacts(run_id, path) gives them
    rows = read(spark, uri, "artifacts", runIds=art, artifactPath="deep/").collect()
    assert {(r.path, r.is_dir, r.file_size) for r in rows} == mlflow_artifacts(client, art, "deep")
    # maxDepth counts levels below the listed folder
    for depth in (1, 2):
        rows = read(spark, uri, "artifacts", runIds=art, maxDepth=str(depth)).collect()
        assert {(r.path, r.is_dir, r.file_size) for r in rows} == mlflow_artifacts(client, art, max_depth=depth)
    rows = read(spark, uri, "artifacts", runIds=art, artifactPath="deep", maxDepth="1").collect()
    assert {r.path for r in rows} == {"deep/a"}
    # a path the run does not have: nothing, as list_artifacts answers
    assert read(spark, uri, "artifacts", runIds=art, artifactPath="no/such").count() == 0 == len(client.list_artifacts(art, "no/such"))
    # load path and runIds select runs as for the run tables
    rows = read(spark, uri, "artifacts", path="models-beta").collect()
    assert {r.run_id for r in rows} == {beta} and {r.path for r in rows} == {"config.json"}


def test_artifacts_with_content(spark, store, tmp_path):
    from pyspark.sql import functions as F

    client = client_for(store["uri"])
    art = store["runs"]["art-run"]
    df = read(spark, store["uri"], "artifacts", runIds=art, withContent="true")
    assert df.schema.fieldNames()[-1] == "content" and dict(df.dtypes)["content"] == "binary"
    rows = {r.path: r for r in df.collect()}
    for path in ("eval/metrics.json", "eval/table.csv", UNICODE_PATH, "deep/a/b/c/leaf.txt"):
        local = client.download_artifacts(art, path, str(tmp_path))
        with open(local, "rb") as handle:
            assert rows[path].content == handle.read()
    assert rows["large.bin"].content is None  # above the default bound (16 MiB)
    assert rows["empty"].content is None and rows["empty"].is_dir
    # small logged files can be parsed in Spark
    parsed = (df.where("path = 'eval/metrics.json'")
                .select(F.from_json(F.col("content").cast("string"), "accuracy double, f1 double").alias("m"))
                .select("m.*").first())
    assert (parsed.accuracy, parsed.f1) == (0.91, 0.88)
    # a bound of 10 bytes keeps only the tiny files
    bounded = read(spark, store["uri"], "artifacts", runIds=art, withContent="true", maxContentBytes="10")
    small = {r.path: r.content for r in bounded.collect()}
    assert small["deep/a/b/c/leaf.txt"] == b"leaf\n" and small["eval/metrics.json"] is None


# --------------------------------------------------------------------------------------------
# models


def model_row(model):
    return {
        "model_id": model.model_id, "experiment_id": model.experiment_id, "name": model.name,
        "source_run_id": model.source_run_id, "status": str(model.status), "model_type": model.model_type,
        "artifact_location": model.artifact_location, "creation_time": model.creation_timestamp,
        "last_updated_time": model.last_updated_timestamp, "params": dict(model.params or {}), "tags": dict(model.tags or {}),
    }


def our_model_row(row):
    return {
        "model_id": row.model_id, "experiment_id": row.experiment_id, "name": row.name,
        "source_run_id": row.source_run_id, "status": row.status, "model_type": row.model_type,
        "artifact_location": row.artifact_location, "creation_time": ms(row.creation_time),
        "last_updated_time": ms(row.last_updated_time), "params": dict(row.params), "tags": dict(row.tags),
    }


def metric_tuple(m):
    return (m.key, m.value, m.step, m.timestamp, m.run_id, m.dataset_name, m.dataset_digest)


def our_metric_tuple(m):
    return (m.key, m.value, m.step, ms(m.timestamp), m.run_id, m.dataset_name, m.dataset_digest)


def latest_per_dataset(points):
    """MLflow's file store answer: per (key, dataset) the max by (step, timestamp, value)."""
    groups = defaultdict(list)
    for point in points:
        groups[(point[0], point[5], point[6])].append(point)
    return {max(group, key=lambda p: (p[2], p[3], p[1])) for group in groups.values()}


def test_models_equal_search_logged_models(spark, store):
    client = client_for(store["uri"])
    experiment_ids = list(store["experiments"].values())
    expected = {m.model_id: m for m in client.search_logged_models(experiment_ids, max_results=1000)}
    rows = {r.model_id: r for r in read(spark, store["uri"], "models").collect()}
    assert set(rows) == set(expected) == {store["models"][n] for n in ("sk-model", "init-ready", "init-pending", "beta-model")}
    for model_id, row in rows.items():
        reference = client.get_logged_model(model_id)
        assert our_model_row(row) == model_row(reference) == model_row(expected[model_id])
        assert row.lifecycle_stage == "active"
        ours = [our_metric_tuple(m) for m in row.metrics]
        theirs = {metric_tuple(m) for m in reference.metrics or []}
        assert len(ours) == len(set(ours))
        if store["kind"] != "file":
            assert set(ours) == theirs  # SQL stores return every point
        else:
            # the file store's get_logged_model keeps the latest point per (key, dataset); the
            # table holds every point, as on SQL stores
            assert latest_per_dataset(ours) == theirs
    ready = rows[store["models"]["init-ready"]]
    assert ready.status == "READY" and ready.model_type == "regressor"
    assert dict(ready.params) == {"alpha": "0.1", "solver": "lbfgs"} and dict(ready.tags)["stage"] == "ü"
    assert sorted((m.dataset_name, m.step) for m in ready.metrics) == sorted(
        (name, step) for name in ("holdout", "train") for step in range(3)
    )
    assert all(m.run_id == store["runs"]["sk-run"] for m in ready.metrics)
    assert rows[store["models"]["init-pending"]].status == "PENDING"
    sk = rows[store["models"]["sk-model"]]
    assert {(m.key, m.dataset_name) for m in sk.metrics} == {("rmse", "train"), ("rmse", "holdout"), ("fit_seconds", None)}


def test_models_view_type_and_narrowing(spark, store):
    uri, models, runs = store["uri"], store["models"], store["runs"]
    deleted = read(spark, uri, "models", viewType="DELETED_ONLY").collect()
    assert [(r.model_id, r.lifecycle_stage) for r in deleted] == [(models["init-deleted"], "deleted")]
    assert read(spark, uri, "models", viewType="ALL").count() == 5
    by_run = read(spark, uri, "models", runIds=runs["sk-run"]).collect()
    assert {r.model_id for r in by_run} == {models["sk-model"], models["init-ready"]}
    beta = read(spark, uri, "models", path="models-beta").collect()
    assert [r.model_id for r in beta] == [models["beta-model"]]
    # a run's models are found by joining on source_run_id
    runs_df = read(spark, uri, "runs", path="models-alpha")
    models_df = read(spark, uri, "models")
    joined = runs_df.join(models_df, runs_df.run_id == models_df.source_run_id)
    assert {r.run_name for r in joined.select("run_name").collect()} == {"sk-run"}


def test_models_agree_across_stores(spark, models_sqlite_store, models_file_store):
    def summary(store):
        rows = read(spark, store["uri"], "models", viewType="ALL").collect()
        return sorted(
            (r.name, r.status, r.model_type, r.lifecycle_stage, sorted(r.params.items()),
             sorted((m.key, m.value, m.step, m.dataset_name) for m in r.metrics))
            for r in rows
        )

    assert summary(models_sqlite_store) == summary(models_file_store)


# --------------------------------------------------------------------------------------------
# registry


def test_registered_models_equal_search_registered_models(spark, store):
    client = client_for(store["uri"])
    expected = {
        m.name: (m.description, m.creation_timestamp, m.last_updated_timestamp, dict(m.tags),
                 {alias: str(version) for alias, version in m.aliases.items()})
        for m in client.search_registered_models(max_results=1000)
    }
    rows = read(spark, store["uri"], "registered_models").collect()
    got = {r.name: (r.description, ms(r.creation_time), ms(r.last_updated_time), dict(r.tags), dict(r.aliases)) for r in rows}
    assert got == expected
    assert set(got) == {"reg-sk", "reg-two", "reg-empty"}
    assert got["reg-two"][4] == {"champion": "2", "challenger": "3"} and got["reg-two"][3] == {"owner": "ml-team"}


def version_row(v):
    return {
        "name": v.name, "version": str(v.version), "source": v.source, "run_id": v.run_id, "status": v.status,
        "current_stage": v.current_stage, "description": v.description, "creation_time": v.creation_timestamp,
        "last_updated_time": v.last_updated_timestamp, "tags": dict(v.tags), "aliases": sorted(v.aliases),
    }


def our_version_row(r):
    return {
        "name": r.name, "version": r.version, "source": r.source, "run_id": r.run_id, "status": r.status,
        "current_stage": r.current_stage, "description": r.description, "creation_time": ms(r.creation_time),
        "last_updated_time": ms(r.last_updated_time), "tags": dict(r.tags), "aliases": list(r.aliases),
    }


def test_model_versions_equal_search_model_versions(spark, store):
    client = client_for(store["uri"])
    from support.stores import mlflow_tracking_uri

    with mlflow_tracking_uri(store["uri"]):  # mlflow's file registry reads logged models through the global URI
        expected = {(v.name, str(v.version)): v for v in client.search_model_versions(max_results=1000)}
    rows = {(r.name, r.version): r for r in read(spark, store["uri"], "model_versions").collect()}
    assert set(rows) == set(expected) == {("reg-sk", "1"), ("reg-two", "2"), ("reg-two", "3")}
    for key, row in rows.items():
        # search_model_versions leaves aliases empty on SQL stores; get_model_version fills them
        with mlflow_tracking_uri(store["uri"]):
            aliases = sorted(client.get_model_version(*key).aliases)
        assert our_version_row(row) == version_row(expected[key]) | {"aliases": aliases}
        if store["kind"] == "file":
            assert row.model_id == expected[key].model_id
        else:
            # MLflow's SQL registry stores no model id (it answers None); the table takes it from
            # the version's source models:/<model_id>
            assert expected[key].model_id is None and row.source == f"models:/{row.model_id}"
    models = store["models"]
    assert rows[("reg-two", "2")].model_id == models["init-ready"] and rows[("reg-two", "3")].model_id == models["beta-model"]
    assert rows[("reg-sk", "1")].model_id == models["sk-model"] and rows[("reg-sk", "1")].run_id == store["runs"]["sk-run"]
    assert rows[("reg-two", "2")].aliases == ["champion"]
    assert dict(rows[("reg-two", "2")].tags) == {"quality": "second", "validated": "true"}


def test_model_versions_deleted_and_by_run(spark, store):
    uri = store["uri"]
    deleted = read(spark, uri, "model_versions", viewType="DELETED_ONLY").collect()
    assert [(r.name, r.version, r.current_stage) for r in deleted] == [("reg-two", "1", "Deleted_Internal")]
    assert read(spark, uri, "model_versions", viewType="ALL").count() == 4
    by_run = read(spark, uri, "model_versions", runIds=store["runs"]["beta-run"]).collect()
    assert [(r.name, r.version) for r in by_run] == [("reg-two", "3")]


def test_options_that_do_not_apply_are_errors(spark, models_sqlite_store):
    uri = models_sqlite_store["uri"]
    cases = [
        ("registered_models", {"runIds": "x"}, None, "option 'runIds' does not apply to table 'registered_models'"),
        ("model_versions", {}, "models-alpha", "load() takes no path"),
        ("models", {"metricKeys": "acc"}, None, "option 'metricKeys' does not apply to table 'models'"),
        ("runs", {"maxDepth": "1"}, None, "option 'maxDepth' only applies to table 'artifacts'"),
    ]
    for table, options, path, message in cases:
        with pytest.raises(Exception) as error:
            read(spark, uri, table, path=path, **options).schema  # noqa: B018
        assert message in str(error.value)


# --------------------------------------------------------------------------------------------
# faults: an unsupported scheme, a missing artifact root, an unreadable folder


def _sqlite_copy_with_artifact_uris(store, tmp_path, uris: dict) -> str:
    source = store["uri"].split("sqlite:///", 1)[1]
    target = tmp_path / "faults.db"
    shutil.copy(source, target)
    connection = sqlite3.connect(target)
    with connection:
        for run_name, uri in uris.items():
            connection.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (uri, store["runs"][run_name]))
    connection.close()
    return f"sqlite:///{target}"


def test_unsupported_scheme_and_missing_root(spark, models_sqlite_store, tmp_path, caplog):
    from pyspark_experiments.datasource import plan_read
    from pyspark_experiments.errors import StoreNotFoundError, UnsupportedStoreError
    from pyspark_experiments.stores import open_store
    from pyspark_experiments.uri import resolve_tracking_uri

    store = models_sqlite_store
    uri = _sqlite_copy_with_artifact_uris(store, tmp_path, {
        "beta-run": "mlflow-artifacts:/2/abc/artifacts",
        "sk-run": "ftp://files.example.com/mlruns/1/abc/artifacts",
        "deleted-run": str(tmp_path / "unmounted" / "1" / "abc" / "artifacts"),
    })
    for run_ids, message in (
        (store["runs"]["beta-run"], "'mlflow-artifacts' artifacts are served by a tracking server's artifacts API: "
                                    "read this table through the server"),
        (store["runs"]["sk-run"], "scheme 'ftp' is not supported"),
        (store["runs"]["deleted-run"], "does not exist, nor does the folder that holds the experiment's artifact locations"),
    ):
        with pytest.raises(Exception) as error:
            read(spark, uri, "artifacts", viewType="ALL", runIds=run_ids).collect()
        assert message in str(error.value) and run_ids in str(error.value)
    # PERMISSIVE: the other runs are listed, the three are skipped and reported
    rows = read(spark, uri, "artifacts", viewType="ALL", mode="PERMISSIVE").collect()
    assert {r.run_id for r in rows} == {store["runs"]["art-run"]}
    selection, partitions = plan_read({"trackingUri": uri, "table": "artifacts", "viewType": "ALL", "mode": "PERMISSIVE"})
    backend = open_store(resolve_tracking_uri(uri))
    with caplog.at_level(logging.WARNING, logger="pyspark_experiments"):
        for partition in partitions:
            list(backend.read(partition))
    report = caplog.text
    assert "skipped 3" in report and all(store["runs"][n] in report for n in ("beta-run", "sk-run", "deleted-run"))
    # the errors are the package's classes
    selection, partitions = plan_read({"trackingUri": uri, "table": "artifacts", "runIds": store["runs"]["beta-run"]})
    with pytest.raises(UnsupportedStoreError):
        list(backend.read(partitions[0]))
    selection, partitions = plan_read({"trackingUri": uri, "table": "artifacts", "viewType": "ALL", "runIds": store["runs"]["deleted-run"]})
    with pytest.raises(StoreNotFoundError):
        list(backend.read(partitions[0]))


def _as_nobody(function):
    """Run ``function()`` in a forked child with uid/gid 65534 (root ignores file permissions)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                outcome = ("ok", function())
            except Exception as error:  # reported to the parent
                outcome = ("error", type(error).__name__, str(error))
            os.write(write_end, pickle.dumps(outcome))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unreadable_folder(models_file_store, caplog):
    from pyspark_experiments.stores.artifacts import plan_artifacts, read_artifacts
    from pyspark_experiments.stores.base import Selection

    store = models_file_store
    run_id = store["runs"]["art-run"]
    source = next(
        os.path.join(root, run_id, "artifacts") for root in (os.path.join(store["uri"], e) for e in store["experiments"].values())
        if os.path.isdir(os.path.join(root, run_id))
    )
    folder = tempfile.mkdtemp(prefix="unreadable-")
    try:
        os.chmod(folder, 0o755)
        root = os.path.join(folder, "1", run_id, "artifacts")
        shutil.copytree(source, root)
        for parent in (folder, os.path.dirname(os.path.dirname(root)), os.path.dirname(root)):
            os.chmod(parent, 0o755)
        for dirpath, dirnames, _ in os.walk(root):
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), 0o755)
        os.chmod(root, 0o755)
        os.chmod(os.path.join(root, "deep", "a"), 0o000)

        def listing(mode):
            def run():
                partitions = plan_artifacts(Selection("artifacts", ("1",), mode=mode), [("1", run_id, root)])
                with caplog.at_level(logging.WARNING, logger="pyspark_experiments"):
                    rows = [row for p in partitions for b in read_artifacts(p) for row in b.to_pylist()]
                return sorted(r["path"] for r in rows), caplog.text
            return run

        outcome = _as_nobody(listing("FAILFAST"))
        assert outcome[0] == "error" and outcome[1] == "StoreConnectionError"
        assert "folder 'deep/a' cannot be listed" in outcome[2] and run_id in outcome[2]
        status, (paths, report) = _as_nobody(listing("PERMISSIVE"))
        assert status == "ok" and "skipped 1" in report and "deep/a" in report
        # everything else is listed: the folder itself, its siblings; nothing below it
        assert "deep/a" in paths and "eval/metrics.json" in paths and "large.bin" in paths
        assert not any(p.startswith("deep/a/") for p in paths)
    finally:
        os.chmod(os.path.join(folder, "1", run_id, "artifacts", "deep", "a"), 0o755)
        shutil.rmtree(folder)


def test_artifact_json_content_round_trip(spark, models_file_store):
    """withContent on the file store: a logged dict parses back to what was logged."""
    rows = read(spark, models_file_store["uri"], "artifacts", path="models-beta", withContent="true").collect()
    assert [json.loads(r.content) for r in rows] == [{"k": 1}]


# --------------------------------------------------------------------------------------------
# an object store: S3 (moto's server on loopback), listed through pyarrow.fs.S3FileSystem


def test_artifacts_on_s3_equal_list_artifacts(spark, models_s3_store, tmp_path):
    from support.models_store import S3_BUCKET

    store = models_s3_store
    client = client_for(store["uri"])
    expected = set()
    for run in all_runs(client, "ALL"):
        assert run.info.artifact_uri.startswith(f"s3://{S3_BUCKET}/store/")
        expected |= {(run.info.run_id, *item) for item in mlflow_artifacts(client, run.info.run_id)}
    rows = read(spark, store["uri"], "artifacts", viewType="ALL").collect()
    got = {(r.run_id, r.path, r.is_dir, r.file_size) for r in rows}
    assert got == expected and len(rows) == len(got)
    art = store["runs"]["art-run"]
    assert (art, "large.bin", False, LARGE_FILE_BYTES) in got and (art, UNICODE_PATH, False, len("ünïcødé ✓\n".encode())) in got
    # narrowing and content work the same way on an object store
    rows = read(spark, store["uri"], "artifacts", runIds=art, artifactPath="deep", maxDepth="2", withContent="true").collect()
    assert {(r.path, r.is_dir, r.file_size) for r in rows} == mlflow_artifacts(client, art, "deep", max_depth=2)
    content = {r.path: r.content for r in read(spark, store["uri"], "artifacts", runIds=art, withContent="true").collect()}
    with open(client.download_artifacts(art, "eval/table.csv", str(tmp_path)), "rb") as handle:
        assert content["eval/table.csv"] == handle.read()
    assert content["large.bin"] is None


def test_missing_bucket_is_a_missing_artifact_root(spark, models_s3_store, tmp_path):
    store = models_s3_store
    uri = _sqlite_copy_with_artifact_uris(store, tmp_path, {"beta-run": "s3://no-such-bucket/store/2/abc/artifacts"})
    beta = store["runs"]["beta-run"]
    with pytest.raises(Exception) as error:
        read(spark, uri, "artifacts", runIds=beta).collect()
    assert "does not exist" in str(error.value) and "no-such-bucket" in str(error.value) and beta in str(error.value)
    rows = read(spark, uri, "artifacts", mode="PERMISSIVE").collect()
    assert beta not in {r.run_id for r in rows} and store["runs"]["art-run"] in {r.run_id for r in rows}
