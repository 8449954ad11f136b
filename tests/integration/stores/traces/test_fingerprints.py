"""``Store.trace_fingerprints`` of every store kind: each trace once, the part that changed
changes and only it, a deleted trace gone, a new one there.

Stores written by real mlflow 3.18 (tests/support/traces_store.py), changed with real mlflow:
a tag set on a trace after the fact moves its ``trace`` part, a feedback logged on a trace its
``assessments`` part; a trace deleted with ``delete_traces`` is gone; nothing moves what did not
change. SQLite and a file store in the default tier; PostgreSQL and a tracking server (one
``traces/search`` pass) in the slow tier.
"""

from __future__ import annotations

import pytest

from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.fingerprints import TRACE_FINGERPRINT_PARTS, fingerprint_parts
from pyspark_experiments.uri import resolve_tracking_uri
from support.stores import mlflow_tracking_uri, postgres_server  # noqa: F401  (the session fixture)
from support.traces_store import log_trace_data


def fingerprints(uri: str) -> dict[str, tuple[str, dict]]:
    store = open_store(resolve_tracking_uri(uri))
    assert store.capabilities.trace_fingerprints
    experiments = tuple(e.experiment_id for e in store.list_experiments())
    found = store.trace_fingerprints(Selection("traces", experiments, view_type="ALL"))
    return {trace_id: (experiment_id, fingerprint_parts(value, TRACE_FINGERPRINT_PARTS))
            for trace_id, (experiment_id, value) in found.items()}


def changed_parts(before: dict, after: dict) -> dict[str, set[str]]:
    return {trace_id: {part for part in TRACE_FINGERPRINT_PARTS if before[trace_id][1][part] != parts[part]}
            for trace_id, (_, parts) in after.items() if trace_id in before}


def check_changes(uri: str, ids: dict) -> None:
    import mlflow
    from mlflow import MlflowClient

    before = fingerprints(uri)
    assert set(before) == {ids[label] for label in ("answer", "answer-2", "failing", "solo")}
    assert {experiment_id for experiment_id, _ in before.values()} == {
        MlflowClient(uri).get_experiment_by_name(name).experiment_id for name in ("traces-alpha", "traces-beta")}
    assert fingerprints(uri) == before  # nothing changed, nothing moves

    with mlflow_tracking_uri(uri):
        client = MlflowClient(uri)
        client.set_trace_tag(ids["solo"], "reviewed", "later")
        mlflow.log_feedback(trace_id=ids["answer-2"], name="helpful", value=0.5)
        alpha = client.get_experiment_by_name("traces-alpha").experiment_id
        client.delete_traces(experiment_id=alpha, trace_ids=[ids["failing"]])
        with mlflow.start_span(name="new"):
            pass
        new = mlflow.get_last_active_trace_id()
    after = fingerprints(uri)
    assert set(after) == set(before) - {ids["failing"]} | {new}
    assert changed_parts(before, after) == {ids["solo"]: {"trace"}, ids["answer-2"]: {"assessments"},
                                            ids["answer"]: set()}


def test_sqlite_trace_fingerprints_follow_each_change(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    check_changes(uri, log_trace_data(uri, str(tmp_path / "artifacts")))


def test_file_store_trace_fingerprints_follow_each_change(tmp_path):
    root = str(tmp_path / "mlruns")
    check_changes(root, log_trace_data(root))


@pytest.mark.slow
def test_postgres_trace_fingerprints_follow_each_change(tmp_path, postgres_server):  # noqa: F811
    from support.postgres import create_database

    uri = create_database(*postgres_server, "mlflow_trace_fingerprints")
    check_changes(uri, log_trace_data(uri, str(tmp_path / "artifacts")))


@pytest.mark.slow
def test_tracking_server_trace_fingerprints_follow_each_change(tmp_path):
    from support.mlflow_server import running_mlflow_server

    with running_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path)) as url:
        check_changes(url, log_trace_data(url))
