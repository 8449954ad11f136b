"""The message an interpreter without a usable pyspark gets: pyspark is not a base requirement,
so the first import of the package says how to get one.

Each case runs in a fresh interpreter where the module is blocked the way Python documents
(``sys.modules[name] = None`` makes ``import name`` raise ``ModuleNotFoundError``), so the real
import machinery runs; the Connect-only and no-delta-spark cases run in real virtual
environments in ``tests/integration/test_install.py``.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest


def _import_without(blocked: str, statement: str) -> subprocess.CompletedProcess:
    code = f"import sys\nsys.modules[{blocked!r}] = None\n{statement}\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "statement",
    [
        "import pyspark_experiments",
        "from pyspark_experiments.session import session",
        "from pyspark_experiments.cli import main",
        "import runpy; runpy.run_module('pyspark_experiments', run_name='__main__')",
    ],
)
def test_without_pyspark_every_entry_names_both_ways_to_get_it(statement):
    done = _import_without("pyspark", statement)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pyspark_experiments.errors.MissingDependencyError: pyspark-experiments needs pyspark 4.0 or newer")
    assert f"{sys.executable} cannot import pyspark" in last
    assert "pip install 'pyspark-experiments[spark]'" in last
    assert all(platform in last for platform in ("Databricks Runtime", "pyspark-client", "databricks-connect"))
    # one message, not Python's bare error chained above it
    assert "ModuleNotFoundError" not in done.stderr


def test_a_pyspark_without_python_data_sources_is_named_with_its_version():
    done = _import_without("pyspark.sql.datasource", "import pyspark_experiments")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    version = metadata.version("pyspark")
    assert last.startswith(f"pyspark_experiments.errors.MissingDependencyError: pyspark {version} (")
    assert "has no Python data source API (pyspark.sql.datasource)" in last and "Spark 4.0 or newer" in last
    assert "pip install 'pyspark-experiments[spark]'" in last


def test_a_broken_pyspark_is_reported_as_itself_not_as_a_missing_one():
    done = _import_without("py4j", "import pyspark_experiments")
    assert done.returncode != 0
    assert "ModuleNotFoundError" in done.stderr and "py4j" in done.stderr
    assert "MissingDependencyError" not in done.stderr


def test_with_pyspark_the_check_returns_its_version():
    import pyspark

    from pyspark_experiments.dependencies import require_pyspark

    assert require_pyspark() == pyspark.__version__
