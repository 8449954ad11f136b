"""Time to an answer on a small store: each command as a user starts it, Spark start included.

On the demo store (12 runs, two experiments: ``pyspark_experiments.demo``) this times, as fresh
processes the way a scheduler starts them (``python -m pyspark_experiments ...``, wall clock):

- ``report`` from the store, and ``analytics`` from the store into a Delta target;
- ``sync`` of the store into Delta tables, then ``report`` from those synced tables.

Each is run ``--repeat`` times (default 3); the best and the median are printed with the goal
(each answer within 30 s on an idle 2-core machine; the report from Delta no slower than from
the store) and the machine's load average, since a loaded machine inflates every figure.

Usage (from the repository root)::

    python -m benchmarks.bench_answer --repeat 3
    python -m benchmarks.bench_answer --tracking-uri sqlite:///path/mlflow.db   # another store
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

GOAL_SECONDS = 30.0


def run_command(args: list[str], env: dict[str, str] | None = None) -> float:
    """Run ``python -m pyspark_experiments <args>`` in a fresh process; its wall seconds.

    Raises ``RuntimeError`` with the command's output when it fails.

    Example::

        >>> run_command(["report", "--tracking-uri", "sqlite:///mlflow.db", "--out", "/tmp/r"])  # doctest: +SKIP
        21.4
    """
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pyspark_experiments", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def measure(tracking_uri: str, workdir: str, repeat: int = 3, master: str = "local[2]") -> dict[str, list[float]]:
    """Wall seconds of each answer, ``repeat`` times: ``report (store)``, ``analytics (store)``,
    ``sync``, ``report (Delta)``.

    Example::

        >>> measure("sqlite:///mlflow.db", "/tmp/answer", repeat=1)  # doctest: +SKIP
        {'report (store)': [21.4], 'analytics (store)': [19.8], 'sync': [24.0], 'report (Delta)': [20.1]}
    """
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    common = ["--master", master, "--no-progress"]
    times: dict[str, list[float]] = {"report (store)": [], "analytics (store)": [], "sync": [], "report (Delta)": []}
    for attempt in range(repeat):
        target = os.path.join(workdir, f"delta-{attempt}")
        times["report (store)"].append(
            run_command(["report", "--tracking-uri", tracking_uri, "--out", os.path.join(workdir, f"report-{attempt}"), *common], env))
        times["analytics (store)"].append(
            run_command(["analytics", "--tracking-uri", tracking_uri, "--target-path", os.path.join(workdir, f"analytics-{attempt}"),
                         *common], env))
        times["sync"].append(run_command(["sync", "--tracking-uri", tracking_uri, "--target-path", target, *common], env))
        times["report (Delta)"].append(
            run_command(["report", "--target-path", target, "--out", os.path.join(workdir, f"report-delta-{attempt}"), *common], env))
    return times


def summarize(times: dict[str, list[float]]) -> list[str]:
    """Lines for people: best and median per answer, the goal, the Delta/store ratio.

    Example::

        >>> summarize({"report (store)": [20.0, 22.0], "analytics (store)": [18.0],
        ...            "sync": [25.0], "report (Delta)": [19.0, 21.0]})[-1]
        'report from Delta / from the store (best): 0.95 (goal: at most 1.00, met)'
    """
    lines = []
    for name, seconds in times.items():
        best, median = min(seconds), statistics.median(seconds)
        goal = "" if name == "sync" else f"  (goal: at most {GOAL_SECONDS:.0f} s, {'met' if best <= GOAL_SECONDS else 'NOT met'})"
        lines.append(f"{name:<18} best {best:6.1f} s  median {median:6.1f} s  of {len(seconds)}{goal}")
    ratio = min(times["report (Delta)"]) / min(times["report (store)"])
    lines.append(f"report from Delta / from the store (best): {ratio:.2f} (goal: at most 1.00, {'met' if ratio <= 1.0 else 'NOT met'})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", help="a store to answer on (default: a fresh demo store)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-answer-") as workdir:
        tracking_uri = args.tracking_uri
        if not tracking_uri:
            from pyspark_experiments.demo import create_sample_store

            tracking_uri = f"sqlite:///{os.path.join(workdir, 'mlflow.db')}"
            saved = {key: os.environ.get(key) for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
            create_sample_store(tracking_uri, os.path.join(workdir, "artifacts"))
            for key, value in saved.items():  # mlflow.set_experiment() exports the last experiment
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        print(f"store: {tracking_uri if args.tracking_uri else 'the demo store (12 runs)'}; master {args.master}; "
              f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        times = measure(tracking_uri, workdir, args.repeat, args.master)
        for line in summarize(times):
            print(line)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
