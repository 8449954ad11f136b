"""``artifacts``, ``models``, ``registered_models`` and ``model_versions`` over a real ``mlflow server``.

The content of tests/support/models_store.py is logged through a server on loopback (artifacts
proxied: ``mlflow-artifacts:/`` URIs, the server's default). Over REST, each table equals what
mlflow's client answers through the same server (``list_artifacts`` walked recursively,
``download_artifacts``) and what we read directly from the server's SQLite backend.
"""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from pyspark_experiments.errors import StoreConnectionError, UnsupportedStoreError
from support.mlflow_server import running_mlflow_server
from support.models_store import LARGE_FILE_BYTES, UNICODE_PATH, log_models_data

# The `rest_models` fixture logs the whole models content through a server (sklearn, a 17 MiB
# file): minutes; `small_server` below starts a server of its own (~20 s): all in the slow tier
# (the conversions of these tables' JSON run by default: tests/unit/stores/rest/test_models.py).
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def rest_models(tmp_path_factory):
    """``(url, backend_uri, logged)``: a server over SQLite with the models content logged through it."""
    folder = tmp_path_factory.mktemp("rest-models")
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    with running_mlflow_server(backend, str(folder)) as url:
        yield url, backend, log_models_data(url, str(folder)), str(folder)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def read_table(options: dict, path: str | None = None) -> pa.Table | None:
    """Plan and read every partition as the executors would (pickled), without Spark."""
    from pyspark_experiments.datasource import ReadRequest, plan_read
    from pyspark_experiments.stores import open_store

    options = {**options, **({"path": path} if path else {})}
    _, partitions = plan_read(options, environ={})
    request = ReadRequest.from_options(options, environ={})
    batches = []
    for partition in partitions:
        store = open_store(request.uri, dict(request.store_options))
        batches.extend(store.read(pickle.loads(pickle.dumps(partition))))
    return pa.Table.from_batches(batches) if batches else None


def as_rows(table: pa.Table | None) -> list[dict]:
    return [] if table is None else table.to_pylist()


def walked(client, run_id, path=None):
    """``list_artifacts`` walked recursively: {(path, is_dir, file_size)}."""
    found = set()
    for info in client.list_artifacts(run_id, path):
        found.add((info.path, info.is_dir, None if info.is_dir else info.file_size))
        if info.is_dir:
            found |= walked(client, run_id, info.path)
    return found


@slow
def test_artifacts_over_rest_equal_list_artifacts_walked(rest_models, tmp_path):
    from mlflow import MlflowClient

    url, _, logged, _ = rest_models
    client = MlflowClient(tracking_uri=url)
    rows = as_rows(read_table({"trackingUri": url, "table": "artifacts", "viewType": "ALL"}))
    got = {(r["run_id"], r["path"], r["is_dir"], r["file_size"]) for r in rows}
    assert len(got) == len(rows)
    expected = set()
    for run_id in logged["runs"].values():
        assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:/")
        expected |= {(run_id, *item) for item in walked(client, run_id)}
    assert got == expected
    art = logged["runs"]["art-run"]
    assert {(art, "deep/a/b/c/leaf.txt", False, 5), (art, "large.bin", False, LARGE_FILE_BYTES),
            (art, UNICODE_PATH, False, len("ünïcødé ✓\n".encode()))} <= got
    # narrowing: artifactPath and maxDepth as list_artifacts(run_id, path) gives them
    deep = as_rows(read_table({"trackingUri": url, "table": "artifacts", "runIds": art, "artifactPath": "deep/"}))
    assert {(r["path"], r["is_dir"], r["file_size"]) for r in deep} == walked(client, art, "deep")
    top = as_rows(read_table({"trackingUri": url, "table": "artifacts", "runIds": art, "maxDepth": "1"}))
    assert {(r["path"], r["is_dir"], r["file_size"]) for r in top} == {
        (i.path, i.is_dir, None if i.is_dir else i.file_size) for i in client.list_artifacts(art)}


@slow
def test_artifact_content_over_rest_equals_the_files(rest_models, tmp_path):
    from mlflow import MlflowClient

    url, _, logged, _ = rest_models
    client = MlflowClient(tracking_uri=url)
    art = logged["runs"]["art-run"]
    rows = {r["path"]: r for r in as_rows(read_table({"trackingUri": url, "table": "artifacts", "runIds": art, "withContent": "true"}))}
    for path, row in rows.items():
        if row["is_dir"] or row["file_size"] > 16 * 1024 * 1024:
            assert row["content"] is None
            continue
        with open(client.download_artifacts(art, path, str(tmp_path)), "rb") as handle:
            assert row["content"] == handle.read(), path
    assert rows["large.bin"]["content"] is None and rows["eval/metrics.json"]["content"].startswith(b'{"accuracy"')


