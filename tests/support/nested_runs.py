"""Nested runs, written by the real mlflow client, for the ``parent_run_id`` column's tests.

:func:`log_nested_runs` writes the same runs into any tracking URI, in the experiment
:data:`NESTED_EXPERIMENT`:

- ``grid-search``: a fluent run with children ``grid-0`` .. ``grid-3`` created as MLflow's
  parameter-search autologging creates them (``MlflowClient.create_run`` with the tag
  ``mlflow.parentRunId``), each with a param ``alpha`` and a metric ``mean_test_score``;
  ``grid-3`` is deleted.
- ``trial``: fluent runs three levels deep with ``mlflow.start_run(nested=True)``: children
  ``trial-a`` and ``trial-b``, and ``trial-b-fold`` under ``trial-b``.
- ``adopted``: a top-level run given a parent afterwards (``set_tag``, parent ``trial``).
- ``orphaned``: created as a child of ``grid-search``, its parent tag deleted afterwards.
- ``solo``: a top-level run.

The session-scoped fixtures give ``(tracking URI, {run name: run id})`` for a SQLite store, a
file store, PostgreSQL and MariaDB databases (on the servers of :mod:`support.stores`), and a
real ``mlflow server`` over SQLite, the runs logged through it.

Example::

    >>> runs = log_nested_runs("sqlite:////tmp/n/mlflow.db")
    >>> sorted(runs)[:3]
    ['adopted', 'grid-0', 'grid-1']
"""

from __future__ import annotations

import os

import pytest

from support.stores import BASE_MS, mlflow_tracking_uri

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

__all__ = [
    "NESTED_EXPERIMENT",
    "PARENTS",
    "log_nested_runs",
    "nested_file_store",
    "nested_mysql_store",
    "nested_postgres_store",
    "nested_server",
    "nested_sqlite_store",
]

NESTED_EXPERIMENT = "nest-grid"
PARENT_TAG = "mlflow.parentRunId"

#: Each run's parent by name, as logged (None: a top-level run).
PARENTS = {
    "grid-search": None, "grid-0": "grid-search", "grid-1": "grid-search", "grid-2": "grid-search",
    "grid-3": "grid-search", "trial": None, "trial-a": "trial", "trial-b": "trial", "trial-b-fold": "trial-b",
    "adopted": "trial", "orphaned": None, "solo": None,
}


def log_nested_runs(tracking_uri: str) -> dict[str, str]:
    """Log the nested runs into the store at ``tracking_uri``; returns ``{run name: run id}``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.create_experiment(NESTED_EXPERIMENT)
    runs: dict[str, str] = {}
    with mlflow_tracking_uri(tracking_uri):
        with mlflow.start_run(experiment_id=experiment, run_name="grid-search") as parent:
            runs["grid-search"] = parent.info.run_id
            mlflow.log_params({"cv": "3", "estimator": "Ridge"})
            for i, alpha in enumerate((0.01, 0.1, 1.0, 10.0)):
                start = BASE_MS + i * 1_000
                child = client.create_run(experiment, start_time=start, run_name=f"grid-{i}",
                                          tags={PARENT_TAG: parent.info.run_id, "mlflow.autologging": "sklearn"})
                runs[f"grid-{i}"] = child.info.run_id
                client.log_param(child.info.run_id, "alpha", str(alpha))
                client.log_metric(child.info.run_id, "mean_test_score", 0.5 + 0.1 * i - 0.02 * i * i, timestamp=start + 10)
                client.set_terminated(child.info.run_id, "FINISHED", end_time=start + 500)
            mlflow.log_metric("best_score", 0.62)
        client.delete_run(runs["grid-3"])

        with mlflow.start_run(experiment_id=experiment, run_name="trial") as trial:
            runs["trial"] = trial.info.run_id
            with mlflow.start_run(experiment_id=experiment, run_name="trial-a", nested=True) as a:
                runs["trial-a"] = a.info.run_id
                mlflow.log_metric("mean_test_score", 0.4)
            with mlflow.start_run(experiment_id=experiment, run_name="trial-b", nested=True) as b:
                runs["trial-b"] = b.info.run_id
                with mlflow.start_run(experiment_id=experiment, run_name="trial-b-fold", nested=True) as fold:
                    runs["trial-b-fold"] = fold.info.run_id
                    mlflow.log_metric("mean_test_score", 0.45)

    start = BASE_MS + 60_000
    for name, tags in (("adopted", {}), ("orphaned", {PARENT_TAG: runs["grid-search"]}), ("solo", {})):
        run = client.create_run(experiment, start_time=start, run_name=name, tags=tags)
        runs[name] = run.info.run_id
        client.set_terminated(run.info.run_id, "FINISHED", end_time=start + 100)
    client.set_tag(runs["adopted"], PARENT_TAG, runs["trial"])
    client.delete_tag(runs["orphaned"], PARENT_TAG)
    return runs


@pytest.fixture(scope="session")
def nested_sqlite_store(tmp_path_factory):
    """``(uri, {run name: run id})``: a SQLite store holding the nested runs."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('nested-sqlite') / 'mlflow.db'}"
    return uri, log_nested_runs(uri)


@pytest.fixture(scope="session")
def nested_file_store(tmp_path_factory):
    """``(root, {run name: run id})``: a file store (``mlruns/``) holding the nested runs."""
    root = str(tmp_path_factory.mktemp("nested-file") / "mlruns")
    return root, log_nested_runs(root)


@pytest.fixture(scope="session")
def nested_postgres_store(postgres_server):
    """``(uri, {run name: run id})``: a PostgreSQL database holding the nested runs."""
    from support.postgres import create_database

    uri = create_database(*postgres_server, "mlflow_nested")
    return uri, log_nested_runs(uri)


@pytest.fixture(scope="session")
def nested_mysql_store(mysql_server):
    """``(uri, {run name: run id})``: a MariaDB database holding the nested runs."""
    from support.mysql import create_database

    uri = create_database(*mysql_server, "mlflow_nested")
    return uri, log_nested_runs(uri)


@pytest.fixture(scope="session")
def nested_server(tmp_path_factory):
    """``(url, {run name: run id})``: a real ``mlflow server`` over SQLite, the nested runs
    logged through it."""
    from support.mlflow_server import running_mlflow_server

    folder = tmp_path_factory.mktemp("nested-server")
    with running_mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", str(folder)) as url:
        yield url, log_nested_runs(url)
