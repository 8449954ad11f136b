"""The trace analytics checked against pandas on what mlflow itself answers.

For a SQLite and a file store holding a trace history at explicit times
(tests/support/trace_history.py: 50 traces over twelve days, errors, four shapes of LLM calls,
overridden and failed feedback), each function's result is compared with an independent
computation: pandas over the ``Trace`` objects of ``mlflow.search_traces`` and
``MlflowClient.get_trace`` (info, spans, assessments) of the same store, percentiles with
pandas' ``quantile`` (linear interpolation). Where a trace recorded no totals, the reference
is MLflow's own aggregation over its spans (``aggregate_usage_from_spans``,
``aggregate_cost_from_spans``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pyspark.sql import functions as F

from pyspark_experiments import analytics, tables
from pyspark_experiments.errors import ConfigurationError
from support.compare import assert_rows, collect, period_of
from support.stores import mlflow_tracking_uri
from support.trace_history import *  # noqa: F401,F403  (the session fixtures)
from support.trace_history import HISTORY_EXPERIMENTS

# the file store repeats every comparison on another reader: the slow tier runs it
STORES = ("sqlite", pytest.param("file", marks=pytest.mark.slow))
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def day_of(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def none_if_nan(value):
    return None if pd.isna(value) else value


def quantiles(values, prefix: str, suffix: str) -> dict:
    numbers = pd.Series(list(values), dtype=float).dropna()
    return {f"{prefix}{name}{suffix}": numbers.quantile(q, interpolation="linear") if len(numbers) else None
            for name, q in QUANTILES.items()}


def total(values):
    """pandas' sum of the known values, None when none is known (Spark's ``sum``)."""
    known = [v for v in values if v is not None and not pd.isna(v)]
    return sum(known) if known else None


# ---- the independent side: mlflow + pandas ----


@pytest.fixture(scope="module", params=STORES)
def store(request):
    """``{"uri", "traces"}``: a store and mlflow's ``Trace`` objects of its history."""
    import mlflow
    from mlflow import MlflowClient

    fixture = {"sqlite": "trace_history_sqlite_store", "file": "trace_history_file_store"}[request.param]
    uri, ids = request.getfixturevalue(fixture)
    client = MlflowClient(uri)
    experiment_ids = [client.get_experiment_by_name(name).experiment_id for name in HISTORY_EXPERIMENTS]
    with mlflow_tracking_uri(uri):
        found = mlflow.search_traces(locations=experiment_ids, return_type="list")
    traces = [client.get_trace(trace.info.trace_id) for trace in found]
    assert sorted(t.info.trace_id for t in traces) == sorted(i for listed in ids.values() for i in listed)
    return {"kind": request.param, "uri": uri, "traces": traces}


@pytest.fixture(scope="module")
def expected(store) -> dict[str, pd.DataFrame]:
    """``{"traces", "spans", "assessments"}`` as pandas frames of mlflow's objects."""
    from mlflow.entities import Feedback
    from mlflow.tracing.utils import aggregate_cost_from_spans, aggregate_usage_from_spans

    traces, spans, assessments = [], [], []
    for trace in store["traces"]:
        info = trace.info
        usage, cost = info.token_usage or {}, info.cost or {}
        from_spans = aggregate_usage_from_spans(trace.data.spans) or {}
        traces.append({
            "trace_id": info.trace_id, "experiment_id": info.experiment_id, "request_ms": info.request_time,
            "day": day_of(info.request_time), "duration_ms": info.execution_duration, "state": info.state.value,
            "trace_name": info.tags.get("mlflow.traceName"), "user_id": info.trace_metadata.get("mlflow.trace.user"),
            "session_id": info.trace_metadata.get("mlflow.trace.session"),
            **{key: usage.get(key) for key in ("input_tokens", "output_tokens", "total_tokens")},
            "total_cost": cost.get("total_cost"),
            **{f"span_{key}": from_spans.get(key) for key in ("input_tokens", "output_tokens", "total_tokens")},
            "span_total_cost": (aggregate_cost_from_spans(trace.data.spans) or {}).get("total_cost"),
        })
        for span in trace.data.spans:
            span_usage, span_cost = span.get_attribute("mlflow.chat.tokenUsage") or {}, span.llm_cost or {}
            spans.append({
                "trace_id": info.trace_id, "experiment_id": info.experiment_id, "span_id": span.span_id,
                "parent_id": span.parent_id, "name": span.name, "status": span.status.status_code.value,
                "duration_ms": None if span.end_time_ns is None else (span.end_time_ns - span.start_time_ns) / 1e6,
                "model_name": span.model_name, "model_provider": span.get_attribute("mlflow.llm.provider"),
                **{key: span_usage.get(key) for key in ("input_tokens", "output_tokens", "total_tokens")},
                "cost": span_cost.get("total_cost"),
            })
        for a in info.assessments:
            assessments.append({
                "assessment_id": a.assessment_id, "experiment_id": info.experiment_id, "name": a.name,
                "feedback": isinstance(a, Feedback), "value": a.value, "error": getattr(a, "error", None),
                "valid": a.valid, "overrides": a.overrides, "create_ms": a.create_time_ms,
            })
    frames = {"traces": pd.DataFrame(traces), "spans": pd.DataFrame(spans), "assessments": pd.DataFrame(assessments)}
    frames = {name: frame.astype(object).where(frame.notna(), None) for name, frame in frames.items()}
    # What the history holds, so that no comparison below is vacuous.
    t = frames["traces"]
    assert len(t) == 50 and (t["state"] == "ERROR").sum() >= 3 and t["day"].nunique() >= 10
    assert t["total_tokens"].isna().sum() >= 3 and t["user_id"].isna().sum() >= 3
    assert store["kind"] != "file" or t["total_cost"].isna().all()  # a file store records no trace cost
    return frames


