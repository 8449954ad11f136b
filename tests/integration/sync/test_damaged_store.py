"""The sync against a damaged or rewritten file store: what a PERMISSIVE read skipped
is never recorded as synced and is reported; a metric file changed in place is re-read whole.
Real file stores written by mlflow, real Delta tables."""

from __future__ import annotations

import glob
import os

import pytest

from pyspark_experiments.sync import sync
from support.compare import assert_same, source_tables, target_tables
from support.stores import new_store

pytestmark = pytest.mark.slow  # several syncs per test, each with a repaired or edited store


def _run_dir(uri: str, run_id: str) -> str:
    (found,) = glob.glob(os.path.join(uri, "*", run_id))
    return found


def test_permissive_skipped_run_comes_back_after_repair(spark, tmp_path):
    uri, manifest = new_store("file", tmp_path)
    run_id = manifest["runs"]["a-01"]
    meta = os.path.join(_run_dir(uri, run_id), "meta.yaml")
    original = open(meta, "rb").read()
    with open(meta, "wb") as handle:
        handle.write(b"run_id: [not yaml\n")
    target = str(tmp_path / "delta")

    first = sync(uri, target, spark=spark, read_mode="PERMISSIVE")
    held = target_tables(spark, target)
    assert run_id not in {row[0] for row in held["runs"]}
    assert first.skipped_records >= 1 and any(meta in where for where in first.skipped_where)

    with open(meta, "wb") as handle:  # repaired
        handle.write(original)
    second = sync(uri, target, spark=spark, read_mode="PERMISSIVE")
    assert second.skipped_records == 0
    assert_same(target_tables(spark, target), source_tables(spark, uri))
    # and it is recorded now: nothing left to read
    third = sync(uri, target, spark=spark, read_mode="PERMISSIVE")
    assert third.new_runs == third.changed_runs == third.series_read == 0


def test_metric_file_changed_in_place_is_reread_whole(spark, tmp_path):
    from mlflow.tracking import MlflowClient

    from support.stores import BASE_MS

    uri, manifest = new_store("file", tmp_path, reference=False)
    run_id = manifest["runs"]["s-0"]
    client = MlflowClient(tracking_uri=uri)
    for step in range(1, 5):
        client.log_metric(run_id, "loss", 0.5 / step, timestamp=BASE_MS + 10 + step, step=step)
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark)

    path = os.path.join(_run_dir(uri, run_id), "metrics", "loss")
    lines = open(path, "rb").read().split(b"\n")
    timestamp, value, step = lines[1].split(b" ")
    lines[1] = b" ".join([timestamp, value + b"1234567", step])  # a line before the end, 7 bytes longer
    size = os.path.getsize(path)
    with open(path, "wb") as handle:
        handle.write(b"\n".join(lines))
    assert os.path.getsize(path) == size + 7

    result = sync(uri, target, spark=spark)
    assert result.series_read == 1
    assert_same(target_tables(spark, target), source_tables(spark, uri))
    points = target_tables(spark, target)["metrics"]
    assert len([p for p in points if p[1] == run_id]) == 5
