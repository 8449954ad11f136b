"""The columns a synced table gained after a target was created, and how old rows are filled."""

from __future__ import annotations

from pyspark_experiments import tables
from pyspark_experiments.sync.columns import EVOLVED_TABLES, FILLS, fill_statement


def test_every_filled_column_is_a_nullable_column_at_the_tables_end():
    for table, fills in FILLS.items():
        fields = tables.spark_schema(table).fields
        names = [f.name for f in fields]
        # Added at the end: positions of the columns before it are kept (ALTER TABLE ADD COLUMNS).
        assert names[-len(fills):] == list(fills), (table, names)
        assert all(f.nullable for f in fields if f.name in fills), table
    assert EVOLVED_TABLES == ("runs",)
    assert tables.spark_schema("runs").fieldNames()[:9] == [
        "run_id", "experiment_id", "metrics", "params", "tags", "start_time", "end_time", "status", "artifact_uri"]


def test_fill_sets_only_rows_still_null_from_their_tags():
    assignments, condition = fill_statement("runs", ["parent_run_id"])
    assert assignments == "`parent_run_id` = tags['mlflow.parentRunId']"
    assert condition == "`parent_run_id` IS NULL AND tags['mlflow.parentRunId'] IS NOT NULL"
    assert fill_statement("runs", []) is None
    assert fill_statement("params", ["value"]) is None  # a column with no fill is left null
