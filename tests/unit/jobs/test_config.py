"""The shared config base and flags: one coercion per key for every command's config (a
``progress`` word, a list, a log level mean the same in sync, analytics, report and cleanup),
one ``KEY=VALUE`` parser for ``--conf``, ``--tag`` and ``--rest-option``."""

from __future__ import annotations

import pytest

from pyspark_experiments.analytics import cli as analytics_cli
from pyspark_experiments.analytics.config import AnalyticsConfig
from pyspark_experiments.cleanup import cli as cleanup_cli
from pyspark_experiments.cleanup.config import CleanupConfig
from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.jobs import EXIT_CONFIG, SHARED_LAYOUT, CommandConfig
from pyspark_experiments.jobs.flags import flag_values, key_values
from pyspark_experiments.report import cli as report_cli
from pyspark_experiments.report.config import ReportConfig
from pyspark_experiments.sync import cli as sync_cli
from pyspark_experiments.sync.config import SyncConfig

CONFIGS = [SyncConfig, AnalyticsConfig, ReportConfig, CleanupConfig]
COMMANDS = [sync_cli, analytics_cli, report_cli, cleanup_cli]


@pytest.mark.parametrize("config_class", CONFIGS)
@pytest.mark.parametrize(("word", "progress"), [
    ('"always"', True), ('"never"', False), ('"auto"', None), ('"Always"', True), ("true", True), ("false", False),
])
def test_progress_words_mean_the_same_in_every_command(tmp_path, config_class, word, progress):
    path = tmp_path / "c.toml"
    path.write_text(f"[logging]\nprogress = {word}\n")
    assert config_class.from_toml(str(path)).progress is progress
    assert config_class().override(progress=word.strip('"')).progress is progress


@pytest.mark.parametrize("config_class", CONFIGS)
def test_an_unknown_progress_word_names_the_key_in_every_command(tmp_path, config_class):
    path = tmp_path / "c.toml"
    path.write_text('[logging]\nprogress = "sometimes"\n')
    with pytest.raises(ConfigurationError, match=r"\[logging\] progress = 'sometimes': expected \"auto\", \"always\""):
        config_class.from_toml(str(path))
    with pytest.raises(ConfigurationError, match="setting 'progress': invalid value 'sometimes'"):
        config_class().override(progress="sometimes")


@pytest.mark.parametrize("config_class", CONFIGS)
def test_shared_settings_are_coerced_alike(config_class):
    cfg = config_class().override(experiments="1, two,", log_level="debug", spark_log_level="warn",
                                  spark_conf={"spark.x": 8, "spark.y": True})
    assert (cfg.experiments, cfg.log_level, cfg.spark_log_level) == (("1", "two"), "DEBUG", "WARN")
    assert cfg.spark_conf == {"spark.x": "8", "spark.y": "true"}
    assert config_class().override(experiments=[]).experiments is None


@pytest.mark.parametrize("config_class", CONFIGS)
def test_every_command_layout_holds_the_shared_keys(config_class):
    assert issubclass(config_class, CommandConfig)
    for section, keys in SHARED_LAYOUT.items():
        for name, key in keys.items():
            assert config_class.LAYOUT[section][name] is key


@pytest.mark.parametrize("config_class", CONFIGS)
def test_an_unknown_setting_is_an_error(config_class):
    with pytest.raises(ConfigurationError, match="unknown setting"):
        config_class().override(colour="blue")


def test_booleans_and_numbers_from_flag_text():
    assert SyncConfig().override(full="True").full is True
    assert AnalyticsConfig().override(exact_history="false", stuck_hours="12").exact_history is False
    with pytest.raises(ConfigurationError, match="setting 'keep_newest': invalid value 2.5"):
        CleanupConfig().override(keep_newest=2.5)
    with pytest.raises(ConfigurationError, match="setting 'margin'"):
        AnalyticsConfig().override(margin=True)


def test_key_values_parses_and_names_the_flag():
    assert key_values([" a = 1", "b=x=y", "a=2"], "--conf") == {"a": "2", "b": "x=y"}
    assert key_values(None, "--conf") == {}
    assert key_values(["stage= debug "], "--tag", strip_values=False) == {"stage": " debug "}
    with pytest.raises(ConfigurationError, match="--conf 'spark.x': expected KEY=VALUE"):
        key_values(["spark.x"], "--conf")
    with pytest.raises(ConfigurationError, match=r"--tag \(no key\): expected KEY=VALUE"):
        key_values([" =debug"], "--tag")
    with pytest.raises(ConfigurationError, match="--rest-option 'maxRetries2': expected NAME=VALUE"):
        key_values(["maxRetries2"], "--rest-option", name="NAME")


def test_key_values_never_shows_a_value():
    with pytest.raises(ConfigurationError) as error:
        key_values(["=Sup3rSecret"], "--rest-option", name="NAME")
    assert "Sup3rSecret" not in str(error.value)


def test_flag_values_reads_both_spellings():
    assert flag_values(["--conf", "a=1", "--conf=b=2", "--conf"], "--conf") == ["a=1", "b=2"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_rejects_a_conf_flag_without_a_value_before_spark(command, capsys):
    assert command.main(["--target-path", "/tmp/d", "--out", "/tmp/r", "--conf", "spark.x"]
                        if command is report_cli else ["--target-path", "/tmp/d", "--conf", "spark.x"]) == EXIT_CONFIG
    assert "--conf 'spark.x': expected KEY=VALUE" in capsys.readouterr().err
