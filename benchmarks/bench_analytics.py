"""Benchmark of the analytics job and the report on a generated store (S by default; L with
``--size L``), one run each, timings printed.

Steps, in one Spark session (``local[2]`` by default):

1. the store (``benchmarks/generate_store.py``, SQLite) is generated if missing, then synced
   into a scratch Delta target (timed, for scale);
2. ``analytics job``: :func:`~pyspark_experiments.analytics.job.run_analytics` on the target
   (the ten analytics_* tables, overwritten), lock included;
3. ``report (delta)``: the HTML report from the synced tables;
4. ``report (store)``: the HTML report read straight from the store through the source;
5. peak memory of the driver over all of it: the driver's Python process and the JVM (as
   ``bench_read`` measures them): run at S and at L, it shows whether memory grows with the data.

Usage::

    python -m benchmarks.bench_analytics                   # S
    python -m benchmarks.bench_analytics --size L --json results.json

The machine these numbers come from matters: on a shared 2-core machine they vary a lot.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def store_uri(size: str, folder: str | None) -> str:
    from benchmarks import generate_store as gen

    origin = folder or os.path.join(HERE, ".stores", size)
    manifest = os.path.join(origin, "manifest.json")
    if not (os.path.exists(manifest) and "sqlite" in gen.load_manifest(origin)["stores"]):
        print(f"generating the {size} store (sqlite) in {origin} ...", flush=True)
        gen.generate(origin, gen.Spec(**gen.SIZES[size]), kinds=("sqlite",), progress=lambda *a: None)
    return gen.load_manifest(origin)["stores"]["sqlite"]["uri"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="S", choices=("S", "M", "L"))
    parser.add_argument("--store", help="folder of a generated store (default benchmarks/.stores/<size>)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)

    from benchmarks.bench_read import MemorySampler
    from pyspark_experiments import register, session
    from pyspark_experiments.analytics.config import AnalyticsConfig
    from pyspark_experiments.analytics.job import run_analytics
    from pyspark_experiments.report import tables_from_delta, tables_from_store, write_report
    from pyspark_experiments.sync import sync

    uri = store_uri(args.size, args.store)
    spark = session(app_name="bench-analytics", master=args.master,
                    config={"spark.sql.shuffle.partitions": "8", "spark.log.level": "ERROR",
                            "spark.python.authenticate.socketTimeout": "120s"})
    register(spark)
    sampler = MemorySampler().start()
    figures: dict[str, float] = {}
    python_peaks: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as scratch:
        target = os.path.join(scratch, "delta")

        def timed(name, action):
            started = time.monotonic()
            value = action()
            figures[name] = round(time.monotonic() - started, 1)
            # the driver's Python high-water mark so far: which step raised it
            python_peaks[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            print(f"{name:<16} {figures[name]:8.1f} s   driver Python peak so far {python_peaks[name]} MB", flush=True)
            return value

        timed("sync (full)", lambda: sync(uri, target, spark=spark))
        result = timed("analytics job", lambda: run_analytics(spark, AnalyticsConfig(target_path=target)))
        timed("report (delta)", lambda: write_report(out_dir=os.path.join(scratch, "r1"), **tables_from_delta(spark, target)))
        timed("report (store)", lambda: write_report(out_dir=os.path.join(scratch, "r2"), **tables_from_store(spark, uri)))
        print(result.summary())
    memory = {name: round(mb) for name, mb in sampler.stop().items()}
    print(f"peak memory: driver Python {memory['driver_python_mb']} MB, JVM {memory['jvm_hwm_mb']} MB", flush=True)
    spark.stop()
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"size": args.size, "master": args.master, "seconds": figures, "memory_mb": memory,
                       "driver_python_peak_after_mb": python_peaks}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
