"""Analytics over MLflow 3's GenAI traces (the ``traces``, ``spans`` and ``assessments``
tables): requests, errors and latency over time, the slowest spans, assessment outcomes,
traces per user and per session. Token usage and cost: :mod:`.tokens`.

Percentiles are exact (Spark's ``percentile``): linear interpolation between the two closest
ranks, as pandas' ``quantile(interpolation="linear")`` and numpy's default compute them, over
the non-null values of the group; null when there is none. Periods are UTC calendar days, ISO
weeks (from Monday) or months, as dates.

Example::

    >>> traces = spark.read.format("experiments").option("table", "traces").load("my-agent")
    >>> trace_volume(traces, period="week").show()                              # doctest: +SKIP
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from .common import PERIODS, check_choice, check_positive_int, require_columns, usable, utc_period
from .tokens import trace_usage

#: The percentiles of latencies and durations, as fractions.
LATENCY_PERCENTILES = (0.5, 0.9, 0.99)
#: What :func:`slowest_spans` can rank by.
SPAN_RANKS = ("p50", "p90", "p99", "max", "mean")


def percentiles(value: Column, prefix: str, suffix: str) -> list[Column]:
    """Exact percentiles of ``value`` (as a double) named ``<prefix>p50<suffix>``, ...

    Example::

        >>> df.agg(*percentiles(F.col("duration_ms"), "duration_", "_ms")).columns   # doctest: +SKIP
        ['duration_p50_ms', 'duration_p90_ms', 'duration_p99_ms']
    """
    number = value.cast("double")
    return [F.percentile(number, F.lit(f)).alias(f"{prefix}p{round(f * 100)}{suffix}") for f in LATENCY_PERCENTILES]


def _experiment(by_experiment: bool) -> list[str]:
    return ["experiment_id"] if by_experiment else []


def trace_volume(traces: DataFrame, *, period: str = "day", by_experiment: bool = True) -> DataFrame:
    """Requests, errors and latency per UTC period of the request time (``day``, ``week``
    from Monday, ``month``), per experiment unless ``by_experiment=False``.

    Traces without a request time are left out. Latency is ``execution_duration_ms`` of every
    trace that has one (errors included; a trace in progress has none).

    Output columns, ordered by ``experiment_id`` and ``period_start``:

    - ``experiment_id`` (string, with ``by_experiment``), ``period_start`` (date)
    - ``requests`` (long): traces; ``ok``, ``errors``, ``in_progress`` (longs): those in state
      ``OK``, ``ERROR``, ``IN_PROGRESS``
    - ``error_rate`` (double): ``errors / (ok + errors)``, of the traces that ended; null when
      none did
    - ``latency_p50_ms``, ``latency_p90_ms``, ``latency_p99_ms`` (doubles): exact percentiles
      of ``execution_duration_ms``; ``latency_max_ms`` (long)

    Example::

        >>> trace_volume(traces, period="day").select("period_start", "requests", "error_rate", "latency_p90_ms").show()
    """
    function = "trace_volume"
    require_columns(traces, ("experiment_id", "request_time", "state", "execution_duration_ms"), "traces", function)
    period = check_choice(period, PERIODS, "period", function)
    keys = [*_experiment(by_experiment), "period_start"]
    state = F.col("state")
    counts = (
        traces.where(F.col("request_time").isNotNull())
        .groupBy(*_experiment(by_experiment), utc_period(F.col("request_time"), period).alias("period_start"))
        .agg(F.count("*").alias("requests"), F.count_if(state == "OK").alias("ok"),
             F.count_if(state == "ERROR").alias("errors"), F.count_if(state == "IN_PROGRESS").alias("in_progress"),
             *percentiles(F.col("execution_duration_ms"), "latency_", "_ms"),
             F.max("execution_duration_ms").alias("latency_max_ms"))
    )
    ended = F.col("ok") + F.col("errors")
    return counts.select(
        *keys, "requests", "ok", "errors", "in_progress",
        F.when(ended > 0, F.col("errors") / ended).alias("error_rate"),
        "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms",
    ).orderBy(*keys)


def slowest_spans(spans: DataFrame, *, n: int = 10, by_experiment: bool = True, rank_by: str = "p90") -> DataFrame:
    """The ``n`` span names with the longest durations (per experiment unless
    ``by_experiment=False``), ranked by their ``p50``, ``p90`` (default), ``p99``, ``max`` or
    ``mean`` duration, longest first, ties by name.

    Durations are ``duration_ms`` of the spans that ended (a span without an end has none and
    counts in ``spans`` only).

    Output columns, ordered by ``experiment_id`` and ``rank``:

    - ``experiment_id`` (string, with ``by_experiment``), ``rank`` (int, from 1), ``name`` (string)
    - ``spans`` (long): spans of that name; ``errors`` (long): those with status ``ERROR``
    - ``duration_mean_ms``, ``duration_p50_ms``, ``duration_p90_ms``, ``duration_p99_ms``,
      ``duration_max_ms`` (doubles): mean, exact percentiles and maximum

    Example::

        >>> slowest_spans(spans, n=5, rank_by="p99").select("rank", "name", "spans", "duration_p99_ms").show()
    """
    function = "slowest_spans"
    require_columns(spans, ("experiment_id", "name", "status", "duration_ms"), "spans", function)
    n = check_positive_int(n, "n", function)
    rank_by = check_choice(rank_by, SPAN_RANKS, "rank_by", function)
    experiment = _experiment(by_experiment)
    duration = F.col("duration_ms")
    stats = spans.groupBy(*experiment, "name").agg(
        F.count("*").alias("spans"), F.count_if(F.col("status") == "ERROR").alias("errors"),
        F.avg(duration).alias("duration_mean_ms"), *percentiles(duration, "duration_", "_ms"),
        F.max(duration).alias("duration_max_ms"),
    )
    window = Window.partitionBy(*experiment).orderBy(F.desc_nulls_last(f"duration_{rank_by}_ms"), F.asc_nulls_last("name"))
    ranked = stats.withColumn("rank", F.row_number().over(window)).where(F.col("rank") <= n)
    return ranked.select(
        *experiment, "rank", "name", "spans", "errors", "duration_mean_ms", "duration_p50_ms", "duration_p90_ms",
        "duration_p99_ms", "duration_max_ms",
    ).orderBy(*experiment, "rank")


def assessment_outcomes(assessments: DataFrame, *, period: str = "day", by_experiment: bool = True) -> DataFrame:
    """Feedback outcomes per assessment name and UTC period of the assessment's creation time
    (``day``, ``week`` from Monday, ``month``), per experiment unless ``by_experiment=False``.

    Counted: feedback (expectations are not outcomes) that is in force: not marked invalid
    (``valid`` false) and not replaced by another of the assessments given (named in its
    ``overrides``). Feedback holding an error instead of a value counts in ``assessments`` and
    ``errors`` only. A boolean value counts in ``pass_rate``, a number in ``mean``; other values
    (text, objects) in ``assessments`` only. Feedback without a creation time is left out.

    Output columns, ordered by ``experiment_id``, ``name`` and ``period_start``:

    - ``experiment_id`` (string, with ``by_experiment``), ``name`` (string), ``period_start`` (date)
    - ``assessments`` (long): feedback counted; ``errors`` (long): of it, holding an error
    - ``booleans``, ``passed`` (longs): boolean values, and those true; ``pass_rate`` (double):
      ``passed / booleans``, null without booleans
    - ``numbers`` (long): numeric values; ``mean`` (double): their mean, null without numbers

    Example::

        >>> assessment_outcomes(assessments, period="week").where("name = 'correct'").show()
    """
    function = "assessment_outcomes"
    require_columns(assessments, ("experiment_id", "assessment_id", "name", "assessment_type", "value_type",
                                  "numeric_value", "error_code", "error_message", "valid", "overrides",
                                  "create_time"), "assessments", function)
    period = check_choice(period, PERIODS, "period", function)
    experiment = _experiment(by_experiment)
    replaced = assessments.where(F.col("overrides").isNotNull()).select(F.col("overrides").alias("assessment_id"))
    in_force = (
        assessments.where((F.col("assessment_type") == "feedback") & F.coalesce(F.col("valid"), F.lit(True))
                          & F.col("create_time").isNotNull())
        .join(replaced, "assessment_id", "left_anti")
    )
    failed = F.col("error_code").isNotNull() | F.col("error_message").isNotNull()
    value = F.col("numeric_value")
    boolean = ~failed & (F.col("value_type") == "boolean") & value.isNotNull()
    number = ~failed & (F.col("value_type") == "number") & usable(value)
    keys = [*experiment, "name", "period_start"]
    counts = in_force.groupBy(*experiment, "name", utc_period(F.col("create_time"), period).alias("period_start")).agg(
        F.count("*").alias("assessments"), F.count_if(failed).alias("errors"),
        F.count_if(boolean).alias("booleans"), F.count_if(boolean & (value == 1.0)).alias("passed"),
        F.count_if(number).alias("numbers"), F.avg(F.when(number, value)).alias("mean"),
    )
    return counts.select(
        *keys, "assessments", "errors", "booleans", "passed",
        F.when(F.col("booleans") > 0, F.col("passed") / F.col("booleans")).alias("pass_rate"), "numbers", "mean",
    ).orderBy(*keys)


def traces_per_user(traces: DataFrame, *, period: str = "day") -> DataFrame:
    """Traces per user and UTC period of the request time (``day``, ``week`` from Monday,
    ``month``).

    A trace's user is ``user_id`` (MLflow's ``mlflow.trace.user``); traces without one form the
    null user's rows. Traces without a request time are left out.

    Output columns, ordered by ``user_id`` (nulls last) and ``period_start``:

    - ``user_id`` (string), ``period_start`` (date)
    - ``traces`` (long), ``sessions`` (long: distinct non-null ``session_id``), ``errors``
      (long: traces in state ``ERROR``)
    - ``cumulative_traces`` (long): the user's traces up to the end of the period

    Example::

        >>> traces_per_user(traces, period="week").where("user_id = 'ann'").show()
    """
    function = "traces_per_user"
    require_columns(traces, ("user_id", "session_id", "request_time", "state"), "traces", function)
    period = check_choice(period, PERIODS, "period", function)
    counts = (
        traces.where(F.col("request_time").isNotNull())
        .groupBy("user_id", utc_period(F.col("request_time"), period).alias("period_start"))
        .agg(F.count("*").alias("traces"), F.countDistinct("session_id").alias("sessions"),
             F.count_if(F.col("state") == "ERROR").alias("errors"))
    )
    window = Window.partitionBy("user_id").orderBy("period_start").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return (counts.withColumn("cumulative_traces", F.sum("traces").over(window))
            .orderBy(F.asc_nulls_last("user_id"), "period_start"))


def traces_per_session(traces: DataFrame, spans: DataFrame | None = None, *, by_experiment: bool = True) -> DataFrame:
    """Traces per session (``session_id``, MLflow's ``mlflow.trace.session``), per experiment
    unless ``by_experiment=False``. Traces without a session form the null session's row.
    Tokens and cost are the traces' totals, completed from ``spans`` where given as
    :func:`~.tokens.token_usage` does.

    Output columns, ordered by ``experiment_id``, ``first_request_time`` and ``session_id``:

    - ``experiment_id`` (string, with ``by_experiment``), ``session_id`` (string)
    - ``user_id`` (string): the user of the session's first trace (by request time, then
      trace id)
    - ``traces``, ``errors`` (longs: traces, those in state ``ERROR``), ``users`` (long:
      distinct non-null users)
    - ``first_request_time``, ``last_request_time`` (timestamps)
    - ``total_tokens`` (long), ``total_cost`` (double): sums of the traces' known totals, null
      when none is known

    Example::

        >>> traces_per_session(traces, spans).orderBy(F.desc("traces")).show()
    """
    function = "traces_per_session"
    require_columns(traces, ("experiment_id", "trace_id", "session_id", "user_id", "request_time", "state",
                             "total_tokens", "total_cost"), "traces", function)
    experiment = _experiment(by_experiment)
    traces = trace_usage(traces, spans)
    first = F.min_by("user_id", F.struct(F.col("request_time"), F.col("trace_id")))
    return (
        traces.groupBy(*experiment, "session_id")
        .agg(first.alias("user_id"), F.count("*").alias("traces"), F.count_if(F.col("state") == "ERROR").alias("errors"),
             F.countDistinct("user_id").alias("users"), F.min("request_time").alias("first_request_time"),
             F.max("request_time").alias("last_request_time"), F.sum("total_tokens").alias("total_tokens"),
             F.sum("total_cost").alias("total_cost"))
        .orderBy(*experiment, F.asc_nulls_last("first_request_time"), F.asc_nulls_last("session_id"))
    )
