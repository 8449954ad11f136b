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

import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DateType,
    DoubleType,
    FloatType,
    MapType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
    UserDefinedType,
    VariantType,
)

from .errors import ConfigurationError, MissingDependencyError
from .jobs.target import is_table_path, latest_table_version, table_path

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

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

#: Prefix of the run tags :func:`log_training_input` sets.
TAG_PREFIX = "pyspark_experiments.input"

# Version markers mixed into every fingerprint: bump them if the row serialization changes.
_CONTENT_VERSION = "pse-content-v1"
_LAYOUT_VERSION = b"pse-layout-v1"
_LANE_SALTS = ("pse-lane-1", "pse-lane-2")
_HIDDEN = "__pse_"
# to_json options pinned so that no session setting changes the serialization.
_JSON_OPTIONS = {
    "ignoreNullFields": "true",
    "timeZone": "UTC",
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "timestampNTZFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS",
    "dateFormat": "yyyy-MM-dd",
}


# --------------------------------------------------------------------------------------------
# Column canonicalization: what to sort and hash for each data type
# --------------------------------------------------------------------------------------------


def _col(name: str) -> Column:
    """A top-level column by its exact name (dots and backticks in names are fine)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _contains(dtype: DataType, predicate) -> bool:
    if predicate(dtype):
        return True
    if isinstance(dtype, ArrayType):
        return _contains(dtype.elementType, predicate)
    if isinstance(dtype, MapType):
        return _contains(dtype.keyType, predicate) or _contains(dtype.valueType, predicate)
    if isinstance(dtype, StructType):
        return any(_contains(f.dataType, predicate) for f in dtype.fields)
    return False


def _is_unorderable(dtype: DataType) -> bool:
    """Maps and variants can be neither sorted nor hashed by Spark."""
    return _contains(dtype, lambda t: isinstance(t, (MapType, VariantType)))


def _is_collated(dtype: DataType) -> bool:
    return isinstance(dtype, StringType) and getattr(dtype, "collation", "UTF8_BINARY") not in (
        "UTF8_BINARY",
        None,
    )


def _ties_in_order(dtype: DataType) -> bool:
    """Types whose distinct values Spark's ordering can call equal (-0.0 and 0.0; 'A' and 'a'
    under a case-insensitive collation)."""
    return _contains(dtype, lambda t: isinstance(t, (FloatType, DoubleType)) or _is_collated(t))


def _is_complex(dtype: DataType) -> bool:
    return isinstance(dtype, (ArrayType, MapType, StructType, UserDefinedType, VariantType))


def _needs_canonical(dtype: DataType) -> bool:
    return _contains(
        dtype,
        lambda t: isinstance(
            t, (MapType, VariantType, TimestampType, TimestampNTZType, DateType)
        ),
    )


_NTZ_EPOCH = "1970-01-01 00:00:00"


def _canonical(c: Column, dtype: DataType) -> Column:
    """An orderable, hashable form of ``c`` that does not depend on any session setting.

    Maps become their entries sorted by key, variants their JSON text, timestamps and dates
    numbers (microseconds, days since the epoch); other values are kept as they are.
    """
    if isinstance(dtype, TimestampType):
        return F.unix_micros(c)
    if isinstance(dtype, TimestampNTZType):
        return F.timestamp_diff("MICROSECOND", F.lit(_NTZ_EPOCH).cast("timestamp_ntz"), c)
    if isinstance(dtype, DateType):
        return F.unix_date(c)
    if isinstance(dtype, VariantType):
        return F.to_json(c)
    if isinstance(dtype, MapType):
        key_type, value_type = dtype.keyType, dtype.valueType
        return F.array_sort(
            F.transform(
                F.map_entries(c),
                lambda e: F.struct(
                    _canonical(e["key"], key_type).alias("key"),
                    _canonical(e["value"], value_type).alias("value"),
                ),
            )
        )
    if isinstance(dtype, ArrayType):
        if not _needs_canonical(dtype.elementType):
            return c
        element_type = dtype.elementType
        return F.transform(c, lambda x: _canonical(x, element_type))
    if isinstance(dtype, StructType):
        if not _needs_canonical(dtype):
            return c
        fields = [_canonical(c[f.name], f.dataType).alias(f.name) for f in dtype.fields]
        return F.when(c.isNull(), F.lit(None)).otherwise(F.struct(*fields))
    return c


def _json(c: Column, dtype: DataType) -> Column:
    """A canonical JSON text of ``c``; never null (a null value gives ``{}``)."""
    return F.to_json(F.struct(_canonical(c, dtype).alias("v")), _JSON_OPTIONS)


def _negative_zero(c: Column) -> Column:
    """True for -0.0, false otherwise (Spark's hash and ordering treat -0.0 as 0.0)."""
    return F.when(c == 0, c.cast("string").startswith("-")).otherwise(F.lit(False))


def _hash_parts(name: str, dtype: DataType) -> list[Column]:
    """The values hashed for one column: enough to tell apart any two different values,
    including null from a missing value, -0.0 from 0.0 and 'A' from 'a' under a collation."""
    c = _col(name)
    if _is_complex(dtype):
        return [_json(c, dtype)]
    if isinstance(dtype, (FloatType, DoubleType)):
        return [c, c.isNull(), _negative_zero(c)]
    if _is_collated(dtype):
        return [c.cast("binary"), c.isNull()]
    return [c, c.isNull()]


def _tie_break(name: str, dtype: DataType) -> Column | None:
    """A sort key that separates values the column's own ordering calls equal."""
    c = _col(name)
    if isinstance(dtype, (FloatType, DoubleType)):
        return F.when(c == 0, c.cast("string"))  # '-0.0' < '0.0'; null for other values
    if _is_collated(dtype):
        return c.cast("binary")
    if _is_complex(dtype) and _ties_in_order(dtype):
        return _json(c, dtype)
    return None


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _schema_of(df: DataFrame) -> dict[str, DataType]:
    names = [f.name for f in df.schema.fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(
            f"df has duplicate column names {duplicates}: rename them first "
            "(e.g. with toDF or withColumnRenamed)"
        )
    hidden = [n for n in names if n.startswith(_HIDDEN)]
    if hidden:
        raise ConfigurationError(f"df has columns {hidden} whose prefix {_HIDDEN!r} is reserved")
    return {f.name: f.dataType for f in df.schema.fields}


def _resolve_keys(df: DataFrame, keys: str | Sequence[str], argument: str = "keys") -> list[str]:
    """Key names as they appear in ``df`` (exact match first, then a unique case-insensitive
    one); an unknown or repeated key is an error that names it."""
    if isinstance(keys, str):
        keys = [keys]
    if isinstance(keys, Column) or not isinstance(keys, Sequence):
        raise TypeError(f"{argument} must be a column name or a list of column names, got {keys!r}")
    keys = list(keys)
    if not keys:
        raise ConfigurationError(f"{argument} must name at least one column")
    columns = [f.name for f in df.schema.fields]
    resolved = []
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"{argument} must be column names (str), got {key!r}")
        if key in columns:
            resolved.append(key)
            continue
        matches = [c for c in columns if c.lower() == key.lower()]
        if len(matches) != 1:
            raise ConfigurationError(
                f"unknown key column {key!r} in {argument}: the DataFrame's columns are {columns}"
            )
        resolved.append(matches[0])
    repeated = sorted({k for k in resolved if resolved.count(k) > 1})
    if repeated:
        raise ConfigurationError(f"{argument} names column(s) {repeated} more than once")
    return resolved


def _check_int(value: Any, argument: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigurationError(f"{argument} must be >= {minimum}, got {value}")
    return value


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not -(2**63) <= seed < 2**63:
        raise ConfigurationError(f"seed must fit in 64 bits, got {seed}")
    return seed


def _schema_signature(schema: dict[str, DataType]) -> str:
    """Column names and types, in name order (nullability left out: it differs between routes
    to the same data)."""
    return ";".join(f"{name}:{schema[name].simpleString()}" for name in sorted(schema))


def _row_hash_parts(schema: dict[str, DataType], columns: Sequence[str] | None = None):
    names = sorted(schema) if columns is None else list(columns)
    parts: list[Column] = []
    for name in names:
        parts.extend(_hash_parts(name, schema[name]))
    return parts


def _salted_hash(salt: str, parts: list[Column], seed: int | None = None) -> Column:
    head = [F.lit(salt)] if seed is None else [F.lit(salt), F.lit(seed).cast("long")]
    return F.xxhash64(*head, *parts)


# --------------------------------------------------------------------------------------------
# Deterministic layout
# --------------------------------------------------------------------------------------------


def deterministic_layout(
    df: DataFrame, keys: str | Sequence[str], num_partitions: int
) -> DataFrame:
    """Lay ``df`` out so that each partition's rows and their order are a pure function of the data.

    Rows go to partition ``pmod(hash(keys), num_partitions)`` (``repartition(num_partitions,
    *keys)``: Spark's Murmur3 hash partitioning, which depends neither on how ``df`` was
    partitioned, nor on the order of its input files, nor on ``spark.sql.shuffle.partitions``;
    adaptive query execution does not coalesce a repartition with an explicit count). Within a
    partition rows are sorted by the keys, in the order given, then by **all other columns** in
    name order, so that keys that are not unique are still ordered deterministically: ties are
    broken by the whole row. Rows that are equal in every column are interchangeable.

    Values Spark's ordering calls equal are told apart: ``-0.0`` sorts before ``0.0`` and
    strings under a non-binary collation are ordered by their bytes; NaN sorts after every
    other value and nulls first. Columns Spark cannot sort or hash (maps, variants, and arrays
    or structs holding them) are ordered by a canonical form: a map by its entries sorted by
    key, a variant by its JSON text.

    The result has exactly ``num_partitions`` partitions (some may be empty) and the columns
    of ``df`` in their order. Keep it the last step before the data is consumed (``collect``,
    ``toPandas``, ``mapInPandas``, a write): a later shuffle (join, groupBy, distinct)
    reorders rows again. The layout depends on the column types as well as the values (an
    ``int`` and a ``long`` key hash differently): cast first if a route may change types.

    Example::

        >>> df = spark.createDataFrame([(2, "b"), (1, "a"), (2, "a")], "user_id long, item string")
        >>> laid = deterministic_layout(df, ["user_id"], 4)
        >>> laid.select(F.spark_partition_id()).distinct().count()
        4
        >>> [tuple(r) for r in laid.collect()]  # partitions in hash order, sorted within
        [(2, 'a'), (2, 'b'), (1, 'a')]
    """
    schema = _schema_of(df)
    key_names = _resolve_keys(df, keys)
    num_partitions = _check_int(num_partitions, "num_partitions", 1)

    rest = sorted(n for n in schema if n not in key_names)
    hidden: dict[str, Column] = {}
    partition_by: list[Column] = []
    primary: list[Column] = []
    tie_breaks: list[Column] = []
    for index, name in enumerate(key_names + rest):
        dtype = schema[name]
        if _is_unorderable(dtype):
            # Computed once per row before the shuffle: sort comparisons would otherwise
            # rebuild the canonical form for every comparison.
            hidden_name = f"{_HIDDEN}sort_{index}"
            hidden[hidden_name] = _canonical(_col(name), dtype)
            sort_key = F.col(hidden_name)
        else:
            sort_key = _col(name)
        if name in key_names:
            partition_by.append(sort_key)
        primary.append(sort_key.asc_nulls_first())
        tie_break = _tie_break(name, dtype)
        if tie_break is not None:
            tie_breaks.append(tie_break.asc_nulls_first())

    laid = df.withColumns(hidden) if hidden else df
    laid = laid.repartition(num_partitions, *partition_by).sortWithinPartitions(
        *primary, *tie_breaks
    )
    return laid.drop(*hidden) if hidden else laid


# --------------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------------


class PartitionFingerprint(NamedTuple):
    """One partition's order-sensitive fingerprint: ``(partition, rows, fingerprint)``."""

    partition: int
    rows: int
    fingerprint: str


def _content_digest(df: DataFrame) -> tuple[str, int]:
    schema = _schema_of(df)
    parts = _row_hash_parts(schema)
    mask = F.lit(0xFFFFFFFF).cast("long")
    sums = []
    for lane, salt in enumerate(_LANE_SALTS):
        h = F.col(f"{_HIDDEN}h{lane}")
        sums.append(F.sum(h.bitwiseAND(mask)).alias(f"lo{lane}"))
        sums.append(F.sum(F.shiftrightunsigned(h, 32)).alias(f"hi{lane}"))
    hashed = df.select(
        *[_salted_hash(salt, parts).alias(f"{_HIDDEN}h{i}") for i, salt in enumerate(_LANE_SALTS)]
    )
    # Sums of 32-bit halves cannot overflow a long below 2**31 rows (ANSI mode would raise),
    # and recombine exactly into the sum of the 64-bit hashes modulo 2**64.
    row = hashed.agg(F.count(F.lit(1)).alias("rows"), *sums).collect()[0]
    lanes = [
        ((row[f"hi{lane}"] or 0) * 2**32 + (row[f"lo{lane}"] or 0)) % 2**64
        for lane in range(len(_LANE_SALTS))
    ]
    text = "\n".join(
        [_CONTENT_VERSION, _schema_signature(schema), str(row["rows"])]
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
    return _content_digest(df)[0]


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
    schema = _schema_of(df)
    parts = _row_hash_parts(schema)
    signature = _schema_signature(schema).encode("utf-8")
    hashed = df.select(
        *[_salted_hash(salt, parts).alias(f"h{i}") for i, salt in enumerate(_LANE_SALTS)]
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


# --------------------------------------------------------------------------------------------
# Stable splits and shards
# --------------------------------------------------------------------------------------------


def _normalize_weights(weights) -> tuple[list[Any], list[float]]:
    """Labels (split names, or 0..k-1) and the cumulative upper bounds of each split in [0, 1)."""
    if isinstance(weights, Mapping):
        labels = list(weights.keys())
        values = list(weights.values())
        for label in labels:
            if not isinstance(label, str):
                raise TypeError(f"weights' keys must be split names (str), got {label!r}")
    elif isinstance(weights, Sequence) and not isinstance(weights, (str, bytes)):
        values = list(weights)
        labels = list(range(len(values)))
    else:
        raise TypeError(
            "weights must be a list of numbers or a mapping from split name to number, "
            f"got {weights!r}"
        )
    if not values:
        raise ConfigurationError("weights must hold at least one weight")
    for label, value in zip(labels, values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"weights[{label!r}] must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ConfigurationError(f"weights must be positive and finite: weights[{label!r}] = {value!r}")
    total = float(sum(values))
    bounds, cumulative = [], 0.0
    for value in values:
        cumulative += value
        bounds.append(cumulative / total)
    return labels, bounds


def _unit_hash(df: DataFrame, keys, salt: str, seed: int) -> tuple[Column, list[str]]:
    schema = _schema_of(df)
    key_names = _resolve_keys(df, keys)
    h = _salted_hash(salt, _row_hash_parts(schema, key_names), seed)
    # The top 53 bits as a double in [0, 1): exact, uniform.
    return F.shiftrightunsigned(h, 11).cast("double") / float(2**53), key_names


def assign_split(
    df: DataFrame,
    keys: str | Sequence[str],
    weights: Sequence[float] | Mapping[str, float],
    seed: int = 0,
    column: str = "split",
) -> DataFrame:
    """Add a column saying which split each row belongs to, by a hash of its key columns.

    Each row's split is a function of ``(seed, values of keys)`` only: it never depends on
    partitioning, row order or session settings, and rows sharing a key always land in the same
    split (no leakage of a user across train and test). The hash maps a row to ``u`` in
    ``[0, 1)`` and the row goes to the first split whose cumulative normalized weight exceeds
    ``u``, so split sizes follow the weights only approximately (by key, not by row). Nulls in
    keys are values like any other. With ``weights`` a list the column holds split indexes
    (int); with a mapping it holds the names.

    Example::

        >>> df = spark.range(1000).withColumnRenamed("id", "user_id")
        >>> parts = assign_split(df, "user_id", {"train": 0.8, "test": 0.2}, seed=7)
        >>> sorted(r["split"] for r in parts.groupBy("split").count().collect())
        ['test', 'train']
    """
    labels, bounds = _normalize_weights(weights)
    seed = _check_seed(seed)
    if not isinstance(column, str) or not column:
        raise TypeError(f"column must be a non-empty column name, got {column!r}")
    if column in df.columns:
        raise ConfigurationError(f"column {column!r} already exists in df: pass another column=")
    u, _ = _unit_hash(df, keys, "pse-split", seed)
    expr = None
    for label, bound in zip(labels[:-1], bounds[:-1]):
        expr = F.when(u < bound, F.lit(label)) if expr is None else expr.when(u < bound, label)
    last = F.lit(labels[-1])
    expr = last if expr is None else expr.otherwise(last)
    return df.withColumn(column, expr)


def stable_split(
    df: DataFrame,
    keys: str | Sequence[str],
    weights: Sequence[float] | Mapping[str, float],
    seed: int = 0,
) -> list[DataFrame] | dict[str, DataFrame]:
    """Split ``df`` like ``randomSplit(weights, seed)``, but by a hash of the key columns, so
    the split is the same whatever the partitioning, row order or session settings.

    ``randomSplit`` draws a random number per row in partition order: the same seed gives
    another split as soon as the data arrives in other partitions. Here each row's side is a
    function of ``(seed, keys)`` alone (see :func:`assign_split`). With ``weights`` a list the
    result is a list of DataFrames in that order; with a mapping, a dict by split name. Each
    part is a filter of ``df`` (cache ``df`` if it is expensive); apply
    :func:`deterministic_layout` to a part to fix its row order too.

    Example::

        >>> df = spark.range(1000).withColumnRenamed("id", "user_id")
        >>> train, validation, test = stable_split(df, ["user_id"], [0.8, 0.1, 0.1], seed=42)
        >>> train.count() + validation.count() + test.count()
        1000
        >>> parts = stable_split(df, ["user_id"], {"train": 8, "test": 2}, seed=42)
        >>> sorted(parts)
        ['test', 'train']
    """
    labels, _ = _normalize_weights(weights)
    hidden = f"{_HIDDEN}split"
    marked = assign_split(df, keys, weights, seed, column=hidden)
    parts = [marked.where(F.col(hidden) == F.lit(label)).drop(hidden) for label in labels]
    if isinstance(weights, Mapping):
        return dict(zip(labels, parts))
    return parts


def stable_shard(
    df: DataFrame,
    keys: str | Sequence[str],
    rank: int,
    world_size: int,
    *,
    seed: int = 0,
    balanced: bool = False,
    num_partitions: int | None = None,
) -> DataFrame:
    """The rows of worker ``rank`` out of ``world_size`` for distributed training: the same rows
    on every run, and the shards of ``rank = 0 .. world_size - 1`` are disjoint and cover ``df``.

    By default a row belongs to shard ``pmod(xxhash64(seed, keys), world_size)``: rows sharing a
    key stay together and shard sizes are only about equal. The result is a filter of ``df``
    (its order is ``df``'s: apply :func:`deterministic_layout` to fix it).

    With ``balanced=True`` shard sizes differ by at most one row (collective training steps
    need every worker to have the same number of batches): ``df`` is laid out with
    :func:`deterministic_layout` (``keys``, ``num_partitions``, default ``world_size``) and
    rows are dealt round-robin in that order. This runs one Spark job to count the rows of each
    partition; the shard is returned in layout order; the assignment depends on
    ``num_partitions`` (keep it fixed) and not on ``seed``; rows sharing a key may be spread
    across shards.

    Example::

        >>> df = spark.range(1000).withColumnRenamed("id", "sample_id")
        >>> shards = [stable_shard(df, "sample_id", r, 4) for r in range(4)]
        >>> sum(s.count() for s in shards)
        1000
        >>> sorted(stable_shard(df, "sample_id", r, 3, balanced=True).count() for r in range(3))
        [333, 333, 334]
    """
    world_size = _check_int(world_size, "world_size", 1)
    rank = _check_int(rank, "rank", 0)
    if rank >= world_size:
        raise ConfigurationError(f"rank must be in [0, world_size={world_size}), got rank={rank}")
    seed = _check_seed(seed)
    if not balanced:
        if num_partitions is not None:
            raise ConfigurationError("num_partitions is used only with balanced=True")
        schema = _schema_of(df)
        key_names = _resolve_keys(df, keys)
        h = _salted_hash("pse-shard", _row_hash_parts(schema, key_names), seed)
        return df.where(F.pmod(h, F.lit(world_size).cast("long")) == rank)

    num_partitions = _check_int(
        world_size if num_partitions is None else num_partitions, "num_partitions", 1
    )
    laid = deterministic_layout(df, keys, num_partitions)
    counts = dict.fromkeys(range(num_partitions), 0)
    for r in laid.groupBy(F.spark_partition_id().alias("p")).count().collect():
        counts[int(r["p"])] = int(r["count"])
    # Row i of partition p is row offset[p] + i of the layout; it goes to shard
    # (offset[p] + i) % world_size, i.e. partition p gives rank its rows with
    # i % world_size == (rank - offset[p]) % world_size.
    residues, offset = [], 0
    for p in range(num_partitions):
        residues.append((rank - offset) % world_size)
        offset += counts[p]
    position = f"{_HIDDEN}position"
    marked = laid.withColumn(position, F.monotonically_increasing_id())
    partition = F.shiftright(F.col(position), 33)  # monotonically_increasing_id: p << 33 | i
    index = F.col(position).bitwiseAND(F.lit((1 << 33) - 1))
    residue = F.element_at(F.array(*[F.lit(r) for r in residues]), (partition + 1).cast("int"))
    return marked.where(F.pmod(index, F.lit(world_size)) == residue).drop(position)


# --------------------------------------------------------------------------------------------
# Pinned Delta inputs and MLflow
# --------------------------------------------------------------------------------------------


class PinnedTable(NamedTuple):
    """A Delta table read at one version: ``df, version = read_pinned(...)``."""

    df: DataFrame
    version: int


def _delta_target(table: str) -> tuple[str, str]:
    """('path', path) or ('name', table name), by :func:`pyspark_experiments.jobs.target.is_table_path`."""
    if not isinstance(table, str) or not table.strip():
        raise TypeError(f"table must be a Delta table path or name, got {table!r}")
    if is_table_path(table):
        return "path", table_path(table)
    return "name", table.strip()


def read_pinned(spark: SparkSession, table: str, version: int | None = None) -> PinnedTable:
    """Read the Delta table ``table`` (a path or a table name) at ``version``.

    With ``version=None`` the table's current version is looked up and returned, and the
    DataFrame reads exactly that version (``versionAsOf``), even if a writer commits while
    you train. Record the version (:func:`log_training_input`) and read it again later with
    ``version=`` to get the same data; a version that was vacuumed or whose log was cleaned up
    is Delta's error.

    Example::

        >>> spark.range(5).write.format("delta").save("/tmp/events")
        >>> df, version = read_pinned(spark, "/tmp/events")
        >>> version, df.count()
        (0, 5)
        >>> read_pinned(spark, "/tmp/events", version=0).version
        0
    """
    if version is not None:
        version = _check_int(version, "version", 0)
    kind, target = _delta_target(table)
    latest = latest_table_version(spark, table)
    if version is None:
        version = int(latest)
    elif version > latest:
        raise ConfigurationError(
            f"version={version} does not exist for Delta table {table!r}: "
            f"its latest version is {latest}"
        )
    reader = spark.read.format("delta").option("versionAsOf", version)
    df = reader.load(target) if kind == "path" else reader.table(target)
    return PinnedTable(df, version)


def _mlflow():
    try:
        import mlflow
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "log_training_input needs mlflow: pip install 'pyspark-experiments[mlflow]'"
        ) from error
    return mlflow


def log_training_input(
    df: DataFrame,
    table: str,
    version: int,
    *,
    keys: str | Sequence[str] | None = None,
    num_partitions: int | None = None,
    layout: Mapping[str, Any] | None = None,
    name: str | None = None,
    context: str = "training",
    run_id: str | None = None,
    fingerprint: str | None = None,
    rows: int | None = None,
    tag_prefix: str = TAG_PREFIX,
) -> dict[str, str]:
    """Record on an MLflow run exactly what it trains on: table, version, fingerprint, row
    count and layout, as a dataset input and as run tags.

    ``df`` is the data you train on (the pinned table, or a split of it), ``table`` and
    ``version`` where it came from (:func:`read_pinned`). The content fingerprint and row count
    are computed in one Spark job unless passed. ``keys`` and ``num_partitions`` (the
    :func:`deterministic_layout` parameters) and ``layout`` (anything else: split weights and
    seed, shard) are stored as JSON. The run is ``run_id`` or the active run.

    Logged: a dataset input (mlflow's source type ``delta_table`` with table and version,
    digest = the fingerprint, profile = the row count, the schema; ``mlflow.data.context`` =
    ``context``)
    whose input tags and the run tags are ``<tag_prefix>.table``, ``.version``,
    ``.fingerprint``, ``.rows`` and ``.layout``. Log several inputs on one run with different
    ``tag_prefix`` values. Returns the tags. Needs mlflow (the ``mlflow`` extra).

    Example::

        >>> import mlflow
        >>> df, version = read_pinned(spark, "/tmp/events")
        >>> train = deterministic_layout(df, ["id"], 4)
        >>> with mlflow.start_run():
        ...     tags = log_training_input(train, "/tmp/events", version, keys=["id"],
        ...                               num_partitions=4)
        >>> tags["pyspark_experiments.input.version"]
        '0'
    """
    mlflow = _mlflow()
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.spark_dataset import SparkDataset
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    kind, target = _delta_target(table)
    version = _check_int(version, "version", 0)
    layout_info: dict[str, Any] = {}
    if keys is not None:
        layout_info["keys"] = _resolve_keys(df, keys)
    if num_partitions is not None:
        layout_info["num_partitions"] = _check_int(num_partitions, "num_partitions", 1)
    if layout is not None:
        if not isinstance(layout, Mapping):
            raise TypeError(f"layout must be a mapping, got {layout!r}")
        layout_info.update(layout)
    if not isinstance(tag_prefix, str) or not tag_prefix:
        raise TypeError(f"tag_prefix must be a non-empty string, got {tag_prefix!r}")

    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise ConfigurationError("log_training_input needs an active MLflow run or run_id=")
        run_id = active.info.run_id

    if fingerprint is None or rows is None:
        computed_fingerprint, computed_rows = _content_digest(df)
        fingerprint = fingerprint or computed_fingerprint
        rows = computed_rows if rows is None else rows

    if kind == "path":
        source = DeltaDatasetSource(path=target, delta_table_version=version)
    else:
        source = DeltaDatasetSource(delta_table_name=target, delta_table_version=version)
    if name is None:
        base = target.rstrip("/").replace("\\", "/").split("/")[-1] or target
        name = f"{base}@v{version}"
    tags = {
        f"{tag_prefix}.table": table,
        f"{tag_prefix}.version": str(version),
        f"{tag_prefix}.fingerprint": fingerprint,
        f"{tag_prefix}.rows": str(int(rows)),
        f"{tag_prefix}.layout": json.dumps(layout_info, sort_keys=True),
    }
    # The entity is built here rather than by SparkDataset.to_dict(), whose profile starts an
    # approximate count job that keeps running in the background.
    with warnings.catch_warnings():  # mlflow's hint about integer columns is for model inputs
        warnings.simplefilter("ignore")
        schema = SparkDataset(df=df, source=source, name=name, digest=fingerprint).schema
    entity = DatasetEntity(
        name=name,
        digest=fingerprint,
        source_type=source._get_source_type(),
        source=source.to_json(),
        schema=json.dumps({"mlflow_colspec": schema.to_dict()}) if schema else None,
        profile=json.dumps({"num_rows": int(rows)}),
    )
    input_tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)] + [
        InputTag(key=k, value=v) for k, v in tags.items()
    ]
    client = mlflow.MlflowClient()
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=entity, tags=input_tags)])
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    return tags
