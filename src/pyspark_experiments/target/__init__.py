"""Delta targets and their lock, shared by every job that writes synced tables.

- :class:`DeltaTarget`: a folder of Delta tables or a catalog schema (SQL only: works over
  Spark Connect), with read / write / merge / property / history helpers.
- :class:`TargetLock`: the lock every writer of a target takes (claims on ``_sync_lock``).
- :func:`is_table_path`: THE rule telling a table path from a catalog table name.

Example::

    >>> from pyspark_experiments.target import is_table_path
    >>> is_table_path("/data/events"), is_table_path("main.ml.events")
    (True, False)
"""

from __future__ import annotations

from .delta import (
    DeltaTarget,
    is_conflict,
    is_table_path,
    latest_table_version,
    quote_name,
    sql_string,
    table_path,
    table_sql_name,
)
from .lock import (
    LOCK_PREFIX,
    LOCK_TABLE,
    TargetLock,
    claim_versions,
    first_claim,
    holder_alive,
    new_holder,
)

__all__ = [
    "LOCK_PREFIX",
    "LOCK_TABLE",
    "DeltaTarget",
    "TargetLock",
    "claim_versions",
    "first_claim",
    "holder_alive",
    "is_conflict",
    "is_table_path",
    "latest_table_version",
    "new_holder",
    "quote_name",
    "sql_string",
    "table_path",
    "table_sql_name",
]
