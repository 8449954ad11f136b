"""Columns a synced table gained after a target was created: added in place, old rows filled.

A target synced by a version before a column existed lacks it, and Delta refuses to append or
merge rows that carry it. Before a sync writes such a table it adds every missing column with
``ALTER TABLE ... ADD COLUMNS`` (one metadata-only commit, through Spark SQL: works over Spark
Connect), then fills the rows already there where the column derives from what they hold, with
one ``UPDATE`` that rewrites only the files holding such rows: ``runs.parent_run_id`` from the
run's ``tags`` map, which the source fills from the same tag.

The fill is idempotent (it sets only rows whose column is null and whose expression is not), so
a sync stopped between the two commits is completed by the next one, which recovers (the
stopped sync left its claim) and runs the fill again.

Example::

    >>> EVOLVED_TABLES
    ('runs',)
    >>> fill_statement("runs", ["parent_run_id"])
    ("`parent_run_id` = tags['mlflow.parentRunId']", "`parent_run_id` IS NULL AND tags['mlflow.parentRunId'] IS NOT NULL")
"""

from __future__ import annotations

from .. import tables
from ..jobs.target import DeltaTarget, sql_string

#: For each column added to a table after the first release, the SQL expression over the
#: table's own columns that gives its value for rows written before it existed.
FILLS = {
    tables.RUNS: {"parent_run_id": f"tags[{sql_string(tables.PARENT_RUN_TAG)}]"},
}
#: The tables that gained columns: the only ones a sync checks (one metadata read each).
EVOLVED_TABLES = tuple(FILLS)


def fill_statement(table: str, columns) -> tuple[str, str] | None:
    """The ``UPDATE`` assignments and condition filling ``columns`` of ``table`` for the rows
    written before they existed; None when none of them derives from the row.

    Example::

        >>> fill_statement("runs", []) is None
        True
    """
    fills = {c: FILLS.get(table, {})[c] for c in columns if c in FILLS.get(table, {})}
    if not fills:
        return None
    assignments = ", ".join(f"`{c}` = {expression}" for c, expression in fills.items())
    condition = " OR ".join(f"`{c}` IS NULL AND {expression} IS NOT NULL" for c, expression in fills.items())
    return assignments, condition


def add_new_columns(target: DeltaTarget, table: str, *, refill: bool = False) -> tuple[list[str], int]:
    """Add to ``table`` of ``target`` the columns of its schema that it lacks, and fill them for
    the rows already there; with ``refill``, fill every derived column again even when none was
    missing (a sync after one that stopped between the two commits). Returns the columns added
    and the rows filled.

    Example::

        >>> add_new_columns(target, "runs")                                   # doctest: +SKIP
        (['parent_run_id'], 8)
    """
    added = target.add_missing_columns(table, tables.spark_schema(table))
    statement = fill_statement(table, FILLS.get(table, {}) if refill else added)
    if statement is None:
        return added, 0
    return added, target.update(table, *statement)
