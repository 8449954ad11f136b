"""Comparing tables in tests: rows as plain, order-free data, read from the data source, a
synced Delta folder or a catalog schema; analytics results as rows of values equal within a
relative tolerance."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pyspark_experiments import tables


def plain(value, digits: int | None = None):
    """A cell as comparable data: maps as sorted items, lists as tuples, NaN as a marker, and
    with ``digits``, floats rounded to that many decimals (sums in another order differ in the
    last bits)."""
    if isinstance(value, dict):
        return tuple(sorted((k, plain(v, digits)) for k, v in value.items()))
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and digits is not None:
        return round(value, digits)
    if isinstance(value, (list, tuple)):
        return tuple(plain(v, digits) for v in value)
    return value


def sorted_rows(df, digits: int | None = None) -> list[tuple]:
    """All rows of ``df`` as plain tuples (floats rounded to ``digits`` decimals, if given) in
    a stable order."""
    return sorted((tuple(plain(row[n], digits) for n in df.columns) for row in df.collect()), key=repr)


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


def same(a, b, rel=1e-9) -> bool:
    """Equal values: NaN equals NaN, None equals only None, numbers within a relative tolerance."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    return a == b


def assert_rows(actual: list[dict], expected: list[dict], what: str) -> None:
    """Fail unless the rows are equal one by one, in order, as :func:`same` compares values."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} rows, expected {len(expected)}\n{actual}\n{expected}"
    for got, want in zip(actual, expected):
        assert set(got) == set(want), what
        for key in want:
            assert same(got[key], want[key]), f"{what}: {key} is {got[key]!r}, expected {want[key]!r}\n{got}\n{want}"


def collect(df) -> list[dict]:
    """The rows of ``df`` as dicts (nested rows as dicts too)."""
    return [row.asDict(recursive=True) for row in df.collect()]


def period_of(day: dt.date, period: str) -> dt.date:
    """The first day of the ``day``, ``week`` (from Monday) or ``month`` holding ``day``."""
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day
