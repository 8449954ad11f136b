"""Metric marks (the sync's fixed cost): on SQLite, the series that got points since an
earlier scan come from the rows past a mark, not from a scan of every series. Checked against
full scans of a real store written by mlflow, including a purge whose rowids SQLite reuses.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.uri import resolve_tracking_uri


def purge(client, run_id: str) -> None:
    """Delete and purge a run as `mlflow gc` does (its metric rows go with it)."""
    client.delete_run(run_id)
    client._tracking_client.store._hard_delete_run(run_id)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A store logged once (mlflow's migrations are slow): its file, copied by each test, and a
    copy taken while it held experiments but no point."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("marks")
    path = str(folder / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    experiments = [client.create_experiment(name) for name in ("a", "b")]
    shutil.copyfile(path, folder / "empty.db")
    runs = {}
    for experiment in experiments:
        for index in range(2):
            run = client.create_run(experiment).info.run_id
            for step in range(3):
                client.log_metric(run, "loss", 1.0 / (step + 1), step=step, timestamp=1000 + step)
                client.log_metric(run, "acc", float(step), step=step, timestamp=1000 + step)
            runs[(experiment, index)] = run
    return folder, experiments, runs


def copied(written, tmp_path, name: str = "mlflow.db"):
    from mlflow import MlflowClient

    folder, experiments, runs = written
    path = str(tmp_path / "mlflow.db")
    shutil.copyfile(folder / name, path)
    uri = f"sqlite:///{path}"
    return MlflowClient(tracking_uri=uri), open_store(resolve_tracking_uri(uri)), experiments, runs, path


@pytest.fixture()
def logged(written, tmp_path):
    return copied(written, tmp_path)


def selection(experiments) -> Selection:
    return Selection("metrics", tuple(experiments), view_type="ALL")


def moved(before: dict, after: dict) -> dict:
    return {pair: position for pair, position in after.items() if before.get(pair) != position}


def max_rowid(path: str) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT MAX(rowid) FROM metrics").fetchone()[0]


def test_the_store_declares_marks_only_where_rowids_order_points(logged):
    _, store, *_ = logged
    assert store.capabilities.metric_marks and store.capabilities.metric_positions == "rowid"
    assert not open_store(resolve_tracking_uri("/tmp/mlruns")).capabilities.metric_marks


def test_positions_since_a_mark_are_the_series_a_full_scan_sees_moving(logged):
    client, store, experiments, runs, _ = logged
    chosen = selection(experiments)
    mark, before = store.metric_mark(), store.metric_positions(chosen)

    assert store.metric_positions_since(chosen, mark, store.metric_mark()) == {}  # nothing logged

    client.log_metric(runs[(experiments[0], 0)], "loss", 0.1, step=3, timestamp=2000)
    client.log_metric(runs[(experiments[1], 1)], "new_key", 5.0, step=0, timestamp=2000)
    fresh = client.create_run(experiments[1]).info.run_id
    client.log_metric(fresh, "loss", 0.7, step=0, timestamp=2000)
    client.set_tag(runs[(experiments[0], 1)], "note", "tags move no series")
    now = store.metric_mark()

    expected = moved(before, store.metric_positions(chosen))
    assert set(expected) == {(runs[(experiments[0], 0)], "loss"), (runs[(experiments[1], 1)], "new_key"), (fresh, "loss")}
    assert store.metric_positions_since(chosen, mark, now) == expected
    # Narrowed to one experiment: only its series.
    only_b = selection(experiments[1:])
    assert store.metric_positions_since(only_b, mark, now) == {
        pair: p for pair, p in expected.items() if pair[0] != runs[(experiments[0], 0)]}
    # Points logged after the later mark are not counted yet.
    client.log_metric(fresh, "loss", 0.6, step=1, timestamp=2001)
    assert store.metric_positions_since(chosen, mark, now) == expected


def test_a_purge_of_an_older_run_leaves_marks_usable(logged):
    client, store, experiments, runs, _ = logged
    chosen = selection(experiments)
    mark = store.metric_mark()
    purge(client, runs[(experiments[0], 0)])
    client.log_metric(runs[(experiments[1], 0)], "loss", 0.01, step=9, timestamp=3000)

    since = store.metric_positions_since(chosen, mark, store.metric_mark())
    assert since == {(runs[(experiments[1], 0)], "loss"): store.metric_positions(chosen)[(runs[(experiments[1], 0)], "loss")]}


def test_rowids_reused_after_a_purge_make_the_mark_unusable(logged):
    client, store, experiments, runs, path = logged
    chosen = selection(experiments)
    latest = runs[(experiments[1], 1)]  # its points hold the largest rowids
    mark, top = store.metric_mark(), max_rowid(path)
    purge(client, latest)
    client.log_metric(runs[(experiments[0], 0)], "loss", 0.5, step=7, timestamp=4000)
    client.log_metric(runs[(experiments[0], 0)], "loss", 0.4, step=8, timestamp=4001)
    assert max_rowid(path) <= top, "SQLite gave the new points rowids at or below the old mark"

    assert store.metric_positions_since(chosen, mark, store.metric_mark()) is None


def test_an_empty_store_has_a_mark_too(written, tmp_path):
    client, store, experiments, _, _ = copied(written, tmp_path, "empty.db")
    empty = store.metric_mark()
    assert empty == "0:"
    run = client.create_run(experiments[0]).info.run_id
    client.log_metric(run, "m", 1.0, step=0)
    assert store.metric_positions_since(selection(experiments), empty, store.metric_mark()) == \
        store.metric_positions(selection(experiments))
