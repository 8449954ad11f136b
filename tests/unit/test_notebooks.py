"""The notebooks are committed executed: every code cell ran, in order, without an error."""

from __future__ import annotations

import nbformat
import pytest

from notebooks.execute import without_start_up_noise
from support.paths import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {path.name for path in NOTEBOOKS} >= {"dashboard.ipynb", "reproducibility.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_executed(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "run top to bottom, once"
    outputs = [output for cell in code for output in cell.outputs]
    assert outputs, "committed with outputs"
    assert "error" not in {output.get("output_type") for output in outputs}


def test_start_up_noise_is_dropped_and_everything_else_kept():
    text = (
        "WARNING: Using incubator modules: jdk.incubator.vector\n"
        "26/12/08 02:14:09 WARN Utils: Your hostname, vm, resolves to a loopback address\n"
        "Setting default log level to \"WARN\".\n"
        "rows: 2000\n"
        "26/12/08 02:14:51 WARN TaskSetManager: Stage 3 contains a task of very large size\n"
    )
    assert without_start_up_noise(text) == (
        "rows: 2000\n26/12/08 02:14:51 WARN TaskSetManager: Stage 3 contains a task of very large size\n"
    )
