"""Options, planning and artifact listing of the artifacts / models / registry tables, without Spark."""

from __future__ import annotations

import os

import pytest

from pyspark_experiments import tables
from pyspark_experiments.datasource import ReadRequest
from pyspark_experiments.errors import ConfigurationError, StoreNotFoundError, UnsupportedStoreError
from pyspark_experiments.stores.artifacts import DEFAULT_CONTENT_MAX_BYTES, plan_artifacts, read_artifacts, resolve_artifact_uri
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.models import logged_model_status, model_id_from_source, version_admitted

URI = "sqlite:////tmp/none.db"


def request(**options):
    return ReadRequest.from_options({"trackingUri": URI, **options}, environ={})


def test_new_tables_are_table_values_with_their_contract_columns():
    assert tables.check_table("Model_Versions") == "model_versions"
    assert tables.spark_schema("artifacts").fieldNames() == ["experiment_id", "run_id", "path", "is_dir", "file_size"]
    assert tables.artifacts_schema(True).fieldNames()[-1] == "content"
    assert tables.spark_schema("models").fieldNames() == [
        "model_id", "experiment_id", "name", "source_run_id", "status", "model_type", "artifact_location",
        "creation_time", "last_updated_time", "lifecycle_stage", "params", "tags", "metrics",
    ]
    metric = tables.spark_schema("models")["metrics"].dataType.elementType
    assert metric.fieldNames() == ["key", "value", "step", "timestamp", "run_id", "dataset_name", "dataset_digest"]
    assert tables.spark_schema("registered_models").fieldNames() == [
        "name", "description", "creation_time", "last_updated_time", "tags", "aliases",
    ]
    assert tables.spark_schema("model_versions").fieldNames() == [
        "name", "version", "source", "run_id", "model_id", "status", "current_stage", "description",
        "creation_time", "last_updated_time", "tags", "aliases",
    ]
    # the synced tables are unchanged
    assert tables.TABLE_NAMES == ("runs", "metrics", "params", "tags", "experiments", "inputs")
    with pytest.raises(ValueError, match="model_versions"):
        tables.check_table("modelz")


def test_artifact_options():
    r = request(table="artifacts", artifactPath="/deep/a/", maxDepth="2", withContent="TRUE")
    assert (r.artifact_path, r.max_depth, r.content_max_bytes) == ("deep/a", 2, DEFAULT_CONTENT_MAX_BYTES)
    assert request(table="artifacts", withContent="true", maxContentBytes="100").content_max_bytes == 100
    assert request(table="artifacts").content_max_bytes is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table": "artifacts", "maxDepth": "0"}, "option 'maxDepth': expected a positive integer"),
        ({"table": "artifacts", "artifactPath": "eval/../../etc"}, "option 'artifactPath': expected a folder relative"),
        ({"table": "artifacts", "withContent": "yes"}, "option 'withContent': expected true or false"),
        ({"table": "artifacts", "maxContentBytes": "10"}, "option 'maxContentBytes' needs option('withContent', 'true')"),
        ({"table": "artifacts", "metricKeys": "loss"}, "option 'metricKeys' does not apply to table 'artifacts'"),
        ({"table": "runs", "artifactPath": "x"}, "option 'artifactPath' only applies to table 'artifacts'"),
        ({"table": "models", "startTimeAfter": "0"}, "option 'startTimeAfter' does not apply to table 'models'"),
        ({"table": "registered_models", "runIds": "a"}, "option 'runIds' does not apply to table 'registered_models'"),
        ({"table": "registered_models", "viewType": "DELETED_ONLY"}, "'DELETED_ONLY' does not apply to table 'registered_models'"),
        ({"table": "model_versions", "path": "my-experiment"}, "load() takes no path"),
        ({"table": "model_versions", "maxRowsPerTrigger": "5"}, "option 'maxRowsPerTrigger' does not apply"),
    ],
)
def test_options_that_do_not_apply_name_the_option(options, message):
    with pytest.raises(ValueError) as error:  # ConfigurationError (the positive-int check: a ValueError)
        request(**options)
    assert message in str(error.value)
    assert isinstance(error.value, ConfigurationError) or "positive integer" in message


