"""Remote artifact roots of a real SQLite store written by mlflow: a root whose URI carries
credentials is skipped (PERMISSIVE) or an error (FAILFAST) that never shows them, and a remote
store that never answers is given up on after the deadline."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import traceback

import pytest

from pyspark_experiments.errors import StoreConnectionError, UnsupportedStoreError
from support.reads import read_as_executors
from support.small import write_small_stores

KEY, SECRET = "AKIAXXXX", "SECRETVALUE"


def store_with_artifact_uris(tmp_path, uris: list[str]) -> tuple[str, list[str]]:
    """A SQLite store written by mlflow whose runs' artifact_uri are set to ``uris``; its run ids."""
    store = write_small_stores(tmp_path, names=("remote",), runs_per_experiment=len(uris), kinds=("sqlite",))["sqlite"]
    connection = sqlite3.connect(store.split("sqlite:///", 1)[1])
    with connection:
        run_ids = [row[0] for row in connection.execute("SELECT run_uuid FROM runs ORDER BY run_uuid")]
        for run_id, uri in zip(run_ids, uris):
            connection.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (uri, run_id))
    connection.close()
    return store, run_ids


def read(store: str, mode: str, **options):
    """Rows and skipped records of ``table=artifacts`` read as a Spark executor would."""
    return read_as_executors(store, "artifacts", mode, **options)


def test_credentials_in_an_artifact_uri_are_never_shown(tmp_path, caplog):
    store, (run_id,) = store_with_artifact_uris(tmp_path, [f"s3://{KEY}:{SECRET}@bucket/x"])
    with caplog.at_level(logging.DEBUG):
        rows, skipped = read(store, "PERMISSIVE", withContent="true")
        assert rows == [] and [record.run_id for record in skipped] == [run_id]
        assert "carries credentials" in skipped[0].where and "s3://***@bucket/x" in skipped[0].where
        with pytest.raises(UnsupportedStoreError) as error:
            read(store, "FAILFAST")
    shown = "".join(traceback.format_exception(error.value)) + caplog.text + skipped[0].where
    assert run_id in str(error.value) and "carries credentials" in str(error.value)
    assert KEY not in shown and SECRET not in shown


@pytest.fixture
def silent_server():
    """A loopback TCP server that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    closing = threading.Event()

    def accept():
        while not closing.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    closing.set()
    server.close()
    for connection in accepted:
        connection.close()


def test_a_remote_root_that_never_answers_is_given_up_on(tmp_path, silent_server, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", silent_server)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", silent_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    uris = ["s3://bucket/1/abc/artifacts", "gs://bucket/1/def/artifacts"]
    store, run_ids = store_with_artifact_uris(tmp_path, uris)
    rows, skipped = read(store, "PERMISSIVE")
    assert rows == []
    assert sorted(record.run_id for record in skipped) == sorted(run_ids)
    for record in skipped:
        assert uris[run_ids.index(record.run_id)] in record.where, record
    gs_run = run_ids[uris.index("gs://bucket/1/def/artifacts")]
    gs_skip = next(record.where for record in skipped if record.run_id == gs_run)
    assert "no answer within 1 s" in gs_skip  # GCS's own retry limit does not bound a silent server: the deadline does
    with pytest.raises(StoreConnectionError, match="no answer within 1 s") as error:
        read(store, "FAILFAST", runIds=gs_run)
    assert gs_run in str(error.value)
    s3_run = run_ids[uris.index("s3://bucket/1/abc/artifacts")]
    with pytest.raises(StoreConnectionError) as error:
        read(store, "FAILFAST", runIds=s3_run)
    assert s3_run in str(error.value) and "s3://bucket/1/abc/artifacts" in str(error.value)
