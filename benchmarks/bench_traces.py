"""Benchmark the trace tables (``traces``, ``spans``) against ``mlflow.search_traces`` at scale.

For each store kind (SQLite, PostgreSQL), in one run, on a store written by
``generate_traces.py`` (made first if missing):

1. reads: the ``traces`` table (``count()`` of a fresh ``load()``, and a one-row aggregate)
   and the ``spans`` table (``count()``) in a warm ``local[2]`` session, against
   ``mlflow.search_traces`` paging through the same traces (100 a page, as it does):
   without spans (``include_spans=False``, every page, one call per experiment) and with
   spans (its default; every page when the store holds at most ``--span-sample-traces``
   traces, else that many traces in pages spread over the whole store, extrapolated linearly
   and labelled so);
2. aggregates: latency p50/p90/p99 per experiment and tokens and cost per day (UTC), computed
   in Spark from the ``traces`` table and in pandas from the ``search_traces`` DataFrame; the
   answers are compared (counts and token sums exactly; percentiles, which Spark's
   ``percentile`` and pandas' ``quantile`` both interpolate linearly but round differently in
   the last bit, within 1e-12 relative; sums of costs, added in another order, within 1e-9)
   and both times printed with their ratio.

The Spark aggregates are plain Spark SQL (:data:`LATENCY_SQL`, :data:`DAILY_SQL`), written
out here so that a library function for trace analytics can later take their place.

Usage::

    python -m benchmarks.bench_traces --size L                  # 100,000 traces, 1M spans, both kinds
    python -m benchmarks.bench_traces --size tiny --kind sqlite --repeat 1
    python -m benchmarks.bench_traces --store benchmarks/.stores/traces-L --kind postgres

The report is printed as markdown for ``docs/benchmarks.md`` and the raw numbers go to
``benchmarks/.stores/results-<store>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys

from benchmarks import generate_traces
from benchmarks.bench_read import machine_notes
from benchmarks.generate_store import mlflow_env
from benchmarks.timing import best_of

HERE = os.path.dirname(os.path.abspath(__file__))
STORES = os.path.join(HERE, ".stores")
#: mlflow.search_traces' page size (mlflow.store.tracking.SEARCH_TRACES_DEFAULT_MAX_RESULTS).
PAGE = 100

#: Latency percentiles per experiment, in Spark SQL over the ``traces`` table.
LATENCY_SQL = """
SELECT experiment_id,
       count(*) AS traces,
       percentile(execution_duration_ms, array(0.5, 0.9, 0.99)) AS latency_ms
FROM traces
GROUP BY experiment_id
"""
#: Tokens and cost per day (UTC), in Spark SQL over the ``traces`` table.
DAILY_SQL = """
SELECT to_date(request_time) AS day,
       count(*) AS traces,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(total_tokens) AS total_tokens,
       sum(total_cost) AS total_cost
FROM traces
GROUP BY to_date(request_time)
"""


# -- ours: Spark --------------------------------------------------------------------------------


@contextlib.contextmanager
def spark_session():
    """A ``local[2]`` session in UTC (days are UTC days, as in pandas): the active one if there
    is one (its time zone restored at the end), else a new one, stopped at the end."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    import pyspark_experiments

    active = SparkSession.getActiveSession()
    if active is None:
        spark = pyspark_experiments.session(app_name="bench-traces", master="local[2]", delta=False,
                                            config={"spark.sql.shuffle.partitions": "4"})
        spark.sparkContext.setLogLevel("ERROR")
    else:
        spark = active
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    try:
        yield spark
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
        if active is None:
            spark.stop()


def spark_phase(spark, uri: str, experiment_ids: list[str], repeat: int) -> dict:
    """Our reads and aggregates, each on a fresh ``load()``, best of ``repeat``.

    Example::

        >>> spark_phase(spark, "sqlite:////tmp/t/mlflow.db", ["1", "2"], 1)["traces"]  # doctest: +SKIP
        50
    """
    from pyspark.sql import functions as F

    def load(table):
        return (spark.read.format("experiments").option("trackingUri", uri).option("table", table)
                .load(",".join(experiment_ids)))

    def sql(query):
        load("traces").createOrReplaceTempView("traces")
        return spark.sql(query).collect()

    load("traces").count()  # warm-up: Python workers, imports, the database's cache
    result = {}
    result["traces_count_s"], _, result["traces"] = best_of(repeat, lambda: load("traces").count())
    result["traces_agg_s"], _, _ = best_of(repeat, lambda: load("traces").agg(
        F.count("*"), F.sum("total_tokens"), F.max("execution_duration_ms")).collect())
    result["spans_count_s"], _, result["spans"] = best_of(repeat, lambda: load("spans").count())
    result["latency_s"], _, latency = best_of(repeat, lambda: sql(LATENCY_SQL))
    result["daily_s"], _, daily = best_of(repeat, lambda: sql(DAILY_SQL))
    result["latency"] = {row.experiment_id: [row.traces, *row.latency_ms] for row in latency}
    result["daily"] = {str(row.day): [row.traces, row.input_tokens, row.output_tokens, row.total_tokens,
                                      row.total_cost] for row in daily}
    return result