def keys_of(by_experiment: bool) -> list[str]:
    return ["experiment_id"] if by_experiment else []


def with_period(frame: pd.DataFrame, period: str, column: str = "day") -> pd.DataFrame:
    return frame.assign(period_start=[period_of(d, period) for d in frame[column]])


def grouped(frame: pd.DataFrame, keys: list[str]):
    """``(key dict, group)`` per group of ``frame`` by ``keys`` (nulls a group of their own), in key order."""
    if not keys:
        return [({}, frame)]
    groups = frame.groupby(keys, dropna=False, sort=False)
    items = [({k: none_if_nan(v) for k, v in zip(keys, key)}, group) for key, group in groups]
    return sorted(items, key=lambda item: tuple((v is None, v if v is not None else "") for v in item[0].values()))


def completed(traces: pd.DataFrame) -> pd.DataFrame:
    """The traces' totals, from their spans (MLflow's aggregation) where they recorded none."""
    out = traces.copy()
    recorded = traces[["input_tokens", "output_tokens", "total_tokens"]].notna().any(axis=1)
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        out[key] = [own if has else span for own, span, has in zip(traces[key], traces[f"span_{key}"], recorded)]
    out["total_cost"] = [own if own is not None else span for own, span in zip(traces["total_cost"], traces["span_total_cost"])]
    return out


# ---- our side: the source's DataFrames ----


@pytest.fixture(scope="module")
def source(spark, store):
    def read(table):
        return spark.read.format("experiments").option("trackingUri", store["uri"]).option("table", table).load()

    found = {table: read(table).cache() for table in tables.TRACE_TABLE_NAMES}
    yield found
    for df in found.values():
        df.unpersist()


# ---- tests ----


@pytest.mark.parametrize("period, by_experiment", [("day", True), ("week", False), ("month", True)])
def test_trace_volume(source, expected, period, by_experiment):
    keys = keys_of(by_experiment) + ["period_start"]
    rows = []
    for key, group in grouped(with_period(expected["traces"], period), keys):
        ok, errors = int((group["state"] == "OK").sum()), int((group["state"] == "ERROR").sum())
        durations = group["duration_ms"].dropna()
        rows.append(key | {
            "requests": len(group), "ok": ok, "errors": errors, "in_progress": int((group["state"] == "IN_PROGRESS").sum()),
            "error_rate": errors / (ok + errors) if ok + errors else None,
            **quantiles(durations, "latency_", "_ms"), "latency_max_ms": int(durations.max()),
        })
    result = collect(analytics.trace_volume(source["traces"], period=period, by_experiment=by_experiment))
    assert_rows(result, rows, f"trace_volume({period})")
    assert any(r["errors"] for r in rows) and any(r["requests"] >= 5 for r in rows)


