"""Experiment resolution against real stores written by mlflow (no Spark)."""

from __future__ import annotations

import pytest

from pyspark_experiments.datasource import plan_read
from pyspark_experiments.errors import ExperimentNotFoundError, StoreNotFoundError
from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.resolve import resolve_experiments
from pyspark_experiments.uri import resolve_tracking_uri


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_experiment_resolution_order(small_stores, kind):
    store = open_store(resolve_tracking_uri(small_stores[kind], {}))
    ids = {e.name: e.experiment_id for e in store.list_experiments() if e.name != "Default"}
    env = {"MLFLOW_EXPERIMENT_ID": ids["beta"], "MLFLOW_EXPERIMENT_NAME": "alpha"}
    assert resolve_experiments(store, ("alpha",), "ACTIVE_ONLY", "runs", env) == (ids["alpha"],)
    assert resolve_experiments(store, (ids["alpha"], "alpha"), "ACTIVE_ONLY", "runs", env) == (ids["alpha"],)
    assert resolve_experiments(store, None, "ACTIVE_ONLY", "runs", env) == (ids["beta"],)
    assert resolve_experiments(store, None, "ACTIVE_ONLY", "runs", {"MLFLOW_EXPERIMENT_NAME": "alpha"}) == (ids["alpha"],)
    assert set(ids.values()) <= set(resolve_experiments(store, None, "ACTIVE_ONLY", "runs", {}))


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_unknown_experiment_is_named_with_what_the_store_has(small_stores, kind):
    store = open_store(resolve_tracking_uri(small_stores[kind], {}))
    with pytest.raises(ExperimentNotFoundError) as error:
        resolve_experiments(store, None, "ALL", "runs", {"MLFLOW_EXPERIMENT_NAME": "nope"})
    assert "MLFLOW_EXPERIMENT_NAME: no experiment with name 'nope'" in str(error.value)
    assert "'alpha'" in str(error.value) and "'beta'" in str(error.value)
    with pytest.raises(ExperimentNotFoundError, match="load path: no experiment with id or name 'gamma'"):
        plan_read({"trackingUri": small_stores[kind], "path": "alpha,gamma"}, environ={})


def test_plan_read_covers_the_resolved_runs(small_stores):
    selection, parts = plan_read({"trackingUri": small_stores["sqlite"], "path": "alpha", "partitionSize": "1"}, environ={})
    assert len(selection.experiment_ids) == 1 and len(parts) == 3


def test_path_without_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFoundError, match="holds no MLflow file store"):
        plan_read({"trackingUri": str(tmp_path / "empty")}, environ={})
    with pytest.raises(StoreNotFoundError, match="no file store at"):
        plan_read({"trackingUri": str(tmp_path / "missing")}, environ={})
    with pytest.raises(StoreNotFoundError, match="no SQLite database at"):
        plan_read({"trackingUri": f"sqlite:///{tmp_path}/missing.db"}, environ={})
    import sqlite3

    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)")
    with pytest.raises(StoreNotFoundError, match="holds no MLflow tracking store"):
        plan_read({"trackingUri": f"sqlite:///{tmp_path}/other.db"}, environ={})


MANY = ("team/churn-model/", "Forecast", *(f"project-{i:02d}" for i in range(28)))


@pytest.fixture(scope="module")
def many_experiments(tmp_path_factory):
    """Stores with 30 experiments (and Default), written by real mlflow."""
    from support.small import write_small_stores

    return write_small_stores(tmp_path_factory.mktemp("many"), names=MANY, runs_per_experiment=0)


@pytest.mark.parametrize("kind", ["sqlite", "file"])
@pytest.mark.parametrize(("asked", "first"), [
    ("team/churn-model", "team/churn-model/"),  # the trailing / left out
    ("forecast/", "Forecast"),  # another case, a trailing / added
    ("projcet-07", "project-07"),  # a typo
])
def test_an_unknown_name_gets_the_closest_names_not_the_whole_store(many_experiments, kind, asked, first):
    store = open_store(resolve_tracking_uri(many_experiments[kind], {}))
    with pytest.raises(ExperimentNotFoundError) as error:
        resolve_experiments(store, (asked,), "ALL", "runs", {})
    message = str(error.value)
    assert f"load path: no experiment with id or name {asked!r}" in message
    assert "(31 experiments); did you mean " in message
    suggested = message.partition("did you mean ")[2]
    assert suggested.startswith(repr(first)) and 1 <= suggested.count("(id ") <= 5


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_a_name_close_to_none_says_how_many_there_are_without_listing_them(many_experiments, kind):
    store = open_store(resolve_tracking_uri(many_experiments[kind], {}))
    with pytest.raises(ExperimentNotFoundError) as error:
        resolve_experiments(store, None, "ALL", "runs", {"MLFLOW_EXPERIMENT_NAME": "zzzz"})
    message = str(error.value)
    assert "MLFLOW_EXPERIMENT_NAME: no experiment with name 'zzzz'" in message
    assert "(31 experiments); no name is close to it" in message
    assert "project-" not in message and "(id " not in message
