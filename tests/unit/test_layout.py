"""The package's layout rules, read from the source: no import cycles, nothing imports the
package face, no private name crosses a package, no module over 700 lines, one credential
registry.

Imports are read from the syntax tree, those inside functions included: a lazy import that
closes a loop is a cycle all the same.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import pyspark_experiments

PACKAGE = "pyspark_experiments"
SOURCE = Path(pyspark_experiments.__file__).resolve().parent
MAX_LINES = 700
#: Old import paths kept for one release; each only re-exports from its new home.
DEPRECATED_SHIMS = {"analytics_job", "streaming", "table_options", "target"}


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(SOURCE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return _modules()[name].name == "__init__.py"


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer if _is_package(importer) else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


@cache
def _imports(importer: str) -> tuple[tuple[str, str | None, int], ...]:
    """(module imported, name taken from it or None, line) for every import of ``importer``
    that names this package."""
    found = []
    for node in ast.walk(ast.parse(_modules()[importer].read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(importer, node)
            found += [(source, alias.name, node.lineno) for alias in node.names]
    return tuple(item for item in found if item[0] == PACKAGE or item[0].startswith(PACKAGE + "."))


def _edges(importer: str) -> set[str]:
    """The modules ``importer`` depends on: ``from pkg import mod`` depends on ``pkg.mod``
    where that is a module, else on ``pkg`` itself."""
    modules = _modules()
    targets = set()
    for source, name, _ in _imports(importer):
        submodule = f"{source}.{name}" if name else None
        targets.add(submodule if submodule in modules else source)
    targets.discard(importer)
    return {target for target in targets if target in modules}


def test_no_import_cycles():
    graph = {name: _edges(name) for name in _modules()}
    state: dict[str, int] = {}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_nothing_imports_the_package_face():
    upward = [
        f"{name} (line {line}) imports {name_taken or source} from the package face"
        for name in _modules()
        if name != PACKAGE
        for source, name_taken, line in _imports(name)
        if source == PACKAGE and f"{PACKAGE}.{name_taken}" not in _modules()
    ]
    assert not upward, "\n".join(upward)


def test_no_private_name_crosses_a_package():
    """A ``_name`` may be imported only inside the package that defines it."""
    crossing = []
    for importer in _modules():
        home = importer if _is_package(importer) else importer.rpartition(".")[0]
        for source, name, line in _imports(importer):
            private = name if name and name.startswith("_") and name != "__version__" else None
            owner = source
            if private is None:
                private = next((part for part in source.split(".") if part.startswith("_") and part != "__main__"), None)
                owner = source.rpartition(".")[0]
            elif f"{source}.{private}" not in _modules():
                owner = source + ".<module>"
            if private and owner != home:
                crossing.append(f"{importer} (line {line}) imports {private} from {source}")
    assert not crossing, "\n".join(sorted(set(crossing)))


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_size(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it by job"


def test_deprecated_paths_only_re_export():
    for name in DEPRECATED_SHIMS:
        module = f"{PACKAGE}.{name}"
        if module in _modules():
            assert not _is_package(module), f"{module} must be a module, not a folder"
            tree = ast.parse(_modules()[module].read_text())
            defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)]
            assert not defined, f"{module} defines {defined}; it should only re-export"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_one_credential_registry():
    """Secrets are hidden by :mod:`pyspark_experiments.redact` alone: no other module masks text
    itself (the mask appears elsewhere only in examples) or keeps base64 forms of secrets."""
    registry = f"{PACKAGE}.redact"
    masking = []
    for name, path in _modules().items():
        if name == registry:
            continue
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "***" in node.value and id(node) not in docstrings:
                masking.append(f"{name} (line {node.lineno}) masks text itself: {node.value!r}")
    assert not masking, "\n".join(masking)
    users = [name for name in _modules() if name != registry for source, _, _ in _imports(name) if source == registry]
    assert len(set(users)) >= 10, f"only {sorted(set(users))} print through the registry"
