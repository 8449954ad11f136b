"""Installing the package beside the Spark a platform already has changes that Spark in no way.

Each test builds a virtual environment with pip from the package index (no system site
packages), installs the platform's Spark first, then this package from a wheel built once per
session, and looks at what pip left:

- ``pyspark-client`` alone (Spark Connect only): no ``pyspark`` distribution appears, and the
  environment reads a SQLite store written by mlflow through a local Spark Connect server, which
  runs from the test interpreter;
- a preinstalled pyspark of another allowed version keeps its version, and a local session says
  that it needs delta-spark;
- databricks-connect, which ships the ``pyspark`` module without the ``pyspark`` distribution,
  keeps its module, and the package imports on it.

pip uses the machine's cache, so only a first run downloads (pyspark 4.1.1 is a 455 MB source
archive built once into a wheel).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from importlib import metadata
from pathlib import Path

import pytest

from support.paths import REPO
from support.small import write_small_stores

pytestmark = pytest.mark.slow  # each builds a venv with pip: 40 to 140 s each, 6 min together (2026-12-08)

#: The test interpreter's pyspark: the Connect server's, and so the pyspark-client's version.
PYSPARK = metadata.version("pyspark")
#: An allowed pyspark other than the test interpreter's, preinstalled as a platform would.
OTHER_PYSPARK = "4.1.1" if not PYSPARK.startswith("4.1.") else "4.0.1"
#: databricks-connect, newest served here on 2026-12-08: a pyspark 3.5.2 module with Python data
#: sources. Its pin numpy<2 needs an older pyarrow (pyarrow 26 refuses NumPy 1; 20 takes it).
DATABRICKS_CONNECT = ["databricks-connect==16.1.7", "pyarrow<21"]
#: What the environment of a new venv must not inherit from the test run.
NOT_INHERITED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SPARK_HOME", "SPARK_REMOTE", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")
PIP_TIMEOUT_S = 1200

# What pip left in a venv: the pyspark module and the distributions that may provide it.
PROBE = textwrap.dedent("""
    import json
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    import pyspark

    print(json.dumps({"module": pyspark.__version__, "file": pyspark.__file__,
                      **{name: version(name) for name in ("pyspark", "pyspark-client", "delta-spark", "databricks-connect")}}))
""")

# The package in a venv: where it imports from, the source Spark discovers, and what session() says.
PACKAGE = textwrap.dedent("""
    import json
    import pyspark_experiments
    from pyspark_experiments.errors import MissingDependencyError

    try:
        pyspark_experiments.session(master="local[1]")
        refused = None
    except MissingDependencyError as error:
        refused = str(error)
    print(json.dumps({"package": pyspark_experiments.__file__, "source": pyspark_experiments.DefaultSource.name(),
                      "local_session": refused}))
""")

# A Connect client in a venv: the runs of every experiment, with their latest loss.
CLIENT = textwrap.dedent("""
    import json, sys
    import pyspark_experiments

    url, uri = sys.argv[1:3]
    spark = pyspark_experiments.session(remote=url)
    runs = spark.read.format("experiments").option("trackingUri", uri).load()
    rows = runs.select("run_id", "run_name", runs.metrics["loss"].alias("loss")).collect()
    print(json.dumps({"session": type(spark).__module__, "runs": {row.run_id: [row.run_name, row.loss] for row in rows}}))
    spark.stop()
""")

# A local Spark Connect server (the Connect plugin on a classic session) on a given port.
SERVER = textwrap.dedent("""
    import sys
    from pyspark_experiments.session import session

    spark = session(app_name="pyspark-experiments-connect-server", master="local[2]", delta=False, config={
        "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": sys.argv[1],
        "spark.sql.shuffle.partitions": "2",
        "spark.ui.enabled": "false",
        "spark.log.level": "ERROR",
        "spark.python.authenticate.socketTimeout": "120s",
    })
    print("ready", flush=True)
    sys.stdin.read()  # serve until the test closes stdin
    spark.stop()