# -- mlflow: search_traces and pandas -----------------------------------------------------------


def search_frame(uri: str, experiment_ids: list[str]):
    """What a pandas user writes: ``mlflow.search_traces`` (no spans) per experiment, concatenated.

    Example::

        >>> search_frame("sqlite:////tmp/t/mlflow.db", ["1", "2"])[["trace_id", "experiment_id"]]  # doctest: +SKIP
    """
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(uri)
    frames = [mlflow.search_traces(locations=[e], include_spans=False).assign(experiment_id=e)
              for e in experiment_ids]
    return pd.concat(frames, ignore_index=True)


def pandas_aggregates(frame) -> dict:
    """The same aggregates as :data:`LATENCY_SQL` and :data:`DAILY_SQL`, in pandas.

    Example::

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"experiment_id": ["1", "1"], "execution_duration": [10, 20],
        ...     "request_time": [0, 1], "trace_metadata": [
        ...         {"mlflow.trace.tokenUsage": '{"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}',
        ...          "mlflow.trace.cost": '{"total_cost": 0.5}'}] * 2})
        >>> pandas_aggregates(frame)
        {'latency': {'1': [2, 15.0, 19.0, 19.9]}, 'daily': {'1970-01-01': [2, 2, 4, 6, 1.0]}}
    """
    import pandas as pd

    grouped = frame.groupby("experiment_id")["execution_duration"]
    quantiles = grouped.quantile([0.5, 0.9, 0.99]).unstack()
    counts = grouped.size()
    latency = {e: [int(counts[e]), *(float(v) for v in quantiles.loc[e])] for e in quantiles.index}
    usage = frame["trace_metadata"].map(lambda m: json.loads(m.get("mlflow.trace.tokenUsage", "{}")))
    cost = frame["trace_metadata"].map(lambda m: json.loads(m.get("mlflow.trace.cost", "{}")))
    table = pd.DataFrame({
        "day": pd.to_datetime(frame["request_time"], unit="ms", utc=True).dt.date,
        **{k: usage.map(lambda u, k=k: u.get(k)) for k in ("input_tokens", "output_tokens", "total_tokens")},
        "total_cost": cost.map(lambda c: c.get("total_cost")),
    })
    sums = table.groupby("day").agg(traces=("day", "size"), input_tokens=("input_tokens", "sum"),
                                    output_tokens=("output_tokens", "sum"), total_tokens=("total_tokens", "sum"),
                                    total_cost=("total_cost", "sum"))
    daily = {str(day): [int(r.traces), int(r.input_tokens), int(r.output_tokens), int(r.total_tokens),
                        float(r.total_cost)] for day, r in sums.iterrows()}
    return {"latency": latency, "daily": daily}


def mlflow_phase(uri: str, experiment_ids: list[str], repeat: int) -> dict:
    """``search_traces`` without spans (every page) and the pandas aggregates over its DataFrame.

    Example::

        >>> mlflow_phase("sqlite:////tmp/t/mlflow.db", ["1", "2"], 1)["traces"]  # doctest: +SKIP
        50
    """
    mlflow_env()
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.search_traces(locations=experiment_ids[:1], max_results=10, include_spans=False)  # warm
    result = {}
    result["search_s"], _, frame = best_of(repeat, lambda: search_frame(uri, experiment_ids))
    result["traces"] = len(frame)
    result["pandas_s"], _, answers = best_of(repeat, lambda: pandas_aggregates(frame))
    result.update(answers)
    return result


