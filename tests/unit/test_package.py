"""The package's top level: version from the metadata, register()'s alias rule, cheap import."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata

import pytest

import pyspark_experiments
from pyspark_experiments.errors import ConfigurationError
from support.paths import REPO


def test_version_comes_from_the_package_metadata():
    assert pyspark_experiments.__version__ == metadata.version("pyspark-experiments")


class _Registry:
    def __init__(self):
        self.names = []

    def register(self, source):
        self.names.append(source.name())


class _Session:
    def __init__(self):
        self.dataSource = _Registry()


def test_register_alias_only_on_request():
    plain, aliased = _Session(), _Session()
    pyspark_experiments.register(plain)
    pyspark_experiments.register(aliased, alias="mlflow-experiment")
    assert plain.dataSource.names == ["experiments"]
    assert aliased.dataSource.names == ["experiments", "mlflow-experiment"]
    with pytest.raises(ConfigurationError, match="unknown alias"):
        pyspark_experiments.register(_Session(), alias="mlflow")


def test_top_level_import_is_safe_and_imports_no_optional_dependency():
    code = (
        "import sys, pyspark_experiments; "
        "print(sorted(m for m in ('mlflow', 'psycopg', 'delta', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _imports(module) -> set[str]:
    tree = ast.parse(open(module.__file__).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_uri_imports_no_store_and_datasource_imports_at_module_level():
    from pyspark_experiments import datasource, uri

    assert not any("stores" in name for name in _imports(uri))
    top_level = {
        "." * n.level + (n.module or "") for n in ast.parse(open(datasource.__file__).read()).body if isinstance(n, ast.ImportFrom)
    }
    assert {".stores", ".stores.base", ".stores.resolve", ".uri"} <= top_level


def test_every_test_folder_is_a_package():
    """Test folders mirror the source tree, so two test files may share a name
    (tests/unit/stores/test_models.py, tests/unit/stores/rest/test_models.py); pytest tells them
    apart only when every folder that holds tests has an ``__init__.py``."""
    root = REPO
    folders = {path.parent for top in ("tests/unit", "tests/integration", "benchmarks/tests") for path in (root / top).rglob("test_*.py")}
    missing = sorted(str(folder.relative_to(root)) for folder in folders if not (folder / "__init__.py").exists())
    assert folders and not missing, f"test folders without __init__.py: {missing}"
