"""Benchmark reading a tracking server over REST against the mlflow client, on the same server.

The S store (2,000 runs x 10 metrics x 50 steps, ``python -m benchmarks.generate_store --size S
--kind sqlite --out benchmarks/.stores/S``) is served by a local ``mlflow server`` on loopback.
In one run:

1. full metric history: ours (``format("experiments")``, table ``metrics``, ``count()`` in a
   warm local[2] session) against a loop of ``MlflowClient.get_metric_history`` over every run
   and key (target: at least 10x faster);
2. ``runs`` table (``collect()``) against ``mlflow.search_runs`` over every experiment (target:
   at least as fast);
3. the peak requests per second our metric read sent: the busiest second of the server's
   access log (one line per request, stamped to the second) while our read ran.

``--history-sample-runs N`` times the ``get_metric_history`` loop over N runs spread over the
store and extrapolates linearly (labelled so in the output).

Usage::

    python -m benchmarks.bench_rest
    python -m benchmarks.bench_rest --store benchmarks/.stores/S --max-concurrent 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # support.mlflow_server, support.proxies

from benchmarks.timing import best_of, history_loop  # noqa: E402


def mlflow_history_loop(url: str, sample_runs: int | None = None) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    result = history_loop(client, [e.experiment_id for e in client.search_experiments()], sample_runs=sample_runs)
    return {"seconds": result["history_s"], "measured_s": result["measured_s"],
            "points": round(result["points"] * result["scale"]), "calls": result["calls_total"],
            "calls_measured": result["calls"], "extrapolated": result["extrapolated"]}


def mlflow_search(url: str) -> dict:
    import mlflow

    mlflow.set_tracking_uri(url)
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    mlflow.search_runs(experiment_ids=experiments[:1], max_results=10)  # warm
    seconds, _, frame = best_of(1, lambda: mlflow.search_runs(experiment_ids=experiments, max_results=100_000))
    return {"seconds": seconds, "rows": len(frame)}


def peak_rate(log_path: str, start: float, end: float, path: str = "/metrics/get-history") -> tuple[int, int]:
    """The busiest second of the server's access log between two wall-clock times: (requests, total requests)."""
    from collections import Counter
    from datetime import datetime

    per_second: Counter = Counter()
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if path not in line:
                continue
            try:
                moment = datetime.strptime(line[:19], "%Y/%m/%d %H:%M:%S").timestamp()
            except ValueError:
                continue
            if start - 1 <= moment <= end + 1:
                per_second[moment] += 1
    return (max(per_second.values()) if per_second else 0), sum(per_second.values())


def server_log(folder: str) -> str:
    return next(os.path.join(folder, name) for name in os.listdir(folder) if name.startswith("server-"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.path.join(HERE, ".stores", "S"), help="a folder written by generate_store.py")
    parser.add_argument("--max-concurrent", type=int, default=None, help="option maxConcurrentRequests (default: the store's)")
    parser.add_argument("--workers", type=int, default=2, help="mlflow server --workers")
    parser.add_argument("--history-sample-runs", type=int, default=None,
                        help="time the get_metric_history loop over this many runs and extrapolate")
    parser.add_argument("--out", default=None, help="write the raw numbers as JSON here")
    args = parser.parse_args(argv)

    database = os.path.join(args.store, "mlflow.db")
    if not os.path.isfile(database):
        print(f"no store at {database}: python -m benchmarks.generate_store --size S --kind sqlite --out {args.store}")
        return 2
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import pyspark_experiments
    from support.mlflow_server import running_mlflow_server

    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                f"load {os.getloadavg()[0]:.1f} at start"}
    with tempfile.TemporaryDirectory() as folder, \
            running_mlflow_server(f"sqlite:///{os.path.abspath(database)}", folder, workers=args.workers, timeout=600) as url:
        spark = pyspark_experiments.session(app_name="bench-rest", master="local[2]", delta=False,
                                            config={"spark.sql.shuffle.partitions": "4", "spark.log.level": "ERROR"})

        def load(table, uri=url):
            reader = spark.read.format("experiments").option("trackingUri", uri).option("table", table)
            if args.max_concurrent:
                reader = reader.option("maxConcurrentRequests", str(args.max_concurrent))
            return reader.load()

        load("experiments").count()  # warm: JVM, Python workers, imports
        wall_start = time.time()
        seconds, _, points = best_of(1, lambda: load("metrics").count())
        wall_end = time.time()
        peak, sent = peak_rate(server_log(folder), wall_start, wall_end)
        results["ours_metrics"] = {"seconds": seconds, "points": points, "peak_requests_per_s": peak, "history_requests": sent,
                                   "partitions": load("metrics").rdd.getNumPartitions()}
        print(f"ours: metrics {points:,} points in {seconds:.1f} s", flush=True)
        seconds, _, rows = best_of(1, lambda: load("runs").collect())
        results["ours_runs"] = {"seconds": seconds, "rows": len(rows)}
        print(f"ours: runs {len(rows):,} rows in {seconds:.2f} s", flush=True)

        results["mlflow_search_runs"] = mlflow_search(url)
        print(f"mlflow.search_runs: {results['mlflow_search_runs']}", flush=True)
        results["mlflow_history_loop"] = mlflow_history_loop(url, args.history_sample_runs)
        print(f"get_metric_history loop: {results['mlflow_history_loop']}", flush=True)
        spark.stop()

    ours, loop = results["ours_metrics"], results["mlflow_history_loop"]
    search, runs = results["mlflow_search_runs"], results["ours_runs"]
    if not loop["extrapolated"]:
        assert ours["points"] == loop["points"], "the reads disagree on the points"
    assert runs["rows"] == search["rows"], "the reads disagree on the runs"
    results["metrics_speedup"] = loop["seconds"] / ours["seconds"]
    results["runs_speedup"] = search["seconds"] / runs["seconds"]
    extrapolated = f", extrapolated from {loop['calls_measured']:,} calls" if loop["extrapolated"] else ""
    print()
    print("| measurement (S store over a local mlflow server) | ours | mlflow | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| full metric history ({ours['points']:,} points, {loop['calls']:,} series) | {ours['seconds']:.1f} s | "
          f"{loop['seconds']:.1f} s (get_metric_history loop{extrapolated}) | {results['metrics_speedup']:.1f}x |")
    print(f"| runs table ({runs['rows']:,} runs) | {runs['seconds']:.2f} s | {search['seconds']:.2f} s (search_runs) | "
          f"{results['runs_speedup']:.1f}x |")
    print(f"\npeak request rate of our metric read: {ours['peak_requests_per_s']} get-history requests/s "
          f"(busiest second of the server's access log; {ours['history_requests']:,} requests in all)")
    print(f"machine: {results['machine']}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
