"""A saved cleanup plan: what it keeps of a selection, and which planned runs a later selection
still allows deleting."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pyspark_experiments.cleanup.plan import compare, fingerprint, new_plan, read_plan, write_plan
from pyspark_experiments.errors import ConfigurationError

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def _run(run_id: str, status: str = "FAILED", end: dt.datetime | None = NOW, experiment: str = "1") -> dict:
    return {"run_id": run_id, "experiment_id": experiment, "status": status, "end_time": end, "run_name": run_id,
            "start_time": NOW - dt.timedelta(days=40), "reason": "status FAILED"}


def test_plan_keeps_the_selection_its_instant_and_each_runs_fingerprint(tmp_path):
    path = tmp_path / "plans" / "plan.json"
    write_plan(str(path), new_plan("sqlite:///m.db", {"statuses": ["FAILED"], "older_than": 30.0}, NOW, [_run("a")]))
    saved = json.loads(path.read_text())
    assert saved["criteria"] == {"statuses": ["FAILED"], "older_than": 30.0}
    assert saved["now"] == NOW.isoformat()
    assert saved["older_than_bound"] == (NOW - dt.timedelta(days=30)).isoformat()
    assert saved["runs"][0]["run_id"] == "a"
    assert saved["runs"][0]["fingerprint"] == {"experiment_id": "1", "status": "FAILED", "end_time": NOW.isoformat(),
                                               "lifecycle_stage": "active"}
    plan = read_plan(str(path), "sqlite:///m.db")
    assert plan["now"] == NOW  # the time bound does not move with the clock


def test_only_planned_unchanged_runs_still_selected_are_deleted():
    plan = new_plan("s", {"statuses": ["FAILED"]}, NOW, [_run("same"), _run("gone"), _run("changed"), _run("moved")])
    later = [_run("same"), _run("changed", end=NOW + dt.timedelta(hours=1)), _run("moved", experiment="2"), _run("new")]
    chosen, skipped = compare(plan, later)
    assert [r["run_id"] for r in chosen] == ["same"]  # never "new": the plan does not list it
    why = {run["run_id"]: reason for run, reason in skipped}
    assert set(why) == {"gone", "changed", "moved"}
    assert why["gone"].startswith("no longer selected")
    assert "end_time" in why["changed"] and "experiment_id 1 -> 2" in why["moved"]


def test_fingerprint_sees_a_status_change():
    assert fingerprint(_run("a")) != fingerprint(_run("a", status="KILLED"))


@pytest.mark.parametrize("content, message", [
    (None, "cannot be read"),
    ("not json", "not JSON"),
    ('{"runs": []}', "not a cleanup plan"),
])
def test_a_bad_plan_file_is_a_configuration_error_naming_it(tmp_path, content, message):
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=message) as error:
        read_plan(str(path), "s")
    assert str(path) in str(error.value)


def test_a_plan_for_another_store_is_refused(tmp_path):
    path = tmp_path / "plan.json"
    write_plan(str(path), new_plan("sqlite:///a.db", {"statuses": ["FAILED"]}, NOW, []))
    with pytest.raises(ConfigurationError, match="made for sqlite:///a.db, not sqlite:///b.db"):
        read_plan(str(path), "sqlite:///b.db")
