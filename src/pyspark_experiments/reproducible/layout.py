"""A deterministic layout: which rows sit in which partition, in which order, as a function of the data.

Example::

    >>> laid = deterministic_layout(df, ["user_id"], 8)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from .columns import HIDDEN_PREFIX, canonical, check_int, column, is_unorderable, resolve_keys, schema_of, tie_break_key

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame


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
    schema = schema_of(df)
    key_names = resolve_keys(df, keys)
    num_partitions = check_int(num_partitions, "num_partitions", 1)

    rest = sorted(n for n in schema if n not in key_names)
    hidden: dict[str, Column] = {}
    partition_by: list[Column] = []
    primary: list[Column] = []
    tie_breaks: list[Column] = []
    for index, name in enumerate(key_names + rest):
        dtype = schema[name]
        if is_unorderable(dtype):
            # Computed once per row before the shuffle: sort comparisons would otherwise
            # rebuild the canonical form for every comparison.
            hidden_name = f"{HIDDEN_PREFIX}sort_{index}"
            hidden[hidden_name] = canonical(column(name), dtype)
            sort_key = F.col(hidden_name)
        else:
            sort_key = column(name)
        if name in key_names:
            partition_by.append(sort_key)
        primary.append(sort_key.asc_nulls_first())
        tie_break = tie_break_key(name, dtype)
        if tie_break is not None:
            tie_breaks.append(tie_break.asc_nulls_first())

    laid = df.withColumns(hidden) if hidden else df
    laid = laid.repartition(num_partitions, *partition_by).sortWithinPartitions(
        *primary, *tie_breaks
    )
    return laid.drop(*hidden) if hidden else laid
