"""Stores with artifacts, MLflow 3 logged models and a model registry, written by real mlflow.

:func:`log_models_data` logs the same content into any tracking URI (used as the registry URI
too), so that each store can be compared with what the mlflow client answers for it:

- experiment ``models-alpha``:
  - run ``art-run``: nested artifact folders (``deep/a/b/c/leaf.txt``), an empty folder
    (``tree/empty/``), unicode names (``unicodé/数据 ✓.txt``), a JSON and a CSV file, a file larger
    than :data:`LARGE_FILE_BYTES` (above the default content bound) at the root;
  - run ``sk-run``: a scikit-learn model logged with ``mlflow.sklearn.log_model`` and registered as
    ``reg-sk``, model metrics logged against a dataset (``train``) and without one;
  - run ``deleted-run``: an artifact, then the run is deleted;
  - logged models made with ``mlflow.initialize_logged_model``: ``init-ready`` (params, tags,
    ``model_type``, metrics against two datasets over several steps, finalized READY),
    ``init-pending`` (never finalized), ``init-deleted`` (deleted with ``delete_logged_model``).
- experiment ``models-beta``: run ``beta-run`` with one artifact and an initialized model
  ``beta-model`` whose source run is ``beta-run``.
- registry: ``reg-sk`` (version 1 from ``log_model``); ``reg-two`` with versions 1..3 made from
  ``init-ready`` / ``beta-model``, a description, model and version tags, aliases ``champion`` -> 2
  and ``challenger`` -> 3, version 1 deleted; ``reg-empty`` with a tag and no versions.

Session fixtures: ``models_sqlite_store``, ``models_file_store``, ``models_postgres_store`` (a real
PostgreSQL on loopback), ``models_mysql_store`` (a real MariaDB on loopback) and ``models_s3_store``
(SQLite, artifacts on moto's S3 server) (each a dict: ``uri``,
``runs`` {name: run_id}, ``models`` {name: model_id}, ``experiments`` {name: id}).
"""

from __future__ import annotations

import os
import random

import pytest

from support.ports import free_port
from support.stores import mlflow_tracking_uri

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

__all__ = [
    "LARGE_FILE_BYTES", "S3_BUCKET", "UNICODE_PATH", "copy_sqlite_store", "log_model_changes", "log_models_data",
    "log_registry_changes", "models_file_store", "models_mysql_store",
    "models_postgres_store", "models_s3_store", "models_sqlite_store", "s3_server",
]

#: Size of the large artifact: above the default ``maxContentBytes`` (16 MiB).
LARGE_FILE_BYTES = 17 * 1024 * 1024
UNICODE_PATH = "unicodé/数据 ✓.txt"


