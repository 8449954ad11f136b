"""The ``analytics``, ``report`` and ``cleanup`` commands, on the job layer
(:mod:`pyspark_experiments.jobs`), with their shared settings (:class:`JobConfig`).

Example::

    $ pyspark-experiments analytics --config conf/analytics.toml
    $ pyspark-experiments report --tracking-uri sqlite:///mlflow.db --out /tmp/report
    $ pyspark-experiments cleanup --tracking-uri sqlite:///mlflow.db --statuses FAILED,KILLED --older-than-days 30
"""

from .config import JobConfig
from .job import AnalyticsResult, analytics_tables, run_analytics

__all__ = ["AnalyticsResult", "JobConfig", "analytics_tables", "run_analytics"]
