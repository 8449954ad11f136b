"""Token usage and cost of GenAI traces (the ``traces`` and ``spans`` tables), per period, trace
name or model, each LLM call counted once.

Where the numbers come from:

- A trace's totals are the ``traces`` columns ``input_tokens``, ``output_tokens``,
  ``total_tokens`` and ``total_cost``: what MLflow recorded for the trace, itself the sum over
  the trace's spans by MLflow's rule (a span counts unless one of its ancestors carries the
  same kind of number: an agent span reporting the sum of its calls is taken instead of them).
  A file store records token usage but no trace cost. A trace that recorded no token count
  (no cost) takes, when ``spans`` are given, the sum over its spans by that same rule;
  recorded totals are never added to span counts.
- Per model, the spans are counted the other way round: a span's tokens (cost) count unless a
  span below it carries tokens (a cost), so that the calls, which name their model, are
  counted rather than an agent span's sum of them. Summed over the models, the numbers equal
  the traces' wherever such a sum is faithful (it is the sum of the calls below it).

Example::

    >>> token_usage(traces, spans, by="week").show()                            # doctest: +SKIP
    >>> token_usage(traces, spans, by="model", by_experiment=False).show()      # doctest: +SKIP
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ..errors import ConfigurationError
from .common import PERIODS, check_choice, require_columns, utc_period

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "total_tokens")
#: The values of ``token_usage(by=...)``: a period, ``model`` or ``trace_name``.
USAGE_BY = PERIODS + ("model", "trace_name")
SPAN_USAGE_COLUMNS = ("experiment_id", "trace_id", "span_id", "parent_span_id", "model_name", "model_provider",
                      *TOKEN_COLUMNS, "cost")


def _has_tokens() -> Column:
    return F.coalesce(*(F.col(column) for column in TOKEN_COLUMNS)).isNotNull()


def _ancestors(span_id: Column) -> Column:
    """The ids of the spans above ``span_id`` in its trace (parent first), from the column
    ``parent_of`` (span id -> parent span id). A parent missing from the trace ends the walk;
    the walk takes at most as many steps as the trace has spans (a loop of parents ends)."""
    start = F.struct(F.try_element_at(F.col("parent_of"), span_id).alias("at"),
                     F.array().cast("array<string>").alias("seen"))

    def step(walk: Column, _: Column) -> Column:
        at = walk["at"]
        return F.when(at.isNull(), walk).otherwise(
            F.struct(F.try_element_at(F.col("parent_of"), at).alias("at"), F.array_append(walk["seen"], at).alias("seen")))

    return F.aggregate(F.sequence(F.lit(1), F.size("parent_of")), start, step, lambda walk: walk["seen"])


def usage_spans(spans: DataFrame) -> DataFrame:
    """The spans that carry token counts or a cost, each with which rule counts it:

    - ``tokens_outermost`` / ``cost_outermost``: it carries tokens (a cost) and none of its
      ancestors does (MLflow's rule for a trace's totals);
    - ``tokens_innermost`` / ``cost_innermost``: it carries tokens (a cost) and none of the
      spans below it does (the rule per model).

    Columns: those of :data:`SPAN_USAGE_COLUMNS` but ``parent_span_id``, and the four flags
    (booleans). A span carries tokens when any of its three token counts is recorded.

    Example::

        >>> usage_spans(spans).where("tokens_innermost").groupBy("model_name").sum("total_tokens").show()  # doctest: +SKIP
    """
    require_columns(spans, SPAN_USAGE_COLUMNS, "spans", "usage_spans")
    tokens, cost = _has_tokens(), F.col("cost").isNotNull()
    trees = spans.groupBy("trace_id").agg(
        F.map_from_entries(F.collect_list(F.struct("span_id", "parent_span_id"))).alias("parent_of"),
        F.collect_set(F.when(tokens, F.col("span_id"))).alias("token_spans"),
        F.collect_set(F.when(cost, F.col("span_id"))).alias("cost_spans"),
    )
    carriers = (spans.where(tokens | cost).join(trees, "trace_id")
                .withColumn("above", _ancestors(F.col("span_id"))))
    trace = Window.partitionBy("trace_id")
    below_tokens = F.flatten(F.collect_list(F.when(tokens, F.col("above"))).over(trace))
    below_cost = F.flatten(F.collect_list(F.when(cost, F.col("above"))).over(trace))
    return carriers.select(
        *(c for c in SPAN_USAGE_COLUMNS if c != "parent_span_id"),
        (tokens & ~F.arrays_overlap("above", "token_spans")).alias("tokens_outermost"),
        (cost & ~F.arrays_overlap("above", "cost_spans")).alias("cost_outermost"),
        (tokens & ~F.array_contains(below_tokens, F.col("span_id"))).alias("tokens_innermost"),
        (cost & ~F.array_contains(below_cost, F.col("span_id"))).alias("cost_innermost"),
    )


def _sums(rule: str) -> list[Column]:
    """Sums of the spans' numbers that ``rule`` (``outermost`` / ``innermost``) counts."""
    return [F.sum(F.when(F.col(f"tokens_{rule}"), F.col(c))).alias(c) for c in TOKEN_COLUMNS] + [
        F.sum(F.when(F.col(f"cost_{rule}"), F.col("cost"))).alias("total_cost")]