def _write(path, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as handle:
        handle.write(data)


def artifact_tree(folder: str) -> str:
    """Write the artifact tree that ``art-run`` logs into ``folder``; return ``folder``."""
    _write(os.path.join(folder, "tree", "deep", "a", "b", "c", "leaf.txt"), "leaf\n")
    _write(os.path.join(folder, "tree", "deep", "a", "sibling.txt"), "sibling\n")
    os.makedirs(os.path.join(folder, "tree", "empty"), exist_ok=True)
    _write(os.path.join(folder, "tree", UNICODE_PATH), "ünïcødé ✓\n")
    _write(os.path.join(folder, "tree", "eval", "metrics.json"), '{"accuracy": 0.91, "f1": 0.88}\n')
    _write(os.path.join(folder, "tree", "eval", "table.csv"), "label,count\ncat,3\ndog,5\n")
    _write(os.path.join(folder, "large.bin"), random.Random(12).randbytes(LARGE_FILE_BYTES))
    return folder


def log_models_data(tracking_uri: str, workdir: str, artifact_root: str | None = None) -> dict:
    """Log the content described in the module docstring into ``tracking_uri``.

    ``artifact_root``: the experiments' artifact location prefix (``None``: the store's default).
    """
    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    tree = artifact_tree(os.path.join(workdir, "artifact-source"))
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    runs, models, experiments = {}, {}, {}
    previous_registry = mlflow.get_registry_uri()
    with mlflow_tracking_uri(tracking_uri):
        mlflow.set_registry_uri(tracking_uri)
        try:
            for name in ("models-alpha", "models-beta"):
                location = None if artifact_root is None else f"{artifact_root.rstrip('/')}/{name}"
                experiments[name] = client.create_experiment(name, artifact_location=location)
            alpha, beta = experiments["models-alpha"], experiments["models-beta"]
            x = np.arange(20, dtype=float).reshape(-1, 1)
            y = 3.0 * x.ravel() + 1.0
            train = mlflow.data.from_numpy(x, targets=y, name="train")
            holdout = mlflow.data.from_numpy(x[:5], targets=y[:5], name="holdout")

            with mlflow.start_run(experiment_id=alpha, run_name="art-run") as run:
                runs["art-run"] = run.info.run_id
                mlflow.log_artifacts(os.path.join(tree, "tree"))
                mlflow.log_artifact(os.path.join(tree, "large.bin"))

            with mlflow.start_run(experiment_id=alpha, run_name="sk-run") as run:
                runs["sk-run"] = run.info.run_id
                info = mlflow.sklearn.log_model(
                    LinearRegression().fit(x, y), name="sk-model", registered_model_name="reg-sk",
                    pip_requirements=["scikit-learn"],  # skips requirement inference (a slow subprocess)
                )
                models["sk-model"] = info.model_id
                mlflow.log_metric("rmse", 0.25, step=1, model_id=info.model_id, dataset=train)
                mlflow.log_metric("rmse", 0.5, step=1, model_id=info.model_id, dataset=holdout)
                mlflow.log_metric("fit_seconds", 1.5, model_id=info.model_id)

                ready = mlflow.initialize_logged_model(
                    name="init-ready", source_run_id=run.info.run_id, model_type="regressor",
                    params={"alpha": "0.1", "solver": "lbfgs"}, tags={"team": "vision", "stage": "ü"},
                )
                models["init-ready"] = ready.model_id
                for step in range(3):
                    mlflow.log_metric("accuracy", 0.8 + step / 100, step=step, model_id=ready.model_id, dataset=train)
                    mlflow.log_metric("accuracy", 0.7 + step / 100, step=step, model_id=ready.model_id, dataset=holdout)
                mlflow.finalize_logged_model(ready.model_id, "READY")

            pending = mlflow.initialize_logged_model(name="init-pending", experiment_id=alpha, params={"p": "1"})
            models["init-pending"] = pending.model_id
            deleted = mlflow.initialize_logged_model(name="init-deleted", experiment_id=alpha, source_run_id=runs["art-run"])
            models["init-deleted"] = deleted.model_id
            client.delete_logged_model(deleted.model_id)

            with mlflow.start_run(experiment_id=alpha, run_name="deleted-run") as run:
                runs["deleted-run"] = run.info.run_id
                mlflow.log_text("gone\n", "notes/gone.txt")
            client.delete_run(runs["deleted-run"])

            with mlflow.start_run(experiment_id=beta, run_name="beta-run") as run:
                runs["beta-run"] = run.info.run_id
                mlflow.log_dict({"k": 1}, "config.json")
                beta_model = mlflow.initialize_logged_model(name="beta-model", source_run_id=run.info.run_id)
                models["beta-model"] = beta_model.model_id
                mlflow.finalize_logged_model(beta_model.model_id, "READY")

            client.create_registered_model("reg-two", tags={"owner": "ml-team"}, description="two models, three versions")
            for model_id, description in (
                (models["init-ready"], "first"), (models["init-ready"], "second"), (models["beta-model"], "third"),
            ):
                client.create_model_version(
                    "reg-two", source=f"models:/{model_id}", model_id=model_id, description=description,
                    tags={"quality": description},
                )
            client.set_registered_model_alias("reg-two", "champion", "2")
            client.set_registered_model_alias("reg-two", "challenger", "3")
            client.set_model_version_tag("reg-two", "2", "validated", "true")
            client.delete_model_version("reg-two", "1")
            client.create_registered_model("reg-empty", tags={"purpose": "placeholder"})
        finally:
            mlflow.set_registry_uri(previous_registry)
    return {"uri": tracking_uri, "runs": runs, "models": models, "experiments": experiments}


_STORES: dict[str, dict] = {}


@pytest.fixture(scope="session")
def models_sqlite_store(tmp_path_factory) -> dict:
    """A SQLite store (artifacts in a local folder beside it) holding :func:`log_models_data`."""
    if "sqlite" not in _STORES:
        folder = tmp_path_factory.mktemp("models-sqlite")
        _STORES["sqlite"] = log_models_data(
            f"sqlite:///{folder / 'mlflow.db'}", str(folder), artifact_root=str(folder / "artifacts")
        )
    return _STORES["sqlite"]


@pytest.fixture(scope="session")
def models_file_store(tmp_path_factory) -> dict:
    """An ``mlruns`` file store (artifacts inside it, MLflow's default) holding :func:`log_models_data`."""
    if "file" not in _STORES:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        folder = tmp_path_factory.mktemp("models-file")
        _STORES["file"] = log_models_data(str(folder / "mlruns"), str(folder))
    return _STORES["file"]


@pytest.fixture(scope="session")
def models_postgres_store(postgres_server, tmp_path_factory) -> dict:
    """A PostgreSQL store on loopback (artifacts in a local folder) holding :func:`log_models_data`."""
    if "postgres" not in _STORES:
        from support.postgres import create_database

        folder = tmp_path_factory.mktemp("models-postgres")
        uri = create_database(*postgres_server, "mlflow_models")
        _STORES["postgres"] = log_models_data(uri, str(folder), artifact_root=str(folder / "artifacts"))
    return _STORES["postgres"]


@pytest.fixture(scope="session")
def models_mysql_store(mysql_server, tmp_path_factory) -> dict:
    """A MariaDB store on loopback (artifacts in a local folder) holding :func:`log_models_data`."""
    if "mysql" not in _STORES:
        from support.mysql import create_database

        folder = tmp_path_factory.mktemp("models-mysql")
        uri = create_database(*mysql_server, "mlflow_models")
        _STORES["mysql"] = log_models_data(uri, str(folder), artifact_root=str(folder / "artifacts"))
    return _STORES["mysql"]


# -- an S3-compatible server on loopback (moto in server mode) -----------------------------------

#: Where the S3 server listens. Set in the environment when this module is imported (test
#: collection, before Spark starts), so that Spark's Python workers, which inherit the
#: environment the JVM started with, reach it too: mlflow (boto3) and our source (pyarrow) both
#: take the endpoint from MLFLOW_S3_ENDPOINT_URL and credentials from the AWS variables.
S3_ENDPOINT = os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}.items():
    os.environ.setdefault(_key, _value)
