"""MySQL / MariaDB stores on a real MariaDB server on loopback, written by real mlflow.

Every table read from MariaDB equals the SQLite read of the same logging script (and what mlflow
answers: tests/integration/stores/test_reference_equivalence.py runs its comparisons on MariaDB too);
here: the errors a user meets (wrong password, no server, no such database, a database that is
not an MLflow store) are clear and never show the password; each read is one read-only
snapshot; the metric-key filter is exact although MySQL compares keys without case; an
incremental Delta sync on MariaDB equals a fresh full sync.
"""

from __future__ import annotations

import socket
from urllib.parse import quote

import pytest

from pyspark_experiments.errors import StoreConnectionError, StoreNotFoundError
from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.sql.mysql import connect_mysql
from pyspark_experiments.uri import resolve_tracking_uri
from support.compare import assert_same, source_tables, target_tables
from support.mysql import create_database

URI_FORMS = ("mysql://{u}:{p}@{h}:{port}/{db}", "mysql+pymysql://{u}:{p}@{h}:{port}/{db}?charset=utf8mb4",
             "mysql+mysqldb://{u}:{p}@{h}:{port}/{db}", "mysql+mysqlconnector://{u}:{p}@{h}:{port}/{db}")


def _uri(server, database: str, form: str = URI_FORMS[0], password: str | None = None) -> str:
    host, port, user, secret = server
    return form.format(u=user, p=quote(password if password is not None else secret, safe=""), h=host, port=port, db=database)


def _raw(server, database: str, sql: str, params=()):
    import pymysql

    host, port, user, password = server
    connection = pymysql.connect(host=host, port=port, user=user, password=password, database=database, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params or None)
            return cursor.fetchall()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def empty_database(mysql_server) -> str:
    """A database with a table, but not an MLflow store."""
    create_database(*mysql_server, "not_mlflow")
    _raw(mysql_server, "not_mlflow", "CREATE TABLE notes (id INT PRIMARY KEY)")
    return "not_mlflow"


@pytest.mark.parametrize("form", URI_FORMS)
def test_every_url_form_reads_the_store(spark, mysql_server, mysql_store, sqlite_store, form):
    uri = _uri(mysql_server, "mlflow_reference", form)
    ours = spark.read.format("experiments").option("trackingUri", uri).option("table", "experiments").load()
    reference = spark.read.format("experiments").option("trackingUri", sqlite_store).option("table", "experiments").load()
    assert sorted(r["name"] for r in ours.collect()) == sorted(r["name"] for r in reference.collect())


def test_wrong_password_is_a_clear_error_without_the_password(spark, mysql_server, mysql_store, capsys):
    wrong = "Wr0ng/pass@word:x"
    uri = _uri(mysql_server, "mlflow_reference", password=wrong)
    with pytest.raises(StoreConnectionError, match="access denied for user 'mlflow' \\(wrong user name or password") as error:
        open_store(resolve_tracking_uri(uri)).list_experiments()
    df = spark.read.format("experiments").option("trackingUri", uri).load()
    with pytest.raises(Exception) as spark_error:
        df.count()
    df.explain(True)
    shown = str(error.value) + str(spark_error.value) + capsys.readouterr().out + repr(df)
    assert "access denied" in str(spark_error.value)
    for form in (wrong, quote(wrong, safe=""), "Wr0ng"):
        assert form not in shown


def test_unreachable_host_unknown_database_and_not_a_store(mysql_server, empty_database):
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host, _, user, password = mysql_server
    with pytest.raises(StoreConnectionError, match=f"no MySQL server answers at 127.0.0.1:{port}") as error:
        open_store(resolve_tracking_uri(_uri((host, port, user, password), "mlflow"))).list_experiments()
    assert password not in str(error.value)
    with pytest.raises(StoreNotFoundError, match="the server has no database 'no_such_db'"):
        open_store(resolve_tracking_uri(_uri(mysql_server, "no_such_db"))).list_experiments()
    with pytest.raises(StoreNotFoundError, match="holds no MLflow tracking store \\(expected MLflow's 'runs' table\\)") as error:
        open_store(resolve_tracking_uri(_uri(mysql_server, empty_database))).list_experiments()
    assert password not in str(error.value)


def test_a_connection_reads_one_snapshot_and_cannot_write(mysql_server, mysql_store):
    import pymysql

    uri = _uri(mysql_server, "mlflow_reference")
    reader = connect_mysql(uri, "mysql://mlflow:***@...")
    try:
        before = reader.execute("SELECT COUNT(*) FROM params").fetchall()[0][0]
        run_id = _raw(mysql_server, "mlflow_reference", "SELECT run_uuid FROM runs LIMIT 1")[0][0]
        _raw(mysql_server, "mlflow_reference", "INSERT INTO params (`key`, value, run_uuid) VALUES ('snapshot', 'x', %s)", (run_id,))
        try:
            assert reader.execute("SELECT COUNT(*) FROM params").fetchall()[0][0] == before
            with pytest.raises(pymysql.err.MySQLError, match="READ ONLY"):
                reader.execute("DELETE FROM params WHERE `key` = 'snapshot'").fetchall()
        finally:
            _raw(mysql_server, "mlflow_reference", "DELETE FROM params WHERE `key` = 'snapshot'")
    finally:
        reader.close()


