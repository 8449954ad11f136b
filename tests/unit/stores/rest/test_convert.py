"""MLflow REST JSON to Arrow, and the REST store's planning helpers (no server, no Spark)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from pyspark_experiments import tables
from pyspark_experiments.errors import MalformedRecordError
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.problems import Problems
from pyspark_experiments.stores.rest import convert
from pyspark_experiments.stores.rest.store import RUN_IDS_PER_FILTER, run_filter, run_queries, series_digest

# A run as MLflow 3.17's server writes it (runs/search), trimmed.
RUN = {
    "info": {"run_uuid": "r1", "run_id": "r1", "experiment_id": "7", "run_name": "a-01", "user_id": "alice",
             "status": "FINISHED", "start_time": 1705190400321, "end_time": 1705194000321,
             "artifact_uri": "mlflow-artifacts:/7/r1/artifacts", "lifecycle_stage": "active"},
    "data": {"metrics": [{"key": "nan_last", "value": "NaN", "timestamp": 1705190401322, "step": 1},
                         {"key": "pos_inf", "value": 1.7976931348623157e308, "timestamp": 1705190401322, "step": "1"}],
             "params": [{"key": "lr", "value": "0.1"}, {"key": "empty", "value": ""}],
             "tags": [{"key": "mlflow.runName", "value": "a-01"}]},
    "inputs": {"dataset_inputs": [
        {"tags": [{"key": "mlflow.data.context", "value": "training"}, {"key": "split", "value": "train"}],
         "dataset": {"name": "train-set", "digest": "77be7612", "source_type": "http", "source": "{}", "profile": "{}"}},
        {"dataset": {"name": "test-set", "digest": "f754a7c3", "source_type": "http", "source": "{}"}}]},
    "outputs": {},
}
RUNNING = {"info": {"run_id": "r0", "experiment_id": "7", "status": "RUNNING", "start_time": 5, "lifecycle_stage": "active"},
           "data": {"tags": [{"key": "mlflow.user", "value": "bob"}]}, "inputs": {}}


def test_runs_table_from_json():
    batch = next(convert.runs_batches([RUN, RUNNING]))
    assert batch.schema == tables.arrow_schema(tables.RUNS)
    first, second = batch.to_pylist()
    assert first["run_id"] == "r0" and first["end_time"] is None and first["metrics"] == [] and first["params"] == []
    assert math.isnan(dict(second["metrics"])["nan_last"]) and dict(second["metrics"])["pos_inf"] == 1.7976931348623157e308
    assert second["params"] == [("empty", ""), ("lr", "0.1")]
    assert second["start_time"] == datetime(2024, 1, 14, 0, 0, 0, 321000, tzinfo=UTC)
    assert (second["status"], second["run_name"], second["user_id"], second["experiment_id"]) == ("FINISHED", "a-01", "alice", "7")


def test_parent_run_id_is_the_parent_tag():
    child = {"info": {"run_id": "r2", "experiment_id": "7", "status": "FINISHED", "lifecycle_stage": "active"},
             "data": {"tags": [{"key": "mlflow.runName", "value": "child"}, {"key": "mlflow.parentRunId", "value": "r1"}]}}
    rows = next(convert.runs_batches([RUN, child, RUNNING])).to_pylist()
    assert tables.arrow_schema(tables.RUNS).names[-1] == "parent_run_id"
    assert [(r["run_id"], r["parent_run_id"]) for r in rows] == [("r0", None), ("r1", None), ("r2", "r1")]


def test_params_tags_and_inputs_from_json():
    params = next(convert.key_value_batches("params", [RUN])).to_pylist()
    assert params == [{"experiment_id": "7", "run_id": "r1", "key": "empty", "value": ""},
                      {"experiment_id": "7", "run_id": "r1", "key": "lr", "value": "0.1"}]
    tags = next(convert.key_value_batches("tags", [RUN, RUNNING])).to_pylist()
    assert [(t["run_id"], t["key"]) for t in tags] == [("r0", "mlflow.user"), ("r1", "mlflow.runName")]
    inputs = next(convert.inputs_batches([RUN, RUNNING]))
    assert inputs.schema == tables.arrow_schema(tables.INPUTS)
    rows = inputs.to_pylist()
    assert [(r["dataset_name"], r["context"], r["dataset_schema"]) for r in rows] == [("test-set", None, None),
                                                                                       ("train-set", "training", None)]
    assert rows[1]["tags"] == [("mlflow.data.context", "training"), ("split", "train")]


def test_experiments_from_json():
    experiments = [
        {"experiment_id": "10", "name": "ten", "artifact_location": "a", "lifecycle_stage": "deleted",
         "last_update_time": 2, "creation_time": "1", "tags": [{"key": "team", "value": "x"}], "workspace": "default"},
        {"experiment_id": "2", "name": "two", "lifecycle_stage": "active"},
    ]
    rows = next(convert.experiments_batches(experiments)).to_pylist()
    assert [r["experiment_id"] for r in rows] == ["2", "10"]
    assert rows[1]["creation_time"] == datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) and rows[1]["tags"] == [("team", "x")]
    assert rows[0]["creation_time"] is None and rows[0]["tags"] == []


def test_metric_points_and_batching():
    batcher = convert.MetricBatcher()
    batcher.add("7", "r1", "loss", [{"key": "loss", "value": "Infinity", "step": "1099511627776", "timestamp": 3},
                                    {"key": "loss", "value": -0.5, "timestamp": 4}])
    rows = next(batcher.flush()).to_pylist()
    assert rows[0]["value"] == math.inf and rows[0]["step"] == 1099511627776
    assert rows[1]["step"] == 0  # MLflow's default step
    assert list(batcher.flush()) == []


@pytest.mark.parametrize("bad, words", [
    ({"key": "loss", "value": "lots", "step": 0, "timestamp": 1}, "expected a number"),
    ({"key": "loss", "value": 1.0, "step": 0.5, "timestamp": 1}, "expected an integer"),
    ({"key": "acc", "value": 1.0, "step": 0, "timestamp": 1}, "in the history of 'loss'"),
    ("not a point", "expected a metric point object"),
])
def test_malformed_points_fail_or_are_reported(bad, words, caplog):
    with pytest.raises(MalformedRecordError, match=words):
        convert.MetricBatcher().add("7", "r1", "loss", [bad])
    problems = Problems("PERMISSIVE")
    batcher = convert.MetricBatcher(problems)
    batcher.add("7", "r1", "loss", [bad, {"key": "loss", "value": 2.0, "step": 1, "timestamp": 2}])
    assert batcher.rows == 1 and problems.count == 1 and "run r1 metric 'loss'" in problems.where[0]


def test_malformed_runs_fail_with_the_run_named():
    broken = {"info": {"run_id": "r9", "experiment_id": "1", "start_time": "yesterday"}}
    with pytest.raises(MalformedRecordError, match="run r9 start_time: expected an integer"):
        list(convert.runs_batches([broken]))
    problems = Problems("PERMISSIVE")
    assert next(convert.runs_batches([broken, RUNNING], problems)).num_rows == 1 and problems.count == 1


def test_run_filter_and_queries():
    selection = Selection("runs", ("1", "2"), min_start_time_ms=1_704_844_800_000, run_ids=("b", "a", "x'); drop", "a"))
    queries = run_queries(selection)
    assert [(q.experiment_ids, q.run_ids) for q in queries] == [(("1", "2"), ("a", "b"))]
    assert run_filter(selection, queries[0].run_ids) == "attributes.start_time >= 1704844800000 AND attributes.run_id IN ('a', 'b')"
    assert run_filter(Selection("runs", ("1",))) == ""
    many = Selection("runs", tuple(str(i) for i in range(250)), run_ids=tuple(f"r{i}" for i in range(RUN_IDS_PER_FILTER + 1)))
    queries = run_queries(many)
    assert len(queries) == 3 * 2 and max(len(q.experiment_ids) for q in queries) == 100
    assert len(run_queries(Selection("runs", tuple(str(i) for i in range(10))), groups=4)) == 4
    assert run_queries(Selection("runs", ())) == []


def test_series_digest_changes_with_the_series_or_the_run():
    base = series_digest(RUN, "nan_last")
    assert base == series_digest(RUN, "nan_last")
    later = {**RUN, "data": {**RUN["data"], "metrics": [{"key": "nan_last", "value": 1.0, "timestamp": 9, "step": 2}]}}
    ended = {**RUN, "info": {**RUN["info"], "end_time": 1705194000999}}
    assert len({base, series_digest(later, "nan_last"), series_digest(ended, "nan_last"), series_digest(RUN, "pos_inf")}) == 4
