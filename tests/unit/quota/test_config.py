"""The quota command's settings: the ``[quota]`` keys it shares with the analytics job and the
report (one definition, the same values from one file), its flags over the file, and settings
that are configuration errors (exit 2) naming the flag and the key, before any Spark session."""

from __future__ import annotations

import dataclasses
import doctest
import importlib

import pytest

from pyspark_experiments.analytics.config import LIMIT_NAMES, QUOTA_KEYS, AnalyticsConfig
from pyspark_experiments.jobs import EXIT_CONFIG, CommandConfig
from pyspark_experiments.quota import cli
from pyspark_experiments.quota.config import DEFAULT_TOP, QuotaConfig
from pyspark_experiments.report.config import ReportConfig
from support.paths import REPO

STORE = ["--tracking-uri", "sqlite:///x.db"]


@pytest.mark.parametrize("name", ["pyspark_experiments.quota.config", "pyspark_experiments.quota.cli"])
def test_doctests(name, monkeypatch):
    monkeypatch.chdir(REPO)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_one_file_gives_every_command_the_same_limits_and_margin(tmp_path):
    path = tmp_path / "analytics.toml"
    path.write_text('[target]\npath = "/d"\n[quota]\nparams_per_run = 3\ntags_per_experiment = 7\nmargin = 0.5\n'
                    '[analytics]\nsource = "store"\n')
    quota = QuotaConfig.from_toml(str(path)).validate()
    analytics = AnalyticsConfig.from_toml(str(path)).validate()
    report = ReportConfig.from_toml(str(path)).override(out="/tmp/r").validate()
    assert quota.limits() == analytics.limits() == report.limits()
    assert quota.limits().params_per_run == 3 and quota.limits().runs_per_experiment == 500_000
    assert quota.margin == analytics.margin == report.margin == 0.5
    assert quota.read_from() == analytics.read_from() == "store"


def test_the_quota_keys_are_one_definition_and_each_has_a_flag():
    assert QuotaConfig.keys()["margin"] is QUOTA_KEYS["margin"] is AnalyticsConfig.keys()["margin"]
    flags = {option for action in cli.parser()._actions for option in action.option_strings}
    assert {cli.flag(key) for key in QUOTA_KEYS} <= flags
    assert set(LIMIT_NAMES) | {"margin"} == set(QUOTA_KEYS)


def test_the_config_carries_only_its_own_settings():
    names = {f.name for f in dataclasses.fields(QuotaConfig)}
    assert names >= {f.name for f in dataclasses.fields(CommandConfig)} | set(QUOTA_KEYS) | {"source", "top"}
    assert not {"metrics", "period", "statuses", "out", "stuck_hours", "leaderboard_size"} & names


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "analytics.toml"
    path.write_text('[quota]\nruns_per_experiment = 100\nmargin = 0.9\n')
    args = cli.parser().parse_args(["--config", str(path), *STORE, "--runs-per-experiment", "10", "--top", "3"])
    cfg = cli.config_from_args(args)
    assert (cfg.limits().runs_per_experiment, cfg.margin, cfg.top, cfg.read_from()) == (10, 0.9, 3, "store")
    assert cli.config_from_args(cli.parser().parse_args(STORE)).top == DEFAULT_TOP


@pytest.mark.parametrize(("argv", "words"), [
    (["--runs-per-experiment", "0"], "--runs-per-experiment ([quota] runs_per_experiment) = 0: expected a positive integer"),
    (["--metric-steps-per-run", "-5"], "--metric-steps-per-run ([quota] metric_steps_per_run) = -5"),
    (["--margin", "1.5"], "--margin ([quota] margin) = 1.5: expected a fraction between 0 and 1"),
    (["--margin", "0"], "--margin ([quota] margin) = 0.0"),
    (["--top", "-1"], "--top -1"),
    (["--tags-per-run", "many"], "--tags-per-run: invalid int value"),
    (["--source", "target"], "source 'target' needs --target-path"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, words, capsys):
    assert cli.main([*STORE, *argv]) == EXIT_CONFIG
    assert words in capsys.readouterr().err


def test_a_bad_quota_key_names_the_file_and_key(tmp_path, capsys):
    path = tmp_path / "analytics.toml"
    path.write_text("[quota]\ntags_per_run = 0\n")
    assert cli.main(["--config", str(path), *STORE]) == EXIT_CONFIG
    assert f"{path}: [quota] tags_per_run = 0: expected a positive integer" in capsys.readouterr().err


def test_a_password_is_never_printed_in_an_error(capsys):
    assert cli.main(["--tracking-uri", "postgresql://u:Sup3rSecret@h/db", "--margin", "2"]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert "--margin" in captured.err and "Sup3rSecret" not in captured.err + captured.out


def test_the_command_is_registered(capsys):
    from pyspark_experiments import cli as commands

    assert commands.COMMANDS["quota"][0] == "pyspark_experiments.quota.cli"
    assert commands.main(["quota", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--json" in out and "--top" in out and "3 a quota near its limit" in out and "4 a quota over its limit" in out
