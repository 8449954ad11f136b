"""session() and the demo as a new user meets them: clear errors, no warnings of our making."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv

import pytest


def _env(**extra):
    env = dict(os.environ)
    env.update(extra)
    return env


def test_unresolvable_delta_jars_raise_a_missing_dependency_error(tmp_path):
    # A Delta version no repository serves and an empty local Maven repository: Ivy fails for real.
    script = textwrap.dedent(
        """
        import pyspark_experiments
        from pyspark_experiments.errors import MissingDependencyError
        try:
            pyspark_experiments.session(master="local[1]")
        except MissingDependencyError as error:
            print("MISSING", error)
        else:
            print("STARTED")
        """
    )
    package = "io.delta:delta-spark_4.2_2.13:0.0.404"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
        env=_env(PYSPARK_EXPERIMENTS_DELTA_PACKAGE=package, MAVEN_REPOSITORY=str(tmp_path / "empty-m2"),
                 SPARK_LOCAL_DIRS=str(tmp_path)),
    )
    out = result.stdout
    assert "MISSING" in out, result.stderr[-3000:]
    assert f"the Delta Lake artifact {package} could not be resolved" in out
    assert "pip install 'delta-spark==4.4.0'" in out and "spark.jars" in out and "--packages" in out
    assert "Java gateway process exited" not in out


@pytest.mark.slow
def test_demo_prints_no_warning_caused_by_our_setup(tmp_path):
    from support.small import write_small_stores

    uris = write_small_stores(tmp_path, kinds=("sqlite",))
    result = subprocess.run(
        [sys.executable, "-m", "pyspark_experiments", "demo", "--tracking-uri", uris["sqlite"],
         "--output", str(tmp_path / "out"), "--master", "local[1]"],
        capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "6 runs in 2 experiment(s)" in result.stdout
    assert "replaced a statically registered data source" not in output
    assert "replaced a previously registered data source" not in output


@pytest.mark.slow
def test_session_registers_without_spark_warning_about_replacing_the_source(tmp_path):
    from support.small import write_small_stores

    uris = write_small_stores(tmp_path, kinds=("sqlite",))
    script = textwrap.dedent(
        f"""
        import pyspark_experiments
        spark = pyspark_experiments.session(master="local[1]", config={{"spark.log.level": "WARN"}})
        print("ROWS", spark.read.format("experiments").option("trackingUri", {uris['sqlite']!r}).load().count())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert "ROWS 6" in result.stdout, result.stderr[-3000:]
    assert "replaced a statically registered data source" not in result.stderr


def _started_by_cron(tmp_path, **extra):
    """The environment of a program started by cron or a scheduler: a bare PATH whose first
    ``python3`` is an interpreter without pyspark or this package (a venv without system site
    packages), and none of the test run's settings (its PYSPARK_PYTHON above all)."""
    bare = tmp_path / "bare-python"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(bare)
    env = {"PATH": f"{bare / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path))}
    # where Java, the Delta jars and (in a source checkout) this package are
    env.update({key: os.environ[key] for key in ("JAVA_HOME", "MAVEN_REPOSITORY", "PYTHONPATH") if os.environ.get(key)})
    env.update(extra)
    return env, str(bare / "bin" / "python3")


def _demo(tmp_path, env):
    from support.small import write_small_stores

    uris = write_small_stores(tmp_path, kinds=("sqlite",))
    return subprocess.run(
        [sys.executable, "-m", "pyspark_experiments", "demo", "--tracking-uri", uris["sqlite"],
         "--output", str(tmp_path / "out"), "--master", "local[1]"],
        capture_output=True, text=True, timeout=900, env=env,
    )


def test_demo_runs_its_workers_with_the_programs_python_when_none_is_chosen(tmp_path):
    env, path_python = _started_by_cron(tmp_path)
    probe = subprocess.run([path_python, "-c", "import pyspark"], capture_output=True, env=env, timeout=60)
    assert probe.returncode != 0  # the python3 Spark would take from PATH cannot run a worker
    result = _demo(tmp_path, env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "6 runs in 2 experiment(s)" in result.stdout


def test_a_chosen_worker_python_without_the_package_is_named_in_the_error(tmp_path):
    env, path_python = _started_by_cron(tmp_path)
    env["PYSPARK_PYTHON"] = path_python  # the user's choice wins, even a wrong one
    result = _demo(tmp_path, env)
    assert result.returncode == 1, (result.stdout + result.stderr)[-3000:]
    message = result.stderr.strip().splitlines()[-2:]
    # pyspark_experiments itself, or (this checkout on PYTHONPATH) pyarrow, which it imports
    assert message[0].startswith(
        f"pyspark-experiments demo: Spark started its Python workers with {path_python}, which cannot import "
        f"pyspark_experiments (No module named '"
    ), result.stderr[-3000:]
    assert message[1].startswith("Choose the interpreter that has it: PYSPARK_PYTHON=")
    assert "spark.pyspark.python" in message[1] and sys.executable in message[1]
