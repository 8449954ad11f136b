"""Deprecated: the analytics job moved to :mod:`pyspark_experiments.analytics.job` (its settings
to :mod:`pyspark_experiments.analytics.config`), the report command to
:mod:`pyspark_experiments.report.cli`, the cleanup command to :mod:`pyspark_experiments.cleanup`.
This module re-exports the analytics job's names for one release and warns
(``DeprecationWarning``) when imported. ``JobConfig`` is now
:class:`~pyspark_experiments.analytics.config.AnalyticsConfig`: the analytics job's settings only
(the report's and the cleanup's are :class:`~pyspark_experiments.report.config.ReportConfig`
and :class:`~pyspark_experiments.cleanup.config.CleanupConfig`).

Example::

    >>> from pyspark_experiments.analytics.config import AnalyticsConfig   # instead of JobConfig
    >>> AnalyticsConfig(target_path="/d").validate().leaderboard_size
    10
"""

from __future__ import annotations

import warnings

from .analytics.config import AnalyticsConfig as JobConfig
from .analytics.job import AnalyticsResult, analytics_tables, run_analytics

warnings.warn(
    "pyspark_experiments.analytics_job is deprecated and will be removed in the next release: import "
    "run_analytics, analytics_tables and AnalyticsResult from pyspark_experiments.analytics.job, and use "
    "pyspark_experiments.analytics.config.AnalyticsConfig instead of JobConfig",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["AnalyticsResult", "JobConfig", "analytics_tables", "run_analytics"]