S3_BUCKET = "mlflow-artifacts"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback at :data:`S3_ENDPOINT`, with the bucket :data:`S3_BUCKET`."""
    from urllib.parse import urlsplit

    import boto3
    from moto.server import ThreadedMotoServer

    address = urlsplit(S3_ENDPOINT)
    server = ThreadedMotoServer(ip_address=address.hostname, port=address.port, verbose=False)
    server.start()
    try:
        boto3.client("s3", endpoint_url=S3_ENDPOINT).create_bucket(Bucket=S3_BUCKET)
        yield S3_ENDPOINT
    finally:
        server.stop()


@pytest.fixture(scope="session")
def models_s3_store(s3_server, tmp_path_factory) -> dict:
    """A SQLite store whose experiments keep their artifacts in ``s3://mlflow-artifacts/store/``."""
    if "s3" not in _STORES:
        folder = tmp_path_factory.mktemp("models-s3")
        _STORES["s3"] = log_models_data(
            f"sqlite:///{folder / 'mlflow.db'}", str(folder), artifact_root=f"s3://{S3_BUCKET}/store"
        )
    return _STORES["s3"]


# -- changes for the sync's incremental tests -----------------------------------------------------


def copy_sqlite_store(store: dict, folder) -> dict:
    """A copy of a session SQLite store of this module (``store``) in ``folder``, to change
    without touching the shared one: its database copied with SQLite's backup API; its runs'
    artifacts stay where they are (read, never written: log new artifacts into a new experiment
    with :func:`log_registry_changes`). Same keys as ``store``."""
    import sqlite3

    source_path = store["uri"].removeprefix("sqlite:///")
    path = os.path.join(str(folder), "mlflow.db")
    with sqlite3.connect(source_path) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    return {**store, "uri": f"sqlite:///{path}"}