def spans_search_phase(uri: str, experiment_ids: list[str], total: int, sample_traces: int) -> dict:
    """``search_traces`` with spans (mlflow's default): every page, or ``sample_traces`` traces in
    pages spread evenly over the store (through mlflow's own offset page tokens), extrapolated.

    Example::

        >>> spans_search_phase(uri, ["1", "2", "3", "4"], 100_000, 5_000)["extrapolated"]  # doctest: +SKIP
        True
    """
    mlflow_env()
    from mlflow import MlflowClient
    from mlflow.utils.search_utils import SearchTraceUtils

    client = MlflowClient(tracking_uri=uri)
    pages = math.ceil(total / PAGE)
    sampled = pages if total <= sample_traces else max(1, sample_traces // PAGE)
    offsets = [int(i * pages / sampled) * PAGE for i in range(sampled)]
    client.search_traces(locations=experiment_ids, max_results=10)  # warm

    def fetch():
        traces = spans = 0
        for offset in offsets:
            token = SearchTraceUtils.create_page_token(offset) if offset else None
            page = client.search_traces(locations=experiment_ids, max_results=PAGE, page_token=token)
            traces += len(page)
            spans += sum(len(t.data.spans) for t in page)
        return traces, spans

    measured, _, (traces, spans) = best_of(1, fetch)
    scale = total / traces if traces else 1.0
    return {"pages": sampled, "pages_total": pages, "traces": traces, "spans": spans, "measured_s": measured,
            "extrapolated": sampled < pages, "search_s": measured * scale}


# -- comparing and reporting --------------------------------------------------------------------


#: Relative tolerance per compared float: a percentile is the same linear interpolation in Spark
#: (``(hi - pos) * lower + (pos - lo) * upper``) and numpy (``lower + t * (upper - lower)``),
#: rounded differently in the last bit; sums of costs add up in another order.
TOLERANCE = {"latency": 1e-12, "daily": 1e-9}


def compare(ours: dict, theirs: dict) -> dict[str, str]:
    """``{"latency": verdict, "daily": verdict}``: counts and token sums must be equal, floats
    equal within :data:`TOLERANCE`; the verdict names the largest relative float difference.

    Example::

        >>> compare({"latency": {"1": [3, 1.0, 2.0, 3.0]}, "daily": {}},
        ...         {"latency": {"1": [3, 1.0, 2.0, 3.0]}, "daily": {}})
        {'latency': 'equal (floats bit for bit)', 'daily': 'equal (floats bit for bit)'}
    """
    verdicts = {}
    for name, float_from in (("latency", 1), ("daily", 4)):
        a, b = ours[name], theirs[name]
        problem, largest = None, 0.0
        if sorted(a) != sorted(b):
            problem = f"groups differ: {sorted(set(a) ^ set(b))[:5]}"
        for key in sorted(a):
            for column, (x, y) in enumerate(zip(a[key], b[key])):
                if column < float_from:
                    same = x == y
                else:
                    largest = max(largest, abs(x - y) / max(abs(x), abs(y), 1e-300))
                    same = math.isclose(x, y, rel_tol=TOLERANCE[name])
                if not same and problem is None:
                    problem = f"{key}, column {column}: Spark {x!r} vs pandas {y!r}"
        if problem is not None:
            verdicts[name] = f"DIFFERENT ({problem})"
        else:
            verdicts[name] = ("equal (floats bit for bit)" if largest == 0 else
                              f"equal (floats within {TOLERANCE[name]:g} relative; largest difference {largest:.1e})")
    return verdicts


def _s(value) -> str:
    return "–" if value is None else (f"{value:.2f} s" if value < 100 else f"{value:.0f} s")


def _ratio(a, b) -> str:
    return "–" if not a or not b else f"{a / b:.1f}×" if a >= b else f"{a / b:.2f}×"


def report(spec: dict, results: dict) -> list[str]:
    """The markdown table and one ``ratio`` line per comparison (see :func:`main`'s results).

    Example::

        >>> print("\\n".join(report(spec, results)))  # doctest: +SKIP
        ratio sqlite traces table: count(): mlflow 163 s / ours 38.72 s = 4.2×
    """
    lines = [f"### Traces: {spec['traces']:,} traces × {spec['spans']} spans "
             f"({spec['traces'] * spec['spans']:,} spans), {spec['experiments']} experiments over {spec['days']} days",
             "", "| store | what | ours (Spark, local[2]) | mlflow | mlflow / ours |", "|---|---|---|---|---|"]
    ratios = []
    for kind, r in results.items():
        spark, search, spans = r["spark"], r["search"], r["spans_search"]
        label = (f"search_traces with spans, **extrapolated** from {spans['traces']:,} traces "
                 f"({spans['pages']} of {spans['pages_total']} pages, {_s(spans['measured_s'])})"
                 if spans["extrapolated"] else f"search_traces with spans (pages: {spans['pages_total']})")
        pandas_total = search["search_s"] + search["pandas_s"]
        spark_total = spark["latency_s"] + spark["daily_s"]
        rows = [
            ("traces table: count()", spark["traces_count_s"],
             f"search_traces, no spans (pages: {math.ceil(search['traces'] / PAGE)})", search["search_s"]),
            ("traces table: agg(count, sum, max)", spark["traces_agg_s"], "same", search["search_s"]),
            ("traces + spans tables: count() each", spark["traces_count_s"] + spark["spans_count_s"],
             label, spans["search_s"]),
            ("latency p50/p90/p99 per experiment + tokens, cost per day", spark_total,
             f"search_traces + pandas ({_s(search['search_s'])} + {_s(search['pandas_s'])})", pandas_total),
        ]
        for what, ours, theirs_label, theirs in rows:
            lines.append(f"| {kind} | {what} | {_s(ours)} | {theirs_label} {_s(theirs)} | {_ratio(theirs, ours)} |")
            ratios.append(f"ratio {kind} {what}: mlflow {_s(theirs)} / ours {_s(ours)} = {_ratio(theirs, ours)}")
        ratios.append(f"ratio {kind} aggregates: pandas on the DataFrame already fetched {_s(search['pandas_s'])} / "
                      f"Spark SQL reading the table {_s(spark_total)} = {_ratio(search['pandas_s'], spark_total)}")
        for name, verdict in r["equal"].items():
            ratios.append(f"equal {kind} {name} (Spark vs pandas): {verdict}")
    return lines + [""] + ratios


def _phase(kind: str, name: str, measure) -> dict:
    """Run one phase; print its timings as they come (a long run shows its figures early)."""
    print(f"  [{kind}] {name} ...", flush=True)
    result = measure()
    print(f"  [{kind}] {name}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in result.items() if not isinstance(v, dict)), flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    generate_traces.add_spec_arguments(parser)
    parser.add_argument("--store", help="a folder written by generate_traces.py (default: benchmarks/.stores/traces-<size>)")
    parser.add_argument("--kind", choices=(*generate_traces.KINDS, "both"), default="both")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of each measurement (best reported)")
    parser.add_argument("--span-sample-traces", type=int, default=5_000,
                        help="above this many traces, time search_traces with spans on this many and extrapolate")
    parser.add_argument("--note", default="", help="a machine note for the output, e.g. the load")
    parser.add_argument("--results", help="where the raw numbers go (default benchmarks/.stores/results-<store>.json)")
    args = parser.parse_args(argv)
    kinds = generate_traces.KINDS if args.kind == "both" else (args.kind,)
    spec = generate_traces.spec_from_args(args)
    store = os.path.abspath(args.store or os.path.join(STORES, f"traces-{args.size or 'S'}"))
    if not os.path.exists(os.path.join(store, generate_traces.MANIFEST)) or args.store is None:
        generate_traces.generate(store, spec, kinds)
    manifest = generate_traces.load_manifest(store)
    spec = manifest["spec"]
    load_before = os.getloadavg()
    results = {}
    with spark_session() as spark, generate_traces.store_uris(store, kinds) as uris:
        for kind in kinds:
            ids = [e["id"] for e in manifest["stores"][kind]["experiments"]]
            ours = _phase(kind, "Spark", lambda: spark_phase(spark, uris[kind], ids, args.repeat))
            theirs = _phase(kind, "search_traces + pandas", lambda: mlflow_phase(uris[kind], ids, args.repeat))
            spans = _phase(kind, "search_traces with spans",
                           lambda: spans_search_phase(uris[kind], ids, spec["traces"], args.span_sample_traces))
            if not ours["traces"] == theirs["traces"] == spec["traces"]:
                raise AssertionError(f"{kind}: traces read: Spark {ours['traces']}, mlflow {theirs['traces']}, "
                                     f"generated {spec['traces']}")
            if ours["spans"] != spec["traces"] * spec["spans"]:
                raise AssertionError(f"{kind}: Spark read {ours['spans']} spans of {spec['traces'] * spec['spans']}")
            results[kind] = {"spark": ours, "search": theirs, "spans_search": spans,
                             "equal": compare(ours, theirs)}
    notes = machine_notes() + (f"; load average at the start {load_before[0]:.1f} / {load_before[1]:.1f} / "
                               f"{load_before[2]:.1f}")
    if args.note:
        notes += f"; {args.note}"
    out = args.results or os.path.join(STORES, f"results-{os.path.basename(store)}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as handle:
        json.dump({"spec": spec, "store": store, "machine": notes, "results": results}, handle, indent=2, default=str)
    print()
    print("\n".join(report(spec, results)))
    print()
    print(f"Machine: {notes}. Best of {args.repeat}; raw numbers in {out}.")
    return 0 if all(v.startswith("equal") for r in results.values() for v in r["equal"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