def usage_rows(frame: pd.DataFrame, keys: list[str]) -> list[dict]:
    rows = []
    for key, group in grouped(frame, keys):
        rows.append(key | {
            "traces": len(group),
            "traces_with_tokens": int(group[["input_tokens", "output_tokens", "total_tokens"]].notna().any(axis=1).sum()),
            "traces_with_cost": int(group["total_cost"].notna().sum()),
            **{column: total(group[column]) for column in ("input_tokens", "output_tokens", "total_tokens", "total_cost")},
        })
    return rows


def by_tokens(rows: list[dict], name: str) -> list[dict]:
    """Rows ordered as ``token_usage`` orders names: experiment, total tokens descending, name."""
    return sorted(rows, key=lambda r: (r.get("experiment_id", ""), r["total_tokens"] is None, -(r["total_tokens"] or 0),
                                       r[name] is None, r[name] or ""))


@pytest.mark.parametrize("by, by_experiment", [("day", True), ("week", False), ("month", True), ("trace_name", True)])
def test_token_usage_per_period_and_trace_name(source, expected, by, by_experiment):
    frame = completed(expected["traces"])
    if by == "trace_name":
        rows = by_tokens(usage_rows(frame, keys_of(by_experiment) + ["trace_name"]), "trace_name")
    else:
        rows = usage_rows(with_period(frame, by), keys_of(by_experiment) + ["period_start"])
    result = collect(analytics.token_usage(source["traces"], source["spans"], by=by, by_experiment=by_experiment))
    assert_rows(result, rows, f"token_usage({by})")
    assert all(r["traces_with_cost"] > 0 for r in rows if r["traces_with_tokens"] > 1)


def test_token_usage_takes_the_spans_where_a_trace_recorded_nothing(source, expected):
    """Without the recorded totals, every trace's numbers are MLflow's aggregation of its spans:
    the rollup (an agent span summing its calls) and the wrapped call count once."""
    bare = source["traces"]
    for column in ("input_tokens", "output_tokens", "total_tokens", "total_cost"):
        bare = bare.withColumn(column, F.lit(None).cast(bare.schema[column].dataType))
    frame = expected["traces"].assign(input_tokens=None, output_tokens=None, total_tokens=None, total_cost=None)
    rows = usage_rows(with_period(completed(frame), "week"), ["experiment_id", "period_start"])
    assert_rows(collect(analytics.token_usage(bare, source["spans"], by="week")), rows, "token_usage from spans")
    # Without spans, nothing is known.
    assert {r["traces_with_tokens"] for r in collect(analytics.token_usage(bare, by="week"))} == {0}


def innermost(spans: pd.DataFrame, has) -> set[str]:
    """Ids of the spans that carry a number (``has``) with no span below them carrying one."""
    counted = set()
    for _, trace in spans.groupby("trace_id"):
        parent = dict(zip(trace["span_id"], trace["parent_id"]))
        carriers = [row.span_id for row in trace.itertuples() if has(row)]
        below = set()
        for span_id in carriers:
            at = parent.get(span_id)
            while at in parent and at not in below:
                below.add(at)
                at = parent[at]
        counted |= {span_id for span_id in carriers if span_id not in below}
    return counted


@pytest.mark.parametrize("by_experiment", [True, False])
def test_token_usage_per_model(source, expected, by_experiment):
    spans = expected["spans"]
    tokens = innermost(spans, lambda s: s.total_tokens is not None)
    costs = innermost(spans, lambda s: s.cost is not None)
    counted = spans[spans["span_id"].isin(tokens | costs)]
    rows = []
    for key, group in grouped(counted, keys_of(by_experiment) + ["model_name", "model_provider"]):
        with_tokens = group[group["span_id"].isin(tokens)]
        rows.append(key | {
            "traces": group["trace_id"].nunique(), "calls": len(group),
            **{column: total(with_tokens[column]) for column in ("input_tokens", "output_tokens", "total_tokens")},
            "total_cost": total(group[group["span_id"].isin(costs)]["cost"]),
        })
    rows = by_tokens(rows, "model_name")
    result = collect(analytics.token_usage(source["traces"], source["spans"], by="model", by_experiment=by_experiment))
    assert_rows(result, rows, "token_usage(model)")
    assert {r["model_name"] for r in rows} == {"gpt-x", "claude-y"}
    # The history's rollups are faithful: summed over the models, the tokens are the traces'.
    assert total(r["total_tokens"] for r in rows) == total(completed(expected["traces"])["total_tokens"])


