"""Run analytics over the ``experiments`` tables: plain DataFrame functions, nothing collected
but a check that a metric they are given was logged (else a ``ConfigurationError`` naming the
closest logged keys).

Every function takes the tables as DataFrames, as ``spark.read.format("experiments")`` or the
synced Delta tables give them, and returns a DataFrame whose columns its docstring lists.
Periods are UTC calendar days, ISO weeks (from Monday) or months of the run start time (of a
trace's request time, an assessment's creation time), as dates, whatever the session time
zone. GenAI traces: :mod:`.traces` and :mod:`.tokens`.

The ``pyspark-experiments analytics`` job that writes them as Delta tables lives beside them:
:mod:`.config` (its settings), :mod:`.inputs` (reading the synced tables or the store),
:mod:`.job` (:func:`~.job.run_analytics`) and :mod:`.cli`.

Example::

    >>> from pyspark_experiments import analytics
    >>> runs = spark.read.format("experiments").option("trackingUri", "sqlite:///mlflow.db").load()
    >>> analytics.metric_trend(runs, "test_r2", period="week").show()
    >>> analytics.quota_usage(runs, limits=analytics.QuotaLimits(runs_per_experiment=1000)).show()
"""

from .activity import run_totals, runs_over_time, runs_per_user, total_runs
from .cleanup import cleanup_candidates
from .health import run_health, stuck_runs
from .history import metric_history_summary
from .leaderboard import leaderboard, param_effect
from .quota import QuotaLimits, check_margin, quota_usage, usage_level
from .tokens import token_usage, trace_usage
from .traces import assessment_outcomes, slowest_spans, trace_volume, traces_per_session, traces_per_user
from .trend import metric_trend

__all__ = [
    "QuotaLimits",
    "assessment_outcomes",
    "check_margin",
    "cleanup_candidates",
    "leaderboard",
    "metric_history_summary",
    "metric_trend",
    "param_effect",
    "quota_usage",
    "run_health",
    "run_totals",
    "runs_over_time",
    "runs_per_user",
    "slowest_spans",
    "stuck_runs",
    "token_usage",
    "total_runs",
    "trace_usage",
    "trace_volume",
    "traces_per_session",
    "traces_per_user",
    "usage_level",
]
