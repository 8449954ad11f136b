"""Fingerprints of a DataFrame: its content (order-insensitive) and its layout (per partition, in order).

Example::

    >>> content_fingerprint(df) == content_fingerprint(df.repartition(7))  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, NamedTuple

from pyspark.sql import functions as F

from .columns import HIDDEN_PREFIX, row_hash_parts, salted_hash, schema_of, schema_signature

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

# Version markers mixed into every fingerprint: bump them if the row serialization changes.
_CONTENT_VERSION = "pse-content-v1"
_LAYOUT_VERSION = b"pse-layout-v1"
_LANE_SALTS = ("pse-lane-1", "pse-lane-2")


class PartitionFingerprint(NamedTuple):
    """One partition's order-sensitive fingerprint: ``(partition, rows, fingerprint)``."""

    partition: int
    rows: int
    fingerprint: str


def content_digest(df: DataFrame) -> tuple[str, int]:
    """:func:`content_fingerprint` and the row count of ``df``, from the one Spark job.

    Example::

        >>> content_digest(spark.range(3))  # doctest: +SKIP
        ('6c1f...', 3)
    """
    schema = schema_of(df)
    parts = row_hash_parts(schema)
    mask = F.lit(0xFFFFFFFF).cast("long")
    sums = []
    for lane, salt in enumerate(_LANE_SALTS):
        h = F.col(f"{HIDDEN_PREFIX}h{lane}")
        sums.append(F.sum(h.bitwiseAND(mask)).alias(f"lo{lane}"))
        sums.append(F.sum(F.shiftrightunsigned(h, 32)).alias(f"hi{lane}"))
    hashed = df.select(
        *[salted_hash(salt, parts).alias(f"{HIDDEN_PREFIX}h{i}") for i, salt in enumerate(_LANE_SALTS)]
    )
    # Sums of 32-bit halves cannot overflow a long below 2**31 rows (ANSI mode would raise),
    # and recombine exactly into the sum of the 64-bit hashes modulo 2**64.
    row = hashed.agg(F.count(F.lit(1)).alias("rows"), *sums).collect()[0]
    lanes = [
        ((row[f"hi{lane}"] or 0) * 2**32 + (row[f"lo{lane}"] or 0)) % 2**64
        for lane in range(len(_LANE_SALTS))
    ]
    text = "\n".join(
        [_CONTENT_VERSION, schema_signature(schema), str(row["rows"])]
        + [f"{lane:016x}" for lane in lanes]
    )
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest(), int(row["rows"])


def content_fingerprint(df: DataFrame) -> str:
    """An order-insensitive fingerprint of ``df``'s content: 32 hex digits.

    Equal for any two DataFrames holding the same multiset of rows under the same column names
    and types, however they are partitioned or ordered (and whatever the column order);
    different, up to a 128-bit hash collision, when any value, row count, column name or type
    differs. Each row is hashed on the executors (two salted ``xxhash64`` of a canonical form
    of every column: nulls, -0.0 and NaN, maps in any entry order, timestamps in any session
    time zone are handled) and the hashes are added modulo 2**64; only a few numbers reach the
    driver. One Spark job.

    Example::

        >>> df = spark.createDataFrame([(1, 0.5), (2, None)], "id long, x double")
        >>> content_fingerprint(df) == content_fingerprint(df.repartition(7).orderBy("x"))
        True
        >>> content_fingerprint(df) == content_fingerprint(df.limit(1))
        False
    """
    return content_digest(df)[0]


def partition_fingerprints(df: DataFrame) -> list[PartitionFingerprint]:
    """An order-sensitive fingerprint of each partition of ``df``, computed on the executors.

    Returns ``[(partition, rows, fingerprint), ...]`` sorted by partition id, one entry per
    partition including empty ones; the fingerprint (32 hex digits) changes when any row, or
    the order of the rows in that partition, changes. Two DataFrames with equal lists have the
    same rows in the same partitions in the same order: use it to prove two runs saw the same
    layout. Rows are hashed as in :func:`content_fingerprint`; each partition folds its row
    hashes in order (BLAKE2b) in ``mapInArrow``, so only one short row per partition reaches the
    driver. Running it executes ``df`` once.

    Example::

        >>> df = spark.range(100).withColumnRenamed("id", "user_id")
        >>> a = deterministic_layout(df.repartition(3), ["user_id"], 4)
        >>> b = deterministic_layout(df.repartition(9), ["user_id"], 4)
        >>> partition_fingerprints(a) == partition_fingerprints(b)
        True
        >>> partition_fingerprints(a)[0]
        PartitionFingerprint(partition=0, rows=..., fingerprint='...')
    """
    schema = schema_of(df)
    parts = row_hash_parts(schema)
    signature = schema_signature(schema).encode("utf-8")
    hashed = df.select(
        *[salted_hash(salt, parts).alias(f"h{i}") for i, salt in enumerate(_LANE_SALTS)]
    )

    # A closure (pickled by value) so executors need only pyarrow and numpy, not this package.
    def fold(batches):
        import hashlib as _hashlib

        import numpy as np
        import pyarrow as pa
        from pyspark import TaskContext

        digest = _hashlib.blake2b(digest_size=16, person=_LAYOUT_VERSION)
        digest.update(signature)
        rows = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            lanes = [batch.column(i).to_numpy(zero_copy_only=False) for i in range(2)]
            # Row-major (h0, h1) pairs: the byte stream does not depend on batch boundaries.
            digest.update(np.column_stack(lanes).astype("<i8", copy=False).tobytes())
            rows += batch.num_rows
        yield pa.RecordBatch.from_pydict(
            {
                "partition": [TaskContext.get().partitionId()],
                "rows": [rows],
                "fingerprint": [digest.hexdigest()],
            },
            schema=pa.schema(
                [("partition", pa.int64()), ("rows", pa.int64()), ("fingerprint", pa.string())]
            ),
        )

    result = hashed.mapInArrow(fold, "partition long, rows long, fingerprint string").collect()
    return sorted(
        PartitionFingerprint(int(r["partition"]), int(r["rows"]), r["fingerprint"]) for r in result
    )


def layout_fingerprint(df: DataFrame) -> str:
    """One order-sensitive fingerprint (32 hex digits) of ``df``'s whole layout: which rows are
    in which partition, in which order. It combines :func:`partition_fingerprints`.

    Example::

        >>> df = spark.range(1000).selectExpr("id % 10 AS user_id", "id")
        >>> layout_fingerprint(deterministic_layout(df, ["user_id"], 4)) == layout_fingerprint(
        ...     deterministic_layout(df.repartition(5), ["user_id"], 4))
        True
    """
    digest = hashlib.blake2b(digest_size=16, person=_LAYOUT_VERSION)
    for p in partition_fingerprints(df):
        digest.update(f"{p.partition}:{p.rows}:{p.fingerprint}\n".encode("ascii"))
    return digest.hexdigest()
