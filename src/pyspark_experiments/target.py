"""Deprecated: the Delta target and its lock moved to :mod:`pyspark_experiments.jobs.target`
and :mod:`pyspark_experiments.jobs.lock`. This module re-exports their names for one release
and warns (``DeprecationWarning``) when imported.

Example::

    >>> from pyspark_experiments.jobs.target import is_table_path   # instead of .target
    >>> is_table_path("/data/events"), is_table_path("main.ml.events")
    (True, False)
"""

from __future__ import annotations

import warnings

from .jobs.lock import (
    LOCK_PREFIX,
    LOCK_TABLE,
    TargetLock,
    claim_versions,
    first_claim,
    holder_alive,
    new_holder,
)
from .jobs.target import (
    DeltaTarget,
    is_conflict,
    is_table_path,
    latest_table_version,
    quote_name,
    sql_string,
    table_path,
    table_sql_name,
)

warnings.warn(
    "pyspark_experiments.target is deprecated and will be removed in the next release: import from "
    "pyspark_experiments.jobs.target (DeltaTarget, is_table_path, ...) and pyspark_experiments.jobs.lock "
    "(TargetLock, LOCK_TABLE, ...)",
    DeprecationWarning,
    stacklevel=2,
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
