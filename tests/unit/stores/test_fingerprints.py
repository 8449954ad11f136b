"""Run fingerprints (the sync's scan): each change mlflow can make to a run moves exactly the
part of the fingerprint that covers it, on a SQLite store (digests with Arrow) and a file store
(file sizes and times), both written by real mlflow.
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pytest

from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.fingerprints import digests_by_run, fingerprint_parts
from pyspark_experiments.uri import resolve_tracking_uri


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One SQLite and one file store, logged once (copied by each test)."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("fingerprints")
    stores = {"sqlite": f"sqlite:///{folder}/mlflow.db", "file": str(folder / "mlruns")}
    found = {}
    for kind, uri in stores.items():
        client = MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment("e")
        runs = []
        for index in range(3):
            run = client.create_run(experiment, run_name=f"r{index}", tags={"team": "a"}).info.run_id
            client.log_param(run, "lr", "0.1")
            client.log_param(run, "nested/depth", "2")
            client.log_metric(run, "loss", 0.5, step=0)
            runs.append(run)
        found[kind] = (experiment, runs)
    return folder, found


@pytest.fixture(params=["sqlite", "file"])
def store(request, written, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    folder, found = written
    if request.param == "sqlite":
        shutil.copyfile(folder / "mlflow.db", tmp_path / "mlflow.db")
        uri = f"sqlite:///{tmp_path}/mlflow.db"
    else:
        shutil.copytree(folder / "mlruns", tmp_path / "mlruns")
        uri = str(tmp_path / "mlruns")
    experiment, runs = found[request.param]
    return MlflowClient(tracking_uri=uri), open_store(resolve_tracking_uri(uri)), experiment, runs


def parts(store, experiment) -> dict[str, dict[str, str]]:
    found = store.run_fingerprints(Selection("runs", (experiment,), view_type="ALL"))
    assert all(owner == experiment for owner, _ in found.values())
    return {run_id: fingerprint_parts(value) for run_id, (_, value) in found.items()}


def changed(before, after) -> dict[str, set[str]]:
    return {run_id: {p for p in after[run_id] if after[run_id][p] != before.get(run_id, {}).get(p)}
            for run_id in after if after[run_id] != before.get(run_id)}


def test_each_change_moves_its_part_only(store):
    import time

    from mlflow.entities import Dataset, DatasetInput, InputTag

    client, backend, experiment, runs = store
    before = parts(backend, experiment)
    assert parts(backend, experiment) == before  # nothing changed: the same fingerprints
    time.sleep(0.01)  # file store: a rewritten file gets another modification time

    client.set_tag(runs[0], "team", "b")
    client.log_param(runs[1], "extra", "1")
    client.set_terminated(runs[2], "FAILED")
    client.log_metric(runs[0], "loss", 0.25, step=1)  # metrics are the positions' business
    after = parts(backend, experiment)
    assert changed(before, after) == {runs[0]: {"tags"}, runs[1]: {"params"}, runs[2]: {"run"}}

    dataset = Dataset(name="d", digest="abc", source_type="local", source="/data")
    client.log_inputs(runs[1], [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
    assert changed(after, parts(backend, experiment)) == {runs[1]: {"inputs"}}

    new = client.create_run(experiment).info.run_id
    assert set(parts(backend, experiment)) == {*runs, new}


def test_digests_ignore_order_and_keep_values_apart():
    rows = pa.table({"run": ["r", "r", "s"], "key": ["a", "b", "a"], "value": ["1", "2", "1"]})
    digests = digests_by_run(rows)
    assert digests == digests_by_run(rows.take([2, 1, 0]))
    assert digests["r"] != digests["s"]

    def one(key, value):
        return digests_by_run(pa.table({"run": ["r"], "key": pa.array([key], pa.string()),
                                        "value": pa.array([value], pa.string())}))["r"]

    assert one("a:1", "") != one("a", ":1")  # where one value ends and the next begins
    assert one("a", None) != one("a", "")  # null is not empty
    assert one("a", "-") != one("a", None)
    assert digests_by_run(pa.table({"run": pa.array([], pa.string()), "v": pa.array([], pa.string())})) == {}
    # numbers are digested as their text
    assert digests_by_run(pa.table({"run": ["r"], "v": pa.array([5], pa.int64())})) == \
        digests_by_run(pa.table({"run": ["r"], "v": ["5"]}))
