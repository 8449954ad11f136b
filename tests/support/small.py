"""Small tracking stores written by real mlflow, for unit tests and focused integration tests.

Example::

    >>> uris = write_small_stores(tmp_path)            # {"sqlite": "sqlite:///...", "file": "..."}
    >>> uris = write_small_stores(tmp_path, names=("x", "1"))
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def write_small_stores(root, names=("alpha", "beta"), runs_per_experiment=3, kinds=("sqlite", "file")) -> dict[str, str]:
    """One SQLite and one file store under ``root``, each with the experiments ``names`` holding
    ``runs_per_experiment`` finished runs (metric ``loss`` at step i = 1/(i+1), param ``i``, user ann)."""
    from mlflow import MlflowClient

    uris = {"sqlite": f"sqlite:///{root}/mlflow.db", "file": str(root / "mlruns")}
    uris = {kind: uris[kind] for kind in kinds}
    for uri in uris.values():
        client = MlflowClient(tracking_uri=uri)
        for name in names:
            experiment_id = client.create_experiment(name, artifact_location=str(root / "artifacts" / name))
            for i in range(runs_per_experiment):
                run = client.create_run(experiment_id, run_name=f"{name}-{i}", tags={"mlflow.user": "ann"})
                client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1), step=i)
                client.log_param(run.info.run_id, "i", str(i))
                client.set_terminated(run.info.run_id)
    return uris