@pytest.fixture(params=["connectorx", "pymysql"])
def driver(request, monkeypatch):
    """Metric points read with connectorx (Arrow) or, without it, with PyMySQL."""
    if request.param == "pymysql":
        monkeypatch.setattr("pyspark_experiments.stores.sql.mysql.arrow_reader", lambda location: None)
    return request.param


def test_metric_key_filter_is_exact_though_mysql_ignores_case(mysql_server, mysql_store, driver):
    db = "mlflow_reference"
    run, experiment = _raw(mysql_server, db, "SELECT m.run_uuid, r.experiment_id FROM metrics m JOIN runs r "
                                             "ON r.run_uuid = m.run_uuid WHERE BINARY m.`key` = 'loss' LIMIT 1")[0]
    losses = _raw(mysql_server, db, "SELECT COUNT(*) FROM metrics WHERE run_uuid = %s AND BINARY `key` = 'loss'", (run,))[0][0]
    # MLflow's MySQL schema compares keys without case: a second spelling only fits in `metrics`.
    _raw(mysql_server, db, "INSERT INTO metrics (`key`, value, timestamp, run_uuid, step, is_nan) "
                           "VALUES ('LOSS', 9.0, 5000, %s, 987654, 0)", (run,))
    try:
        hostile = "x' OR '1'='1"  # a metric-key filter that would read everything if it were not escaped
        store = open_store(resolve_tracking_uri(mysql_store))
        for keys, expected in ((("loss",), {"loss": losses}), (("LOSS",), {"LOSS": 1}), ((hostile,), {})):
            selection = Selection("metrics", (str(experiment),), "ALL", run_ids=(run,), metric_keys=keys)
            rows = [r for p in store.plan(selection) for b in store.read(p) for r in b.to_pylist()]
            assert {k: sum(r["key"] == k for r in rows) for k in {r["key"] for r in rows}} == expected, keys
            # split per series, and as sync range reads: the same points
            single = Selection("metrics", (str(experiment),), "ALL", run_ids=(run,), metric_keys=keys, rows_per_partition=1)
            assert sorted(r["step"] for p in store.plan(single) for b in store.read(p) for r in b.to_pylist()) == sorted(
                r["step"] for r in rows)
            positions = store.metric_positions(selection)
            ranges = Selection("metrics", (str(experiment),), "ALL", run_ids=(run,), metric_keys=keys,
                               metric_ranges=tuple((r, k, 0, n) for (r, k), n in positions.items()))
            assert sorted((r["key"], r["step"]) for p in store.plan(ranges) for b in store.read(p) for r in b.to_pylist()) == sorted(
                (r["key"], r["step"]) for r in rows)
    finally:
        _raw(mysql_server, db, "DELETE FROM metrics WHERE BINARY `key` = 'LOSS' AND step = 987654")


@pytest.mark.slow
def test_incremental_sync_equals_fresh_full_sync(spark, mysql_server, tmp_path):
    from pyspark_experiments.sync import sync
    from support.stores import log_changes, log_reference_data

    uri = create_database(*mysql_server, "sync_store")
    manifest = log_reference_data(uri)
    target = str(tmp_path / "delta")
    assert sync(uri, target, spark=spark).mode == "full"
    log_changes(uri, manifest)
    incremental = sync(uri, target, spark=spark)
    assert incremental.mode == "incremental"
    assert incremental.new_runs == 2 and incremental.changed_runs == 7, incremental.summary()
    fresh = str(tmp_path / "fresh")
    sync(uri, fresh, spark=spark)
    expected = source_tables(spark, uri)
    assert_same(target_tables(spark, target), expected)
    assert_same(target_tables(spark, fresh), expected)


def test_a_password_with_url_characters_reads_every_way(mysql_server, mysql_store, driver):
    """A user whose password holds '@', '/', ':', '%', a space and a quote: PyMySQL and connectorx
    (which takes a URL) both connect, with the password percent-encoded in the tracking URI."""
    secret = "p@ss/w:rd%x y'z"
    _raw(mysql_server, "mlflow_reference", f"CREATE USER IF NOT EXISTS 'odd_{driver}'@'%%' IDENTIFIED BY %s", (secret,))
    _raw(mysql_server, "mlflow_reference", f"GRANT SELECT ON mlflow_reference.* TO 'odd_{driver}'@'%'")
    host, port, _, _ = mysql_server
    uri = f"mysql+pymysql://odd_{driver}:{quote(secret, safe='')}@{host}:{port}/mlflow_reference"
    store = open_store(resolve_tracking_uri(uri))
    experiments = tuple(e.experiment_id for e in store.list_experiments())
    selection = Selection("metrics", experiments, "ALL")
    ours = sum(b.num_rows for p in store.plan(selection) for b in store.read(p))
    assert ours == _raw(mysql_server, "mlflow_reference", "SELECT COUNT(*) FROM metrics")[0][0] > 0
    assert secret not in repr(store) and quote(secret, safe="") not in repr(store)
