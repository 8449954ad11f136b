"""session()'s choice of the workers' Python, and the error that names it when a worker cannot
import the package (the real run is in tests/integration/test_session.py)."""

from __future__ import annotations

import sys

import pytest

from pyspark_experiments.errors import MissingDependencyError
from pyspark_experiments.session import worker_python, worker_python_chosen, worker_python_error


def test_the_users_choice_of_the_workers_python_is_the_setting_then_the_environment(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    assert not worker_python_chosen({"spark.sql.shuffle.partitions": "8"})
    assert worker_python({}) == "python3"
    assert worker_python_chosen({"spark.pyspark.python": "/opt/env/bin/python"})
    monkeypatch.setenv("PYSPARK_PYTHON", "/venv/bin/python")
    assert worker_python_chosen({})
    assert worker_python({}) == "/venv/bin/python"
    assert worker_python({"spark.pyspark.python": "/opt/env/bin/python"}) == "/opt/env/bin/python"


@pytest.mark.parametrize("module", ["pyspark_experiments", "pyspark_experiments.datasource", "pyspark", "pyarrow"])
def test_a_worker_that_cannot_import_the_package_is_told_in_two_lines(module, monkeypatch):
    monkeypatch.setenv("PYSPARK_PYTHON", "/opt/no-such-env/bin/python")
    spark_error = RuntimeError(
        "[PYTHON_DATA_SOURCE_ERROR] Failed to create Python data source instance: Traceback (most recent call last):\n"
        f"  File \"<frozen importlib._bootstrap>\", line 1140, in _find_and_load_unlocked\nModuleNotFoundError: No module named '{module}'"
    )
    explained = worker_python_error(spark_error)
    assert isinstance(explained, MissingDependencyError)
    first, second = str(explained).splitlines()
    assert first == (
        f"Spark started its Python workers with /opt/no-such-env/bin/python, which cannot import pyspark_experiments "
        f"(No module named '{module}')."
    )
    assert "PYSPARK_PYTHON" in second and "spark.pyspark.python" in second and sys.executable in second


def test_other_errors_are_left_as_they_are():
    assert worker_python_error(RuntimeError("No module named 'pandas'")) is None
    assert worker_python_error(RuntimeError("No module named 'pyspark_extras'")) is None
    assert worker_python_error(ValueError("option 'table': unknown value 'run'")) is None
    assert worker_python_error(MissingDependencyError("No module named 'pyspark'")) is None
