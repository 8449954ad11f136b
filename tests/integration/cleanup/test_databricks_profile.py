"""Databricks' bulk ``delete-runs`` goes to the workspace of the profile ``databricks://<profile>``
names, not to the default profile's: two Databricks-shaped proxies (Bearer token,
``/api/2.0/mlflow/`` only) in front of one real ``mlflow server``, one per profile of a
``~/.databrickscfg`` in a temporary HOME."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from pyspark_experiments.jobs import EXIT_OK  # noqa: E402

from .mlflow_runs import cleanup_process, stages, write_store  # noqa: E402


@pytest.mark.slow
def test_bulk_delete_reaches_the_workspace_of_the_profile_the_uri_names(tmp_path):
    from mlflow import MlflowClient

    from support.mlflow_server import running_mlflow_server
    from support.proxies import DatabricksProxy

    home = tmp_path / "home"
    home.mkdir()
    record = tmp_path / "cleanup.jsonl"
    with running_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path)) as url:
        ids = write_store(url, tmp_path)
        alpha = MlflowClient(url).get_experiment_by_name("alpha").experiment_id
        with DatabricksProxy(url, "dapi-default-token", throttle_every=0) as default, \
                DatabricksProxy(url, "dapi-team-token", throttle_every=0) as team:
            (home / ".databrickscfg").write_text(
                f"[DEFAULT]\nhost = {default.url}\ntoken = dapi-default-token\n\n"
                f"[team]\nhost = {team.url}/\ntoken = dapi-team-token\n"
            )
            environment = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_TRACKING"))}
            done = cleanup_process(["--tracking-uri", "databricks://team", "--record-file", str(record),
                                    "--experiment-ids", alpha, "--older-than-days", "30", "--yes"],
                                   {"HOME": str(home)}, base=environment)
            assert done.returncode == EXIT_OK, done.stdout[-3000:] + done.stderr[-3000:]
            assert team.bulk_deletions == 1, "the bulk request went to the team profile's workspace"
            assert default.bulk_deletions == 0
        expected = {ids[n] for n in ("alpha-old-failed", "alpha-old-killed", "alpha-old-ok")}
        assert {i for i, s in stages(url).items() if s == "deleted"} == expected
        rows = [json.loads(line) for line in record.read_text().splitlines()]
        assert sorted(r["run_id"] for r in rows if r["action"] == "delete") == sorted(expected)
        assert "dapi-team-token" not in done.stdout + done.stderr + record.read_text()
