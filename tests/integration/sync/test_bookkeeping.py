"""The sync's bookkeeping of its own commits: each table's version and row count in the state.

A sync reads the commit it just appended from the table's log at the version after the one the
state knows, and trusts it only when it carries the sync's marker and nothing followed it;
anything else (another writer, Delta's auto compaction) is looked up in the table's history.
What must hold, whoever else writes: the state's versions and row counts are the tables' own,
and rows written by someone else are counted, not assumed.
"""

from __future__ import annotations

import json
import logging

import pytest

from pyspark_experiments.jobs.target import DeltaTarget
from pyspark_experiments.sync import sync
from pyspark_experiments.sync.state import read_state
from support.stores import new_store

CHECKED = ("runs", "params", "tags", "metrics")
RECOUNT = "written outside the sync since its last run"


def log_runs(uri: str, count: int, first: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("small").experiment_id
    for i in range(first, first + count):
        run = client.create_run(experiment, run_name=f"more-{i}").info.run_id
        client.log_param(run, "i", str(i))
        client.set_tag(run, "batch", "more")
        client.log_metric(run, "loss", 1.0 / (i + 1), step=0)


def commit_without_commit_info(table_folder, version: int) -> None:
    """Commit ``version`` of the table as another writer may (``commitInfo`` is optional in
    Delta's protocol): the first commit's data file, added again."""
    log_folder = table_folder / "_delta_log"
    first = (log_folder / f"{0:020d}.json").read_text().splitlines()
    added = [line for line in first if "add" in json.loads(line)]
    (log_folder / f"{version:020d}.json").write_text("\n".join(added) + "\n")


def assert_state_is_the_tables(spark, target: DeltaTarget) -> dict:
    state, _ = read_state(target)
    for table in CHECKED:
        assert state.meta["versions"][table] == target.latest_version(table), table
        assert state.meta["rows"][table] == target.read(table).count(), table
    return state.meta


@pytest.mark.slow  # four syncs: about 100 s
def test_versions_and_row_counts_are_the_tables_own_whoever_else_writes(spark, tmp_path, caplog):
    uri, _ = new_store("sqlite", tmp_path, reference=False)
    folder = str(tmp_path / "delta")
    target = DeltaTarget.at_path(spark, folder)
    caplog.set_level(logging.INFO, logger="pyspark_experiments")
    sync(uri, folder, spark=spark, progress=False)
    # The store has no dataset inputs: the empty `inputs` table is left as created (Delta
    # commits no empty append), not taken for one written by someone else.
    assert RECOUNT not in caplog.text
    assert_state_is_the_tables(spark, target)
    caplog.clear()

    # New runs only: every table's commit is the sync's own, read from the log.
    log_runs(uri, 3, 0)
    assert sync(uri, folder, spark=spark, progress=False).new_runs == 3
    assert_state_is_the_tables(spark, target)
    (commit,) = target.history("params", 1)
    assert commit["operation"] == "WRITE" and commit["userMetadata"].startswith("pyspark-experiments sync ")
    assert RECOUNT not in caplog.text

    # Another writer appends to tags, and turns on auto compaction for params (a commit too):
    # the sync's commits are not the ones after the versions the state knows, and the rows it
    # did not write are counted. Auto compaction then commits an OPTIMIZE right after each of
    # the sync's writes to params: the version kept is the table's latest.
    target.write(target.read("tags").limit(1), "tags", "append")
    outside = target.read("tags").count()
    target.set_property("params", "delta.autoOptimize.autoCompact", "true")
    spark.conf.set("spark.databricks.delta.autoCompact.minNumFiles", "2")
    try:
        log_runs(uri, 2, 3)
        caplog.clear()
        sync(uri, folder, spark=spark, progress=False)
        assert [c["operation"] for c in target.history("params", 2)] == ["OPTIMIZE", "WRITE"]
        meta = assert_state_is_the_tables(spark, target)
        assert meta["rows"]["tags"] == outside + 2 * 2  # two new runs, each with batch and mlflow.runName
        assert f"tags: {RECOUNT}" in caplog.text and f"params: {RECOUNT}" in caplog.text
        assert f"runs: {RECOUNT}" not in caplog.text

        # The next sync takes neither the OPTIMIZE nor its own last commits for another writer.
        log_runs(uri, 1, 5)
        caplog.clear()
        sync(uri, folder, spark=spark, progress=False)
        assert [c["operation"] for c in target.history("params", 2)] == ["OPTIMIZE", "WRITE"]
        assert_state_is_the_tables(spark, target)
        assert RECOUNT not in caplog.text
    finally:
        spark.conf.unset("spark.databricks.delta.autoCompact.minNumFiles")


def test_a_commit_without_commit_info_is_still_seen_in_the_log(spark, tmp_path):
    """A sync trusts the commit it appended only when no commit follows it in the table's log:
    one that another writer made without ``commitInfo`` (it is optional in Delta's protocol)
    counts too."""
    folder = tmp_path / "delta"
    target = DeltaTarget.at_path(spark, str(folder))
    target.write(spark.createDataFrame([(1,)], "n long"), "t", "append", user_metadata="ours")
    commit_without_commit_info(folder / "t", 1)
    assert target.latest_version("t") == 1 and target.read("t").count() == 1

    found = target.commits("t", [0, 1])
    assert found[0]["userMetadata"] == "ours" and found[1] == {}
    assert target.commits("t", [2, 3]) is None


def test_the_latest_write_read_from_the_log_is_the_one_delta_s_history_gives(spark, tmp_path):
    """The state's header and version, read from its log where the log holds every commit (a
    path's table with no commit coordinator or catalog owning its commits), equal what Delta's
    history says: after writes, after an OPTIMIZE, after a commit without ``commitInfo``."""
    def from_history(target, table):
        rows = target.history(table, 3)
        data = next((r for r in rows if r["operation"] != "OPTIMIZE"), rows[0])
        return int(rows[0]["version"]), data["version"], data["operation"], data["readVersion"], data["userMetadata"]

    def from_log(target, table):
        version, data = target.latest_write(table)
        return version, data["version"], data["operation"], data["readVersion"], data["userMetadata"]

    folder = tmp_path / "delta"
    target = DeltaTarget.at_path(spark, str(folder))
    frame = spark.createDataFrame([(1,)], "n long")
    target.write(frame, "t", "append", user_metadata="first")
    assert from_log(target, "t") == from_history(target, "t") == (0, 0, "WRITE", None, "first")
    target.write(frame, "t", "append", user_metadata="second")
    target.optimize("t")
    assert from_log(target, "t") == from_history(target, "t") == (2, 1, "WRITE", 0, "second")
    assert [target.is_latest_version("t", v) for v in (None, 1, 2, 3)] == [False, False, True, False]

    commit_without_commit_info(folder / "t", 3)
    assert target.latest_write("t")[0] == target.latest_version("t") == 3
    assert not target.is_latest_version("t", 2) and target.is_latest_version("t", 3)

    # Where a catalog or a commit coordinator may own the commits, Delta is asked.
    target.set_property("t", "test.catalogOwned.marker", "1")
    owned = DeltaTarget.at_path(spark, str(folder))
    assert not owned.is_latest_version("t", 4) and owned.latest_write("t")[0] == 4
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS bookkeeping_test LOCATION '{tmp_path / 'schema'}'")
    in_schema = DeltaTarget.in_schema(spark, "bookkeeping_test")
    in_schema.write(frame, "t", "append")
    in_schema.write(frame, "t", "append", user_metadata="named")
    assert not in_schema.is_latest_version("t", 1)
    assert from_log(in_schema, "t") == from_history(in_schema, "t") == (1, 1, "WRITE", 0, "named")
