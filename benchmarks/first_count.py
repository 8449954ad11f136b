"""Where the first ``count()`` of a fresh Spark session goes, for a Python data source.

Starts a ``local[2]`` session, then times ``load()`` and ``count()`` of a store's table as a
user's first query would run them, twice (the second is warm). While they run it records each
Python process Spark starts (its command line says what for: finding ``pyspark_*`` sources,
creating the source, planning the read, running tasks) and afterwards prints the job's tasks
from Spark's REST API. A one-row Python data source defined here shows the same steps with no
store at all (``--table tiny``), in its own fresh session.

    python -m benchmarks.first_count --uri sqlite:///benchmarks/.stores/L/mlflow.db --table metrics
    python -m benchmarks.first_count --table tiny

Times are seconds from the start of the first ``load()``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from datetime import datetime

from benchmarks import processes


class ProcessWatcher:
    """Records the processes started below this one: when first seen, and their command line."""

    def __init__(self, interval: float = 0.01) -> None:
        self.started = time.perf_counter()
        self.seen: dict[int, tuple[float, str]] = {}
        self._known = {pid for pid, _ in processes.descendants(os.getpid())}
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ProcessWatcher:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, int, str]]:
        """``(seconds after start, pid, command line)`` of each new process, in order."""
        self._stop.set()
        self._thread.join()
        return sorted((at, pid, command) for pid, (at, command) in self.seen.items())

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, _ in processes.descendants(os.getpid()):
                if pid not in self._known and pid not in self.seen:
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as handle:
                            command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
                    except OSError:
                        continue  # ended before we looked
                    self.seen[pid] = (time.perf_counter() - self.started, command)
            self._stop.wait(self._interval)


def tiny_source():
    """A Python data source of one row: what Spark charges for any such source."""
    from pyspark.sql.datasource import DataSource, DataSourceReader

    class TinyReader(DataSourceReader):
        def read(self, partition):
            yield (1,)

    class Tiny(DataSource):
        @classmethod
        def name(cls):
            return "tiny"

        def schema(self):
            return "a int"

        def reader(self, schema):
            return TinyReader()

    return Tiny


def spark_tasks(spark, since: float) -> list[dict]:
    """Every task Spark's REST API knows of this application: its stage, launch (seconds after
    the wall-clock ``since``) and duration."""
    base = spark.sparkContext.uiWebUrl
    app = json.load(urllib.request.urlopen(f"{base}/api/v1/applications"))[0]["id"]
    stages = json.load(urllib.request.urlopen(f"{base}/api/v1/applications/{app}/stages?details=true"))
    found = []
    for stage in stages:
        for task in stage.get("tasks", {}).values():
            launched = datetime.strptime(task["launchTime"].replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
            found.append({"stage": stage["stageId"], "task": task["index"],
                          "launch_s": launched.timestamp() - since, "duration_s": task["duration"] / 1000})
    return sorted(found, key=lambda t: (t["launch_s"], t["stage"], t["task"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uri", help="the tracking URI to read (not needed for --table tiny)")
    parser.add_argument("--table", default="metrics", help="the table to count, or 'tiny' for the one-row source")
    args = parser.parse_args(argv)
    if args.table != "tiny" and not args.uri:
        parser.error("--uri is needed unless --table tiny")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import pyspark_experiments

    spark = pyspark_experiments.session(app_name="first-count", master="local[2]", delta=False,
                                        config={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "true"})
    spark.sparkContext.setLogLevel("ERROR")
    if args.table == "tiny":
        spark.dataSource.register(tiny_source())

    def load():
        if args.table == "tiny":
            return spark.read.format("tiny").load()
        return spark.read.format("experiments").option("trackingUri", args.uri).option("table", args.table).load()

    since = time.time()
    watcher = ProcessWatcher().start()
    marks = []
    for attempt in ("first", "second"):
        frame = load()
        marks.append((time.perf_counter() - watcher.started, f"{attempt} load() returned"))
        rows = frame.count()
        marks.append((time.perf_counter() - watcher.started, f"{attempt} count() returned ({rows:,} rows)"))
    started = watcher.stop()
    tasks = spark_tasks(spark, since)
    spark.stop()

    events = [(at, f"process {pid}: {command[:100]}") for at, pid, command in started]
    events += marks
    events += [(t["launch_s"], f"stage {t['stage']} task {t['task']} launched, ran {t['duration_s']:.2f} s")
               for t in tasks]
    for at, what in sorted(events):
        print(f"{at:7.2f}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
