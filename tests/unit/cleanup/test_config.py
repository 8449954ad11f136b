"""Cleanup settings that would widen or break the selection are configuration errors (exit 2)
naming the flag or key, checked before any Spark session starts."""

from __future__ import annotations

import pytest

from pyspark_experiments.cleanup import cli
from pyspark_experiments.jobs import EXIT_CONFIG


@pytest.mark.parametrize("flag, value", [
    ("--users", ""), ("--experiment-ids", ","), ("--statuses", " , "), ("--where", " "),
])
def test_an_empty_list_flag_is_refused_naming_it(flag, value, capsys):
    code = cli.main(["--tracking-uri", "sqlite:///x.db", "--statuses", "FAILED", flag, value, "--yes"])
    assert code == EXIT_CONFIG
    err = capsys.readouterr().err
    assert flag in err and "empty" in err


@pytest.mark.parametrize("key, value", [
    ("users", "[]"), ("experiments", '""'), ("statuses", '[" "]'), ("where", '""'),
])
def test_an_empty_list_key_is_refused_naming_it(tmp_path, key, value, capsys):
    config = tmp_path / "analytics.toml"
    config.write_text(f'[cleanup]\nstatuses = ["FAILED"]\n{key} = {value}\n' if key != "statuses" else f"[cleanup]\n{key} = {value}\n")
    assert cli.main(["--config", str(config), "--tracking-uri", "sqlite:///x.db"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"[cleanup] {key}" in err and str(config) in err and "empty" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_age_names_the_flag(value, capsys):
    assert cli.main(["--tracking-uri", "sqlite:///x.db", f"--older-than-days={value}"]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert "--older-than-days" in captured.err and "finite" in captured.err
    assert "next run completes the work" not in captured.out + captured.err


def test_a_plan_file_with_restore_is_refused(capsys):
    assert cli.main(["--tracking-uri", "sqlite:///x.db", "--restore", "b", "--plan-file", "p.json"]) == EXIT_CONFIG
    assert "--plan-file" in capsys.readouterr().err
