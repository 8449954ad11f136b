"""session() and the demo as a new user meets them: clear errors, no warnings of our making."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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