def test_registry_reads_need_no_experiments():
    class NoExperiments:
        def list_experiments(self, view_type="ALL"):
            raise AssertionError("the registry tables must not resolve experiments")

    selection = request(table="model_versions", viewType="ALL", runIds="r1").selection(NoExperiments(), environ={})
    assert (selection.experiment_ids, selection.view_type, selection.run_ids) == ((), "ALL", ("r1",))


def test_small_helpers():
    assert model_id_from_source("models:/m-0123456789abcdef0123456789abcdef") == "m-0123456789abcdef0123456789abcdef"
    assert model_id_from_source("models:/reg-two/2") is None and model_id_from_source(None) is None
    assert [logged_model_status(v) for v in (0, 1, 2, 3, "READY", None)] == ["UNSPECIFIED", "PENDING", "READY", "FAILED", "READY", None]
    assert [version_admitted(s, v) for s in ("None", "Deleted_Internal") for v in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")] == [
        True, False, True, False, True, True,
    ]


def test_plan_artifacts_chunks_runs_and_resolves_relative_paths():
    runs = [("1", f"r{i}", f"mlruns/1/r{i}/artifacts") for i in range(5)]
    parts = plan_artifacts(Selection("artifacts", ("1",), rows_per_partition=2), runs, cwd="/data")
    assert [len(p.work) for p in parts] == [2, 2, 1]
    assert parts[0].work[0] == ("1", "r0", "/data/mlruns/1/r0/artifacts")
    assert len(plan_artifacts(Selection("artifacts", ("1",), num_partitions=1), runs, cwd="/data")) == 1


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mlflow-artifacts:/1/abc/artifacts", "read this table through the server"),
        ("dbfs:/databricks/mlflow/1/abc", "scheme 'dbfs' is not supported"),
        ("wasbs://c@acct.blob.core.windows.net/x", "scheme 'wasbs' is not supported"),
    ],
)
def test_unsupported_artifact_schemes_are_named(uri, message):
    with pytest.raises(UnsupportedStoreError) as error:
        resolve_artifact_uri(uri)
    assert message in str(error.value)


def test_local_and_file_uris_resolve_to_the_same_folder():
    assert resolve_artifact_uri("file:///tmp/a%20b/")[1] == "/tmp/a b"
    assert resolve_artifact_uri("/tmp/a b")[1] == "/tmp/a b"
    assert resolve_artifact_uri("s3://bucket/p/1/abc/artifacts")[1] == "bucket/p/1/abc/artifacts"


def _tree(root):
    for relative, data in {"a/b/c.txt": b"c", "a/d.json": b"{}", "top.bin": b"x" * 100}.items():
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    os.makedirs(os.path.join(root, "empty"))


def _rows(selection, runs):
    return [row for p in plan_artifacts(selection, runs) for b in read_artifacts(p) for row in b.to_pylist()]


def test_read_artifacts_lists_a_local_tree(tmp_path):
    root = tmp_path / "store" / "1" / "r1" / "artifacts"
    _tree(str(root))
    rows = _rows(Selection("artifacts", ("1",), content_max_bytes=10), [("1", "r1", f"file://{root}")])
    assert [(r["path"], r["is_dir"], r["file_size"], r["content"]) for r in rows] == [
        ("a", True, None, None), ("a/b", True, None, None), ("a/b/c.txt", False, 1, b"c"),
        ("a/d.json", False, 2, b"{}"), ("empty", True, None, None), ("top.bin", False, 100, None),
    ]
    deep = _rows(Selection("artifacts", ("1",), artifact_path="a", max_depth=1), [("1", "r1", str(root))])
    assert [r["path"] for r in deep] == ["a/b", "a/d.json"]


def test_missing_run_folder_is_empty_but_a_missing_store_is_an_error(tmp_path):
    (tmp_path / "store" / "1").mkdir(parents=True)
    never_logged = str(tmp_path / "store" / "1" / "r2" / "artifacts")
    assert _rows(Selection("artifacts", ("1",)), [("1", "r2", never_logged)]) == []
    unmounted = str(tmp_path / "mnt" / "1" / "r3" / "artifacts")
    with pytest.raises(StoreNotFoundError, match="run r3: artifact root"):
        _rows(Selection("artifacts", ("1",)), [("1", "r3", unmounted)])
    assert _rows(Selection("artifacts", ("1",), mode="PERMISSIVE"), [("1", "r3", unmounted), ("1", "r2", never_logged)]) == []
