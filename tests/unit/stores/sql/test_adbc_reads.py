"""SQL stores read through ADBC: the read-only guarantee, column types that ADBC
SQLite would otherwise guess from a first batch of NULLs, lock and damage errors on the read
path, and MLflow's encodings applied as Arrow compute. Real SQLite stores written by mlflow;
no Spark.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sqlite3
import subprocess
import sys

import pyarrow as pa
import pytest

from pyspark_experiments.datasource import plan_read
from pyspark_experiments.errors import StoreConnectionError
from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.planning import BATCH_ROWS
from pyspark_experiments.stores.sql.connections import AdbcConnection
from pyspark_experiments.stores.sql.encodings import map_column
from pyspark_experiments.uri import resolve_tracking_uri

TABLES = ("runs", "metrics", "params", "tags", "inputs", "experiments")


def read_table(uri: str, table: str, **options) -> list[dict]:
    """Plan on the driver and read every partition with the store backend, as an executor does."""
    _, partitions = plan_read({"trackingUri": uri, "table": table, **options}, environ={})
    store = open_store(resolve_tracking_uri(uri, {}))
    return [row for partition in partitions for batch in store.read(partition) for row in batch.to_pylist()]


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def store_copy(small_stores, tmp_path):
    """A private copy of the small SQLite store: (uri, path)."""
    path = tmp_path / "mlflow.db"
    shutil.copy(small_stores["sqlite"].split(":///", 1)[1], path)
    return f"sqlite:///{path}", path


def test_reading_every_table_leaves_the_store_file_unchanged_and_writes_are_refused(store_copy):
    uri, path = store_copy
    before = (digest(path), os.stat(path).st_mtime_ns, sorted(os.listdir(path.parent)))
    for table in TABLES:
        read_table(uri, table, viewType="ALL")
    assert (digest(path), os.stat(path).st_mtime_ns, sorted(os.listdir(path.parent))) == before
    # The executors' connection itself cannot write, whatever SQL it is given.
    store = open_store(resolve_tracking_uri(uri, {}))
    with store._connect(reading=True) as connection:
        assert isinstance(connection, AdbcConnection)
        with pytest.raises(Exception, match="readonly database"):
            connection.execute("DELETE FROM params")
    assert digest(path) == before[0]
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM params").fetchone()[0] == 6


def test_a_column_null_through_a_whole_first_batch_keeps_its_type():
    import adbc_driver_sqlite.dbapi

    connection = AdbcConnection(adbc_driver_sqlite.dbapi.connect(":memory:", autocommit=True), sqlite=True)
    try:
        connection.execute("CREATE TABLE t (name TEXT, value FLOAT)")
        connection.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO t SELECT NULL, NULL FROM n", (BATCH_ROWS + 10,),
        )
        connection.execute("INSERT INTO t VALUES ('late', 2.5)")
        columns = [("name", pa.string()), ("value", pa.float64())]
        batches = list(connection.arrow_batches("SELECT name, value FROM t", (), columns))
        table = pa.Table.from_batches(batches)
        assert table.schema == pa.schema(columns) and table.num_rows == BATCH_ROWS + 11
        assert table.slice(table.num_rows - 1).to_pylist() == [{"name": "late", "value": 2.5}]
        # An empty result is typed too.
        assert list(connection.arrow_batches("SELECT name, value FROM t WHERE 0", (), columns)) == []
        # Without the typed first row, ADBC SQLite guesses int64 and then fails on the string:
        # the failure this guards against.
        with pytest.raises(Exception, match="Type mismatch|expected"):
            cursor = connection._connection.cursor()
            cursor.execute("SELECT name FROM t")
            cursor.fetch_arrow_table()
    finally:
        connection.close()


def test_runs_whose_optional_columns_are_all_null_read_with_the_declared_types(store_copy):
    uri, path = store_copy
    with sqlite3.connect(path) as writer:
        writer.execute("UPDATE runs SET end_time = NULL, name = NULL, user_id = NULL, artifact_uri = NULL")
        writer.execute("UPDATE tags SET value = NULL")
    runs = read_table(uri, "runs")
    assert len(runs) == 6 and all(r["end_time"] is None and r["run_name"] is None and r["user_id"] is None for r in runs)
    assert all(dict(r["metrics"]).keys() == {"loss"} and r["start_time"].tzinfo is not None for r in runs)
    tags = read_table(uri, "tags")
    assert tags and all(t["value"] is None for t in tags)


def test_nan_is_decoded_and_latest_values_match_mlflow(store_copy):
    from mlflow import MlflowClient

    uri, _ = store_copy
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name("alpha").experiment_id
    run = client.create_run(experiment_id)
    for step, value in enumerate([1.0, math.nan, math.inf, -math.inf, 0.0]):
        client.log_metric(run.info.run_id, "odd", value, step=step, timestamp=1_700_000_000_000 + step)
    client.log_metric(run.info.run_id, "last_nan", math.nan, step=3)
    points = [r for r in read_table(uri, "metrics", runIds=run.info.run_id)]
    expected = client.get_metric_history(run.info.run_id, "odd") + client.get_metric_history(run.info.run_id, "last_nan")
    ours = sorted((p["key"], p["step"], repr(p["value"]), int(p["timestamp"].timestamp() * 1000)) for p in points)
    assert ours == sorted((m.key, m.step, repr(m.value), m.timestamp) for m in expected)
    (row,) = read_table(uri, "runs", runIds=run.info.run_id)
    latest = client.get_run(run.info.run_id).data.metrics
    assert {k: repr(v) for k, v in row["metrics"]} == {k: repr(v) for k, v in latest.items()}


def test_named_runs_are_the_runs_mlflow_lists_whatever_the_view_type_and_experiments(store_copy):
    """A few runs named (``runIds``: an incremental sync's reads) are looked up by id; the answer
    is what mlflow lists for the same experiments and view type, narrowed to those ids."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    uri, _ = store_copy
    client = MlflowClient(tracking_uri=uri)
    alpha, beta = (client.get_experiment_by_name(name).experiment_id for name in ("alpha", "beta"))
    every = [run.info.run_id for run in client.search_runs([alpha, beta], run_view_type=ViewType.ALL)]
    client.delete_run(every[0])
    named = [every[0], every[1], every[-1], "0" * 32]  # a deleted run, a live one, one of beta, none
    for view_type in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        for experiments in ([alpha], [alpha, beta]):
            listed = {run.info.run_id for run in client.search_runs(experiments, run_view_type=ViewType.from_string(view_type.lower()))}
            rows = read_table(uri, "params", runIds=",".join(named), viewType=view_type, path=",".join(experiments))
            assert sorted(row["run_id"] for row in rows) == sorted(listed & set(named)), (view_type, experiments)


def test_a_read_blocked_by_another_process_lock_names_the_lock(store_copy, monkeypatch):
    from pyspark_experiments.stores.sql import connections

    uri, path = store_copy
    _, partitions = plan_read({"trackingUri": uri, "table": "metrics"}, environ={})
    monkeypatch.setattr(connections, "SQLITE_TIMEOUT_S", 0.2)
    # Another process: ADBC's SQLite does not see locks this process's sqlite3 holds.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(path)!r}); c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = open_store(resolve_tracking_uri(uri, {}))
        with pytest.raises(StoreConnectionError) as error:
            [batch for partition in partitions for batch in store.read(partition)]
    finally:
        holder.communicate("")
    assert "is locked" in str(error.value) and str(path) in str(error.value)


def test_a_store_damaged_after_planning_is_named_on_the_read_path(store_copy):
    uri, path = store_copy
    _, partitions = plan_read({"trackingUri": uri, "table": "runs"}, environ={})
    path.write_bytes(b"\x00garbage" * 1000)
    store = open_store(resolve_tracking_uri(uri, {}))
    with pytest.raises(StoreConnectionError) as error:
        list(store.read(partitions[0]))
    assert str(path) in str(error.value) and "not a database" in str(error.value)


def test_maps_follow_their_owners_order_and_are_sorted_by_key():
    owners = pa.array([3, 1, 2])
    column = map_column(owners, pa.array([1, 3, 1, 9]), pa.array(["b", "z", "a", "lost"]), pa.array(["B", None, "A", "x"]),
                        pa.map_(pa.string(), pa.string()))
    assert column.to_pylist() == [[("z", None)], [("a", "A"), ("b", "B")], []]
    empty = map_column(pa.array([], pa.int64()), pa.array([], pa.int64()), pa.array([], pa.string()),
                       pa.array([], pa.string()), pa.map_(pa.string(), pa.string()))
    assert len(empty) == 0


@pytest.mark.parametrize("password", ["Hunter/Two22", "pass word", "pässwörd€", "p@ss&x=1", "a/b@c:d%e f"])
def test_the_executors_postgresql_connection_never_shows_the_password(password):
    from urllib.parse import quote

    pytest.importorskip("adbc_driver_postgresql")
    for uri in (f"postgresql://bob:{password}@127.0.0.1:9/mlflow", f"postgresql://bob:{quote(password, safe='')}@127.0.0.1:9/mlflow",
                f"postgresql://bob@127.0.0.1:9/mlflow?password={quote(password, safe='')}"):
        store = open_store(resolve_tracking_uri(uri, {}))
        with pytest.raises(StoreConnectionError) as error:
            with store._connect(reading=True):
                pass
        text = str(error.value) + repr(error.value)
        assert password not in text and quote(password, safe="") not in text, text
        assert "127.0.0.1:9" in text and "Connection refused" in text
