"""A saved plan: ``--plan-file`` on a dry run keeps the selection, and ``--yes --plan-file``
deletes exactly the runs it lists that still match and have not changed, on a SQLite store
written by real mlflow (checked through mlflow's own view of each run)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from pyspark_experiments.cleanup import cli as cleanup_cli  # noqa: E402
from pyspark_experiments.jobs import EXIT_CONFIG, EXIT_OK  # noqa: E402

from .mlflow_runs import DAY_MS, NOW, stages, write_store  # noqa: E402


def _failed_run(uri: str, experiment_name: str, age_days: int, name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    start = int(NOW.timestamp() * 1000) - age_days * DAY_MS
    run = client.create_run(client.get_experiment_by_name(experiment_name).experiment_id, start_time=start, run_name=name)
    client.set_terminated(run.info.run_id, status="FAILED", end_time=start + 60_000)
    return run.info.run_id


def test_yes_with_a_plan_deletes_exactly_the_planned_unchanged_runs(spark, tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = write_store(uri, tmp_path)
    plan = tmp_path / "plan.json"
    record = tmp_path / "cleanup.jsonl"
    args = ["--tracking-uri", uri, "--record-file", str(record), "--no-progress"]
    conditions = ["--statuses", "FAILED,KILLED", "--older-than-days", "30"]

    assert cleanup_cli.main(args + conditions + ["--plan-file", str(plan)]) == EXIT_OK
    assert "dry run: 4 run(s) selected" in capsys.readouterr().out
    saved = json.loads(plan.read_text())
    planned = {ids[n] for n in ("alpha-old-failed", "alpha-old-killed", "beta-old-failed", "beta-old-killed")}
    assert {r["run_id"] for r in saved["runs"]} == planned
    assert saved["criteria"] == {"statuses": ["FAILED", "KILLED"], "older_than": 30.0} and saved["older_than_bound"]
    assert saved["store"] == uri

    # After the dry run: one more matching run, and one planned run changed (KILLED -> FAILED).
    newcomer = _failed_run(uri, "alpha", 50, "alpha-late-failed")
    MlflowClient(tracking_uri=uri).set_terminated(ids["beta-old-killed"], status="FAILED")
    before = stages(uri)

    assert cleanup_cli.main(args + ["--yes", "--plan-file", str(plan)]) == EXIT_OK
    out = capsys.readouterr().out
    expected = planned - {ids["beta-old-killed"]}
    assert "deleted 3 run(s)" in out and "1 skipped" in out
    assert f"skipped {ids['beta-old-killed']}: changed since the plan: status KILLED -> FAILED" in out
    after = stages(uri)
    assert {i for i, s in after.items() if s == "deleted"} == expected
    assert after[newcomer] == "active" and after[ids["beta-old-killed"]] == "active"
    assert {i: s for i, s in after.items() if i not in expected} == {i: s for i, s in before.items() if i not in expected}
    announced = out.split("pyspark-experiments cleanup: deleted")[0]  # printed before each deletion
    assert {line.split()[2] for line in announced.splitlines() if line.startswith("deleting ")} == expected
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(r["run_id"] for r in lines if r["action"] == "intent") == sorted(expected)
    assert sorted(r["run_id"] for r in lines if r["action"] == "delete") == sorted(expected)


def test_a_plan_with_other_conditions_or_another_store_is_refused(spark, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_store(uri, tmp_path)
    plan = tmp_path / "plan.json"
    base = ["--record-file", str(tmp_path / "c.jsonl"), "--no-progress"]
    assert cleanup_cli.main(["--tracking-uri", uri, *base, "--statuses", "FAILED", "--plan-file", str(plan)]) == EXIT_OK
    capsys.readouterr()
    before = stages(uri)
    assert cleanup_cli.main(["--tracking-uri", uri, *base, "--statuses", "KILLED", "--yes", "--plan-file", str(plan)]) == EXIT_CONFIG
    assert "not the plan's" in capsys.readouterr().out
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert cleanup_cli.main(["--tracking-uri", other, *base, "--yes", "--plan-file", str(plan)]) == EXIT_CONFIG
    assert f"made for {uri}" in capsys.readouterr().out
    assert stages(uri) == before


def test_an_invalid_where_names_the_flag_and_exits_2(spark, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_store(uri, tmp_path)
    before = stages(uri)
    for where in ("status = = 'FAILED'", "no_such_column > 1"):
        code = cleanup_cli.main(["--tracking-uri", uri, "--record-file", str(tmp_path / "c.jsonl"), "--no-progress",
                                 "--where", where, "--yes"])
        out = capsys.readouterr().out
        assert code == EXIT_CONFIG, out
        assert "--where" in out and "not a valid SQL condition" in out and "NOT RUN" in out
        assert "next run completes the work" not in out
    assert stages(uri) == before
