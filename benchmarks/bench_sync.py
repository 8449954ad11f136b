"""Benchmark of the Delta sync: a full sync of a generated store, then incremental syncs.

The S store (2,000 runs, 10 metric keys x 50 steps: 1,000,000 metric points, 10 params and 5
tags per run, 4 experiments) or the L store (20,000 runs, 10,000,000 points, 10 experiments)
comes from ``benchmarks/generate_store.py`` (it is copied, since the benchmark adds runs to it).
Then, per store kind (SQLite, file store):

1. warm-up: syncs of a tiny store, one of each kind below (JVM and Python workers warm, as in
   a long-lived job);
2. ``full``: a sync into an empty target;
3. ``noop``: an incremental sync with nothing new;
4. ``+1% runs``: 1% new runs (20 at S) logged with real mlflow (``log_batch``: 10 params,
   5 tags, 10 keys x 50 steps = 500 points each), then an incremental sync; seven rounds
   (``--rounds``), each printed, the median reported. Seven, so that the median is the
   steady cost and the dearer rounds show beside it: the first after the full sync (the JVM
   compiles code the full sync did not run) and every fifth (Delta writes a checkpoint of the
   lock table, which takes two commits a sync, every ten commits);
5. ``+1% changed``: 1% of the runs get a tag, 1% others 50 new points each (and finish),
   then an incremental sync (updates go through ``MERGE``);
6. a check: every target table has as many rows as the data source reads from the store.

Usage::

    python -m benchmarks.bench_sync                       # both store kinds, local[2]
    python -m benchmarks.bench_sync --kind sqlite --json results.json
    python -m benchmarks.bench_sync --size L --source /data/stores/L --kind sqlite

The targets: at L, the incremental sync after 1% more runs costs at most 10% of the full one,
a sync with nothing new at most 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from benchmarks.processes import cpu_spent, cpu_split

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def _store_copy(kind: str, size: str, scratch: str, source: str | None) -> str:
    """A scratch copy of the generated store of ``kind`` and ``size``; generated if needed."""
    from benchmarks import generate_store as gen

    origin = source or os.path.join(HERE, ".stores", size)
    manifest_path = os.path.join(origin, "manifest.json")
    spec = gen.Spec(**gen.SIZES[size])
    if not (os.path.exists(manifest_path) and kind in gen.load_manifest(origin)["stores"]):
        print(f"generating the {size} store ({kind}) in {origin} ...", flush=True)
        gen.generate(origin, spec, kinds=(kind,), progress=lambda *a: None)
    uri = gen.load_manifest(origin)["stores"][kind]["uri"]
    if kind == "sqlite":
        path = uri.split("sqlite:///", 1)[1]
        copy = os.path.join(scratch, "mlflow.db")
        shutil.copyfile(path, copy)
        return f"sqlite:///{copy}"
    copy = os.path.join(scratch, "mlruns")
    shutil.copytree(uri, copy, symlinks=True)
    return copy


def _log_new_runs(uri: str, size: str, count: int, first_index: int) -> None:
    """``count`` new runs with the generator's content, logged by real mlflow."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from benchmarks import generate_store as gen

    spec = gen.Spec(**gen.SIZES[size])
    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments() if e.name.startswith("bench-")]
    for i in range(count):
        data = gen.run_data(spec, first_index + i)
        run = client.create_run(experiments[i % len(experiments)], start_time=data.start_time,
                                run_name=data.run_name, tags={"mlflow.user": data.user_id})
        metrics = [
            Metric(key, value, data.timestamp(step), step)
            for key, values in data.metrics.items() for step, value in enumerate(values)
        ]
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param(k, v) for k, v in data.params.items()],
            tags=[RunTag(k, v) for k, v in data.tags.items() if k not in ("mlflow.runName", "mlflow.user")],
        )
        client.set_terminated(run.info.run_id, "FINISHED", end_time=data.end_time)


