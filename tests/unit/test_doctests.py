"""The doctest examples of the pure modules (no Spark, no store): they must stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

PURE_MODULES = [
    "pyspark_experiments.cleanup.families",
    "pyspark_experiments.cleanup.plan",
    "pyspark_experiments.datasource.options",
    "pyspark_experiments.datasource.trace_offsets",
    "pyspark_experiments.dependencies",
    "pyspark_experiments.errors",
    "pyspark_experiments.quota.result",
    "pyspark_experiments.reproducible.columns",
    "pyspark_experiments.session",
    "pyspark_experiments.uri",
    "pyspark_experiments.stores.base",
    "pyspark_experiments.stores.problems",
    "pyspark_experiments.stores.planning",
    "pyspark_experiments.stores.fingerprints",
    "pyspark_experiments.stores.file.meta",
    "pyspark_experiments.stores.sql.dialects",
    "pyspark_experiments.stores.sql.encodings",
    "pyspark_experiments.stores.resolve",
    "pyspark_experiments.sync.columns",
    "pyspark_experiments.sync.traces",
    "pyspark_experiments.suggest",
    "pyspark_experiments.jobs.failures",
    "pyspark_experiments.tables",
]


@pytest.mark.parametrize("name", PURE_MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no doctest examples"
    assert result.failed == 0
