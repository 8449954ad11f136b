"""Stable splits and shards: each row's side decided by a hash of its key columns and a seed.

Example::

    >>> train, test = stable_split(df, ["user_id"], [0.8, 0.2], seed=7)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from ..errors import ConfigurationError
from .columns import HIDDEN_PREFIX, check_int, check_seed, resolve_keys, row_hash_parts, salted_hash, schema_of
from .layout import deterministic_layout

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame


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
    schema = schema_of(df)
    key_names = resolve_keys(df, keys)
    h = salted_hash(salt, row_hash_parts(schema, key_names), seed)
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
    seed = check_seed(seed)
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
    hidden = f"{HIDDEN_PREFIX}split"
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
    world_size = check_int(world_size, "world_size", 1)
    rank = check_int(rank, "rank", 0)
    if rank >= world_size:
        raise ConfigurationError(f"rank must be in [0, world_size={world_size}), got rank={rank}")
    seed = check_seed(seed)
    if not balanced:
        if num_partitions is not None:
            raise ConfigurationError("num_partitions is used only with balanced=True")
        schema = schema_of(df)
        key_names = resolve_keys(df, keys)
        h = salted_hash("pse-shard", row_hash_parts(schema, key_names), seed)
        return df.where(F.pmod(h, F.lit(world_size).cast("long")) == rank)

    num_partitions = check_int(
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
    position = f"{HIDDEN_PREFIX}position"
    marked = laid.withColumn(position, F.monotonically_increasing_id())
    partition = F.shiftright(F.col(position), 33)  # monotonically_increasing_id: p << 33 | i
    index = F.col(position).bitwiseAND(F.lit((1 << 33) - 1))
    residue = F.element_at(F.array(*[F.lit(r) for r in residues]), (partition + 1).cast("int"))
    return marked.where(F.pmod(index, F.lit(world_size)) == residue).drop(position)
