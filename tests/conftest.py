"""Settings shared by every test: the reference stores' plugin and the mlflow environment.

The Spark session lives in ``tests/integration/conftest.py``: unit tests never start a JVM.
"""

from __future__ import annotations

import os
import sys

# The reference stores written by real mlflow (tests/support/stores.py).
pytest_plugins = ["support.stores"]

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
