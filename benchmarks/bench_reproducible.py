"""Benchmark the reproducibility helpers against a plain ``repartition`` of the same data.

For each size (``--rows``, default 1M and 10M) the script writes a Parquet table once (not
timed), then times, on a read of that table:

- ``read only``: the scan alone (``write.format("noop")``), for scale;
- ``plain repartition(n, key)``: the baseline, ``repartition(n, "user_id")`` then a noop write;
- ``deterministic_layout``: ``repartition(n, "user_id")`` + ``sortWithinPartitions`` by the key
  and all other columns, then a noop write;
- ``content_fingerprint``: the order-insensitive fingerprint of the scan;
- ``deterministic_layout + partition_fingerprints``: the layout and its per-partition
  order-sensitive fingerprints (``mapInArrow``);
- ``stable_split (3 parts)``: ``assign_split`` by key, then a noop write.

The data has 10 columns (a key with about 20 rows per value, an id, a timestamp, five doubles, an
int label, a string category). Each measurement runs ``--repeat`` times after one warm-up and
the median is reported, with its ratio to the plain repartition. The output ends with a markdown
table for README.

Usage::

    python -m benchmarks.bench_reproducible                      # 1M and 10M rows
    python -m benchmarks.bench_reproducible --rows 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

from pyspark.sql import functions as F  # noqa: E402

from pyspark_experiments import session  # noqa: E402
from pyspark_experiments.reproducible import (  # noqa: E402
    assign_split,
    content_fingerprint,
    deterministic_layout,
    partition_fingerprints,
)

KEY = "user_id"


def generate(spark, rows: int, path: str) -> None:
    df = spark.range(0, rows, 1, 8).select(
        (F.col("id") % max(rows // 20, 1)).alias(KEY),
        F.col("id").alias("event_id"),
        F.timestamp_micros(F.lit(1_700_000_000_000_000) + F.col("id") * 1_000).alias("ts"),
        *[(F.xxhash64("id", F.lit(i)) / float(2**63)).alias(f"f{i}") for i in range(5)],
        (F.col("id") % 2).cast("int").alias("label"),
        F.concat(F.lit("cat-"), (F.col("id") % 50).cast("string")).alias("category"),
    )
    # Rows in a shuffled order, as a table written by many jobs would be.
    df.orderBy(F.xxhash64("id")).write.mode("overwrite").parquet(path)


def noop(df) -> None:
    df.write.format("noop").mode("overwrite").save()


def measure(action, repeat: int) -> float:
    action()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_size(spark, rows: int, partitions: int, repeat: int, workdir: str) -> dict[str, float]:
    path = os.path.join(workdir, f"data-{rows}")
    generate(spark, rows, path)
    source = spark.read.parquet(path)
    layout = lambda: deterministic_layout(source, [KEY], partitions)  # noqa: E731
    cases = {
        "read only (scan, noop write)": lambda: noop(source),
        "plain `repartition(n, key)`": lambda: noop(source.repartition(partitions, KEY)),
        "`deterministic_layout`": lambda: noop(layout()),
        "`content_fingerprint`": lambda: content_fingerprint(source),
        "`deterministic_layout` + `partition_fingerprints`": lambda: partition_fingerprints(
            layout()
        ),
        "`stable_split` (assign 3 parts)": lambda: noop(
            assign_split(source, [KEY], [0.8, 0.1, 0.1], seed=1)
        ),
    }
    results = {}
    for name, action in cases.items():
        results[name] = measure(action, repeat)
        print(f"  {rows:>11,} rows  {name:<52} {results[name]:8.2f} s", flush=True)
    shutil.rmtree(path, ignore_errors=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="row counts"
    )
    parser.add_argument("--partitions", type=int, default=16, help="n in repartition(n, key)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (median)")
    parser.add_argument("--driver-memory", default="6g")
    args = parser.parse_args(argv)

    spark = session(
        app_name="bench-reproducible",
        master="local[2]",
        config={
            "spark.driver.memory": args.driver_memory,
            "spark.sql.shuffle.partitions": str(args.partitions),
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    import pyspark

    print(
        f"pyspark {pyspark.__version__}, local[2], {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, n = {args.partitions} partitions, median of {args.repeat}",
        flush=True,
    )
    workdir = tempfile.mkdtemp(prefix="bench-reproducible-")
    try:
        results = {
            rows: run_size(spark, rows, args.partitions, args.repeat, workdir) for rows in args.rows
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        spark.stop()

    baseline = "plain `repartition(n, key)`"
    columns = " | ".join(f"{rows:,} rows (s) | vs plain" for rows in args.rows)
    header = f"| operation | {columns} |"
    print()
    print(header)
    print("|---|" + "---:|---:|" * len(args.rows))
    for name in results[args.rows[0]]:
        cells = []
        for rows in args.rows:
            seconds, base = results[rows][name], results[rows][baseline]
            cells.append(f"{seconds:.2f} | {seconds / base:.2f}x")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
