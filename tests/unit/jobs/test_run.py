"""The job layer without Spark: config loading errors, exit codes, redaction of what is printed,
logging and the progress display, and run_job's outcomes."""

from __future__ import annotations

import io
import logging
import os
import re

import pytest

from pyspark_experiments import jobs, redact
from pyspark_experiments.errors import (
    ConfigurationError,
    MalformedRecordError,
    StoreConnectionError,
    TargetLockedError,
    UnsupportedStoreError,
)
from pyspark_experiments.jobs import Key, load_config
from pyspark_experiments.sync import SyncConfig, config_from_args
from pyspark_experiments.sync.config import LAYOUT
from support.paths import REPO


def write(tmp_path, text: str, name: str = "c.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, message", [
    ('[target]\nfolder = "/b"\n', r"unknown key 'folder' in \[target\]; expected one of path, schema"),
    ('[targets]\npath = "/b"\n', r"unknown section \[targets\]"),
    ('path = "/b"\n', r"key 'path' outside a section"),
    ("[sync]\nfull = 1\n", r"\[sync\] full = 1: expected true or false"),
    ('[sync]\nfull = "yes"\n', r"\[sync\] full = 'yes': expected true or false"),
    ('[sync]\nlock_timeout_minutes = "soon"\n', r"\[sync\] lock_timeout_minutes = 'soon': expected a number"),
    ("[store]\nread_mode = 'LENIENT'\n", r"\[store\] read_mode = 'LENIENT': expected FAILFAST or PERMISSIVE"),
    ("[store]\nexperiments = [1.5]\n", r"\[store\] experiments = \[1.5\]"),
    ("[spark]\nconf = 'x'\n", r"\[spark\] conf = 'x': expected a table"),
    ("[logging]\nprogress = 'sometimes'\n", r"\[logging\] progress = 'sometimes'"),
    ("[target\n", r"not valid TOML"),
])
def test_config_errors_name_the_key_and_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message) as error:
        SyncConfig.from_toml(path)
    assert path in str(error.value)


def test_a_missing_file_and_a_folder_are_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="not found"):
        load_config(str(tmp_path / "missing.toml"), LAYOUT)
    with pytest.raises(ConfigurationError, match=f"config file '{tmp_path}' is a folder, not a TOML file"):
        load_config(str(tmp_path), LAYOUT)
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe[sync]")
    with pytest.raises(ConfigurationError, match="b.toml"):
        load_config(str(binary), LAYOUT)


def test_config_folder_on_the_command_line_exits_2_naming_it(tmp_path, capsys):
    from pyspark_experiments.sync import main

    assert main(["--config", str(tmp_path)]) == jobs.EXIT_CONFIG
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "is a folder" in err


def test_example_config_is_valid_and_flags_override():
    cfg = SyncConfig.from_toml(os.path.join(REPO, "conf", "sync.toml"))
    assert cfg.target_path == "mlflow-delta" and cfg.progress is None and cfg.master == "local[*]"
    cfg, _ = config_from_args(["--config", os.path.join(REPO, "conf", "sync.toml"), "--no-progress", "--conf", "a=b"])
    assert cfg.progress is False and cfg.spark_conf["a"] == "b"


def test_key_types():
    key = Key("n", (int, float), "a number")
    assert key.check(3, "f", "s", "n") == 3
    with pytest.raises(ConfigurationError, match=r"f: \[s\] n = True: expected a number"):
        key.check(True, "f", "s", "n")  # a bool is not a number here


@pytest.mark.parametrize("error, code", [
    (ConfigurationError("x"), 2),
    (UnsupportedStoreError("x"), 2),
    (TargetLockedError("x"), 75),
    (KeyboardInterrupt(), 130),
    (StoreConnectionError("x"), 1),
    (MalformedRecordError("x"), 1),
    (RuntimeError("x"), 1),
])
def test_one_mapping_from_errors_to_exit_codes(error, code):
    assert jobs.exit_code_for(error) == code


def test_outcome_lines():
    assert jobs.outcome_line("sync", TargetLockedError("held"), 1.25) == "pyspark-experiments sync: NOT RUN after 1.2 s: held"
    failed = jobs.outcome_line("sync", RuntimeError("boom\n\tat org.apache.X"), 2)
    assert failed.startswith("pyspark-experiments sync: FAILED after 2.0 s: boom\n") and "org.apache" not in failed
    assert "INTERRUPTED" in jobs.outcome_line("sync", KeyboardInterrupt(), 0)


SECRETS = ["Hunter/Two22", "p@ss:w%rd", "s p a c e", "pässwört"]


