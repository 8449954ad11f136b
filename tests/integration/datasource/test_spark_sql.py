"""Spark SQL: ``CREATE TEMPORARY VIEW ... USING experiments OPTIONS (...)`` reads what the
DataFrame API reads, options and load path included."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def small_stores(tmp_path_factory):
    from support.small import write_small_stores

    return write_small_stores(tmp_path_factory.mktemp("sql-small"))


def _rows(df, *columns):
    return sorted(tuple(row[c] for c in columns) for row in df.select(*columns).collect())


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_temporary_view_reads_the_runs_table(spark, small_stores, kind):
    uri = small_stores[kind].replace("'", "\\'")
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW runs_{kind} USING experiments OPTIONS (trackingUri '{uri}', path 'alpha')")
    from_sql = spark.sql(f"SELECT run_id, status, metrics FROM runs_{kind}")
    from_api = spark.read.format("experiments").option("trackingUri", small_stores[kind]).load("alpha")
    assert from_sql.count() == from_api.count() > 0
    assert _rows(from_sql, "run_id", "status") == _rows(from_api, "run_id", "status")


def test_temporary_view_with_table_and_narrowing_options(spark, small_stores):
    uri = small_stores["sqlite"]
    spark.sql(
        "CREATE OR REPLACE TEMPORARY VIEW history USING experiments "
        f"OPTIONS (trackingUri '{uri}', table 'metrics', viewType 'ALL', path 'alpha,beta')"
    )
    grouped = spark.sql("SELECT run_id, key, COUNT(*) AS points, MIN(value) AS best FROM history GROUP BY run_id, key")
    expected = (
        spark.read.format("experiments").option("trackingUri", uri).option("table", "metrics")
        .option("viewType", "ALL").load("alpha,beta").groupBy("run_id", "key").count()
    )
    assert _rows(grouped, "run_id", "key", "points") == _rows(expected, "run_id", "key", "count")
    assert grouped.count() > 0


def test_a_bad_option_in_sql_names_the_option(spark, small_stores):
    uri = small_stores["sqlite"]
    with pytest.raises(Exception, match="viewType"):  # at CREATE or at the first query
        spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW bad USING experiments OPTIONS (trackingUri '{uri}', viewType 'SOME')")
        spark.sql("SELECT * FROM bad").collect()
