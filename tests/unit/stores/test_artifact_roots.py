"""Listing a run's artifact root of a real file store written by mlflow: nothing outside the root
is listed or read (links leading out, broken links, FIFOs are reported), a root that is a file
and files above the content bound."""

from __future__ import annotations

import logging
import os

import pytest

from pyspark_experiments.errors import StoreNotFoundError, UnsupportedStoreError
from pyspark_experiments.stores.artifacts import resolve_artifact_uri
from support.reads import read_as_executors

OUTSIDE_TEXT = b"OUTSIDE-THE-ROOT"


@pytest.fixture
def linked_run(tmp_path):
    """A file store run with ``sub/inside.txt`` logged by mlflow, then links and a FIFO added to
    its artifact folder: to an outside folder, an outside file, a missing target, inside the root
    and back up to the root."""
    from mlflow import MlflowClient

    store = tmp_path / "mlruns"
    client = MlflowClient(tracking_uri=str(store))
    experiment_id = client.create_experiment("links")
    run = client.create_run(experiment_id, run_name="linked")
    logged = tmp_path / "logged"
    logged.mkdir()
    (logged / "inside.txt").write_bytes(b"inside")
    client.log_artifact(run.info.run_id, str(logged / "inside.txt"), "sub")
    (logged / "big.bin").write_bytes(b"x" * 4096)
    client.log_artifact(run.info.run_id, str(logged / "big.bin"))
    root = store / experiment_id / run.info.run_id / "artifacts"
    assert (root / "sub" / "inside.txt").read_bytes() == b"inside"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(OUTSIDE_TEXT)
    os.symlink(outside, root / "to_outside_folder")
    os.symlink(outside / "secret.txt", root / "sub" / "to_outside_file.txt")
    os.symlink(root / "nowhere", root / "broken")
    os.symlink("sub", root / "to_sub")
    os.symlink("..", root / "sub" / "up")
    os.mkfifo(root / "pipe")
    return {"uri": str(store), "run_id": run.info.run_id, "root": root}


def read(store: str, mode: str, **options):
    """Rows and skipped records of ``table=artifacts`` read as a Spark executor would."""
    return read_as_executors(store, "artifacts", mode, **options)


def test_links_leading_out_of_the_root_are_reported_not_followed(linked_run, caplog):
    with caplog.at_level(logging.WARNING, logger="pyspark_experiments"):
        rows, skipped = read(linked_run["uri"], "PERMISSIVE", withContent="true", maxContentBytes="1000")
    listed = {row["path"]: (row["is_dir"], row["file_size"], row["content"]) for row in rows}
    assert listed == {
        "big.bin": (False, 4096, None),  # above maxContentBytes: listed, no content
        "sub": (True, None, None),
        "sub/inside.txt": (False, 6, b"inside"),
        "sub/up": (True, None, None),  # a link back up to the root: listed, not walked again
        "to_sub": (True, None, None),  # a link inside the root: followed, as mlflow lists it
        "to_sub/inside.txt": (False, 6, b"inside"),
        "to_sub/up": (True, None, None),
    }
    assert all(OUTSIDE_TEXT not in (row["content"] or b"") for row in rows)
    reasons = {record.where.split(": ")[-2].split("'")[1]: record for record in skipped}
    assert set(reasons) == {"to_outside_folder", "sub/to_outside_file.txt", "to_sub/to_outside_file.txt", "broken", "pipe"}
    for path, record in reasons.items():
        assert record.run_id == linked_run["run_id"] and linked_run["run_id"] in record.where, record
    assert "leading outside the artifact root" in reasons["to_outside_folder"].where
    assert "leading outside the artifact root" in reasons["sub/to_outside_file.txt"].where
    assert "a broken link" in reasons["broken"].where
    assert "neither a file nor a folder" in reasons["pipe"].where
    assert "skipped 5" in caplog.text and "secret.txt" not in caplog.text


def test_a_link_leading_out_fails_a_failfast_read_naming_run_and_path(linked_run):
    os.unlink(linked_run["root"] / "broken")
    os.unlink(linked_run["root"] / "pipe")
    with pytest.raises(StoreNotFoundError) as error:
        read(linked_run["uri"], "FAILFAST", withContent="true")
    assert linked_run["run_id"] in str(error.value)
    assert "'to_outside_folder' is a link leading outside the artifact root" in str(error.value)
    # narrowed to a link that leads out: the same
    with pytest.raises(StoreNotFoundError, match="'to_outside_folder' is a link leading outside the artifact root"):
        read(linked_run["uri"], "FAILFAST", artifactPath="to_outside_folder")
    os.unlink(linked_run["root"] / "to_outside_folder")
    with pytest.raises(StoreNotFoundError, match="'(to_)?sub/to_outside_file.txt' is a link leading outside the artifact root"):
        read(linked_run["uri"], "FAILFAST", withContent="true")
    # narrowed to a folder inside: only what is under it
    rows, skipped = read(linked_run["uri"], "PERMISSIVE", artifactPath="to_sub", maxDepth="1", withContent="true")
    assert {(r["path"], r["content"]) for r in rows} == {("to_sub/inside.txt", b"inside"), ("to_sub/up", None)}
    assert len(skipped) == 1 and "'to_sub/to_outside_file.txt' is a link leading outside" in skipped[0].where


def test_a_root_that_is_a_file_is_named(linked_run, tmp_path):
    root = linked_run["root"]
    for entry in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        entry.unlink() if entry.is_symlink() or not entry.is_dir() else entry.rmdir()
    root.rmdir()
    root.write_bytes(b"not a folder")
    with pytest.raises(StoreNotFoundError, match="is not a folder") as error:
        read(linked_run["uri"], "FAILFAST")
    assert linked_run["run_id"] in str(error.value)
    rows, skipped = read(linked_run["uri"], "PERMISSIVE")
    assert rows == [] and [r.run_id for r in skipped] == [linked_run["run_id"]]


def test_an_artifact_uri_that_is_no_url_is_refused_naming_it_without_its_password():
    """urlsplit refuses a '[' outside an IPv6 address (here a raw character of a password): an
    error of ours, which PERMISSIVE reports as the run's skip, not a ValueError failing the read."""
    with pytest.raises(UnsupportedStoreError, match=r"artifact URI 's3://\*\*\*@bucket/x' is no URL") as refused:
        resolve_artifact_uri("s3://KEY:pa[ss-w0rd@bucket/x")
    assert "pa[ss-w0rd" not in str(refused.value)
