"""Parents and their nested runs in a cleanup: nested runs are deleted first, a planned parent
is kept while a run under it stays, loops of parent links end, restoring goes parents first;
``--keep-children`` / ``keep_children`` reach the selection."""

from __future__ import annotations

import pytest

from pyspark_experiments.cleanup import cli
from pyspark_experiments.cleanup.config import CleanupConfig
from pyspark_experiments.cleanup.families import ancestors, deletion_order, hold_ancestors, keep_together, parents
from pyspark_experiments.cleanup.job import CleanupResult, restore_order
from pyspark_experiments.jobs import EXIT_CONFIG

# grid -> fold-0, fold-1; fold-1 -> fold-1-a -> fold-1-a-x; solo alone
TREE = {"grid": None, "fold-0": "grid", "fold-1": "grid", "fold-1-a": "fold-1", "fold-1-a-x": "fold-1-a", "solo": None}


def _runs(names=TREE) -> list[dict]:
    return [{"run_id": name, "parent_run_id": TREE[name], "experiment_id": "1"} for name in names]


def test_ancestors_nearest_first_and_only_among_the_runs_given():
    parent_of = parents(_runs())
    assert list(ancestors("fold-1-a-x", parent_of)) == ["fold-1-a", "fold-1", "grid"]
    assert list(ancestors("grid", parent_of)) == []
    partial = parents(_runs(["fold-1-a-x", "fold-1-a", "grid"]))  # fold-1 not among them: the walk stops
    assert list(ancestors("fold-1-a-x", partial)) == ["fold-1-a"]


@pytest.mark.parametrize("links", [
    {"a": "b", "b": "a"},
    {"a": "a"},
    {"a": "b", "b": "c", "c": "a", "d": "c"},
])
def test_a_loop_of_parent_links_ends(links):
    for run_id in links:
        above = list(ancestors(run_id, links))
        assert len(above) == len(set(above)) and run_id not in above


def test_deletion_order_puts_every_run_after_the_runs_under_it():
    ordered = [run["run_id"] for run in deletion_order(_runs())]
    for child, parent in TREE.items():
        if parent:
            assert ordered.index(child) < ordered.index(parent), (child, parent)
    assert ordered[0] == "fold-1-a-x"
    # the order is kept among runs of one depth
    assert [r for r in ordered if r in ("grid", "solo")] == ["grid", "solo"]


def test_a_failed_child_holds_every_run_above_it():
    held: dict[str, str] = {}
    hold_ancestors("fold-1-a", parents(_runs()), held)
    assert held == {"fold-1": "fold-1-a", "grid": "fold-1-a"}


def test_keep_together_keeps_a_planned_parent_while_a_run_under_it_stays():
    candidates = _runs()
    chosen = [run for run in candidates if run["run_id"] != "fold-1-a-x"]  # changed since the plan
    kept, skipped = keep_together(chosen, candidates)
    assert {run["run_id"] for run in kept} == {"fold-0", "solo"}
    assert {run["run_id"]: why for run, why in skipped} == {
        "fold-1-a": "its nested run fold-1-a-x is not deleted",
        "fold-1": "its nested run fold-1-a-x is not deleted",
        "grid": "its nested run fold-1-a-x is not deleted",
    }
    # a child deleted alone keeps nothing from being deleted; every run chosen: every run deleted
    assert keep_together(_runs(["fold-0"]), candidates)[0] == _runs(["fold-0"])
    assert keep_together(candidates, candidates) == (candidates, [])


def test_restore_goes_parents_first():
    # as the batch recorded them: nested runs first (deepest first), then the selected run
    rows = [
        {"run_id": "fold-1-a", "reason": "nested under selected run grid", "at": "2026-12-08T10:00:01+00:00"},
        {"run_id": "fold-1", "reason": "nested under selected run grid", "at": "2026-12-08T10:00:02+00:00"},
        {"run_id": "grid", "reason": "status FAILED", "at": "2026-12-08T10:00:03+00:00"},
        {"run_id": "solo", "reason": "status FAILED", "at": "2026-12-08T10:00:03+00:00"},
    ]
    assert [row["run_id"] for row in restore_order(rows)] == ["grid", "solo", "fold-1", "fold-1-a"]


def test_keep_children_from_the_flag_or_the_key(tmp_path):
    args = cli._parser().parse_args(["--statuses", "FAILED", "--keep-children"])
    assert cli.config_from_args(args).criteria() == {"statuses": ["FAILED"], "keep_children": True}
    assert "keep_children" not in cli.config_from_args(cli._parser().parse_args(["--statuses", "FAILED"])).criteria()
    path = tmp_path / "analytics.toml"
    path.write_text('[cleanup]\nstatuses = ["FAILED"]\nkeep_children = true\n')
    assert CleanupConfig.from_toml(str(path)).criteria()["keep_children"] is True


def test_keep_children_alone_is_no_condition(capsys):
    assert cli.main(["--tracking-uri", "sqlite:///x.db", "--keep-children", "--yes"]) == EXIT_CONFIG
    assert "no condition given" in capsys.readouterr().err


def test_a_bad_keep_children_key_names_it(tmp_path, capsys):
    path = tmp_path / "analytics.toml"
    path.write_text('[cleanup]\nstatuses = ["FAILED"]\nkeep_children = "yes"\n')
    assert cli.main(["--config", str(path), "--tracking-uri", "sqlite:///x.db"]) == EXIT_CONFIG
    assert "[cleanup] keep_children" in capsys.readouterr().err


def test_the_dry_run_marks_the_runs_selected_with_their_parent():
    runs = [{"experiment_id": "1", "run_id": "p" * 32, "status": "FAILED", "start_time": None, "run_name": "grid"},
            {"experiment_id": "1", "run_id": "c" * 32, "status": "FINISHED", "start_time": None, "run_name": "fold",
             "selected_with": "p" * 32}]
    text = CleanupResult("dry run", "s", "statuses=['FAILED']", runs).summary()
    assert f"fold  (nested under selected run {'p' * 32})" in text
    assert "1 of them nested under a selected run" in text and "--keep-children" in text
