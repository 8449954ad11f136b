"""Unit tests: pure logic, no Spark session and no JVM.

A JVM started by any unit test fails the run: launching Spark's gateway raises here, and the
session-end check below confirms that no gateway exists.
"""

from __future__ import annotations

import pytest


def _no_gateway(*args, **kwargs):
    raise AssertionError("a unit test tried to start a JVM; move it to tests/integration")


@pytest.fixture(autouse=True, scope="session")
def _forbid_jvm():
    import pyspark.java_gateway as gateway
    from pyspark.core import context

    original = gateway.launch_gateway
    gateway.launch_gateway = _no_gateway
    context.launch_gateway = _no_gateway
    yield
    gateway.launch_gateway = original
    context.launch_gateway = original
    assert context.SparkContext._gateway is None, "a JVM was started during the unit tests"


@pytest.fixture(scope="session")
def small_stores(tmp_path_factory):
    """A SQLite and a file store (experiments alpha, beta; 3 runs each), written by real mlflow."""
    from support.small import write_small_stores

    return write_small_stores(tmp_path_factory.mktemp("small"))
