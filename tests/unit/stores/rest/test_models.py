"""REST JSON -> rows of ``artifacts``, ``models``, ``registered_models``, ``model_versions`` (no server, no JVM).

The answers below have the shapes a real ``mlflow server`` 3.17 sends (checked against one in
tests/integration/stores/rest/test_model_tables.py); here the parsing rules and malformed answers.
"""

from __future__ import annotations

import math

import pytest

from pyspark_experiments.errors import MalformedRecordError, StoreConnectionError, UnsupportedStoreError
from pyspark_experiments.stores.base import Partition, Selection
from pyspark_experiments.stores.models import model_batches, model_version_batches, registered_model_batches
from pyspark_experiments.stores.problems import Problems
from pyspark_experiments.stores.rest.artifacts import artifacts_api_path, file_entries, is_proxied, list_proxied_run
from pyspark_experiments.stores.rest.models import (
    logged_model_rows,
    model_version_rows,
    plan_model_tables,
    registered_model_rows,
    with_version_aliases,
)

MODEL = {
    "info": {
        "model_id": "m-57aa719e210a4cd6985d44972ec5d605", "experiment_id": "1", "name": "init-ready",
        "creation_timestamp_ms": 1795846805499, "last_updated_timestamp_ms": 1795846808592,
        "artifact_uri": "mlflow-artifacts:/1/models/m-57aa719e210a4cd6985d44972ec5d605/artifacts",
        "status": "LOGGED_MODEL_READY", "model_type": "regressor", "source_run_id": "ff6d",
        "tags": [{"key": "team", "value": "vision"}, {"key": "stage", "value": "ü"}],
    },
    "data": {
        "params": [{"key": "alpha", "value": "0.1"}],
        "metrics": [
            {"key": "accuracy", "value": 0.8, "timestamp": 1795846806625, "step": 0, "dataset_name": "train",
             "dataset_digest": "ae64f2cb", "model_id": "m-57aa719e210a4cd6985d44972ec5d605", "run_id": "ff6d"},
            {"key": "loss", "value": "NaN", "timestamp": 1795846806626, "step": "3"},
        ],
    },
}


def test_logged_model_rows_and_batches():
    row = logged_model_rows({"models": [MODEL]})[0]
    assert row["status"] == "READY" and row["lifecycle_stage"] == "active"
    assert row["tags"] == {"team": "vision", "stage": "ü"} and row["params"] == {"alpha": "0.1"}
    assert row["creation_time"] == 1795846805499 and row["artifact_location"].startswith("mlflow-artifacts:/1/models/")
    accuracy, loss = row["metrics"]
    assert (accuracy["dataset_name"], accuracy["dataset_digest"], accuracy["run_id"]) == ("train", "ae64f2cb", "ff6d")
    assert math.isnan(loss["value"]) and loss["step"] == 3 and loss["dataset_name"] is None
    batch = next(model_batches([row]))
    assert batch.num_rows == 1 and batch.column("metrics")[0][0]["key"].as_py() == "accuracy"


def test_logged_model_left_out_strings_read_as_mlflow_client_reads_them():
    info = {k: v for k, v in MODEL["info"].items() if k not in ("model_type", "source_run_id")}
    row = logged_model_rows({"models": [{"info": info}]})[0]
    # LoggedModel.from_proto: an unset string field is ""
    assert (row["model_type"], row["source_run_id"], row["metrics"], row["params"]) == ("", "", [], {})


@pytest.mark.parametrize("status, name", [("LOGGED_MODEL_PENDING", "PENDING"), ("LOGGED_MODEL_UPLOAD_FAILED", "FAILED"),
                                          ("LOGGED_MODEL_STATUS_UNSPECIFIED", "UNSPECIFIED"), ("SOMETHING_NEW", "SOMETHING_NEW")])
def test_logged_model_statuses(status, name):
    assert logged_model_rows({"models": [{"info": {**MODEL["info"], "status": status}}]})[0]["status"] == name