def log_registry_changes(store: dict, artifact_location: str) -> dict:
    """A few changes through real mlflow that touch no file of the store's existing runs: a new
    experiment (artifacts at ``artifact_location``) with a run logging artifacts and a logged
    model, a model's tag changed, a new version of ``reg-two`` with the ``champion`` alias moved
    to it. Returns ``{"run": run_id, "model": model_id, "version": version}``."""
    import mlflow
    from mlflow import MlflowClient

    uri = store["uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with mlflow_tracking_uri(uri):
        experiment = client.create_experiment("models-gamma", artifact_location=artifact_location)
        with mlflow.start_run(experiment_id=experiment, run_name="gamma-run") as run:
            mlflow.log_text("new\n", "notes/new.txt")
            model = mlflow.initialize_logged_model(name="gamma-model", source_run_id=run.info.run_id, tags={"t": "1"})
        client.set_logged_model_tags(store["models"]["init-ready"], {"team": "nlp"})
        version = client.create_model_version("reg-two", source=f"models:/{model.model_id}", model_id=model.model_id)
        client.set_registered_model_alias("reg-two", "champion", version.version)
    return {"run": run.info.run_id, "model": model.model_id, "version": version.version}


def log_model_changes(store: dict, *, backend_uri: str | None = None) -> dict:
    """Every kind of change the sync of the optional tables must see, logged with real mlflow
    into a store of :func:`log_models_data` (``store["uri"]``: its tracking URI, or a server's URL
    with ``backend_uri`` the server's backend store):

    - a new run with artifacts in a nested folder;
    - a new artifact logged into an existing run (``beta-run``, resumed as a fluent run);
    - a new logged model (with a metric) and a model's tag changed;
    - a new registered model version, an alias moved, a version deleted, a registered model deleted;
    - a run deleted (``art-run``) and a deleted run purged (``deleted-run``, as ``mlflow gc``
      does; through ``backend_uri`` when given: a server cannot purge), and the deleted
      logged model ``init-deleted`` purged the same way.

    Returns ``{"run": <new run id>, "model": <new model id>}``.
    """
    import mlflow
    from mlflow import MlflowClient

    uri = store["uri"]
    runs, models, experiments = store["runs"], store["models"], store["experiments"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with mlflow_tracking_uri(uri):
        with mlflow.start_run(experiment_id=experiments["models-alpha"], run_name="art-new") as run:
            mlflow.log_text("a\n", "new/deeper/a.txt")
            mlflow.log_dict({"n": 2}, "new/b.json")
            new_run = run.info.run_id
            model = mlflow.initialize_logged_model(name="init-new", source_run_id=new_run, params={"k": "v"})
            mlflow.log_metric("score", 0.5, step=2, model_id=model.model_id)
        with mlflow.start_run(run_id=runs["beta-run"]):
            mlflow.log_text("late\n", "late/late.txt")
        client.set_logged_model_tags(models["init-ready"], {"team": "nlp"})
        client.create_model_version("reg-two", source=f"models:/{model.model_id}", model_id=model.model_id)
        client.set_registered_model_alias("reg-two", "champion", "3")
        client.delete_model_version("reg-two", "2")
        client.delete_registered_model("reg-empty")
        client.delete_run(runs["art-run"])
    purger = MlflowClient(tracking_uri=backend_uri or uri)._tracking_client.store
    purger._hard_delete_run(runs["deleted-run"])
    purger._hard_delete_logged_model(models["init-deleted"])
    return {"run": new_run, "model": model.model_id}
