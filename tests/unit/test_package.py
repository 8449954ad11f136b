"""The package's top level: version from the metadata, register()'s alias rule, cheap import."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

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


def _top_level_imports(module) -> set[str]:
    return {
        "." * n.level + (n.module or "") for n in ast.parse(open(module.__file__).read()).body if isinstance(n, ast.ImportFrom)
    }


def test_uri_imports_no_store_and_datasource_imports_at_module_level():
    import pyspark_experiments.datasource as datasource
    from pyspark_experiments import uri
    from pyspark_experiments.datasource import options

    assert not any("stores" in name for name in _imports(uri))
    assert {"..stores.problems", ".options", ".stream"} <= _top_level_imports(datasource)
    assert {"..stores", "..stores.resolve", "..uri"} <= _top_level_imports(options)


def _names_from_the_face(path: Path) -> list[str]:
    """The names ``path`` imports from the package face (submodules, imported as modules, do not count)."""
    package = Path(pyspark_experiments.__file__).parent
    depth = len(path.relative_to(package).parts) - 1  # folders between the face and the module
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if (node.level == depth + 1 and node.module is None) or (node.level == 0 and node.module == "pyspark_experiments"):
            found += [
                alias.name for alias in node.names
                if not (package / f"{alias.name}.py").exists() and not (package / alias.name).is_dir()
            ]
    return found


def test_the_spark_adapter_and_the_session_import_nothing_from_the_face():
    package = Path(pyspark_experiments.__file__).parent
    modules = [*sorted((package / "datasource").glob("*.py")), package / "session.py", package / "demo.py"]
    found = {str(m.relative_to(package)): _names_from_the_face(m) for m in modules}
    assert len(found) >= 5
    assert not {module: names for module, names in found.items() if names}


def test_the_face_only_re_exports():
    face = ast.parse(open(pyspark_experiments.__file__).read())
    defined = [n.name for n in face.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert defined == []
    from pyspark_experiments.datasource import ExperimentsDataSource, register
    from pyspark_experiments.session import session

    assert pyspark_experiments.DefaultSource is ExperimentsDataSource
    assert pyspark_experiments.register is register and pyspark_experiments.session is session


@pytest.mark.parametrize(
    "old, new, names",
    [
        ("pyspark_experiments.streaming", "pyspark_experiments.datasource.stream",
         ["ExperimentsStreamReader", "RefusedStream", "StreamPartition", "run_digest"]),
        ("pyspark_experiments.table_options", "pyspark_experiments.datasource.options",
         ["ARTIFACT_OPTIONS", "artifact_path_option", "bool_option", "check_table_options"]),
    ],
)
def test_old_module_paths_still_import_and_warn(old, new, names, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated .* import from {new} instead"):
        shim = importlib.import_module(old)
    current = importlib.import_module(new)
    assert sorted(shim.__all__) == sorted(names)
    assert all(getattr(shim, name) is getattr(current, name) for name in names)


def test_every_test_folder_is_a_package():
    """Test folders mirror the source tree, so two test files may share a name
    (tests/unit/stores/test_models.py, tests/unit/stores/rest/test_models.py); pytest tells them
    apart only when every folder that holds tests has an ``__init__.py``."""
    root = REPO
    folders = {path.parent for top in ("tests/unit", "tests/integration", "benchmarks/tests") for path in (root / top).rglob("test_*.py")}
    missing = sorted(str(folder.relative_to(root)) for folder in folders if not (folder / "__init__.py").exists())
    assert folders and not missing, f"test folders without __init__.py: {missing}"
