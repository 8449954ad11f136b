"""Settings shared by every test (tests/ and benchmarks/tests/): the reference stores' and the
Spark session's plugins, and the mlflow environment.

Unit tests never start a JVM (tests/unit/conftest.py fails any that does); the ``spark`` fixture
(tests/support/spark.py) starts one for the integration and benchmark tests that ask for it.
"""

from __future__ import annotations

import os
import sys

# The reference stores written by real mlflow, and one Spark session for the whole run.
pytest_plugins = ["support.stores", "support.spark"]

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def credential_registry_of_this_test():
    """Each test keeps the credentials it made the registry remember to itself, as a process of
    its own would: random secrets of a property test (hundreds, some short) would otherwise hide
    ordinary words such as ``mlflow.db`` in later tests' output. What session and module
    fixtures made it remember before the test stays."""
    from pyspark_experiments import redact

    known, ordered = redact._known, redact._ordered
    redact._known, redact._ordered = set(known), list(ordered)
    yield
    redact._known, redact._ordered = known, ordered