@pytest.mark.parametrize("secret", SECRETS)
def test_printed_errors_are_redacted(secret, capsys):
    from urllib.parse import quote

    redact.remember(secret)
    uri = f"postgresql://bob:{quote(secret, safe='')}@db/mlflow"
    raw = f"postgresql://bob:{secret}@db/mlflow"

    def parse(argv):
        class S:
            log_level, progress = "INFO", False
        return S()

    def run(settings, show):
        logging.getLogger("pyspark_experiments.sync").info("connecting to %s", raw)
        raise StoreConnectionError(f"cannot connect to {uri} ({raw}): password {secret!r} rejected")

    code = jobs.run_job("sync", [], parse, run)
    out, err = capsys.readouterr()
    assert code == 1 and "FAILED" in out and "connecting to" in err
    for text in (out, err):
        assert secret not in text and quote(secret, safe="") not in text, text


def test_config_errors_on_the_command_line_are_redacted(capsys):
    from pyspark_experiments.sync import main

    assert main(["--tracking-uri", "postgresql://bob:Secret99@db/x", "--conf", "oops"]) == 2
    captured = capsys.readouterr()
    assert "Secret99" not in captured.out + captured.err


def test_logging_is_utc_on_stderr_and_hides_credentials(capsys):
    jobs.setup_logging("INFO")
    logging.getLogger("pyspark_experiments.x").info("uri postgresql://u:pw@h/db")
    err = capsys.readouterr().err
    assert "postgresql://u:***@h/db" in err and "pw@" not in err
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO pyspark_experiments.x: ", err)


def test_progress_one_line_on_a_terminal_log_lines_otherwise(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="pyspark_experiments"):
        progress = jobs.Progress("sync", enabled=True, steps=2, stream=stream, logger=logging.getLogger("pyspark_experiments.t"))
        progress.step("reading postgresql://u:pw@h/db")
        progress.step("writing")
        progress.done()
    assert stream.getvalue().count("\r\033[K") == 3 and "\n" not in stream.getvalue()
    assert "sync [2/2]" in stream.getvalue() and "pw@" not in stream.getvalue()
    assert [r.getMessage().split(" ", 2)[0] for r in caplog.records] == ["[1/2]", "[2/2]"]


def test_run_job_usage_errors_and_help(capsys):
    from pyspark_experiments.sync import main

    def parse(argv):
        raise SystemExit(2)

    assert jobs.run_job("x", [], parse, lambda s, p: None) == 2
    assert main(["--help"]) == 0
    assert "Exit codes: 0 success" in capsys.readouterr().out


def test_command_registry():
    from pyspark_experiments import cli

    assert set(cli.COMMANDS) >= {"demo", "sync"}
    assert cli.main(["nope"]) == 2
    assert cli.main(["--help"]) == 0


@pytest.mark.parametrize("module", [
    "pyspark_experiments.jobs", "pyspark_experiments.jobs.run", "pyspark_experiments.jobs.config",
    "pyspark_experiments.jobs.flags", "pyspark_experiments.jobs.output", "pyspark_experiments.jobs.hiding",
    "pyspark_experiments.cli", "pyspark_experiments.jobs.target",
    "pyspark_experiments.jobs.lock", "pyspark_experiments.sync.config", "pyspark_experiments.sync.state",
    "pyspark_experiments.sync.plan", "pyspark_experiments.sync.result", "pyspark_experiments.sync.faults",
    "pyspark_experiments.sync.reads", "pyspark_experiments.sync.writes", "pyspark_experiments.sync.scope",
])
def test_doctest_examples(module, monkeypatch):
    import doctest
    import importlib

    monkeypatch.chdir(REPO)  # examples read conf/sync.toml
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_small_table_settings_let_errors_through_whoever_set_the_conf():
    """Two syncs in one session: the second finds the setting already made by the first; an
    error raised inside (a locked target) must reach the caller as itself."""
    from pyspark_experiments.errors import TargetLockedError
    from pyspark_experiments.sync.runner import _SNAPSHOT_PARTITIONS, _small_table_settings

    class Conf(dict):
        def get(self, key, default=None):
            return super().get(key, default)

        def set(self, key, value):
            self[key] = value

        def unset(self, key):
            self.pop(key, None)

    class Session:
        conf = Conf()

    spark = Session()
    for preset in (None, "4"):
        spark.conf.clear()
        if preset:
            spark.conf.set(_SNAPSHOT_PARTITIONS, preset)
        with pytest.raises(TargetLockedError):
            with _small_table_settings(spark):
                raise TargetLockedError("another sync holds the target")
        assert spark.conf.get(_SNAPSHOT_PARTITIONS) == preset
