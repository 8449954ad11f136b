"""The analytics job's tables over GenAI traces, written beside the run tables when the store
(or the synced target) holds traces.

=======================================  ====================================================
``analytics_trace_volume``               :func:`~.traces.trace_volume` per experiment and period
``analytics_token_usage_by_period``      :func:`~.tokens.token_usage` per experiment and period
``analytics_token_usage_by_model``       :func:`~.tokens.token_usage` per experiment and model
``analytics_token_usage_by_trace_name``  :func:`~.tokens.token_usage` per experiment and trace
                                         name
``analytics_slowest_spans``              :func:`~.traces.slowest_spans`: 10 names per experiment
``analytics_assessment_outcomes``        :func:`~.traces.assessment_outcomes` per experiment and
                                         period
``analytics_traces_per_user``            :func:`~.traces.traces_per_user` per period
``analytics_traces_per_session``         :func:`~.traces.traces_per_session` per experiment
=======================================  ====================================================

The period is the job's (``[analytics] period``, default week); the traces are those of the
experiments that are not deleted. ``[analytics] traces = false`` leaves these tables out (and
as they are). Without a trace to read they are skipped, unless an earlier run wrote them: then
they are overwritten empty, so that they never show numbers of traces gone since.

Example::

    >>> extra = trace_tables(spark, cfg, "target", target, tables["experiments"])   # doctest: +SKIP
    >>> sorted(extra.tables)[:2]                                                    # doctest: +SKIP
    ['analytics_assessment_outcomes', 'analytics_slowest_spans']
    >>> extra.release()                                                             # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame

from .. import tables
from .config import AnalyticsConfig
from .inputs import read_trace_tables
from .tokens import token_usage, trace_usage
from .traces import assessment_outcomes, slowest_spans, trace_volume, traces_per_session, traces_per_user

log = logging.getLogger("pyspark_experiments.analytics")

#: The tables written, without the job's prefix.
TRACE_OUTPUTS = ("trace_volume", "token_usage_by_period", "token_usage_by_model", "token_usage_by_trace_name",
                 "slowest_spans", "assessment_outcomes", "traces_per_user", "traces_per_session")


@dataclass
class TraceTables:
    """What the job writes from the traces: ``{table name: function returning its DataFrame}``
    (empty when there is nothing to write), and the cached inputs to let go of afterwards.

    Example::

        >>> TraceTables().tables
        {}
    """

    tables: dict[str, Callable[[], DataFrame]] = field(default_factory=dict)
    cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        """Drop the cached inputs."""
        for df in self.cached:
            df.unpersist()


def trace_outputs(found: dict[str, DataFrame], period: str, prefix: str) -> TraceTables:
    """The tables of :data:`TRACE_OUTPUTS` (named ``prefix`` + name) from the ``traces``,
    ``spans`` and ``assessments`` DataFrames of ``found``: the traces' totals completed from
    their spans once (:func:`~.tokens.trace_usage`), and they and the spans cached.

    Example::

        >>> plan = trace_outputs(found, "week", "analytics_")                    # doctest: +SKIP
        >>> plan.tables["analytics_trace_volume"]().show()                       # doctest: +SKIP
    """
    spans = found[tables.SPANS].cache()
    traces = trace_usage(found[tables.TRACES], spans).cache()
    builds = {
        "trace_volume": lambda: trace_volume(traces, period=period),
        "token_usage_by_period": lambda: token_usage(traces, by=period),
        "token_usage_by_model": lambda: token_usage(traces, spans, by="model"),
        "token_usage_by_trace_name": lambda: token_usage(traces, by="trace_name"),
        "slowest_spans": lambda: slowest_spans(spans),
        "assessment_outcomes": lambda: assessment_outcomes(found[tables.ASSESSMENTS], period=period),
        "traces_per_user": lambda: traces_per_user(traces, period=period),
        "traces_per_session": lambda: traces_per_session(traces),
    }
    return TraceTables({prefix + name: builds[name] for name in TRACE_OUTPUTS}, [spans, traces])


def trace_tables(spark, cfg: AnalyticsConfig, reading: str, target, experiments: DataFrame, prefix: str) -> TraceTables:
    """The trace tables the job writes into ``target`` this run, read from the store or the
    target (``reading``) for the experiments of ``experiments`` (see the module's docstring).
    Costs a few milliseconds (the store) or one existence check (a target without synced
    traces), plus one for the job's earlier tables, when there is no trace.

    Example::

        >>> trace_tables(spark, AnalyticsConfig(target_path="/d", trace_tables=False), "target", target, experiments,
        ...              "analytics_").tables                                            # doctest: +SKIP
        {}
    """
    if not cfg.trace_tables:
        return TraceTables()
    found = read_trace_tables(spark, cfg, source=reading, experiments=experiments)
    if found is None:
        if not target.exists(prefix + TRACE_OUTPUTS[0]):
            log.info("analytics: no trace to read: trace tables skipped")
            return TraceTables()
        log.info("analytics: no trace to read: the trace tables of an earlier run are emptied")
        found = {name: spark.createDataFrame([], tables.spark_schema(name)) for name in tables.TRACE_TABLE_NAMES}
    return trace_outputs(found, cfg.table_period(), prefix)
