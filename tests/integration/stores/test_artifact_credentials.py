"""Through Spark: a run whose artifact URI carries credentials (set in a real SQLite store written
by mlflow) is skipped in PERMISSIVE and fails a FAILFAST read with an error (and the Python
worker's traceback in it, as Spark's task log has it) that shows neither the key nor the secret."""

from __future__ import annotations

import sqlite3

import pytest

from support.small import write_small_stores

KEY, SECRET = "AKIAXXXX", "SECRETVALUE"


def test_credentials_in_an_artifact_uri_reach_no_error(spark, tmp_path):
    store = write_small_stores(tmp_path, names=("remote",), runs_per_experiment=2, kinds=("sqlite",))["sqlite"]
    connection = sqlite3.connect(store.split("sqlite:///", 1)[1])
    with connection:
        run_id, other = [row[0] for row in connection.execute("SELECT run_uuid FROM runs ORDER BY run_uuid")]
        connection.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (f"s3://{KEY}:{SECRET}@bucket/x", run_id))
    connection.close()
    (tmp_path / "artifacts" / "remote" / other / "artifacts").mkdir(parents=True)
    (tmp_path / "artifacts" / "remote" / other / "artifacts" / "a.txt").write_text("a")

    def read(mode):
        return (spark.read.format("experiments").option("trackingUri", store).option("table", "artifacts")
                .option("mode", mode).option("withContent", "true").load())

    rows = read("PERMISSIVE").collect()
    assert {(r.run_id, r.path, r.content) for r in rows} == {(other, "a.txt", b"a")}
    with pytest.raises(Exception) as error:
        read("FAILFAST").collect()
    text = str(error.value)
    assert run_id in text and "carries credentials" in text and "s3://***@bucket/x" in text
    assert KEY not in text and SECRET not in text
