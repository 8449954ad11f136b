"""The analytics / report / cleanup commands' settings and pure helpers (no Spark): config
loading and errors, metric directions, cleanup criteria, the summaries, the doctest examples."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import os

import pytest

from pyspark_experiments.analytics import cli as analytics_cli
from pyspark_experiments.analytics.config import AnalyticsConfig, MetricsConfig
from pyspark_experiments.cleanup import cli as cleanup_cli
from pyspark_experiments.cleanup import deletion
from pyspark_experiments.cleanup import job as cleanup
from pyspark_experiments.cleanup.config import CleanupConfig
from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.jobs import EXIT_CONFIG, CommandConfig
from pyspark_experiments.report import cli as report_cli
from pyspark_experiments.report.config import ReportConfig
from support.paths import REPO

ROOT = str(REPO)

MODULES = [
    "pyspark_experiments.analytics.config",
    "pyspark_experiments.analytics.cli",
    "pyspark_experiments.analytics.inputs",
    "pyspark_experiments.analytics.job",
    "pyspark_experiments.report.cli",
    "pyspark_experiments.report.config",
    "pyspark_experiments.cleanup.config",
    "pyspark_experiments.cleanup.cli",
    "pyspark_experiments.cleanup.job",
    "pyspark_experiments.cleanup.records",
    "pyspark_experiments.cleanup.deletion",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_example_config_loads_for_each_command():
    path = os.path.join(ROOT, "conf", "analytics.toml")
    cfg = AnalyticsConfig.from_toml(path).validate()
    assert (cfg.target_path, cfg.read_from(), cfg.period, cfg.margin) == ("mlflow-delta", "target", "week", 0.8)
    assert cfg.limits().runs_per_experiment == 500_000
    assert (cfg.stuck_hours, cfg.lock_timeout_minutes, cfg.exact_history) == (24.0, 360.0, False)
    report = ReportConfig.from_toml(path).override(out="/tmp/r").validate()
    assert (report.title, report.period, report.read_from(), report.leaderboard_size) == ("MLflow runs report", "week", "target", 10)
    cleanup_cfg = CleanupConfig.from_toml(path).validate()
    assert cleanup_cfg.criteria() == {"statuses": ["FAILED", "KILLED"], "older_than": 30.0}
    assert (cleanup_cfg.target_path, cleanup_cfg.lock_timeout_minutes) == ("mlflow-delta", 360.0)


def test_each_command_config_carries_only_its_own_settings():
    def names(config_class):
        return {f.name for f in dataclasses.fields(config_class)}

    shared = names(CommandConfig)
    assert not {"out", "title", "statuses", "record_file", "cleanup_experiments"} & names(AnalyticsConfig)
    assert not {"statuses", "record_file", "stuck_hours", "lock_timeout_minutes"} & names(ReportConfig)
    assert not {"metrics", "margin", "out", "title", "stuck_hours", "period"} & names(CleanupConfig)
    for config_class in (AnalyticsConfig, ReportConfig, CleanupConfig):
        assert names(config_class) >= shared


def test_directions_from_lists_then_names():
    cfg = MetricsConfig(metrics=("acc", "val_loss", "rmse"), lower_is_better=("acc",), higher_is_better=("rmse",))
    assert cfg.modes() == {"acc": "min", "val_loss": "min", "rmse": "max"}
    with pytest.raises(ConfigurationError, match="both lower and higher"):
        MetricsConfig(lower_is_better=("a",), higher_is_better=("a",)).validate()


@pytest.mark.parametrize(("toml", "words"), [
    ("[quota]\nmargin = 2\n", "margin"),
    ("[quota]\nruns_per_experiment = 0\n", "runs_per_experiment"),
    ("[cleanup]\ntags = 3\n", "[cleanup] tags"),
    ("[analytics]\nperiod = \"year\"\n", "[analytics] period"),
    ("[report]\nout = 1\n", "[report] out"),
    ("[cleanup]\nstatus = [\"FAILED\"]\n", "unknown key 'status' in [cleanup]"),
])
def test_bad_configs_name_the_key(tmp_path, toml, words):
    path = tmp_path / "c.toml"
    path.write_text("[target]\npath = \"/d\"\n" + toml)
    with pytest.raises(ConfigurationError) as info:
        AnalyticsConfig.from_toml(str(path)).validate()
    assert words in str(info.value)


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("quota", "params_per_run", "0", "a positive integer"),
    ("quota", "tags_per_experiment", "-3", "a positive integer"),
    ("quota", "margin", "0", "a fraction between 0 and 1, e.g. 0.8"),
    ("quota", "margin", "1.5", "a fraction between 0 and 1, e.g. 0.8"),
    ("analytics", "leaderboard_size", "0", "a positive integer"),
    ("cleanup", "keep_newest", "-1", "a non-negative integer"),
])
@pytest.mark.parametrize("config_class", [AnalyticsConfig, ReportConfig, CleanupConfig])
def test_out_of_range_values_name_the_file_section_and_key(tmp_path, config_class, section, key, value, expected):
    path = tmp_path / "c.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigurationError) as info:
        config_class.from_toml(str(path))
    assert str(info.value) == f"{path}: [{section}] {key} = {value}: expected {expected}"


@pytest.mark.parametrize("config_class", [AnalyticsConfig, ReportConfig, CleanupConfig])
def test_every_command_checks_the_whole_shared_file(tmp_path, config_class):
    path = tmp_path / "c.toml"
    path.write_text('[cleanup]\nstatus = ["FAILED"]\n')
    with pytest.raises(ConfigurationError, match=r"unknown key 'status' in \[cleanup\]"):
        config_class.from_toml(str(path))


def test_cleanup_criteria_from_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[cleanup]\nexperiments = ["7"]\nusers = "ci,bot"\nwhere = "metrics[\'loss\'] > 1"\nkeep_newest = 5\n'
                    '[cleanup.tags]\nstage = "debug"\n')
    assert CleanupConfig.from_toml(str(path)).criteria() == {
        "experiment_ids": ["7"], "users": ["ci", "bot"], "tags": {"stage": "debug"}, "where": "metrics['loss'] > 1", "keep_newest": 5}


def test_cli_errors_exit_2_before_any_spark(tmp_path, capsys):
    assert cleanup_cli.main(["--tracking-uri", "sqlite:///x.db", "--yes", "--restore", "b"]) == EXIT_CONFIG
    assert report_cli.main(["--tracking-uri", "postgresql://u:Sup3rSecret@h/db"]) == EXIT_CONFIG
    assert analytics_cli.main(["--tracking-uri", "postgresql://u:Sup3rSecret@h/db"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "--out" in err and "no target" in err and "Sup3rSecret" not in err


def test_cleanup_summary_lists_runs_and_how_to_undo():
    runs = [{"experiment_id": "1", "run_id": "a" * 32, "status": "FAILED", "start_time": None, "run_name": "r"}]
    dry = cleanup.CleanupResult("dry run", "sqlite:///m.db", "statuses=['FAILED']", runs).summary()
    assert "1 run(s) selected" in dry and "a" * 32 in dry and "--yes" in dry
    done = cleanup.CleanupResult("delete", "s", "c", runs, batch_id="B1", record="f.jsonl").summary()
    assert "cleanup --restore B1" in done and "f.jsonl" in done
    many = cleanup.CleanupResult("dry run", "s", "c", runs * (cleanup.SHOWN + 5)).summary()
    assert "... and 5 more" in many


def test_databricks_bulk_only_for_an_exact_time_bound():
    assert deletion.bulk_time_bound({"experiment_ids": ["1"], "older_than": 30.0})
    assert not deletion.bulk_time_bound({"experiment_ids": ["1"], "older_than": 30.0, "statuses": ["FAILED"]})
    assert not deletion.bulk_time_bound({"experiment_ids": ["1"]})
