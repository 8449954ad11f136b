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

# the fixture logs the whole models content through a server (sklearn, a 17 MiB file): minutes
pytestmark = pytest.mark.slow


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


def test_model_tables_over_rest_equal_mlflow_client(rest_models):
    from mlflow import MlflowClient

    url, _, logged, _ = rest_models
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    models = as_rows(read_table({"trackingUri": url, "table": "models"}))
    expected = client.search_logged_models(experiment_ids=list(logged["experiments"].values()))
    assert sorted((m["model_id"], m["name"], m["source_run_id"]) for m in models) == sorted(
        (m.model_id, m.name, m.source_run_id) for m in expected)
    versions = as_rows(read_table({"trackingUri": url, "table": "model_versions"}))
    assert sorted((v["name"], v["version"], v["run_id"], v["source"], tuple(v["aliases"])) for v in versions) == sorted(
        (v.name, str(v.version), v.run_id, v.source, tuple(sorted(v.aliases))) for v in client.search_model_versions())
    registered = as_rows(read_table({"trackingUri": url, "table": "registered_models"}))
    assert sorted((r["name"], dict(r["tags"]), dict(r["aliases"])) for r in registered) == sorted(
        (m.name, m.tags, {k: str(v) for k, v in m.aliases.items()}) for m in client.search_registered_models())


@pytest.mark.parametrize("table", ["models", "model_versions"])
def test_deleted_records_are_refused_over_rest_not_dropped(rest_models, table):
    url = rest_models[0]
    with pytest.raises(UnsupportedStoreError, match="answers active records only.*viewType ACTIVE_ONLY"):
        read_table({"trackingUri": url, "table": table, "viewType": "ALL"})


def test_mlflow_artifacts_read_directly_says_read_through_the_server(rest_models):
    _, backend, logged, _ = rest_models
    with pytest.raises(UnsupportedStoreError, match="read this table through the server"):
        read_table({"trackingUri": backend, "table": "artifacts", "runIds": logged["runs"]["art-run"]})


@pytest.mark.slow
def test_server_without_artifacts_api_fails_clearly(rest_models):
    url, backend, logged, folder = rest_models
    with running_mlflow_server(backend, folder, extra_args=("--no-serve-artifacts",)) as plain:
        options = {"trackingUri": plain, "table": "artifacts", "runIds": logged["runs"]["art-run"], "maxRetries": "1"}
        with pytest.raises(StoreConnectionError, match="--no-serve-artifacts.*restart it with --serve-artifacts"):
            read_table(options)
        rows = as_rows(read_table({**options, "mode": "PERMISSIVE"}))
        assert rows == []
