"""Execute notebooks in place, top to bottom in a fresh kernel, as they are committed.

The committed notebooks carry their outputs. Each code cell's output is kept as the kernel
produced it, except the JVM's start-up log lines on stderr (the hostname and log4j notices
Spark prints before any cell could silence them), which say nothing about the notebook.

Usage (from the repository root, with the package installed or ``src`` on ``PYTHONPATH``)::

    python notebooks/execute.py notebooks/reproducibility.ipynb notebooks/dashboard.ipynb
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

START_UP_NOISE = re.compile(
    r"^(WARNING: Using incubator modules|Using Spark's default log4j profile|Setting default log level|"
    r"To adjust logging level use|\d\d/\d\d/\d\d \d\d:\d\d:\d\d WARN (Utils|NativeCodeLoader):|\s*$)"
)


def without_start_up_noise(text: str) -> str:
    """``text`` without the JVM's start-up log lines.

    Example::

        >>> without_start_up_noise("Setting default log level to \\"WARN\\".\\nrows: 2000\\n")
        'rows: 2000\\n'
    """
    return "".join(line for line in text.splitlines(keepends=True) if not START_UP_NOISE.match(line))


def execute(path: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a new kernel inside a temporary working directory and
    write it back with its outputs; returns the executed notebook.

    Example::

        >>> execute(Path("notebooks/dashboard.ipynb"))  # doctest: +SKIP
    """
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="notebook-") as workdir:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": workdir}}).execute()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                output["text"] = without_start_up_noise(output["text"])
                if not output["text"]:
                    continue
            kept.append(output)
        cell.outputs = kept
    nbformat.write(notebook, path)
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        notebook = execute(path, args.timeout)
        errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
        print(f"{path}: {'FAILED' if errors else 'executed'}")
        if errors:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
