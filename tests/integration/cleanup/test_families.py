"""Parents and children go together in a cleanup, on SQLite stores holding the nested runs
written by real mlflow (``support.nested_runs``): a selected run brings every run nested under
it, marked as such, in the dry run, the saved plan, the deletion (children first) and the
restore (parents first); ``--keep-children`` leaves them; a planned parent is kept while a run
under it stays. Stages are read back through mlflow's own client."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from pyspark_experiments import analytics  # noqa: E402
from pyspark_experiments.cleanup import cli as cleanup_cli  # noqa: E402
from pyspark_experiments.jobs import EXIT_OK  # noqa: E402
from support.nested_runs import PARENTS, log_nested_runs  # noqa: E402

from .mlflow_runs import stages  # noqa: E402

TRIAL_FAMILY = ("trial", "trial-a", "trial-b", "trial-b-fold", "adopted")


def _store(tmp_path) -> tuple[str, dict[str, str]]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, log_nested_runs(uri)


def _names(ids: dict[str, str]) -> dict[str, str]:
    return {run_id: name for name, run_id in ids.items()}


def test_candidates_bring_every_run_nested_under_a_selected_one(spark, tmp_path):
    uri, ids = _store(tmp_path)
    names = _names(ids)
    runs = spark.read.format("experiments").option("trackingUri", uri).option("table", "runs").load()

    def selected(where, **kwargs):
        rows = analytics.cleanup_candidates(runs, where=where, **kwargs).collect()
        return {names[r.run_id]: (names.get(r.selected_with), r.reason, names.get(r.parent_run_id)) for r in rows}

    trial = selected("run_name = 'trial'")
    assert set(trial) == set(TRIAL_FAMILY)  # any depth; adopted: given its parent afterwards
    assert trial["trial"] == (None, "where run_name = 'trial'", None)
    for name in TRIAL_FAMILY[1:]:
        assert trial[name] == ("trial", f"nested under selected run {ids['trial']}", PARENTS[name])
    # a run selected itself keeps its reason, and the runs under it come with it (the nearest)
    both = selected("run_name IN ('trial', 'trial-b')")
    assert both["trial-b"][0] is None and both["trial-b-fold"][0] == "trial-b" and both["trial-a"][0] == "trial"
    # selecting a child never selects its parent
    assert set(selected("run_name = 'trial-b'")) == {"trial-b", "trial-b-fold"}
    # deleted children (grid-3) are no candidates; a child whose parent tag was deleted is no child
    assert set(selected("run_name = 'grid-search'")) == {"grid-search", "grid-0", "grid-1", "grid-2"}
    assert set(selected("run_name = 'trial'", keep_children=True)) == {"trial"}
    # the runs the conditions select, the same with or without their children
    assert set(selected("status = 'FINISHED'", keep_children=True)) <= set(selected("status = 'FINISHED'"))


def test_delete_children_first_then_restore_parents_first(spark, tmp_path, capsys):
    uri, ids = _store(tmp_path)
    names = _names(ids)
    record = tmp_path / "cleanup.jsonl"
    plan = tmp_path / "plan.json"
    args = ["--tracking-uri", uri, "--record-file", str(record), "--no-progress", "--where", "run_name = 'trial'"]
    before = stages(uri)

    assert cleanup_cli.main([*args, "--plan-file", str(plan)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "dry run: 5 run(s) selected" in out and "4 of them nested under a selected run" in out
    assert out.count(f"(nested under selected run {ids['trial']})") == 4
    saved = {names[r["run_id"]]: r for r in json.loads(plan.read_text())["runs"]}
    assert set(saved) == set(TRIAL_FAMILY)
    assert {name: (names.get(r["selected_with"]), names.get(r["parent_run_id"])) for name, r in saved.items()} == {
        name: (None if name == "trial" else "trial", PARENTS[name]) for name in TRIAL_FAMILY}
    assert stages(uri) == before

    assert cleanup_cli.main([*args, "--yes"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "deleted 5 run(s)" in out
    order = [names[line.split()[2]] for line in out.splitlines() if line.startswith("deleting ")]
    assert sorted(order) == sorted(TRIAL_FAMILY)
    for name in TRIAL_FAMILY[1:]:
        assert order.index(name) < order.index(PARENTS[name]), order  # a child before its parent
    after = stages(uri)
    assert {names[i] for i, s in after.items() if s == "deleted"} == set(TRIAL_FAMILY) | {"grid-3"}
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    reasons = {names[r["run_id"]]: r["reason"] for r in lines if r["action"] == "delete"}
    assert reasons["trial"] == "where run_name = 'trial'"
    assert reasons["trial-b-fold"] == f"nested under selected run {ids['trial']}"

    batch = next(r["batch_id"] for r in lines)
    assert cleanup_cli.main(["--tracking-uri", uri, "--record-file", str(record), "--no-progress", "--restore", batch]) == EXIT_OK
    assert "restored 5 run(s)" in capsys.readouterr().out
    assert stages(uri) == before
    restored = [names[json.loads(line)["run_id"]] for line in record.read_text().splitlines()
                if json.loads(line)["action"] == "restore"]
    for name in TRIAL_FAMILY[1:]:
        assert restored.index(PARENTS[name]) < restored.index(name), restored  # a parent before its child


def test_a_planned_parent_stays_while_a_run_under_it_stays(spark, tmp_path, capsys):
    from mlflow import MlflowClient

    uri, ids = _store(tmp_path)
    names = _names(ids)
    plan = tmp_path / "plan.json"
    args = ["--tracking-uri", uri, "--record-file", str(tmp_path / "c.jsonl"), "--no-progress"]
    assert cleanup_cli.main([*args, "--where", "run_name IN ('grid-search', 'trial')", "--plan-file", str(plan)]) == EXIT_OK
    capsys.readouterr()
    # after the dry run: a planned child changes (grid-1), and a run is nested under trial-b
    client = MlflowClient(tracking_uri=uri)
    client.set_terminated(ids["grid-1"], status="FAILED")
    late = client.create_run(client.get_run(ids["trial"]).info.experiment_id, run_name="late",
                             tags={"mlflow.parentRunId": ids["trial-b"]}).info.run_id
    names[late] = "late"

    assert cleanup_cli.main([*args, "--yes", "--plan-file", str(plan)]) == EXIT_OK
    out = capsys.readouterr().out
    deleted = {names[i] for i, s in stages(uri).items() if s == "deleted"} - {"grid-3"}
    assert deleted == {"grid-0", "grid-2", "trial-a", "trial-b-fold", "adopted"}
    assert f"skipped {ids['grid-1']}: changed since the plan" in out
    assert f"skipped {ids['grid-search']}: its nested run {ids['grid-1']} is not deleted" in out
    assert f"skipped {ids['trial-b']}: its nested run {late} is not deleted" in out
    assert f"skipped {ids['trial']}: its nested run {late} is not deleted" in out


@pytest.mark.slow
def test_keep_children_leaves_them(spark, tmp_path, capsys):
    uri, ids = _store(tmp_path)
    names = _names(ids)
    args = ["--tracking-uri", uri, "--record-file", str(tmp_path / "c.jsonl"), "--no-progress", "--where",
            "run_name = 'trial-b'", "--keep-children"]
    assert cleanup_cli.main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "dry run: 1 run(s) selected" in out and "nested under" not in out
    assert cleanup_cli.main([*args, "--yes"]) == EXIT_OK
    capsys.readouterr()
    after = {names[i]: s for i, s in stages(uri).items()}
    assert after["trial-b"] == "deleted" and after["trial-b-fold"] == "active" and after["trial"] == "active"