@pytest.mark.parametrize("answer, words", [
    ({"models": {"x": 1}}, "expected a list of objects in 'models'"),
    ({"models": [{"info": {"name": "n"}}]}, "a model without a model_id"),
    ({"models": [{"info": {**MODEL["info"], "creation_timestamp_ms": "soon"}}]}, "creation_timestamp_ms: expected an integer, got 'soon'"),
    ({"models": [{"info": MODEL["info"], "data": {"metrics": [{"key": "a", "value": "high"}]}}]}, "metric 'a': expected a number"),
    ({"models": [{"info": {**MODEL["info"], "tags": ["team"]}}]}, "tags: expected {'key', 'value'} objects"),
])
def test_malformed_logged_models_are_named(answer, words):
    with pytest.raises(MalformedRecordError, match=words.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        logged_model_rows(answer)


def test_registered_model_rows():
    rows = registered_model_rows({"registered_models": [
        {"name": "reg-two", "creation_timestamp": 5, "last_updated_timestamp": "6", "description": "two",
         "tags": [{"key": "owner", "value": "ml-team"}], "aliases": [{"alias": "champion", "version": "2"}],
         "latest_versions": [{"name": "reg-two", "version": "3"}]},
        {"name": "reg-empty", "creation_timestamp": 1, "last_updated_timestamp": 1},
    ]})
    assert rows[0] == {"name": "reg-two", "description": "two", "creation_time": 5, "last_updated_time": 6,
                       "tags": {"owner": "ml-team"}, "aliases": {"champion": "2"}}
    assert rows[1]["description"] == "" and rows[1]["aliases"] == {} and rows[1]["tags"] == {}
    assert next(registered_model_batches(rows)).num_rows == 2
    with pytest.raises(MalformedRecordError, match="alias 'x'"):
        registered_model_rows({"registered_models": [{"name": "m", "aliases": ["x"]}]})


def test_model_version_rows_take_aliases_from_registered_models():
    versions = model_version_rows({"model_versions": [
        {"name": "reg-two", "version": "2", "source": "models:/m-0123456789abcdef0123456789abcdef", "run_id": "r",
         "status": "READY", "current_stage": "None", "description": "", "creation_timestamp": 7, "last_updated_timestamp": 8,
         "tags": [{"key": "validated", "value": "true"}]},
        {"name": "reg-sk", "version": "1", "source": "runs:/r/model", "model_id": "m-given"},
    ]})
    assert versions[0]["model_id"] == "m-0123456789abcdef0123456789abcdef" and versions[1]["model_id"] == "m-given"
    assert versions[0]["description"] == "" and versions[1]["description"] is None and versions[1]["run_id"] is None
    merged = with_version_aliases(versions, [{"name": "reg-two", "aliases": {"champion": "2", "old": "1"}}])
    assert merged[0]["aliases"] == ["champion"] and merged[1]["aliases"] == []
    batch = next(model_version_batches(merged))
    assert batch.column("version").to_pylist() == ["1", "2"]  # sorted by name, version
    with pytest.raises(MalformedRecordError, match="model version of 'm': expected an integer, got 'two'"):
        model_version_rows({"model_versions": [{"name": "m", "version": "two"}]})


def test_artifact_listing_entries():
    assert is_proxied("mlflow-artifacts:/1/r/artifacts") and not is_proxied("s3://b/1/r/artifacts") and not is_proxied(None)
    assert artifacts_api_path("mlflow-artifacts:/1/r/artifacts") == "1/r/artifacts"
    assert artifacts_api_path("mlflow-artifacts://127.0.0.1:5000/1/r/artifacts/") == "1/r/artifacts"
    assert artifacts_api_path("mlflow-artifacts:/1/r/artifacts/unicod%C3%A9") == "1/r/artifacts/unicodé"
    answer = {"files": [{"path": "deep", "is_dir": True}, {"path": "large.bin", "is_dir": False, "file_size": 17825792},
                        {"path": "数据 ✓.txt", "is_dir": False, "file_size": "13"}]}
    assert file_entries(answer, "") == [("deep", True, None), ("large.bin", False, 17825792), ("数据 ✓.txt", False, 13)]
    assert file_entries(answer, "unicodé")[2] == ("unicodé/数据 ✓.txt", False, 13)
    assert file_entries({}, "x") == []  # what the server answers for a path that does not exist


@pytest.mark.parametrize("name", ["..", "/etc/passwd", "a/../../b", ""])
def test_unsafe_artifact_names_are_malformed(name):
    with pytest.raises(MalformedRecordError, match="unsafe entry name"):
        file_entries({"files": [{"path": name, "is_dir": False}]}, "")


class FakeClient:
    """Answers as the artifacts API does, from a dict of folder -> listing (records its requests)."""

    def __init__(self, tree, fail=None):
        self.tree, self.fail, self.calls = tree, fail, []

    def call(self, method, endpoint, params=None, body=None, api="mlflow", raw=False):
        self.calls.append((endpoint, (params or {}).get("path")))
        if self.fail and self.fail == (params or {}).get("path"):
            raise StoreConnectionError(f"GET http://127.0.0.1:1/api/2.0/{api}/{endpoint}: HTTP 500")
        if raw:
            return b"bytes of " + endpoint.encode()
        return {"files": self.tree.get(params["path"], [])}


TREE = {
    "1/r/artifacts": [{"path": "a", "is_dir": True}, {"path": "top.txt", "is_dir": False, "file_size": 3}],
    "1/r/artifacts/a": [{"path": "b", "is_dir": True}, {"path": "big.bin", "is_dir": False, "file_size": 100}],
    "1/r/artifacts/a/b": [{"path": "leaf.txt", "is_dir": False, "file_size": 5}],
}


def test_walk_depth_path_and_content_bound():
    client = FakeClient(TREE)
    rows = list_proxied_run(client, Selection("artifacts", ("1",)), "r", "mlflow-artifacts:/1/r/artifacts", Problems("FAILFAST"))
    assert [r[:3] for r in rows] == [("a", True, None), ("a/b", True, None), ("a/b/leaf.txt", False, 5),
                                     ("a/big.bin", False, 100), ("top.txt", False, 3)]
    assert all(r[3] is None for r in rows) and all(endpoint == "artifacts" for endpoint, _ in client.calls)
    rows = list_proxied_run(FakeClient(TREE), Selection("artifacts", ("1",), artifact_path="a/", max_depth=1, content_max_bytes=10),
                            "r", "mlflow-artifacts:/1/r/artifacts", Problems("FAILFAST"))
    assert [(r[0], r[3]) for r in rows] == [("a/b", None), ("a/big.bin", None)]
    rows = list_proxied_run(FakeClient(TREE), Selection("artifacts", ("1",), content_max_bytes=10), "r",
                            "mlflow-artifacts:/1/r/artifacts", Problems("FAILFAST"))
    assert dict((r[0], r[3]) for r in rows)["a/b/leaf.txt"] == b"bytes of artifacts/1/r/artifacts/a/b/leaf.txt"


def test_failed_folder_fails_or_is_reported():
    selection = Selection("artifacts", ("1",))
    with pytest.raises(StoreConnectionError, match="run r: artifact root 'mlflow-artifacts:/1/r/artifacts': folder 'a' cannot be "
                                                   "listed: GET .*HTTP 500"):
        list_proxied_run(FakeClient(TREE, fail="1/r/artifacts/a"), selection, "r", "mlflow-artifacts:/1/r/artifacts", Problems("FAILFAST"))
    problems = Problems("PERMISSIVE")
    rows = list_proxied_run(FakeClient(TREE, fail="1/r/artifacts/a"), selection, "r", "mlflow-artifacts:/1/r/artifacts", problems)
    assert [r[0] for r in rows] == ["a", "top.txt"]  # only what is under the failing folder is missing
    assert len(problems.where) == 1 and "folder 'a'" in problems.where[0] and "HTTP 500" in problems.where[0]


class FakeStore:
    """What planning uses of a RestStore: its connection and its declared capabilities."""

    connection = "connection"

    @property
    def capabilities(self):
        from pyspark_experiments.stores.rest import RestStore
        from pyspark_experiments.uri import resolve_tracking_uri

        return RestStore(resolve_tracking_uri("http://127.0.0.1:5000")).capabilities


@pytest.mark.parametrize("table", ["models", "model_versions"])
def test_deleted_view_types_are_refused_not_answered_short(table):
    assert table in FakeStore().capabilities.active_only_tables
    with pytest.raises(UnsupportedStoreError, match="answers active records only"):
        plan_model_tables(FakeStore(), Selection(table, ("1",), view_type="DELETED_ONLY"))
    partitions = plan_model_tables(FakeStore(), Selection(table, ("1",)))
    assert len(partitions) == 1 and isinstance(partitions[0], Partition)
    assert len(plan_model_tables(FakeStore(), Selection("registered_models", (), view_type="ALL"))) == 1