@slow
@pytest.mark.parametrize("table", ["models", "registered_models", "model_versions"])
def test_model_tables_over_rest_equal_direct_read(rest_models, table):
    url, backend, logged, _ = rest_models
    rest = as_rows(read_table({"trackingUri": url, "table": table}))
    direct = as_rows(read_table({"trackingUri": backend, "table": table}))
    assert rest == direct and rest
    if table == "models":
        assert {r["name"] for r in rest} == {"sk-model", "init-ready", "init-pending", "beta-model"}
        ready = next(r for r in rest if r["name"] == "init-ready")
        assert len(ready["metrics"]) == 6 and ready["status"] == "READY" and dict(ready["params"]) == {"alpha": "0.1", "solver": "lbfgs"}
    if table == "model_versions":
        assert {(r["name"], r["version"]) for r in rest} == {("reg-sk", "1"), ("reg-two", "2"), ("reg-two", "3")}
        assert next(r for r in rest if r["version"] == "2" and r["name"] == "reg-two")["aliases"] == ["champion"]


@slow
def test_model_tables_over_rest_equal_mlflow_client(rest_models):
    from mlflow import MlflowClient

    url, _, logged, _ = rest_models
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    models = as_rows(read_table({"trackingUri": url, "table": "models"}))
    expected = client.search_logged_models(experiment_ids=list(logged["experiments"].values()))
    assert sorted((m["model_id"], m["name"], m["source_run_id"]) for m in models) == sorted(
        (m.model_id, m.name, m.source_run_id) for m in expected)
    versions = as_rows(read_table({"trackingUri": url, "table": "model_versions"}))
    assert sorted((v["name"], v["version"], v["run_id"], v["source"]) for v in versions) == sorted(
        (v.name, str(v.version), v.run_id, v.source) for v in client.search_model_versions())
    # the server's version search answers no aliases (mlflow's client shows none there): ours come from
    # the registered models' aliases, as the direct stores read them
    by_alias = {(m.name, str(version)): alias for m in client.search_registered_models() for alias, version in m.aliases.items()}
    assert {(v["name"], v["version"]): a for v in versions for a in v["aliases"]} == by_alias == {
        ("reg-two", "2"): "champion", ("reg-two", "3"): "challenger"}
    registered = as_rows(read_table({"trackingUri": url, "table": "registered_models"}))
    assert sorted((r["name"], dict(r["tags"]), dict(r["aliases"])) for r in registered) == sorted(
        (m.name, m.tags, {k: str(v) for k, v in m.aliases.items()}) for m in client.search_registered_models())


@slow
@pytest.mark.parametrize("table", ["models", "model_versions"])
def test_deleted_records_are_refused_over_rest_not_dropped(rest_models, table):
    url = rest_models[0]
    with pytest.raises(UnsupportedStoreError, match="answers active records only.*viewType ACTIVE_ONLY"):
        read_table({"trackingUri": url, "table": table, "viewType": "ALL"})


@slow
def test_mlflow_artifacts_read_directly_says_read_through_the_server(rest_models):
    _, backend, logged, _ = rest_models
    with pytest.raises(UnsupportedStoreError, match="read this table through the server"):
        read_table({"trackingUri": backend, "table": "artifacts", "runIds": logged["runs"]["art-run"]})


@slow
def test_server_without_artifacts_api_fails_clearly(rest_models):
    url, backend, logged, folder = rest_models
    with running_mlflow_server(backend, folder, extra_args=("--no-serve-artifacts",)) as plain:
        options = {"trackingUri": plain, "table": "artifacts", "runIds": logged["runs"]["art-run"], "maxRetries": "1"}
        with pytest.raises(StoreConnectionError, match="--no-serve-artifacts.*restart it with --serve-artifacts"):
            read_table(options)
        rows = as_rows(read_table({**options, "mode": "PERMISSIVE"}))
        assert rows == []