""")


def _env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}


def _run(command: list[str], timeout: float = PIP_TIMEOUT_S) -> str:
    done = subprocess.run([str(part) for part in command], env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))[:300]}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _pip_install(python: Path, *requirements) -> None:
    _run([python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", *requirements])


def _new_venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", path], timeout=300)
    return path / "bin" / "python"


def _json(python: Path, code: str, *args) -> dict:
    """The JSON line ``code`` prints, run by ``python`` as a script file: pyspark-client 4.2
    takes a ``python -c`` program for a doctest run and exits looking for SPARK_HOME."""
    script = python.parent.parent / f"probe-{hashlib.sha1(code.encode()).hexdigest()[:12]}.py"
    script.write_text(code)
    return json.loads(_run([python, script, *args], timeout=600).strip().splitlines()[-1])


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """This checkout as a wheel, built from a copy (a build leaves build/ and egg-info behind)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--quiet", "--no-deps", "-w", out, source])
    (built,) = out.glob("pyspark_experiments-*.whl")
    return built


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read_lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line.strip())
    into.put(None)  # the process closed its output: it exited


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """``sc://127.0.0.1:<port>``: a Spark Connect server run by the test interpreter, whose
    Python workers import this checkout's package."""
    log = tmp_path_factory.mktemp("connect-server") / "server.log"
    port = _free_port()
    with open(log, "w") as stderr:
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=stderr, text=True, env=dict(os.environ, PYSPARK_PYTHON=sys.executable))
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(server.stdout, lines), daemon=True).start()
    try:
        try:
            while (line := lines.get(timeout=600)) not in ("ready", None):
                pass
        except queue.Empty:
            line = "no answer within 600 s"
        if line != "ready":
            pytest.fail(f"the Connect server did not start ({line or 'it exited'}):\n{log.read_text()[-4000:]}")
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=60)


def test_pyspark_client_alone_reads_a_store_through_spark_connect(wheel, connect_server, tmp_path):
    python = _new_venv(tmp_path / "venv")
    _pip_install(python, f"pyspark-client=={PYSPARK}")
    before = _json(python, PROBE)
    _pip_install(python, wheel)
    after = _json(python, PROBE)

    assert after == before
    assert after["pyspark"] is None and after["pyspark-client"] == PYSPARK and after["delta-spark"] is None

    package = _json(python, PACKAGE)
    assert package["package"].startswith(str(tmp_path / "venv"))
    assert package["source"] == "experiments"
    assert "can only connect to a Spark Connect server" in package["local_session"]
    assert "session(remote='sc://host:15002')" in package["local_session"]

    from mlflow import MlflowClient

    uri = write_small_stores(tmp_path, kinds=("sqlite",))["sqlite"]
    client = MlflowClient(tracking_uri=uri)
    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    expected = {run.info.run_id: [run.info.run_name, run.data.metrics["loss"]] for run in client.search_runs(experiment_ids)}
    assert len(expected) == 6

    read = _json(python, CLIENT, connect_server, uri)
    assert read["session"].startswith("pyspark.sql.connect")
    assert read["runs"] == expected


def test_a_preinstalled_pyspark_keeps_its_version(wheel, tmp_path):
    python = _new_venv(tmp_path / "venv")
    _pip_install(python, f"pyspark=={OTHER_PYSPARK}")
    before = _json(python, PROBE)
    assert before["module"] == before["pyspark"] == OTHER_PYSPARK != PYSPARK
    _pip_install(python, wheel)
    after = _json(python, PROBE)

    assert after == before
    package = _json(python, PACKAGE)
    assert package["package"].startswith(str(tmp_path / "venv")) and package["source"] == "experiments"
    # a local session needs delta-spark, which the plain install does not bring: said before Spark starts
    assert package["local_session"].startswith("a local Spark session with Delta Lake needs delta-spark")
    assert "pip install 'pyspark-experiments[spark]'" in package["local_session"]


def test_databricks_connect_keeps_its_pyspark_module(wheel, tmp_path):
    python = _new_venv(tmp_path / "venv")
    _pip_install(python, *DATABRICKS_CONNECT)
    before = _json(python, PROBE)
    assert before["pyspark"] is None and before["databricks-connect"]  # the module without the distribution
    _pip_install(python, wheel)
    after = _json(python, PROBE)

    assert after == before  # pip installed neither pyspark nor delta-spark over its modules
    imported = _json(python, "import json, pyspark_experiments as p; print(json.dumps({'source': p.DefaultSource.name()}))")
    assert imported == {"source": "experiments"}
