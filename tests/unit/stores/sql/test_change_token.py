"""Change tokens (the sync's fixed cost): a SQLite store's token stays the same while
nothing is written and changes with every write mlflow makes; where the database cannot vouch
for its counter (WAL mode, not SQLite) there is no token. Real stores written by mlflow.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.sql.connections import sqlite_change_token
from pyspark_experiments.uri import resolve_tracking_uri


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A store with one experiment and a run (mlflow's migrations are slow: copied by each test)."""
    from mlflow import MlflowClient

    path = str(tmp_path_factory.mktemp("tokens") / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    experiment = client.create_experiment("a")
    run = client.create_run(experiment).info.run_id
    client.log_metric(run, "loss", 0.5, step=0, timestamp=1000)
    return path, run


@pytest.fixture
def store(written, tmp_path):
    """``(path, run id, mlflow client)`` of a fresh copy of the written store."""
    from mlflow import MlflowClient

    path = str(tmp_path / "mlflow.db")
    shutil.copyfile(written[0], path)
    return path, written[1], MlflowClient(tracking_uri=f"sqlite:///{path}")


def test_the_token_holds_while_nothing_is_written_even_across_reads(store):
    path, _, _ = store
    uri = resolve_tracking_uri(f"sqlite:///{path}")
    sql_store = open_store(uri)
    before = sql_store.change_token()
    assert before is not None and before == sqlite_change_token(path)
    experiment_ids = tuple(e.experiment_id for e in sql_store.list_experiments())
    for table in ("runs", "metrics", "params"):
        selection = Selection(table, experiment_ids, view_type="ALL")
        assert sum(batch.num_rows for p in sql_store.plan(selection) for batch in sql_store.read(p)) >= 0
    assert sql_store.run_fingerprints(Selection("runs", experiment_ids, view_type="ALL"))
    assert sql_store.change_token() == before


@pytest.mark.parametrize("write", ["log_metric", "set_tag", "log_param", "set_terminated", "delete_run",
                                   "create_experiment"])
def test_every_write_of_mlflow_changes_the_token(store, write):
    path, run, client = store
    before = sqlite_change_token(path)
    if write == "log_metric":
        client.log_metric(run, "loss", 0.25, step=1, timestamp=2000)
    elif write == "set_tag":
        client.set_tag(run, "team", "a")
    elif write == "log_param":
        client.log_param(run, "alpha", "0.1")
    elif write == "set_terminated":
        client.set_terminated(run, "FINISHED")
    elif write == "delete_run":
        client.delete_run(run)
    else:
        client.create_experiment("b")
    after = sqlite_change_token(path)
    assert after is not None and after != before
    assert sqlite_change_token(path) == after


def test_a_tag_rewritten_with_the_same_length_changes_the_token(store):
    """In-place updates keep the file's size: the counter still moves."""
    path, run, client = store
    client.set_tag(run, "team", "a")
    before = sqlite_change_token(path)
    client.set_tag(run, "team", "b")
    assert sqlite_change_token(path) != before


def test_no_token_in_wal_mode_nor_for_what_is_not_a_sqlite_3_database(store, tmp_path):
    path, _, _ = store
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    connection.close()
    assert sqlite_change_token(path) is None
    assert open_store(resolve_tracking_uri(f"sqlite:///{path}")).change_token() is None

    text = tmp_path / "notes.db"
    text.write_text("SQLite format 2 is not this\n" * 10)
    assert sqlite_change_token(str(text)) is None
    assert sqlite_change_token(str(tmp_path / "missing.db")) is None


def test_the_capability_is_declared_by_the_stores_that_take_tokens(tmp_path, store):
    path, _, _ = store
    assert open_store(resolve_tracking_uri(f"sqlite:///{path}")).capabilities.change_token
    assert open_store(resolve_tracking_uri("postgresql://u@127.0.0.1:1/db")).capabilities.change_token
    assert not open_store(resolve_tracking_uri("mysql://u@127.0.0.1:1/db")).capabilities.change_token
    assert not open_store(resolve_tracking_uri(str(tmp_path))).capabilities.change_token


def test_a_stream_trigger_on_an_unchanged_store_reuses_the_last_scan(store):
    """The stream reader's offsets: while the token holds, the last scan's content is returned
    as it was (the same object: no scan); after a write, a new scan that sees it."""
    from pyspark_experiments.datasource import ReadRequest
    from pyspark_experiments.datasource.stream import ExperimentsStreamReader

    path, run, client = store
    reader = ExperimentsStreamReader(ReadRequest.from_options(
        {"trackingUri": f"sqlite:///{path}", "table": "metrics", "viewType": "ALL"}))
    first = reader.latestOffset(reader.initialOffset())
    scanned = reader._current()
    assert reader._current() is scanned and reader.latestOffset(reader.initialOffset()) == first

    client.log_metric(run, "loss", 0.25, step=1, timestamp=2000)
    moved = reader.latestOffset(first)
    assert reader._current() is not scanned
    assert moved["m"][run]["loss"] > first["m"][run]["loss"]
    assert list(reader.partitions(first, moved))  # the new point is there to read
