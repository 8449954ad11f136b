"""Reproducible training inputs: a deterministic layout, fingerprints, stable splits and shards,
and Delta tables pinned at a version and recorded on an MLflow run.

Training on Spark can give different results on the same data: row order and partitioning
change from run to run (a shuffle, a different number of input files, adaptive query execution),
and ``randomSplit`` with a fixed seed is only stable while they do not. The helpers here fix the
layout and tie a training input to the exact data it came from:

- :func:`deterministic_layout`: ``repartition`` by a hash of the key columns into an explicit
  number of partitions, then ``sortWithinPartitions`` by the keys and every other column.
  Partition contents and row order become a pure function of the data.
- :func:`content_fingerprint` (order-insensitive) and :func:`partition_fingerprints` /
  :func:`layout_fingerprint` (order-sensitive, per partition), computed on the executors.
- :func:`stable_split` / :func:`assign_split`: train/validation/test by a hash of the key
  columns and a seed, never by ``rand()``; :func:`stable_shard`: the rows of one worker
  (rank, world size) of a distributed training job.
- :func:`read_pinned`: a Delta table at an explicit (or the current, returned) version;
  :func:`log_training_input`: table, version, fingerprint, row count and layout recorded on an
  MLflow run as a dataset input and tags (mlflow is an optional extra).

Example::

    >>> from pyspark_experiments import session
    >>> from pyspark_experiments.reproducible import (
    ...     deterministic_layout, layout_fingerprint, read_pinned, stable_split)
    >>> spark = session(master="local[2]")
    >>> df, version = read_pinned(spark, "/data/events")            # pinned at the current version
    >>> train, test = stable_split(df, ["user_id"], [0.8, 0.2], seed=7)
    >>> train = deterministic_layout(train, ["user_id"], 8)
    >>> layout_fingerprint(train)                                   # the same on every run
    '5b0c9d...'
"""

from __future__ import annotations

from .fingerprints import PartitionFingerprint, content_fingerprint, layout_fingerprint, partition_fingerprints
from .layout import deterministic_layout
from .pinned import TAG_PREFIX, PinnedTable, log_training_input, read_pinned
from .splits import assign_split, stable_shard, stable_split

__all__ = [
    "PartitionFingerprint",
    "PinnedTable",
    "TAG_PREFIX",
    "assign_split",
    "content_fingerprint",
    "deterministic_layout",
    "layout_fingerprint",
    "log_training_input",
    "partition_fingerprints",
    "read_pinned",
    "stable_shard",
    "stable_split",
]
