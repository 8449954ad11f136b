"""Benchmark the ``artifacts`` table against a loop of ``MlflowClient.list_artifacts``.

The S store (2,000 runs, SQLite; made by ``generate_store`` without artifact files if missing)
gets a few artifact files per run in its local artifact folders (``model/MLmodel``,
``model/model.pkl``, ``eval/metrics.json``, ``eval/table.csv``: 6 entries with the two
folders). Then, in one run:

1. ours: ``spark.read.format("experiments").option("table", "artifacts").load()`` over every
   run, ``collect()`` in a warm local SparkSession (best of ``--repeat``);
2. mlflow: ``search_runs`` for the run ids, then ``list_artifacts`` walked recursively for each run
   (what a user has to write today), best of ``--mlflow-repeat``; with ``--mlflow-sample-runs N``
   only N runs spread over the store are walked and the time is extrapolated linearly by the
   number of runs (printed as **extrapolated**);

and prints both times and the ratio (mlflow / ours). Both answers are compared: the benchmark
fails if they differ.

Usage::

    python -m benchmarks.bench_artifacts                 # S store in benchmarks/.stores/S
    python -m benchmarks.bench_artifacts --store /tmp/S --repeat 3
    python -m benchmarks.bench_artifacts --mlflow-sample-runs 400   # a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = {
    "model/MLmodel": b"flavors:\n  sklearn:\n    pickled_model: model.pkl\n",
    "model/model.pkl": bytes(range(256)) * 4,
    "eval/metrics.json": b'{"accuracy": 0.9}\n',
    "eval/table.csv": b"label,count\ncat,3\ndog,5\n",
}


def ensure_store(store: str) -> str:
    """The SQLite S store at ``store`` (generated if missing), with artifact files for every run."""
    database = os.path.join(store, "mlflow.db")
    if not os.path.exists(database):
        subprocess.run(
            [sys.executable, "-m", "benchmarks.generate_store", "--size", "S", "--kind", "sqlite", "--out", store],
            check=True, cwd=os.path.dirname(HERE),
        )
    marker = os.path.join(store, "artifacts-written")
    if not os.path.exists(marker):
        connection = sqlite3.connect(database)
        uris = [row[0] for row in connection.execute("SELECT artifact_uri FROM runs")]
        connection.close()
        for uri in uris:
            for relative, data in FILES.items():
                path = os.path.join(uri, relative)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as handle:
                    handle.write(data)
        with open(marker, "w") as handle:
            handle.write(f"{len(uris)} runs\n")
    return f"sqlite:///{os.path.abspath(database)}"


def time_ours(uri: str, repeat: int) -> tuple[float, set]:
    from pyspark_experiments import session

    spark = session(app_name="bench-artifacts", master="local[2]", config={"spark.log.level": "ERROR"})
    reader = spark.read.format("experiments").option("trackingUri", uri).option("table", "artifacts")
    reader.load().count()  # warm up: Python workers, imports
    best, rows = float("inf"), []
    for _ in range(repeat):
        start = time.perf_counter()
        rows = reader.load().collect()
        best = min(best, time.perf_counter() - start)
    spark.stop()
    return best, {(r.run_id, r.path, r.is_dir, r.file_size) for r in rows}


def time_mlflow(uri: str, repeat: int, sample: int | None = None) -> tuple[float, set, int, int]:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    def walk(client, run_id, path=None):
        found = set()
        for info in client.list_artifacts(run_id, path):
            found.add((run_id, info.path, info.is_dir, None if info.is_dir else info.file_size))
            if info.is_dir:
                found |= walk(client, run_id, info.path)
        return found

    best, answer, total, walked = float("inf"), set(), 0, 0
    for _ in range(repeat):
        start = time.perf_counter()
        client = MlflowClient(tracking_uri=uri)
        experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
        run_ids, page = [], None
        while True:
            runs = client.search_runs(experiments, max_results=10_000, page_token=page)
            run_ids.extend(run.info.run_id for run in runs)
            page = runs.token
            if not page:
                break
        total = len(run_ids)
        chosen = run_ids if not sample or sample >= total else run_ids[:: max(1, total // sample)][:sample]
        answer = set()
        for run_id in chosen:
            answer |= walk(client, run_id)
        walked = len(chosen)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed * total / walked if walked else elapsed)
        print(f"mlflow: {walked} of {total} runs walked in {elapsed:.1f} s", flush=True)
    return best, answer, total, walked


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=os.path.join(HERE, ".stores", "S"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mlflow-repeat", type=int, default=1)
    parser.add_argument("--mlflow-sample-runs", type=int, default=None)
    args = parser.parse_args(argv)
    uri = ensure_store(args.store)
    ours, our_rows = time_ours(uri, args.repeat)
    print(f"ours: {len(our_rows):,} entries in {ours:.2f} s (best of {args.repeat})", flush=True)
    theirs, their_rows, total, walked = time_mlflow(uri, args.mlflow_repeat, args.mlflow_sample_runs)
    if walked < total:
        sampled = {row[0] for row in their_rows}
        our_rows = {row for row in our_rows if row[0] in sampled}
    if our_rows != their_rows:
        print(f"MISMATCH: ours {len(our_rows)} rows, mlflow {len(their_rows)}", file=sys.stderr)
        return 1
    label = "" if walked == total else f" (extrapolated from {walked} runs)"
    result = {
        "store": uri, "runs": total, "mlflow_runs_walked": walked, "ours_s": round(ours, 2),
        "mlflow_list_artifacts_loop_s": round(theirs, 2), "ratio": round(theirs / ours, 1),
    }
    print(f"| artifacts of {total:,} runs | ours {ours:.2f} s | list_artifacts loop {theirs:.2f} s{label} | "
          f"mlflow / ours {theirs / ours:.1f}x |", flush=True)
    with open(os.path.join(args.store, "results-artifacts.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
