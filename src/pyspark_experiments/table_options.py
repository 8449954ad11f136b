"""Deprecated: which options apply to which table is :mod:`pyspark_experiments.datasource.options`.

This module re-exports its names for one release and warns on import.

Example::

    >>> from pyspark_experiments.datasource.options import check_table_options  # doctest: +SKIP
"""

from __future__ import annotations

import warnings

from .datasource.options import ARTIFACT_OPTIONS, artifact_path_option, bool_option, check_table_options

warnings.warn(
    "pyspark_experiments.table_options is deprecated and will be removed in the next release; "
    "import from pyspark_experiments.datasource.options instead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ARTIFACT_OPTIONS", "artifact_path_option", "bool_option", "check_table_options"]
