"""Deprecated: the streaming reader is :mod:`pyspark_experiments.datasource.stream`.

This module re-exports its names for one release and warns on import.

Example::

    >>> from pyspark_experiments.datasource.stream import ExperimentsStreamReader  # doctest: +SKIP
"""

from __future__ import annotations

import warnings

from .datasource.stream import ExperimentsStreamReader, RefusedStream, StreamPartition, run_digest

warnings.warn(
    "pyspark_experiments.streaming is deprecated and will be removed in the next release; "
    "import from pyspark_experiments.datasource.stream instead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ExperimentsStreamReader", "RefusedStream", "StreamPartition", "run_digest"]