@pytest.mark.parametrize("rank_by, n, by_experiment", [("p90", 3, True), ("max", 4, False), ("mean", 10, True)])
def test_slowest_spans(source, expected, rank_by, n, by_experiment):
    keys = keys_of(by_experiment)
    rows = []
    for key, group in grouped(expected["spans"], keys):
        stats = []
        for name, spans in group.groupby("name"):
            durations = spans["duration_ms"].dropna()
            stats.append(key | {
                "name": name, "spans": len(spans), "errors": int((spans["status"] == "ERROR").sum()),
                "duration_mean_ms": durations.mean(), **quantiles(durations, "duration_", "_ms"),
                "duration_max_ms": durations.max(),
            })
        stats.sort(key=lambda r: (-r[f"duration_{rank_by}_ms"], r["name"]))
        rows += [{**row, "rank": rank} for rank, row in enumerate(stats[:n], start=1)]
    result = collect(analytics.slowest_spans(source["spans"], n=n, by_experiment=by_experiment, rank_by=rank_by))
    assert_rows(result, rows, f"slowest_spans({rank_by})")
    assert len({r["name"] for r in rows}) >= 3


@pytest.mark.parametrize("period, by_experiment", [("day", True), ("week", False)])
def test_assessment_outcomes(source, expected, period, by_experiment):
    frame = expected["assessments"]
    replaced = set(frame["overrides"].dropna())
    kept = frame[frame["feedback"] & (frame["valid"] != False) & ~frame["assessment_id"].isin(replaced)]  # noqa: E712
    kept = with_period(kept.assign(day=[day_of(ms) for ms in kept["create_ms"]]), period)
    rows = []
    for key, group in grouped(kept, keys_of(by_experiment) + ["name", "period_start"]):
        fine = group[group["error"].isna()]
        booleans = [v for v in fine["value"] if isinstance(v, bool)]
        numbers = [v for v in fine["value"] if isinstance(v, int | float) and not isinstance(v, bool)]
        rows.append(key | {
            "assessments": len(group), "errors": int(group["error"].notna().sum()),
            "booleans": len(booleans), "passed": sum(booleans),
            "pass_rate": sum(booleans) / len(booleans) if booleans else None,
            "numbers": len(numbers), "mean": sum(numbers) / len(numbers) if numbers else None,
        })
    result = collect(analytics.assessment_outcomes(source["assessments"], period=period, by_experiment=by_experiment))
    assert_rows(result, rows, f"assessment_outcomes({period})")
    assert len(replaced) >= 3 and any(r["errors"] for r in rows) and {"correct", "relevance", "notes"} <= {r["name"] for r in rows}


@pytest.mark.parametrize("period", ["day", "week"])
def test_traces_per_user(source, expected, period):
    rows = []
    for key, group in grouped(with_period(expected["traces"], period), ["user_id", "period_start"]):
        rows.append(key | {"traces": len(group), "sessions": group["session_id"].dropna().nunique(),
                           "errors": int((group["state"] == "ERROR").sum())})
    running: dict = {}
    for row in rows:
        running[row["user_id"]] = row["cumulative_traces"] = running.get(row["user_id"], 0) + row["traces"]
    assert_rows(collect(analytics.traces_per_user(source["traces"], period=period)), rows, f"traces_per_user({period})")
    assert None in running and len(running) == 4


@pytest.mark.parametrize("by_experiment", [True, False])
def test_traces_per_session(source, expected, by_experiment):
    frame = completed(expected["traces"])
    rows = []
    for key, group in grouped(frame, keys_of(by_experiment) + ["session_id"]):
        first = group.sort_values(["request_ms", "trace_id"]).iloc[0]
        rows.append(key | {
            "user_id": first["user_id"], "traces": len(group), "errors": int((group["state"] == "ERROR").sum()),
            "users": group["user_id"].dropna().nunique(), "first_request_time": min(group["request_ms"]),
            "last_request_time": max(group["request_ms"]), "total_tokens": total(group["total_tokens"]),
            "total_cost": total(group["total_cost"]),
        })
    rows.sort(key=lambda r: (r.get("experiment_id", ""), r["first_request_time"], r["session_id"] is None, r["session_id"] or ""))
    result = analytics.traces_per_session(source["traces"], source["spans"], by_experiment=by_experiment)
    result = result.withColumn("first_request_time", F.unix_millis("first_request_time"))
    result = result.withColumn("last_request_time", F.unix_millis("last_request_time"))
    assert_rows(collect(result), rows, "traces_per_session")
    assert any(r["session_id"] is None for r in rows) and max(r["traces"] for r in rows) >= 3


