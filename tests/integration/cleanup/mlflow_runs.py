"""Stores written by real mlflow for the cleanup tests, mlflow's view of them, and the cleanup
command in its own process."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

NOW = dt.datetime.now(dt.UTC)
DAY_MS = 86_400_000


def write_store(uri: str, root) -> dict[str, str]:
    """Two experiments; old and recent runs, FINISHED, FAILED and KILLED. Returns {run name: id}."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    now_ms = int(NOW.timestamp() * 1000)
    ids = {}
    for name in ("alpha", "beta"):
        experiment = client.create_experiment(name, artifact_location=str(root / "artifacts" / name))
        for label, status, age_days in (("old-failed", "FAILED", 60), ("old-killed", "KILLED", 45), ("old-ok", "FINISHED", 90),
                                        ("new-failed", "FAILED", 2), ("new-ok", "FINISHED", 1)):
            start = now_ms - age_days * DAY_MS
            run = client.create_run(experiment, start_time=start, run_name=f"{name}-{label}", tags={"mlflow.user": "ann"})
            client.log_metric(run.info.run_id, "loss", float(age_days), timestamp=start, step=0)
            client.set_terminated(run.info.run_id, status=status, end_time=start + 60_000)
            ids[f"{name}-{label}"] = run.info.run_id
    return ids


def stages(uri: str) -> dict[str, str]:
    """run id -> lifecycle stage, as mlflow itself reports them."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return {r.info.run_id: r.info.lifecycle_stage for r in client.search_runs(experiments, run_view_type=ViewType.ALL, max_results=1000)}


def cleanup_process(args: list[str], env: dict, base: dict | None = None) -> subprocess.CompletedProcess:
    """``pyspark-experiments cleanup`` in its own process (its Spark session sees ``env`` over
    ``base``, default this process's environment)."""
    command = [sys.executable, "-m", "pyspark_experiments", "cleanup", "--master", "local[2]", "--no-progress", *args]
    environment = dict(os.environ if base is None else base)
    return subprocess.run(command, env={**environment, "PYSPARK_PYTHON": sys.executable, **env},
                          capture_output=True, text=True, timeout=900)


