"""Damaged and unusual stores read without Spark, each written by real mlflow: ids that look
like names, nothing dropped silently in the file store, passwords never shown, SQLite faults,
clear errors, PERMISSIVE reports reaching the caller.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time

import pytest

from pyspark_experiments.datasource import ExperimentsReader, ReadRequest, plan_read
from pyspark_experiments.errors import (
    ConfigurationError,
    ExperimentNotFoundError,
    MalformedRecordError,
    StoreConnectionError,
    StoreNotFoundError,
)
from pyspark_experiments.redact import hide as redact
from pyspark_experiments.stores import open_store
from pyspark_experiments.uri import resolve_tracking_uri


def rows(options: dict) -> list[dict]:
    """Plan and read like Spark would, in this process: every row of every partition."""
    request = ReadRequest.from_options(options, environ={})
    reader = ExperimentsReader(request)
    found = []
    for partition in reader.partitions():
        for batch in reader.read(partition):
            found.extend(batch.to_pylist())
    return found


def client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


# -- an experiment whose name is a number ------------------------------------------------------


@pytest.fixture(scope="module")
def numeric_names(tmp_path_factory):
    root = tmp_path_factory.mktemp("numeric")
    uri = f"sqlite:///{root}/mlflow.db"
    c = client(uri)
    ids = {}
    for name in ("x", "1", "exp,comma", " padded "):
        ids[name] = c.create_experiment(name)
        c.create_run(ids[name], run_name=f"run-of-{name.strip()}")
    return uri, ids


def test_id_that_is_another_experiments_name_is_an_error_naming_both(numeric_names):
    uri, ids = numeric_names
    assert ids["x"] == "1" and ids["1"] != "1"
    with pytest.raises(ExperimentNotFoundError) as error:
        plan_read({"trackingUri": uri, "path": "1"}, environ={})
    message = str(error.value)
    assert "'1' is the id of experiment 'x'" in message and f"the name of experiment id {ids['1']}" in message
    assert "experimentIds" in message and "experimentNames" in message


def test_experiment_ids_and_names_options(numeric_names):
    uri, ids = numeric_names
    by_id = rows({"trackingUri": uri, "experimentIds": "1"})
    by_name = rows({"trackingUri": uri, "experimentNames": "1"})
    assert [r["run_name"] for r in by_id] == ["run-of-x"]
    assert [r["run_name"] for r in by_name] == ["run-of-1"]
    with pytest.raises(ExperimentNotFoundError, match="option 'experimentIds': no experiment with id 'x'"):
        plan_read({"trackingUri": uri, "experimentIds": "x"}, environ={})


def test_names_with_commas_and_surrounding_spaces_load_as_a_json_list(numeric_names):
    uri, ids = numeric_names
    found = rows({"trackingUri": uri, "experimentNames": '["exp,comma", " padded "]'})
    assert sorted(r["run_name"] for r in found) == ["run-of-exp,comma", "run-of-padded"]
    with pytest.raises(ConfigurationError, match="option 'experimentNames': expected names separated by commas"):
        ReadRequest.from_options({"trackingUri": uri, "experimentNames": '["unclosed'}, environ={})


def test_deleted_experiment_named_under_the_default_view_type_says_so(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    c = client(uri)
    gone = c.create_experiment("gone")
    c.create_run(gone)
    c.delete_experiment(gone)
    with pytest.raises(ConfigurationError) as error:
        plan_read({"trackingUri": uri, "path": "gone"}, environ={})
    assert "experiment 'gone' (id 1) is deleted" in str(error.value) and "viewType" in str(error.value)
    assert len(rows({"trackingUri": uri, "path": "gone", "viewType": "ALL"})) == 1


# -- FAILFAST drops data silently in the file store --------------------------------------------


@pytest.fixture
def file_store(tmp_path, small_stores):
    root = tmp_path / "mlruns"
    shutil.copytree(small_stores["file"], root)
    run_dir = sorted(p.parent.parent for p in root.glob("*/*/metrics/loss"))[0]
    return str(root), run_dir


def test_metrics_entry_that_is_a_file_is_an_error_not_a_silent_drop(file_store):
    root, run_dir = file_store
    shutil.rmtree(run_dir / "metrics")
    (run_dir / "metrics").write_text("not a folder\n")
    for table in ("runs", "metrics"):
        with pytest.raises(MalformedRecordError) as error:
            rows({"trackingUri": root, "table": table})
        assert str(run_dir / "metrics") in str(error.value) and "expected a folder" in str(error.value)
    permissive = rows({"trackingUri": root, "table": "metrics", "mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_bad"})
    bad = [r for r in permissive if r["_bad"]]
    assert len(bad) == 1 and bad[0]["run_id"] == run_dir.name and str(run_dir / "metrics") in bad[0]["_bad"]
    assert len(permissive) - len(bad) == 5  # the other runs' points all arrive


def test_unterminated_last_line_is_left_while_fresh_and_reported_once_stale(file_store):
    root, run_dir = file_store
    metric = run_dir / "metrics" / "loss"
    metric.write_text("1700000000000 0.5 0")  # a writer that crashed before the newline
    options = {"trackingUri": root, "table": "metrics"}
    assert run_dir.name not in {r["run_id"] for r in rows(options)}  # fresh: maybe still being written
    stale = time.time() - 3600
    os.utime(metric, (stale, stale))
    with pytest.raises(MalformedRecordError) as error:
        rows(options)
    assert f"{metric}, line 1" in str(error.value) and "no final newline" in str(error.value)
    permissive = rows({**options, "mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_bad"})
    assert [r["_bad"] for r in permissive if r["_bad"]] == [
        next(r["_bad"] for r in permissive if r["_bad"])
    ] and "no final newline" in next(r["_bad"] for r in permissive if r["_bad"])


# -- passwords never shown ----------------------------------------------------------------------

PASSWORDS = ["Hunter/Two22", "pass word", "pässwörd€", "p@ss", "p:ss:", "100%sure", "a/b@c:d%e f"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_every_uri_form_is_redacted(password):
    from urllib.parse import quote

    forms = [
        f"postgresql://bob:{password}@db.example:5432/mlflow",
        f"postgresql+psycopg://bob:{quote(password, safe='')}@db.example/mlflow",
        f"postgresql://bob@db.example/mlflow?password={quote(password, safe='')}",
    ]
    for uri in forms:
        resolved = resolve_tracking_uri(uri, {}, "/")
        for text in (resolved.display, repr(resolved), redact(uri), redact(f"error: {uri} failed")):
            assert password not in text and quote(password, safe="") not in text, text
        assert "bob" in resolved.display
    env = resolve_tracking_uri(None, {"MLFLOW_TRACKING_URI": forms[0]}, "/")
    assert password not in env.display


def test_libpq_keyword_string_is_refused_without_echoing_the_password():
    with pytest.raises(ConfigurationError) as error:
        resolve_tracking_uri("host=db.example user=bob password=Hunter2Secret dbname=mlflow", {}, "/")
    assert "Hunter2Secret" not in str(error.value)
    assert "postgresql://user:password@host:port/database" in str(error.value)


@pytest.mark.parametrize("password", PASSWORDS)
def test_failed_connections_do_not_show_the_password(password):
    from urllib.parse import quote

    pytest.importorskip("psycopg")
    for uri in (f"postgresql://bob:{password}@127.0.0.1:9/mlflow", f"postgresql://bob:{quote(password, safe='')}@127.0.0.1:9/mlflow"):
        with pytest.raises(StoreConnectionError) as error:
            plan_read({"trackingUri": uri}, environ={})
        text = str(error.value) + repr(error.value) + str(error.value.__cause__ or "")
        assert password not in text and quote(password, safe="") not in text, text
        assert "127.0.0.1:9" in text


# -- SQLite faults say what happened and where ---------------------------------------------------


def test_locked_sqlite_store_is_reported_as_locked(small_stores, tmp_path, monkeypatch):
    from pyspark_experiments.stores.sql import connections

    path = tmp_path / "locked.db"
    shutil.copy(small_stores["sqlite"].split(":///", 1)[1], path)
    monkeypatch.setattr(connections, "SQLITE_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreConnectionError) as error:
            plan_read({"trackingUri": f"sqlite:///{path}"}, environ={})
    finally:
        holder.rollback()
        holder.close()
    assert "is locked" in str(error.value) and str(path) in str(error.value)
    assert "holds no MLflow tracking store" not in str(error.value)


def test_sqlite_file_that_is_not_a_database_names_the_path(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(StoreConnectionError) as error:
        plan_read({"trackingUri": f"sqlite:///{path}"}, environ={})
    assert str(path) in str(error.value) and "not a database" in str(error.value)


# -- unclear errors -------------------------------------------------------------------------------


def test_databricks_is_a_workspace_not_a_folder():
    for uri in ("databricks", "databricks://my-profile"):
        store = open_store(resolve_tracking_uri(uri, {}, "/tmp"))
        assert store.capabilities.kind == "rest"
        assert "/tmp" not in store.uri.display


def test_postgresql_uri_with_one_slash_is_a_configuration_error():
    with pytest.raises(ConfigurationError) as error:
        plan_read({"trackingUri": "postgresql:/user:pw123@host/db"}, environ={})
    assert "postgresql://" in str(error.value) and "pw123" not in str(error.value)


def test_sqlite_file_given_as_a_path_hints_at_sqlite_scheme(small_stores):
    path = small_stores["sqlite"].split(":///", 1)[1]
    with pytest.raises(StoreNotFoundError) as error:
        plan_read({"trackingUri": path}, environ={})
    assert f"sqlite:///{path}" in str(error.value)


def test_start_time_in_epoch_seconds_is_refused():
    with pytest.raises(ConfigurationError) as error:
        ReadRequest.from_options({"trackingUri": "/tmp/x", "startTimeAfter": "1700000000"}, environ={})
    assert "epoch seconds" in str(error.value) and "1700000000000" in str(error.value)


def test_non_utf8_meta_yaml_and_param_name_the_file_and_permissive_skips(file_store):
    root, run_dir = file_store
    (run_dir / "meta.yaml").write_bytes((run_dir / "meta.yaml").read_bytes() + b"\nname: \xff\xfe\n")
    with pytest.raises(MalformedRecordError) as error:
        rows({"trackingUri": root})
    assert str(run_dir / "meta.yaml") in str(error.value) and "UTF-8" in str(error.value)
    assert len(rows({"trackingUri": root, "mode": "PERMISSIVE"})) == 5
    (run_dir / "meta.yaml").write_bytes((run_dir / "meta.yaml").read_bytes().replace(b"\nname: \xff\xfe\n", b""))
    param = run_dir / "params" / "i"
    param.write_bytes(b"\xff")
    with pytest.raises(MalformedRecordError, match=str(param)):
        rows({"trackingUri": root, "table": "params"})
    assert len(rows({"trackingUri": root, "table": "params", "mode": "PERMISSIVE"})) == 5


def test_bad_start_time_in_meta_yaml_names_the_file(file_store):
    root, run_dir = file_store
    meta = run_dir / "meta.yaml"
    meta.write_text("\n".join(
        "start_time: 'abc'" if line.startswith("start_time:") else line for line in meta.read_text().splitlines()
    ) + "\n")
    with pytest.raises(MalformedRecordError) as error:
        rows({"trackingUri": root})
    assert str(meta) in str(error.value) and "start_time" in str(error.value)


# -- PERMISSIVE reaches the caller ----------------------------------------------------------------


def test_permissive_skips_arrive_as_rows_of_the_corrupt_record_column(file_store):
    root, run_dir = file_store
    metric = run_dir / "metrics" / "loss"
    metric.write_text(metric.read_text() + "1700000000000 oops 3\n")
    found = rows({"trackingUri": root, "table": "metrics", "mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"})
    bad = [r for r in found if r["_corrupt_record"] is not None]
    assert len(bad) == 1
    assert bad[0]["run_id"] == run_dir.name and f"{metric}, line 2" in bad[0]["_corrupt_record"]
    assert all(r["_corrupt_record"] is None and r["value"] is not None for r in found if r not in bad)
    with pytest.raises(ConfigurationError, match="columnNameOfCorruptRecord"):
        ReadRequest.from_options({"trackingUri": root, "columnNameOfCorruptRecord": "value", "table": "metrics"}, environ={})


def test_stream_of_a_batch_only_table_refuses_from_its_first_call(small_stores):
    # pyspark's stream runner calls reader.stop() even when streamReader() raised, which turns
    # our message into an UnboundLocalError: the reader must be created, and refuse when used.
    from pyspark_experiments.datasource import ExperimentsDataSource

    source = ExperimentsDataSource({"trackinguri": small_stores["sqlite"], "table": "params"})
    reader = source.streamReader(source.schema())
    reader.stop()
    with pytest.raises(ConfigurationError, match="streaming reads support 'metrics', 'runs', 'traces' and 'assessments', not 'params'"):
        reader.initialOffset()


def test_a_stream_from_a_tracking_server_follows_digests():
    from pyspark_experiments.datasource import ReadRequest
    from pyspark_experiments.datasource.stream import ExperimentsStreamReader

    request = ReadRequest.from_options({"trackingUri": "http://127.0.0.1:5000", "table": "metrics"}, environ={})
    assert ExperimentsStreamReader(request)._digests
    runs = ReadRequest.from_options({"trackingUri": "http://127.0.0.1:5000", "table": "runs"}, environ={})
    assert not ExperimentsStreamReader(runs)._digests
