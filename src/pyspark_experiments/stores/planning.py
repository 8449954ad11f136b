"""Partition sizing and packing, and the Arrow batch helpers every store reads with.

Example::

    >>> from pyspark_experiments.stores.base import Selection
    >>> [p.work for p in pack_partitions(Selection("runs", ("1",)), [("a", 3), ("b", 3)], 4)]
    [('a',), ('b',)]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pyarrow as pa

from .. import tables
from .base import Partition, Selection

# Rows per Arrow batch handed to Spark.
BATCH_ROWS = 65_536


def batches_from_columns(table: str, columns: dict[str, Sequence]) -> Iterator[pa.RecordBatch]:
    """Turn column lists into record batches of ``table``'s schema, ``BATCH_ROWS`` at a time.

    Example::

        >>> cols = {"experiment_id": ["1"], "run_id": ["r"], "key": ["k"], "value": ["v"]}
        >>> next(batches_from_columns("params", cols)).num_rows
        1
    """
    schema = tables.arrow_schema(table)
    rows = len(columns[schema.names[0]]) if columns else 0
    if rows == 0:
        return
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    batch_table = pa.Table.from_arrays(arrays, schema=schema)
    yield from batch_table.to_batches(max_chunksize=BATCH_ROWS)


def chunk(items: Sequence, size: int) -> list[Sequence]:
    """Split ``items`` into consecutive chunks of at most ``size``.

    Example::

        >>> chunk([1, 2, 3], 2)
        [[1, 2], [3]]
    """
    size = max(1, int(size))
    return [items[i:i + size] for i in range(0, len(items), size)]


def ms_to_us(value) -> int | None:
    """MLflow's epoch milliseconds as Arrow's microseconds (``None`` stays ``None``)."""
    return None if value is None else int(value) * 1000


# Metric points per partition when the user sets none (SQL and file stores): below about a
# million, each Spark task's fixed cost dominates (measured at L on 2 cores); a smaller history
# is still cut into a few partitions of at least a quarter million, so that a few cores share it.
_POINTS_PER_PARTITION = 1_000_000
_MIN_POINTS_PER_PARTITION = 250_000
_MIN_PARTITIONS = 4


def partition_size(total: int, largest: int, smallest: int) -> int:
    """Rows per partition for ``total`` rows when option ``partitionSize`` is not set:
    ``largest``, or for fewer rows a quarter of them (so that a few cores share them), but at
    least ``smallest``.

    Example::

        >>> partition_size(20_000, 5_000, 1_000), partition_size(8_000, 5_000, 1_000), partition_size(10, 5_000, 1_000)
        (5000, 2000, 1000)
    """
    return max(smallest, min(largest, math.ceil(total / _MIN_PARTITIONS)))


def default_partition_points(total: int) -> int:
    """Metric points per partition for a history of ``total`` points, when option
    ``partitionSize`` is not set.

    Example::

        >>> default_partition_points(10_000_000), default_partition_points(1_000_000), default_partition_points(10)
        (1000000, 250000, 250000)
    """
    return partition_size(total, _POINTS_PER_PARTITION, _MIN_POINTS_PER_PARTITION)


def pack_partitions(selection: Selection, units: list[tuple[object, int]], default_rows: int) -> list[Partition]:
    """Group work ``units`` (item, estimated rows) into partitions of about the target size.

    Units keep their order, so a run's keys stay together where they fit; a unit larger than the
    target gets a partition of its own.

    Example::

        >>> s = Selection("metrics", ("1",), rows_per_partition=10)
        >>> [len(p.work) for p in pack_partitions(s, [("a", 6), ("b", 6), ("c", 30)], 10)]
        [1, 1, 1]
    """
    total = sum(rows for _, rows in units)
    target = selection.rows_per_partition or default_rows
    if selection.num_partitions:
        target = max(1, math.ceil(total / selection.num_partitions))
    partitions: list[Partition] = []
    current: list = []
    current_rows = 0
    for item, rows in units:
        if current and current_rows + rows > target:
            partitions.append(Partition(len(partitions), selection, tuple(current)))
            current, current_rows = [], 0
        current.append(item)
        current_rows += rows
    if current:
        partitions.append(Partition(len(partitions), selection, tuple(current)))
    return partitions


def metric_units(selection: Selection, counts, default_rows: int) -> list[tuple[tuple[object, str | None], int]]:
    """Plan units for the metric history from (run, key, points) counts.

    A run whose admitted history fits in one partition is one unit ``(run, None)``, read with
    one query or folder scan; a bigger run is split into one unit per key ``(run, key)``.

    Example::

        >>> s = Selection("metrics", ("1",), rows_per_partition=100)
        >>> metric_units(s, [("a", "loss", 10), ("a", "acc", 10), ("b", "loss", 500), ("b", "acc", 5)], 1000)
        [(('a', None), 20), (('b', 'acc'), 5), (('b', 'loss'), 500)]
    """
    target = selection.rows_per_partition or default_rows
    by_run: dict[object, list[tuple[str, int]]] = {}
    for run, key, points in counts:
        if selection.admits_metric_key(key):
            by_run.setdefault(run, []).append((key, int(points)))
    total = sum(points for keys in by_run.values() for _, points in keys)
    if selection.num_partitions:
        target = max(1, math.ceil(total / selection.num_partitions))
    units = []
    for run in sorted(by_run):
        keys = sorted(by_run[run])
        points = sum(p for _, p in keys)
        if points > target and len(keys) > 1:
            units.extend(((run, key), p) for key, p in keys)
        else:
            units.append(((run, None), points))
    return units
