"""Our errors found inside Spark's wrapping of them (the texts are Spark 4's, as a data source
error reaches the driver), their exit codes, and ``--debug``."""

from __future__ import annotations

import argparse

import pytest

from pyspark_experiments import jobs
from pyspark_experiments.errors import (
    ConfigurationError,
    MalformedRecordError,
    StoreConnectionError,
    StoreNotFoundError,
)
from pyspark_experiments.jobs.failures import innermost_error, wrapped_error

PLANNING = """[PYTHON_DATA_SOURCE_ERROR] Failed to generate Python data source read partitions: Traceback (most recent call last):
  File "/src/pyspark_experiments/datasource/__init__.py", line 80, in partitions
    return [StorePartition(p) for p in store.plan(self.request.selection(store))]
                                                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/src/pyspark_experiments/stores/sql/connections.py", line 263, in _sqlite_uri
    raise StoreNotFoundError(f"tracking URI {self.uri.display!r}: no SQLite database at {path!r}")
pyspark_experiments.errors.StoreNotFoundError: tracking URI 'sqlite:////tmp/x/nonexistent.db': no SQLite database at '/tmp/x/nonexistent.db'
 SQLSTATE: 38000"""

UNREACHABLE = ("""[PYTHON_DATA_SOURCE_ERROR] Failed to generate Python data source read partitions: Traceback (most recent call last):
  File "/src/pyspark_experiments/stores/sql/connections.py", line 324, in _connect_postgresql
    raise StoreConnectionError(f"cannot connect to {self.uri.display}: {self._redacted(error)}") from None
pyspark_experiments.errors.StoreConnectionError: cannot connect to postgresql://u:***@127.0.0.1:1/mlflow: """
               """connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?
 SQLSTATE: 38000""")

READING = """
  An exception was thrown from the Python worker. Please see the stack trace below.
Traceback (most recent call last):
  File "/src/pyspark_experiments/stores/file/metrics.py", line 40, in parse
    raise ValueError("bad line")
ValueError: bad line

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/src/pyspark_experiments/datasource/reader.py", line 12, in read
pyspark_experiments.errors.MalformedRecordError: run 0123abcd: metrics/loss line 3: 'x 1 2' is not '<timestamp> <value> <step>'

JVM stacktrace:
org.apache.spark.api.python.PythonException: Traceback (most recent call last):
\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:600)
"""


@pytest.mark.parametrize("text, kind, message", [
    (PLANNING, StoreNotFoundError,
     "tracking URI 'sqlite:////tmp/x/nonexistent.db': no SQLite database at '/tmp/x/nonexistent.db'"),
    (UNREACHABLE, StoreConnectionError,
     'cannot connect to postgresql://u:***@127.0.0.1:1/mlflow: connection failed: connection to server at '
     '"127.0.0.1", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?'),
    (READING, MalformedRecordError, "run 0123abcd: metrics/loss line 3: 'x 1 2' is not '<timestamp> <value> <step>'"),
])
def test_the_innermost_error_of_ours_is_found_with_its_class_and_whole_message(text, kind, message):
    found = wrapped_error(text)
    assert type(found) is kind and str(found) == message


@pytest.mark.parametrize("text", [
    "java.lang.OutOfMemoryError: Java heap space",
    "Traceback (most recent call last):\nValueError: bad line\n SQLSTATE: 38000",
    "pyspark_experiments.errors.NoSuchError: x",  # not one of our classes
    "pyspark_experiments.errors.__builtins__: x",
])
def test_text_without_an_error_of_ours_gives_none(text):
    assert wrapped_error(text) is None


def test_innermost_error_keeps_ours_and_others_and_chains_the_wrapper():
    ours = ConfigurationError("option 'x'")
    assert innermost_error(ours) is ours
    other = RuntimeError("boom")
    assert innermost_error(other) is other
    wrapper = RuntimeError(PLANNING)
    wrapper.skipped_records = 3
    found = innermost_error(wrapper)
    assert isinstance(found, StoreNotFoundError) and found.__cause__ is wrapper and found.skipped_records == 3


@pytest.mark.parametrize("text, code", [(PLANNING, jobs.EXIT_CONFIG), (UNREACHABLE, jobs.EXIT_FAILED),
                                        (READING, jobs.EXIT_FAILED)])
def test_a_wrapped_error_exits_with_its_own_code_and_prints_only_its_message(text, code, capsys):
    args = argparse.Namespace(debug=False)

    def run(settings, show):
        raise RuntimeError(text)

    assert jobs.run_job("analytics", [], lambda argv: jobs.JobSettings(jobs.CommandConfig(), args), run) == code
    out, err = capsys.readouterr()
    message = str(wrapped_error(text)).splitlines()[0]
    assert message in out and message in err
    for noise in ("Traceback", "SQLSTATE", "PYTHON_DATA_SOURCE_ERROR", "org.apache", "File \""):
        assert noise not in out + err


@pytest.mark.parametrize("flags", [{"debug": True}, {"log_level": "DEBUG"}])
def test_debug_shows_the_full_traceback(flags, capsys):
    args = argparse.Namespace(debug=flags.get("debug", False))
    cfg = jobs.CommandConfig().override(log_level=flags.get("log_level", "INFO"))

    def run(settings, show):
        raise RuntimeError(PLANNING)

    assert jobs.run_job("analytics", [], lambda argv: jobs.JobSettings(cfg, args), run) == jobs.EXIT_CONFIG
    out, err = capsys.readouterr()
    assert "Traceback" in err and "SQLSTATE: 38000" in err and "no SQLite database" in out
    assert "Traceback" not in out


def test_the_debug_flag_is_shared():
    parser = argparse.ArgumentParser()
    jobs.add_job_flags(parser, "c.toml", "the tables")
    assert parser.parse_args(["--debug"]).debug and not parser.parse_args([]).debug


@pytest.mark.parametrize("error, code", [(StoreNotFoundError("x"), 2), (StoreConnectionError("x"), 1)])
def test_a_missing_store_is_configuration_an_unreachable_one_a_failure(error, code):
    assert jobs.exit_code_for(error) == code
