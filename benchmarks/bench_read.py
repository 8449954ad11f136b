"""Benchmark reading MLflow stores with ``format("experiments")`` against the mlflow client.

For each store kind (SQLite, file store), in one run:

1. ``runs`` table (``count()`` + ``collect()`` of ``run_id``, in a warm SparkSession) vs
   ``mlflow.search_runs(experiment_ids=<all>, max_results=100_000)``;
2. full metric history (``count()`` and ``groupBy(key).agg(avg, max)``) vs a loop of
   ``MlflowClient.get_metric_history`` over every run and key (on a sample of runs, extrapolated
   linearly and labelled so, when ``--history-sample-runs`` is given or at size L);
3. a floor: the same full metric read by the simplest single-process Python code
   (sqlite3 -> pyarrow, or metric files -> pyarrow);
4. peak memory of the Spark driver: the driver Python process (``getrusage``) and the JVM
   (``VmHWM`` of the java child), plus the Python workers (sampled RSS);
5. an anchor: the same ``metrics`` rows written to Parquet once (``<store>/parquet/``), then
   Spark's own Parquet reader timed on the same ``count()`` and ``groupBy``, in a fresh session;
6. the source floor: as many ready-made Arrow batches of the ``metrics`` schema, with no store
   behind them, through a Python data source (what Spark itself costs such a source);

and, for the profile of where the time goes, the store backend's ``plan()`` + ``read()`` called
directly without Spark (``--profile`` writes cProfile stats of it).

Each phase runs in a fresh subprocess (so memory peaks are per phase); each measurement is
repeated ``--repeat`` times and the best is reported. The result is a markdown table ready for
``docs/benchmarks.md``; the raw numbers go to ``benchmarks/.stores/results-<size>.json``.

Usage::

    python -m benchmarks.bench_read --size S
    python -m benchmarks.bench_read --size L --kind sqlite --history-sample-runs 500
    python -m benchmarks.bench_read --store benchmarks/.stores/S --skip-mlflow-history --profile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

from benchmarks import generate_store
from benchmarks.processes import children, descendants
from benchmarks.timing import best_of, history_loop

HERE = os.path.dirname(os.path.abspath(__file__))
STORES = os.path.join(HERE, ".stores")


SEARCH_RUNS_CAP = 100_000


# -- process memory (no psutil needed) --------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of ``pid`` in MB (empty if the process is gone)."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    found[name] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return found


class MemorySampler:
    """Samples the JVM's and the Python workers' RSS in a thread; reads the JVM's VmHWM at the end."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.jvm_pid = None
        self.jvm_rss_peak = 0.0
        self.workers_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = children()
            mine = descendants(os.getpid(), tree)
            java = [pid for pid, name in mine if name == "java"]
            if java:
                self.jvm_pid = java[0]
                self.jvm_rss_peak = max(self.jvm_rss_peak, _proc_status(java[0]).get("VmRSS", 0))
                workers = [pid for pid, name in descendants(java[0], tree) if name.startswith("python")]
                total = sum(_proc_status(pid).get("VmRSS", 0) for pid in workers)
                self.workers_peak = max(self.workers_peak, total)
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, float]:
        jvm_hwm = _proc_status(self.jvm_pid).get("VmHWM", 0) if self.jvm_pid else 0
        self._stop.set()
        self._thread.join()
        return {
            "driver_python_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "jvm_hwm_mb": max(jvm_hwm, self.jvm_rss_peak),
            "workers_peak_mb": self.workers_peak,
        }


# -- phases (each in its own subprocess) ------------------------------------------------------