# --------------------------------------------------------------------------------------------
# the default tier: a small content logged through its own server (seconds, not minutes)


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """``(url, backend_uri, runs, model_id)``: nested artifacts, a logged model with a dataset
    metric, a registered model with two versions (one deleted), an alias and tags."""
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    from support.stores import mlflow_tracking_uri

    folder = tmp_path_factory.mktemp("rest-small")
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    source = folder / "source"
    for path, text in {"a/b/leaf.txt": "leaf\n", "a/mid.json": '{"k": 1}\n', "top.csv": "x,y\n1,2\n",
                       "unicodé/数据 ✓.txt": "ü\n"}.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(text, encoding="utf-8")
    with running_mlflow_server(backend, str(folder)) as url:
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        previous = mlflow.get_registry_uri()
        with mlflow_tracking_uri(url):
            mlflow.set_registry_uri(url)
            try:
                experiment = client.create_experiment("small")
                with mlflow.start_run(experiment_id=experiment) as run:
                    mlflow.log_artifacts(str(source))
                    mlflow.log_text("second\n", "a/b/second.txt")
                    model = mlflow.initialize_logged_model(name="small-model", source_run_id=run.info.run_id,
                                                           params={"p": "1"}, tags={"t": "ü"})
                    dataset = mlflow.data.from_numpy(np.arange(4.0).reshape(-1, 1), targets=np.arange(4.0), name="train")
                    mlflow.log_metric("acc", 0.5, step=2, model_id=model.model_id, dataset=dataset)
                    mlflow.finalize_logged_model(model.model_id, "READY")
                with mlflow.start_run(experiment_id=experiment) as other:
                    mlflow.log_text("x\n", "only.txt")
                client.create_registered_model("small-reg", tags={"owner": "me"}, description="d")
                for _ in range(2):
                    client.create_model_version("small-reg", source=f"models:/{model.model_id}", model_id=model.model_id)
                client.set_registered_model_alias("small-reg", "champion", "2")
                client.delete_model_version("small-reg", "1")
            finally:
                mlflow.set_registry_uri(previous)
        yield url, backend, (run.info.run_id, other.info.run_id), model.model_id


@slow
def test_small_artifacts_and_content_equal_mlflow_client(small_server, tmp_path):
    from mlflow import MlflowClient

    url, backend, run_ids, _ = small_server
    client = MlflowClient(tracking_uri=url)
    rows = as_rows(read_table({"trackingUri": url, "table": "artifacts", "withContent": "true"}))
    assert {(r["run_id"], r["path"], r["is_dir"], r["file_size"]) for r in rows} == {
        (run_id, *item) for run_id in run_ids for item in walked(client, run_id)}
    assert len(rows) == len({(r["run_id"], r["path"]) for r in rows})
    for row in rows:
        if not row["is_dir"]:
            with open(client.download_artifacts(row["run_id"], row["path"], str(tmp_path / row["run_id"])), "rb") as handle:
                assert row["content"] == handle.read(), row["path"]
    assert {r["path"] for r in rows if r["content"] == "ü\n".encode()} == {"unicodé/数据 ✓.txt"}
    # the backend store read directly: a clear error, not an empty table
    with pytest.raises(UnsupportedStoreError, match="read this table through the server"):
        read_table({"trackingUri": backend, "table": "artifacts"})
    problems = as_rows(read_table({"trackingUri": backend, "table": "artifacts", "mode": "PERMISSIVE"}))
    assert problems == []


@slow
@pytest.mark.parametrize("table", ["models", "registered_models", "model_versions"])
def test_small_model_tables_equal_direct_read_and_client(small_server, table):
    from mlflow import MlflowClient

    url, backend, run_ids, model_id = small_server
    rest = as_rows(read_table({"trackingUri": url, "table": table}))
    assert rest == as_rows(read_table({"trackingUri": backend, "table": table})) and rest
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    if table == "models":
        (model,) = client.search_logged_models(experiment_ids=[rest[0]["experiment_id"]])
        assert (rest[0]["model_id"], rest[0]["source_run_id"], rest[0]["status"]) == (model_id, run_ids[0], "READY")
        assert dict(rest[0]["params"]) == model.params and dict(rest[0]["tags"]) == model.tags
        assert [(m["key"], m["value"], m["step"]) for m in rest[0]["metrics"]] == [(m.key, m.value, m.step) for m in model.metrics]
    elif table == "model_versions":
        assert [(v["version"], v["aliases"], v["model_id"]) for v in rest] == [("2", ["champion"], model_id)]
        assert [str(v.version) for v in client.search_model_versions("name='small-reg'")] == ["2"]
    else:
        (registered,) = client.search_registered_models()
        assert (rest[0]["description"], dict(rest[0]["tags"]), dict(rest[0]["aliases"])) == (
            registered.description, registered.tags, {k: str(v) for k, v in registered.aliases.items()})


@slow
@pytest.mark.parametrize("table", ["models", "model_versions"])
def test_small_deleted_view_refused_over_rest(small_server, table):
    with pytest.raises(UnsupportedStoreError, match="answers active records only"):
        read_table({"trackingUri": small_server[0], "table": table, "viewType": "DELETED_ONLY"})