def trace_usage(traces: DataFrame, spans: DataFrame | None = None) -> DataFrame:
    """``traces`` (its columns, in order) with ``input_tokens``, ``output_tokens``,
    ``total_tokens`` and ``total_cost`` completed from ``spans`` where the trace recorded none:
    the sums over its spans by MLflow's rule (see the module's docstring). Without ``spans``,
    ``traces`` as given. The result can stand for ``traces`` in :func:`token_usage` and
    :func:`~.traces.traces_per_session` (with no ``spans``), to complete the totals once.

    Example::

        >>> trace_usage(traces, spans).where("total_cost IS NOT NULL").count()     # doctest: +SKIP
        12
    """
    require_columns(traces, ("trace_id", *TOKEN_COLUMNS, "total_cost"), "traces", "trace_usage")
    if spans is None:
        return traces
    require_columns(spans, SPAN_USAGE_COLUMNS, "spans", "trace_usage")
    counted = usage_spans(spans).groupBy("trace_id").agg(*_sums("outermost"))
    counted = counted.select("trace_id", *(F.col(c).alias("span_" + c) for c in (*TOKEN_COLUMNS, "total_cost")))
    recorded_tokens = _has_tokens()
    completed = {column: F.when(recorded_tokens, F.col(column)).otherwise(F.col("span_" + column)).alias(column)
                 for column in TOKEN_COLUMNS}
    completed["total_cost"] = F.coalesce(F.col("total_cost"), F.col("span_total_cost")).alias("total_cost")
    joined = traces.join(counted, "trace_id", "left")
    return joined.select(*(completed.get(column, F.col(column)) for column in traces.columns))


def token_usage(traces: DataFrame, spans: DataFrame | None = None, *, by: str = "day",
                by_experiment: bool = True) -> DataFrame:
    """Tokens and cost per UTC period of the request time (``by="day"``, ``"week"`` from
    Monday, ``"month"``), per trace name (``"trace_name"``) or per model (``"model"``), per
    experiment unless ``by_experiment=False``.

    Per period and trace name, each trace counts with its totals as MLflow recorded them, or,
    for a trace that recorded none and when ``spans`` are given, the sum over its spans by
    MLflow's rule (see the module's docstring: never both). Traces without a request time are
    left out of the periods; a null trace name is a row of its own.

    Per model (``spans`` needed), the spans of ``traces`` that carry tokens or a cost count
    unless a span below them carries the same kind of number (see the module's docstring),
    grouped by ``model_name`` and ``model_provider`` (nulls are rows of their own).

    Output columns, ordered by ``experiment_id`` then the period, or ``total_tokens``
    descending (nulls last) then the name:

    - ``experiment_id`` (string, with ``by_experiment``), then ``period_start`` (date: first UTC
      day of the period), or ``trace_name``, or ``model_name`` and ``model_provider`` (strings)
    - ``traces`` (long): traces in the group (per model: traces with a counted span of it)
    - ``calls`` (long, per model only): spans counted for tokens or cost
    - ``traces_with_tokens``, ``traces_with_cost`` (longs, per period and name only): traces
      whose tokens (cost) are known, recorded or from spans
    - ``input_tokens``, ``output_tokens``, ``total_tokens`` (longs), ``total_cost`` (double):
      sums over the known values, null when none is known

    Example::

        >>> token_usage(traces, spans, by="day").select("period_start", "total_tokens", "total_cost").show()
        >>> token_usage(traces, spans, by="model").show()
    """
    function = "token_usage"
    by = check_choice(by, USAGE_BY, "by", function)
    experiment = ["experiment_id"] if by_experiment else []
    if by == "model":
        if spans is None:
            raise ConfigurationError(f"{function}(): by='model' needs argument 'spans' (the spans table): "
                                     "models are named by the spans")
        require_columns(traces, ("trace_id",), "traces", function)
        require_columns(spans, SPAN_USAGE_COLUMNS, "spans", function)
        kept = spans.join(traces.select("trace_id"), "trace_id", "left_semi")
        counted = usage_spans(kept).where(F.col("tokens_innermost") | F.col("cost_innermost"))
        keys = [*experiment, "model_name", "model_provider"]
        out = counted.groupBy(*keys).agg(F.countDistinct("trace_id").alias("traces"), F.count("*").alias("calls"),
                                         *_sums("innermost"))
        names = ["model_name", "model_provider"]
    else:
        require_columns(traces, ("trace_id", "experiment_id", "request_time", "trace_name", *TOKEN_COLUMNS,
                                 "total_cost"), "traces", function)
        if spans is not None:
            require_columns(spans, SPAN_USAGE_COLUMNS, "spans", function)
        usage = trace_usage(traces, spans)
        if by in PERIODS:
            usage = usage.where(F.col("request_time").isNotNull())
            group = utc_period(F.col("request_time"), by).alias("period_start")
            names = ["period_start"]
        else:
            group, names = F.col("trace_name"), ["trace_name"]
        out = usage.groupBy(*experiment, group).agg(
            F.count("*").alias("traces"),
            F.count_if(_has_tokens()).alias("traces_with_tokens"),
            F.count_if(F.col("total_cost").isNotNull()).alias("traces_with_cost"),
            *(F.sum(c).alias(c) for c in (*TOKEN_COLUMNS, "total_cost")))
    if by in PERIODS:
        return out.orderBy(*experiment, *names)
    return out.orderBy(*experiment, F.desc_nulls_last("total_tokens"), *(F.asc_nulls_last(n) for n in names))
