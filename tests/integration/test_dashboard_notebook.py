"""notebooks/dashboard.ipynb runs top to bottom on a fresh demo store, with its plots."""

from __future__ import annotations

import os

import pytest

from support.paths import REPO

pytestmark = pytest.mark.slow  # executes the notebook in a new kernel and JVM

ROOT = REPO


def test_dashboard_notebook_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "notebooks" / "dashboard.ipynb", as_version=4)
    python_path = [str(ROOT / "src"), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, python_path)))
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert "error" not in {output.get("output_type") for output in outputs}
    text = "\n".join(output.get("text", "") or "".join(output.get("data", {}).get("text/plain", "")) for output in outputs)
    assert "12 runs in ['Default', 'diabetes-linear', 'diabetes-trees']" in text
    assert "flagged with Databricks' limits: 0" in text
    assert "over  runs_per_experiment     7 of 6" in text  # diabetes-linear has 7 runs
    assert "beyond the newest 6 runs of its experiment" in text
    assert "report written: report.html True" in text
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 3  # the metric over time, runs per user and status, quota usage
    assert not list(tmp_path.glob("mlruns")) and not list(tmp_path.glob("mlflow.db"))  # everything in its temp dir
