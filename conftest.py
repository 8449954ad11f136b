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
