"""A real Spark standalone cluster on loopback: one master, two workers, reading one store.

The workers are separate JVMs with their own Python workers, so nothing read on them can come
from the driver's memory: the result equal to a local read shows planning ships everything
the executors need.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from support.ports import free_port

pytestmark = pytest.mark.slow


def _spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def _wait_for_port(port: int, process: subprocess.Popen, log_path: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Spark process exited early; log:\n{open(log_path).read()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"port {port} not open after {seconds} s; log:\n{open(log_path).read()[-3000:]}")


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """Start a master and two one-core workers with Spark's own launchers; stop them after."""
    logs = tmp_path_factory.mktemp("cluster-logs")
    spark_class = os.path.join(_spark_home(), "bin", "spark-class")
    env = {**os.environ, "SPARK_HOME": _spark_home(), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    master_port = free_port()
    processes = []

    def launch(name, *args):
        log_path = str(logs / f"{name}.log")
        handle = open(log_path, "w")
        process = subprocess.Popen([spark_class, *args], stdout=handle, stderr=subprocess.STDOUT, env=env)
        processes.append(process)
        return process, log_path

    try:
        master, master_log = launch(
            "master", "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(master_port), "--webui-port", str(free_port()),
        )
        _wait_for_port(master_port, master, master_log)
        for number in (1, 2):
            worker_port = free_port()
            worker, worker_log = launch(
                f"worker{number}", "org.apache.spark.deploy.worker.Worker",
                "--host", "127.0.0.1", "--port", str(worker_port), "--webui-port", str(free_port()),
                "--cores", "1", "--memory", "1g", "--work-dir", str(logs / f"work{number}"),
                f"spark://127.0.0.1:{master_port}",
            )
            _wait_for_port(worker_port, worker, worker_log)
        yield f"spark://127.0.0.1:{master_port}"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


CLUSTER_READ = textwrap.dedent(
    """
    import json, os, sys
    from pyspark.sql import SparkSession
    master, uri = sys.argv[1:3]
    spark = (SparkSession.builder.master(master).appName("cluster-read")
             .config("spark.executor.memory", "768m").config("spark.cores.max", "2")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    deadline = __import__("time").monotonic() + 120
    while spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() < 3:
        assert __import__("time").monotonic() < deadline, "executors did not register"
        __import__("time").sleep(0.5)
    result = {}
    for table in ("runs", "metrics"):
        df = (spark.read.format("experiments").option("trackingUri", uri).option("table", table)
              .option("viewType", "ALL").option("partitionSize", "2" if table == "runs" else "40").load())
        rows = sorted(json.dumps(r.asDict(recursive=True), sort_keys=True, default=str) for r in df.collect())
        # The executor JVM (parent of each Python worker) that read each partition.
        readers = df.rdd.mapPartitions(lambda rows: [os.getppid()]).distinct().collect()
        result[table] = {"rows": rows, "partitions": df.rdd.getNumPartitions(), "readers": len(readers)}
    print("RESULT " + json.dumps(result))
    spark.stop()
    """
)


def test_cluster_read_equals_local_read(spark, standalone_cluster, reference_stores_for_cluster):
    uri = reference_stores_for_cluster
    result = subprocess.run(
        [sys.executable, "-c", CLUSTER_READ, standalone_cluster, uri],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable},
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stderr[-4000:]
    for table, cluster in json.loads(lines[0][len("RESULT "):]).items():
        local = (
            spark.read.format("experiments").option("trackingUri", uri).option("table", table)
            .option("viewType", "ALL").load()
        )
        expected = sorted(json.dumps(r.asDict(recursive=True), sort_keys=True, default=str) for r in local.collect())
        assert cluster["partitions"] >= 2, table
        assert cluster["readers"] == 2, f"{table}: both workers should have read partitions"
        assert cluster["rows"] == expected and expected, table


@pytest.fixture(scope="module")
def reference_stores_for_cluster(tmp_path_factory):
    """A SQLite store with a dozen runs and their metric history, written by real mlflow."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("cluster-store")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    for name in ("left", "right"):
        experiment_id = client.create_experiment(name, artifact_location=str(root / name))
        for i in range(6):
            run_id = client.create_run(experiment_id, run_name=f"{name}-{i}").info.run_id
            for step in range(20):
                client.log_metric(run_id, "loss", 1.0 / (step + i + 1), step=step, timestamp=1_700_000_000_000 + step)
            client.log_param(run_id, "i", str(i))
            client.set_terminated(run_id, "FINISHED" if i % 3 else "FAILED")
    return uri
