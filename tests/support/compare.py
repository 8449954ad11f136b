"""Comparing tables in tests: rows as plain, order-free data, read from the data source, a
synced Delta folder or a catalog schema."""

from __future__ import annotations

import math

import pytest

from pyspark_experiments import tables


def plain(value):
    """A cell as comparable data: maps as sorted items, lists as tuples, NaN as a marker."""
    if isinstance(value, dict):
        return tuple(sorted((k, plain(v)) for k, v in value.items()))
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    return value


def sorted_rows(df) -> list[tuple]:
    """All rows of ``df`` as plain tuples in a stable order."""
    return sorted((tuple(plain(row[n]) for n in df.columns) for row in df.collect()), key=repr)


def source_tables(spark, uri: str, names=tables.TABLE_NAMES, active_only=()) -> dict[str, list[tuple]]:
    """Every table (of ``names``) as the data source reads it: all experiments, deleted ones
    included (``active_only``: tables read with viewType ACTIVE_ONLY, as a server serves them)."""
    result = {}
    for table in names:
        df = (spark.read.format("experiments").option("trackingUri", uri).option("table", table)
              .option("viewType", "ACTIVE_ONLY" if table in active_only else "ALL").load())
        result[table] = sorted_rows(df.select(*tables.spark_schema(table).fieldNames()))
    return result


def target_tables(spark, path: str | None = None, schema: str | None = None, names=tables.TABLE_NAMES) -> dict[str, list[tuple]]:
    """Every table (of ``names``) of a synced target (a folder of Delta tables or a catalog schema)."""
    result = {}
    for table in names:
        df = spark.read.format("delta").load(f"{path}/{table}") if path else spark.read.table(f"{schema}.{table}")
        result[table] = sorted_rows(df.select(*tables.spark_schema(table).fieldNames()))
    return result


def assert_same(actual: dict, expected: dict) -> None:
    """Fail naming the first table that differs, with a few missing and extra rows."""
    for table in expected:
        a, e = actual[table], expected[table]
        if a != e:
            missing = [r for r in e if r not in a][:5]
            extra = [r for r in a if r not in e][:5]
            pytest.fail(f"table {table}: {len(a)} rows, expected {len(e)}; missing {missing}; extra {extra}")