# ---- contracts: the documented columns, and errors naming the argument ----


@pytest.fixture(scope="module")
def empty(spark):
    return {table: spark.createDataFrame([], tables.spark_schema(table)) for table in tables.TRACE_TABLE_NAMES}


def test_columns_are_the_documented_ones(empty):
    traces, spans, assessments = empty["traces"], empty["spans"], empty["assessments"]
    usage = ["input_tokens", "output_tokens", "total_tokens", "total_cost"]
    assert analytics.trace_volume(traces).columns == [
        "experiment_id", "period_start", "requests", "ok", "errors", "in_progress", "error_rate",
        "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms"]
    assert analytics.token_usage(traces, spans, by="week").columns == [
        "experiment_id", "period_start", "traces", "traces_with_tokens", "traces_with_cost", *usage]
    assert analytics.token_usage(traces, by="trace_name", by_experiment=False).columns == [
        "trace_name", "traces", "traces_with_tokens", "traces_with_cost", *usage]
    assert analytics.token_usage(traces, spans, by="model").columns == [
        "experiment_id", "model_name", "model_provider", "traces", "calls", *usage]
    assert analytics.slowest_spans(spans).columns == [
        "experiment_id", "rank", "name", "spans", "errors", "duration_mean_ms", "duration_p50_ms", "duration_p90_ms",
        "duration_p99_ms", "duration_max_ms"]
    assert analytics.assessment_outcomes(assessments).columns == [
        "experiment_id", "name", "period_start", "assessments", "errors", "booleans", "passed", "pass_rate", "numbers", "mean"]
    assert analytics.traces_per_user(traces).columns == [
        "user_id", "period_start", "traces", "sessions", "errors", "cumulative_traces"]
    assert analytics.traces_per_session(traces, spans).columns == [
        "experiment_id", "session_id", "user_id", "traces", "errors", "users", "first_request_time", "last_request_time",
        "total_tokens", "total_cost"]
    assert analytics.trace_usage(traces, spans).columns == traces.columns


@pytest.mark.parametrize("call, named", [
    (lambda t: analytics.trace_volume(t["traces"], period="hour"), "trace_volume(): period='hour' is not valid"),
    (lambda t: analytics.traces_per_user(t["traces"], period="year"), "traces_per_user(): period='year' is not valid"),
    (lambda t: analytics.assessment_outcomes(t["assessments"], period=""), "assessment_outcomes(): period='' is not valid"),
    (lambda t: analytics.token_usage(t["traces"], t["spans"], by="user"), "token_usage(): by='user' is not valid"),
    (lambda t: analytics.token_usage(t["traces"], by="model"), "token_usage(): by='model' needs argument 'spans'"),
    (lambda t: analytics.slowest_spans(t["spans"], n=0), "slowest_spans(): n=0 is not valid"),
    (lambda t: analytics.slowest_spans(t["spans"], rank_by="p95"), "slowest_spans(): rank_by='p95' is not valid"),
    (lambda t: analytics.trace_volume(t["traces"].drop("state")), "trace_volume(): argument 'traces' lacks the column(s) state"),
    (lambda t: analytics.slowest_spans(t["traces"]), "slowest_spans(): argument 'spans' lacks the column(s) name, status, "
                                                     "duration_ms"),
    (lambda t: analytics.token_usage(t["traces"], t["traces"], by="model"), "token_usage(): argument 'spans' lacks"),
    (lambda t: analytics.assessment_outcomes(t["spans"]), "assessment_outcomes(): argument 'assessments' lacks"),
    (lambda t: analytics.traces_per_session(t["spans"]), "traces_per_session(): argument 'traces' lacks"),
])
def test_bad_arguments_are_errors_naming_them(empty, call, named):
    with pytest.raises(ConfigurationError) as raised:
        call(empty)
    assert named in str(raised.value)
    assert isinstance(raised.value, ValueError)
