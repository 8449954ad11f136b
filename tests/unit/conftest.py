"""Unit tests: pure logic, no Spark session and no JVM.

A JVM started by any unit test fails it: launching Spark's gateway raises during each unit test,
and after it the gateway must be what it was before (none, when the unit tests run alone, as
`python -m pytest tests/unit` does; integration tests in the same run start their own).
"""

from __future__ import annotations

import pytest


def _no_gateway(*args, **kwargs):
    raise AssertionError("a unit test tried to start a JVM; move it to tests/integration")


@pytest.fixture(autouse=True)
def _forbid_jvm(monkeypatch):
    import pyspark.java_gateway as gateway
    from pyspark.core import context

    before = context.SparkContext._gateway
    monkeypatch.setattr(gateway, "launch_gateway", _no_gateway)
    monkeypatch.setattr(context, "launch_gateway", _no_gateway)
    yield
    assert context.SparkContext._gateway is before, "a JVM was started during a unit test"


@pytest.fixture(scope="session")
def small_stores(tmp_path_factory):
    """A SQLite and a file store (experiments alpha, beta; 3 runs each), written by real mlflow."""
    from support.small import write_small_stores

    return write_small_stores(tmp_path_factory.mktemp("small"))
