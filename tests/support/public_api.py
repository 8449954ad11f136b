"""Exercise every public read-side API on one session and return comparable results.

Used by ``tests/integration/datasource/test_connect.py`` on a classic session and, in a subprocess, on a
Spark Connect session: both must give the same answers.

Example::

    >>> results = exercise(spark, {"sqlite": "sqlite:///...", "file": "/.../mlruns"}, "/tmp/work")
"""

from __future__ import annotations

import json
import os

from pyspark_experiments import tables


def _rows(df) -> list[str]:
    return sorted(json.dumps(row.asDict(recursive=True), sort_keys=True, default=str) for row in df.collect())


def exercise(spark, uris: dict[str, str], workdir: str) -> dict:
    """Reads of every table from each store, a metrics stream into Delta, the reproducibility
    helpers on the Delta result (and log_training_input into a SQLite store in ``workdir``)."""
    from pyspark_experiments.reproducible import (
        content_fingerprint,
        deterministic_layout,
        layout_fingerprint,
        log_training_input,
        partition_fingerprints,
        read_pinned,
        stable_shard,
        stable_split,
    )

    results: dict = {}
    for kind, uri in sorted(uris.items()):
        for table in tables.TABLE_NAMES:
            df = spark.read.format("experiments").option("trackingUri", uri).option("table", table).option("viewType", "ALL").load()
            results[f"{kind}/{table}"] = _rows(df)
        stream_path = os.path.join(workdir, f"stream-{kind}")
        query = (
            spark.readStream.format("experiments").option("trackingUri", uri).option("table", "metrics").load()
            .writeStream.format("delta").option("checkpointLocation", os.path.join(workdir, f"chk-{kind}"))
            .trigger(availableNow=True).start(stream_path)
        )
        query.awaitTermination()
        results[f"{kind}/stream-metrics"] = _rows(spark.read.format("delta").load(stream_path))

    pinned, version = read_pinned(spark, os.path.join(workdir, "stream-sqlite"))
    laid = deterministic_layout(pinned, ["run_id", "step"], 3)
    train, test = stable_split(pinned, ["run_id", "step"], [0.5, 0.5], seed=7)
    results["reproducible"] = {
        "version": version,
        "content": content_fingerprint(pinned),
        "layout": layout_fingerprint(laid),
        "partitions": [list(p) for p in partition_fingerprints(laid)],
        "split": [_rows(train), _rows(test)],
        "shard": _rows(stable_shard(pinned, ["run_id"], 1, 2, balanced=True)),
    }
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{os.path.join(workdir, 'log.db')}")
    try:
        with mlflow.start_run():
            tags = log_training_input(laid, os.path.join(workdir, "stream-sqlite"), version, keys=["run_id", "step"], num_partitions=3)
    finally:
        mlflow.set_tracking_uri(None)
    results["reproducible"]["logged"] = {k: v for k, v in tags.items() if not k.endswith(".table")}
    return results