def _change_runs(uri: str, count: int) -> None:
    """``count`` runs get a tag; ``count`` others 50 new points each and a new end time."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments() if e.name.startswith("bench-")]
    runs = client.search_runs(experiments, max_results=2 * count, order_by=["attributes.start_time ASC"])
    now = int(time.time() * 1000)
    for run in runs[:count]:
        client.set_tag(run.info.run_id, "reviewed", "yes")
    for run in runs[count:2 * count]:
        client.log_batch(run.info.run_id, metrics=[Metric("metric_extra", s * 0.1, now + s, s) for s in range(50)])
        client.set_terminated(run.info.run_id, "FINISHED", end_time=now + 100)


def _check(spark, uri: str, target: str) -> dict:
    from pyspark_experiments import tables

    counts = {}
    for table in tables.TABLE_NAMES:
        source = (spark.read.format("experiments").option("trackingUri", uri).option("table", table)
                  .option("viewType", "ALL").load().count())
        written = spark.read.format("delta").load(f"{target}/{table}").count()
        counts[table] = {"store": source, "delta": written}
        if source != written:
            raise AssertionError(f"{table}: {written} rows in Delta, {source} in the store")
    return counts


def run_kind(kind: str, size: str, spark, scratch: str, source: str | None, new_run_rounds: int = 7) -> dict:
    from benchmarks import generate_store as gen
    from pyspark_experiments.sync import sync

    folder = os.path.join(scratch, kind)
    os.makedirs(folder)
    print(f"[{kind}] copying the {size} store ...", flush=True)
    uri = _store_copy(kind, size, folder, source)
    target = os.path.join(folder, "delta")
    results: dict = {"store": kind, "size": size}
    runs = gen.SIZES[size]["runs"]

    def timed(name: str, **options) -> None:
        cpu_before, started = cpu_split(), time.perf_counter()
        result = sync(uri, target, spark=spark, progress=False, **options)
        seconds = time.perf_counter() - started
        cpu = cpu_spent(cpu_before, cpu_split())
        results[name] = {
            "seconds": round(seconds, 2),
            "mode": result.mode,
            "new_runs": result.new_runs,
            "changed_runs": result.changed_runs,
            "series_read": result.series_read,
            "rows_written": {t: r.inserted + r.updated + r.deleted for t, r in result.tables.items()},
            "delta_commits": sum(r.commits for r in result.tables.values()) + 1,
        }
        results[name]["load_average"] = round(os.getloadavg()[0], 2)
        results[name]["cpu_s"] = cpu
        print(f"[{kind}] {name:<12} {seconds:7.1f} s  {result.mode}  (load average {os.getloadavg()[0]:.1f})", flush=True)
        if cpu:
            shown = (f"{group} {'n/a' if value is None else f'{value:.1f}'}" for group, value in cpu.items())
            print(f"[{kind}] {'':<12} CPU s: " + ", ".join(shown), flush=True)
        print(result.summary(), flush=True)

    timed("full")
    timed("noop")
    # Each round adds 1% more runs; the median round is the figure (one sync is at the mercy
    # of the JIT compilers and the machine's load; every round is kept).
    rounds = []
    for round_index in range(new_run_rounds):
        _log_new_runs(uri, size, runs // 100, first_index=runs + round_index * (runs // 100))
        timed("+1% runs")
        rounds.append(results["+1% runs"])
    results["+1% runs"] = dict(sorted(rounds, key=lambda r: r["seconds"])[len(rounds) // 2], rounds=rounds)
    _change_runs(uri, runs // 100)
    timed("+1% changed")
    results["check"] = _check(spark, uri, target)
    full = results["full"]["seconds"]
    for name in ("noop", "+1% runs", "+1% changed"):
        results[name]["share_of_full"] = round(results[name]["seconds"] / full, 3)
    return results


def _warm_up(spark, scratch: str) -> None:
    """Small syncs first, one of each kind timed below (full, nothing new, new runs, changed
    runs), so that the timings are those of a warm job: each kind runs code (driver reads,
    appends, merges) that the JVM compiles the first time it runs."""
    from mlflow.tracking import MlflowClient

    from pyspark_experiments.sync import sync

    folder = os.path.join(scratch, "warm-up")
    os.makedirs(folder)
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("warm-up")
    target = os.path.join(folder, "delta")

    def new_runs(count: int) -> list[str]:
        runs = [client.create_run(experiment).info.run_id for _ in range(count)]
        for i, run in enumerate(runs):
            client.log_metric(run, "m", float(i), step=i)
            client.log_param(run, "p", str(i))
        return runs

    runs = new_runs(3)
    sync(uri, target, spark=spark, progress=False)  # full
    sync(uri, target, spark=spark, progress=False)  # nothing new
    new_runs(2)
    sync(uri, target, spark=spark, progress=False)  # new runs
    client.set_tag(runs[0], "reviewed", "yes")
    client.log_metric(runs[1], "m", 9.0, step=9)
    sync(uri, target, spark=spark, progress=False)  # changed runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("sqlite", "file", "both"), default="both")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--size", choices=("S", "L"), default="S", help="the generated store's size (default S)")
    parser.add_argument("--source", help="folder of the generated store (default benchmarks/.stores/<size>)")
    parser.add_argument("--scratch", help="folder for store copies and targets (default: a temp folder)")
    parser.add_argument("--json", dest="json_path", help="write the results as JSON")
    parser.add_argument("--rounds", type=int, default=7,
                        help="rounds of 1%% new runs, each followed by a sync; the median is reported (default 7)")
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from pyspark_experiments import session

    spark = session(app_name="bench-sync", master=args.master)
    spark.sparkContext.setLogLevel("ERROR")
    scratch = args.scratch or tempfile.mkdtemp(prefix="bench-sync-")
    try:
        _warm_up(spark, scratch)
        kinds = ("sqlite", "file") if args.kind == "both" else (args.kind,)
        results = [run_kind(kind, args.size, spark, scratch, args.source, args.rounds) for kind in kinds]
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        spark.stop()
    print("\n| store | full sync | no-op sync | +1% runs | +1% changed runs |")
    print("|---|---|---|---|---|")
    for r in results:
        cells = [f"{r['full']['seconds']:.1f} s"] + [
            f"{r[n]['seconds']:.1f} s ({100 * r[n]['share_of_full']:.0f}%)" for n in ("noop", "+1% runs", "+1% changed")
        ]
        print(f"| {r['store']} | " + " | ".join(cells) + " |")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