def phase_spark(store: dict, repeat: int, tables: list[str]) -> dict:
    """Our reads through Spark, in a warm local[2] session, with memory peaks."""
    sampler = MemorySampler().start()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import functions as F

    import pyspark_experiments

    started = time.perf_counter()
    spark = pyspark_experiments.session(
        app_name="bench-read", master="local[2]", delta=False,
        config={"spark.sql.shuffle.partitions": "4"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    result = {"session_start_s": time.perf_counter() - started}

    def load(table):
        return (spark.read.format("experiments").option("trackingUri", store["uri"])
                .option("table", table).load())

    # The first count() of the fresh session (the "moonshot" target's measure), then a warm-up
    # read of each table we time (JVM, Python workers, imports, OS cache).
    if "metrics" in tables:
        first = time.perf_counter()
        load("metrics").count()
        result["metrics_first_count_s"] = time.perf_counter() - first
    for table in tables:
        load(table).count()
    if "runs" in tables:
        t_count, times, n = best_of(repeat, lambda: load("runs").count())
        t_collect, times2, rows = best_of(repeat, lambda: load("runs").select("run_id").collect())
        t_both, times3, _ = best_of(repeat, lambda: (load("runs").count(), load("runs").select("run_id").collect()))
        result["runs"] = {"rows": n, "collected": len(rows), "count_s": t_count, "collect_s": t_collect,
                          "count_collect_s": t_both, "all_s": [times, times2, times3]}
    if "metrics" in tables:
        t_count, times, n = best_of(repeat, lambda: load("metrics").count())
        t_agg, times2, agg = best_of(
            repeat,
            lambda: load("metrics").groupBy("key").agg(F.avg("value"), F.max("value")).collect(),
        )
        partitions = load("metrics").rdd.getNumPartitions()
        result["metrics"] = {"rows": n, "keys": len(agg), "partitions": partitions, "count_s": t_count,
                             "agg_s": t_agg, "all_s": [times, times2]}
    spark.stop()
    result["memory"] = sampler.stop()
    return result


def _parquet_path(store: dict, args) -> str:
    return os.path.join(args.store, "parquet", store["kind"], "metrics")


def phase_parquet_write(store: dict, args) -> dict:
    """Once per store (not timed as a read): the same ``metrics`` rows written to Parquet."""
    path = _parquet_path(store, args)
    if os.path.exists(os.path.join(path, "_SUCCESS")):
        return {"path": path, "written": False}
    import pyspark_experiments

    spark = pyspark_experiments.session(app_name="bench-parquet-write", master="local[2]", delta=False)
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter()
    (spark.read.format("experiments").option("trackingUri", store["uri"]).option("table", "metrics").load()
     .write.mode("overwrite").parquet(path))
    spark.stop()
    return {"path": path, "written": True, "write_s": time.perf_counter() - started}


def phase_source_floor(store: dict, args) -> dict:
    """Spark's own cost of a Python data source, with no store behind it: as many rows as the
    store's metric history, in as many partitions as our plan, as ready-made Arrow batches of
    the ``metrics`` schema (one batch built per partition, then sliced). The same queries as
    :func:`phase_spark` in a fresh session: whatever our read costs above this is the store's."""
    from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

    import pyspark_experiments
    from pyspark_experiments import tables
    from pyspark_experiments.datasource import plan_read

    rows = generate_store.Spec(**generate_store.load_manifest(args.store)["spec"]).points
    partitions = len(plan_read({"trackingUri": store["uri"], "table": "metrics"}, environ={})[1])

    # Defined here, so that Spark pickles them by value (workers need not import benchmarks/).
    class ReadyBatches(DataSource):
        @classmethod
        def name(cls):
            return "ready_batches"

        def schema(self):
            return tables.spark_schema(tables.METRICS)

        def reader(self, schema):
            return ReadyReader()

    class ReadyReader(DataSourceReader):
        def partitions(self):
            return [InputPartition(i) for i in range(partitions)]

        def read(self, partition):
            import numpy as np
            import pyarrow as pa

            size = 65_536
            random = np.random.default_rng(partition.value)
            batch = pa.RecordBatch.from_arrays([
                pa.array([str(1 + partition.value % 10)] * size),
                pa.array([f"{i:032x}" for i in random.integers(0, 2**62, size)]),
                pa.array([f"metric_{i % 10}" for i in range(size)]),
                pa.array(random.random(size)),
                pa.array(np.arange(size, dtype=np.int64)),
                pa.array(np.full(size, 1_700_000_000_000_000, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC")),
            ], schema=tables.arrow_schema(tables.METRICS))
            todo = rows // partitions + (partition.value < rows % partitions)
            while todo > 0:
                yield batch.slice(0, min(size, todo))
                todo -= size

    spark = pyspark_experiments.session(app_name="bench-source-floor", master="local[2]", delta=False,
                                        config={"spark.sql.shuffle.partitions": "4"})
    spark.sparkContext.setLogLevel("ERROR")

    # Registering makes Spark look for installed pyspark_* sources (a Python process of its
    # own, about a second), which our source's first load() pays: so it is timed as part of
    # the first count.
    result = {"partitions": partitions, **_time_history_queries(
        lambda: spark.read.format("ready_batches").load(), args.repeat,
        before_first=lambda: spark.dataSource.register(ReadyBatches))}
    spark.stop()
    return result


def phase_parquet(store: dict, args) -> dict:
    """The anchor: Spark's own Parquet reader on the same rows, the same queries, a fresh session."""
    import pyspark_experiments

    path = _parquet_path(store, args)
    spark = pyspark_experiments.session(
        app_name="bench-parquet", master="local[2]", delta=False, config={"spark.sql.shuffle.partitions": "4"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    result = _time_history_queries(lambda: spark.read.parquet(path), args.repeat)
    spark.stop()
    return result


def _time_history_queries(load, repeat: int, before_first=None) -> dict:
    """The first ``count()`` of ``load()`` (a metric history in a fresh session), with
    ``before_first()`` if given, then the best of ``repeat`` warm ``count()`` and
    ``groupBy("key").agg(avg, max)``."""
    from pyspark.sql import functions as F

    first = time.perf_counter()
    if before_first is not None:
        before_first()
    rows = load().count()
    result = {"rows": rows, "first_count_s": time.perf_counter() - first}
    result["count_s"], result["count_all_s"], _ = best_of(repeat, lambda: load().count())
    result["agg_s"], result["agg_all_s"], _ = best_of(
        repeat, lambda: load().groupBy("key").agg(F.avg("value"), F.max("value")).collect())
    return result


def phase_mlflow_search(store: dict, repeat: int) -> dict:
    generate_store.mlflow_env()
    import mlflow

    mlflow.set_tracking_uri(store["uri"])
    ids = [e["id"] for e in store["experiments"]]
    mlflow.search_runs(experiment_ids=ids[:1], max_results=10)  # warm: imports, store init
    best, times, frame = best_of(
        repeat, lambda: mlflow.search_runs(experiment_ids=ids, max_results=SEARCH_RUNS_CAP)
    )
    return {"rows": len(frame), "search_runs_s": best, "all_s": times,
            "driver_python_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def phase_mlflow_history(store: dict, repeat: int, sample_runs: int | None) -> dict:
    """A loop of get_metric_history over every (run, key), or over a sample of runs."""
    generate_store.mlflow_env()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store["uri"])
    return history_loop(client, [e["id"] for e in store["experiments"]], repeat, sample_runs)


def floor_sqlite(uri: str):
    """The simplest full read of the metric history: sqlite3 -> pyarrow.Table."""
    import sqlite3

    import pyarrow as pa
    import pyarrow.compute as pc

    path = uri.split("sqlite:///", 1)[1]
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    experiment_of = dict(connection.execute(
        "SELECT run_uuid, CAST(experiment_id AS TEXT) FROM runs WHERE lifecycle_stage = 'active'"
    ).fetchall())
    # One plain scan of the metrics table (a JOIN with runs made SQLite probe per run).
    rows = connection.execute("SELECT run_uuid, key, value, is_nan, step, timestamp FROM metrics").fetchall()
    connection.close()
    run_ids, keys, values, is_nan, steps, timestamps = zip(*rows)
    run_id = pa.array(run_ids, pa.string())
    runs = pa.array(list(experiment_of), pa.string())
    experiment_id = pa.array(list(experiment_of.values()), pa.string()).take(pc.index_in(run_id, runs))
    value = pc.if_else(pa.array(is_nan, pa.int8()).cast(pa.bool_()), float("nan"), pa.array(values, pa.float64()))
    table = pa.table({
        "experiment_id": experiment_id,
        "run_id": run_id,
        "key": pa.array(keys, pa.string()),
        "value": value,
        "step": pa.array(steps, pa.int64()),
        "timestamp": pa.array(timestamps, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
    })
    return table.filter(experiment_id.is_valid())  # active runs only


def floor_file(root: str):
    """The simplest full read of the metric history: metric files -> pyarrow.Table."""
    import pyarrow as pa

    experiment_ids, run_ids, keys, values, steps, timestamps = [], [], [], [], [], []
    for experiment in os.scandir(root):
        if not (experiment.is_dir() and experiment.name.isdigit()):
            continue
        for run in os.scandir(experiment.path):
            metrics_dir = os.path.join(run.path, "metrics")
            if not os.path.isdir(metrics_dir):
                continue
            for metric in os.scandir(metrics_dir):
                with open(metric.path, "rb") as handle:
                    lines = handle.read().split()
                n = len(lines) // 3
                timestamps.extend(map(int, lines[0::3]))
                values.extend(map(float, lines[1::3]))
                steps.extend(map(int, lines[2::3]))
                keys.extend([metric.name] * n)
                run_ids.extend([run.name] * n)
                experiment_ids.extend([experiment.name] * n)
    return pa.table({
        "experiment_id": pa.array(experiment_ids, pa.string()),
        "run_id": pa.array(run_ids, pa.string()),
        "key": pa.array(keys, pa.string()),
        "value": pa.array(values, pa.float64()),
        "step": pa.array(steps, pa.int64()),
        "timestamp": pa.array(timestamps, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
    })


def phase_floor(store: dict, kind: str, repeat: int) -> dict:
    read = floor_sqlite if kind == "sqlite" else floor_file
    read(store["uri"])  # warm the OS cache as the Spark phase is warmed
    best, times, table = best_of(repeat, lambda: read(store["uri"]))
    return {"rows": table.num_rows, "floor_s": best, "all_s": times,
            "driver_python_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def phase_backend(store: dict, repeat: int, tables: list[str], profile_dir: str | None) -> dict:
    """The store backend's plan() + read() called directly, sequentially, without Spark."""
    from pyspark_experiments.datasource import plan_read

    def read_all(table):
        selection, partitions = plan_read({"trackingUri": store["uri"], "table": table}, environ={})
        from pyspark_experiments.stores import open_store
        from pyspark_experiments.uri import resolve_tracking_uri

        backend = open_store(resolve_tracking_uri(store["uri"], {}))
        rows = 0
        for partition in partitions:
            for batch in backend.read(partition):
                rows += batch.num_rows
        return rows, len(partitions)

    result = {}
    for table in tables:
        read_all(table)  # warm
        best, times, (rows, parts) = best_of(repeat, lambda: read_all(table))
        plan_best, _, _ = best_of(repeat, lambda: plan_read({"trackingUri": store["uri"], "table": table}, environ={}))
        result[table] = {"rows": rows, "partitions": parts, "read_s": best, "plan_s": plan_best, "all_s": times}
        if profile_dir:
            import cProfile
            import pstats

            os.makedirs(profile_dir, exist_ok=True)
            path = os.path.join(profile_dir, f"{store['kind']}-{table}.pstats")
            profiler = cProfile.Profile()
            profiler.enable()
            read_all(table)
            profiler.disable()
            profiler.dump_stats(path)
            result[table]["profile"] = path
            stream = open(path + ".txt", "w")
            stats = pstats.Stats(profiler, stream=stream).sort_stats("tottime")
            stats.print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
            stream.close()
            # One partition's read alone, as an executor runs it (no planning).
            from pyspark_experiments.stores import open_store
            from pyspark_experiments.uri import resolve_tracking_uri

            _, partitions = plan_read({"trackingUri": store["uri"], "table": table}, environ={})
            backend = open_store(resolve_tracking_uri(store["uri"], {}))
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in backend.read(partitions[0]):
                pass
            profiler.disable()
            with open(os.path.join(profile_dir, f"{store['kind']}-{table}-partition0.pstats.txt"), "w") as stream:
                pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(15)
    return result


PHASES = {
    "spark": lambda a, s: phase_spark(s, a.repeat, a.tables),
    "search": lambda a, s: phase_mlflow_search(s, a.repeat),
    "history": lambda a, s: phase_mlflow_history(s, a.mlflow_repeat, a.history_sample_runs),
    "floor": lambda a, s: phase_floor(s, s["kind"], a.repeat),
    "backend": lambda a, s: phase_backend(s, a.repeat, a.tables, a.profile_dir),
    "parquet_write": lambda a, s: phase_parquet_write(s, a),
    "parquet": lambda a, s: phase_parquet(s, a),
    "source_floor": lambda a, s: phase_source_floor(s, a),
}


def run_phase(args, phase: str, kind: str) -> dict:
    """Run one phase in a fresh Python process; return its JSON result.

    Each result is also kept in ``<store>/phases/<kind>-<phase>.json``; ``--reuse`` takes it from
    there instead of measuring again (to complete a report phase by phase).
    """
    saved = os.path.join(args.store, "phases", f"{kind}-{phase}.json")
    if getattr(args, "reuse", False) and os.path.exists(saved):
        print(f"  [{kind}] {phase}: reused {saved}")
        with open(saved) as handle:
            return json.load(handle)
    command = [sys.executable, "-m", "benchmarks.bench_read", "--phase", phase, "--store", args.store,
               "--kind", kind, "--repeat", str(args.repeat), "--mlflow-repeat", str(args.mlflow_repeat),
               "--tables", ",".join(args.tables)]
    if args.history_sample_runs:
        command += ["--history-sample-runs", str(args.history_sample_runs)]
    if args.profile_dir:
        command += ["--profile-dir", args.profile_dir]
    print(f"  [{kind}] {phase} ...", end="", flush=True)
    started = time.perf_counter()
    completed = subprocess.run(
        command, capture_output=True, text=True, cwd=os.path.dirname(HERE), env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    if completed.returncode != 0:
        print(" FAILED")
        sys.stderr.write(completed.stderr[-4000:])
        return {"error": completed.stderr[-2000:]}
    print(f" {time.perf_counter() - started:.0f} s")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    with open(saved, "w") as handle:
        json.dump(result, handle, indent=2)
    return result


# -- report ------------------------------------------------------------------------------------


def _fmt_s(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _ratio(a, b) -> str:
    return "–" if not a or not b else f"{a / b:.1f}×"


def report(size: str, spec: dict, results: dict) -> str:
    lines = [
        f"### Size {size}: {spec['runs']:,} runs × {spec['metrics']} metrics × {spec['steps']} steps "
        f"({generate_store.Spec(**spec).points:,} points), {spec['params']} params, {spec['experiments']} experiments",
        "",
        "| store | what | ours (Spark, local[2]) | mlflow client | mlflow / ours | floor (1 process) | ours / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    def ok(entry):  # a phase that failed or was skipped reports nothing
        return entry if isinstance(entry, dict) and "error" not in entry and "skipped" not in entry else {}

    results = {kind: {phase: ok(entry) for phase, entry in r.items()} for kind, r in results.items()}
    for kind, r in results.items():
        spark = r.get("spark", {})
        runs = spark.get("runs", {})
        metrics = spark.get("metrics", {})
        search = r.get("search", {})
        history = r.get("history", {})
        floor = r.get("floor", {})
        if runs:
            lines.append(
                f"| {kind} | runs table: count() + collect(run_id) | {_fmt_s(runs.get('count_collect_s'))} "
                f"| search_runs {_fmt_s(search.get('search_runs_s'))} "
                f"| {_ratio(search.get('search_runs_s'), runs.get('count_collect_s'))} | | |"
            )
            lines.append(
                f"| {kind} | runs table: collect(run_id) only | {_fmt_s(runs.get('collect_s'))} "
                f"| | {_ratio(search.get('search_runs_s'), runs.get('collect_s'))} | | |"
            )
        if metrics:
            label = "get_metric_history loop"
            if history.get("extrapolated"):
                label += (f" **extrapolated** from {history['runs_measured']:,} of {history['runs_total']:,} runs "
                          f"({_fmt_s(history['measured_s'])})")
            hist = history.get("history_s")
            lines.append(
                f"| {kind} | metric history: count() | {_fmt_s(metrics.get('count_s'))} "
                f"| {label} {_fmt_s(hist) if hist else 'not measured'} | {_ratio(hist, metrics.get('count_s'))} "
                f"| {_fmt_s(floor.get('floor_s'))} | {_ratio(metrics.get('count_s'), floor.get('floor_s'))} |"
            )
            lines.append(
                f"| {kind} | metric history: groupBy(key).agg(avg, max) | {_fmt_s(metrics.get('agg_s'))} "
                f"| | {_ratio(hist, metrics.get('agg_s'))} | | {_ratio(metrics.get('agg_s'), floor.get('floor_s'))} |"
            )
            if spark.get("metrics_first_count_s"):
                lines.append(
                    f"| {kind} | metric history: first count() of a fresh session | {_fmt_s(spark['metrics_first_count_s'])} "
                    f"| search_runs {_fmt_s(search.get('search_runs_s'))} "
                    f"| {_ratio(search.get('search_runs_s'), spark['metrics_first_count_s'])} | | |"
                )
    lines += ["", "| store | query | ours | Spark's Parquet reader, same rows | ours / Parquet |", "|---|---|---|---|---|"]
    for kind, r in results.items():
        metrics, parquet = r.get("spark", {}).get("metrics", {}), r.get("parquet", {})
        if metrics and parquet:
            first = r["spark"].get("metrics_first_count_s")
            lines.append(f"| {kind} | first count() of a fresh session | {_fmt_s(first)} | {_fmt_s(parquet['first_count_s'])} "
                         f"| {_ratio(first, parquet['first_count_s'])} |")
            lines.append(f"| {kind} | count(), warm | {_fmt_s(metrics.get('count_s'))} | {_fmt_s(parquet['count_s'])} "
                         f"| {_ratio(metrics.get('count_s'), parquet['count_s'])} |")
            lines.append(f"| {kind} | groupBy(key).agg(avg, max), warm | {_fmt_s(metrics.get('agg_s'))} | {_fmt_s(parquet['agg_s'])} "
                         f"| {_ratio(metrics.get('agg_s'), parquet['agg_s'])} |")
    lines += ["", "| store | query | ours | ready-made batches through a Python data source (no store) | ours / that |",
              "|---|---|---|---|---|"]
    for kind, r in results.items():
        metrics, ready = r.get("spark", {}).get("metrics", {}), r.get("source_floor", {})
        if metrics and ready:
            first = r["spark"].get("metrics_first_count_s")
            for label, ours, theirs in (("first count() of a fresh session", first, ready["first_count_s"]),
                                        ("count(), warm", metrics.get("count_s"), ready["count_s"]),
                                        ("groupBy(key).agg(avg, max), warm", metrics.get("agg_s"), ready["agg_s"])):
                lines.append(f"| {kind} | {label} | {_fmt_s(ours)} | {_fmt_s(theirs)} | {_ratio(ours, theirs)} |")
    lines += ["", "| store | backend read() without Spark, 1 process | plan() | rows | partitions |", "|---|---|---|---|---|"]
    for kind, r in results.items():
        for table, b in r.get("backend", {}).items():
            lines.append(f"| {kind} | {table}: {_fmt_s(b['read_s'])} | {_fmt_s(b['plan_s'])} | {b['rows']:,} | {b['partitions']} |")
    lines += ["", "| store | driver Python peak RSS | JVM peak RSS (VmHWM) | Python workers peak RSS (sum) |", "|---|---|---|---|"]
    for kind, r in results.items():
        mem = r.get("spark", {}).get("memory")
        if mem:
            lines.append(f"| {kind} | {mem['driver_python_mb']:.0f} MB | {mem['jvm_hwm_mb']:.0f} MB | {mem['workers_peak_mb']:.0f} MB |")
    return "\n".join(lines)


def machine_notes() -> str:
    cpus = os.cpu_count()
    try:
        with open("/proc/meminfo") as handle:
            mem = int(handle.readline().split()[1]) / 1024 / 1024
    except OSError:
        mem = 0
    try:
        import pyspark

        versions = f"pyspark {pyspark.__version__}"
    except ImportError:
        versions = ""
    try:
        from importlib.metadata import version

        versions += f", mlflow {version('mlflow')}"
    except Exception:
        pass
    load = os.getloadavg()
    return (f"{cpus} cores, {mem:.0f} GB RAM, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, {versions}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "S", "L", "custom"), default="S")
    parser.add_argument("--store", help="a folder written by generate_store.py (default: benchmarks/.stores/<size>)")
    parser.add_argument("--kind", choices=("sqlite", "file", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of each of our measurements (best reported)")
    parser.add_argument("--mlflow-repeat", type=int, default=2, help="repetitions of the mlflow measurements")
    parser.add_argument("--history-sample-runs", type=int,
                        help="time get_metric_history on this many runs and extrapolate (default: all at S, 1000 at L)")
    parser.add_argument("--tables", default="runs,metrics", help="tables to time: runs,metrics")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-mlflow-search", action="store_true")
    parser.add_argument("--skip-mlflow-history", action="store_true")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--skip-backend", action="store_true")
    parser.add_argument("--skip-parquet", action="store_true", help="skip the Parquet anchor (writes <store>/parquet once)")
    parser.add_argument("--skip-source-floor", action="store_true",
                        help="skip the source floor (ready-made Arrow batches through a Python data source)")
    parser.add_argument("--note", default="",
                        help="a machine note for the output, e.g. 'shared with other test runs'")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse phase results kept in <store>/phases/ instead of measuring again")
    parser.add_argument("--profile", action="store_true", help="cProfile the backend read into <store>/profiles/")
    parser.add_argument("--profile-dir", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    # custom size: the generator's flags
    for name in ("runs", "metrics", "steps", "params", "experiments", "big-run-points"):
        parser.add_argument(f"--{name}", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.tables = [t.strip() for t in (args.tables.split(",") if isinstance(args.tables, str) else args.tables) if t.strip()]

    if args.phase:  # child process: one phase, JSON on stdout
        manifest = generate_store.load_manifest(args.store)
        store = dict(manifest["stores"][args.kind], kind=args.kind)
        import logging

        logging.disable(logging.WARNING)
        print(json.dumps(PHASES[args.phase](args, store)))
        return 0

    kinds = ("sqlite", "file") if args.kind == "both" else (args.kind,)
    if args.store is None:
        args.store = os.path.join(STORES, args.size)
        if args.size == "custom":
            spec = generate_store.Spec(
                **{k: getattr(args, k) for k in ("runs", "metrics", "steps", "params", "experiments") if getattr(args, k) is not None},
                seed=args.seed, big_run_points=args.big_run_points or 0,
            )
            args.store = os.path.join(STORES, f"custom-{spec.runs}x{spec.metrics}x{spec.steps}-{spec.big_run_points}")
        else:
            spec = generate_store.Spec(**generate_store.SIZES[args.size], seed=args.seed)
        generate_store.generate(args.store, spec, kinds)
    args.store = os.path.abspath(args.store)
    manifest = generate_store.load_manifest(args.store)
    spec = manifest["spec"]
    if args.history_sample_runs is None and spec["runs"] > 5_000:
        args.history_sample_runs = 1_000
    if args.profile:
        args.profile_dir = os.path.join(args.store, "profiles")

    phases = [p for p, skip in (("spark", args.skip_spark), ("search", args.skip_mlflow_search),
                                ("history", args.skip_mlflow_history), ("floor", args.skip_floor),
                                ("backend", args.skip_backend), ("parquet_write", args.skip_parquet),
                                ("parquet", args.skip_parquet), ("source_floor", args.skip_source_floor)) if not skip]
    if "metrics" not in args.tables:
        phases = [p for p in phases if p not in ("history", "floor", "parquet_write", "parquet", "source_floor")]
    if "runs" not in args.tables:
        phases = [p for p in phases if p != "search"]
    results = {}
    print(f"store {args.store}: {spec}")
    for kind in kinds:
        if kind not in manifest["stores"]:
            print(f"  {kind}: not in {args.store}; generate it first")
            continue
        results[kind] = {phase: run_phase(args, phase, kind) for phase in phases}
    out = os.path.join(STORES, f"results-{os.path.basename(args.store)}.json")
    os.makedirs(STORES, exist_ok=True)
    notes = machine_notes()
    if args.note:
        notes += f"; {args.note}"
    elif os.getloadavg()[1] > (os.cpu_count() or 1):
        notes += "; the machine was shared (load above its core count): times are noisy"
    with open(out, "w") as handle:
        json.dump({"spec": spec, "store": args.store, "machine": notes, "results": results}, handle, indent=2)
    print()
    print(report(os.path.basename(args.store), spec, results))
    print()
    print(f"Machine: {notes}. Best of {args.repeat} for our reads and the floor, best of "
          f"{args.mlflow_repeat} for mlflow; raw numbers in {out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
