"""What the reproducibility helpers sort and hash for each column, and their argument checks.

Every helper here gives a form of a column that depends on no session setting (time zone,
collation, map entry order), so that layouts, fingerprints, splits and shards are functions of
the data alone.

Example::

    >>> from pyspark.sql.types import MapType, StringType
    >>> is_unorderable(MapType(StringType(), StringType()))
    True
    >>> canonical(column("tags"), MapType(StringType(), StringType()))  # doctest: +SKIP
    Column<'array_sort(transform(map_entries(tags), ...))'>
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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

from ..errors import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

#: Prefix of the helper columns added and dropped again; a DataFrame may not use it.
HIDDEN_PREFIX = "__pse_"

# to_json options pinned so that no session setting changes the serialization.
_JSON_OPTIONS = {
    "ignoreNullFields": "true",
    "timeZone": "UTC",
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "timestampNTZFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS",
    "dateFormat": "yyyy-MM-dd",
}


def column(name: str) -> Column:
    """A top-level column by its exact name (dots and backticks in names are fine).

    Example::

        >>> df.select(column("metrics.loss"))  # doctest: +SKIP
        DataFrame[metrics.loss: double]
    """
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


def is_unorderable(dtype: DataType) -> bool:
    """Maps and variants (also inside arrays and structs) can be neither sorted nor hashed by Spark.

    Example::

        >>> from pyspark.sql.types import ArrayType, LongType, MapType, StringType
        >>> is_unorderable(ArrayType(MapType(StringType(), LongType()))), is_unorderable(LongType())
        (True, False)
    """
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


def canonical(c: Column, dtype: DataType) -> Column:
    """An orderable, hashable form of ``c`` that does not depend on any session setting.

    Maps become their entries sorted by key, variants their JSON text, timestamps and dates
    numbers (microseconds, days since the epoch); other values are kept as they are.

    Example::

        >>> from pyspark.sql.types import TimestampType
        >>> df.select(canonical(column("start_time"), TimestampType()))  # doctest: +SKIP
        DataFrame[unix_micros(start_time): bigint]
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
                    canonical(e["key"], key_type).alias("key"),
                    canonical(e["value"], value_type).alias("value"),
                ),
            )
        )
    if isinstance(dtype, ArrayType):
        if not _needs_canonical(dtype.elementType):
            return c
        element_type = dtype.elementType
        return F.transform(c, lambda x: canonical(x, element_type))
    if isinstance(dtype, StructType):
        if not _needs_canonical(dtype):
            return c
        fields = [canonical(c[f.name], f.dataType).alias(f.name) for f in dtype.fields]
        return F.when(c.isNull(), F.lit(None)).otherwise(F.struct(*fields))
    return c


def _json(c: Column, dtype: DataType) -> Column:
    """A canonical JSON text of ``c``; never null (a null value gives ``{}``)."""
    return F.to_json(F.struct(canonical(c, dtype).alias("v")), _JSON_OPTIONS)


def _negative_zero(c: Column) -> Column:
    """True for -0.0, false otherwise (Spark's hash and ordering treat -0.0 as 0.0)."""
    return F.when(c == 0, c.cast("string").startswith("-")).otherwise(F.lit(False))


def _hash_parts(name: str, dtype: DataType) -> list[Column]:
    """The values hashed for one column: enough to tell apart any two different values,
    including null from a missing value, -0.0 from 0.0 and 'A' from 'a' under a collation."""
    c = column(name)
    if _is_complex(dtype):
        return [_json(c, dtype)]
    if isinstance(dtype, (FloatType, DoubleType)):
        return [c, c.isNull(), _negative_zero(c)]
    if _is_collated(dtype):
        return [c.cast("binary"), c.isNull()]
    return [c, c.isNull()]


def tie_break_key(name: str, dtype: DataType) -> Column | None:
    """A sort key that separates values the column's own ordering calls equal, or ``None``
    where that ordering tells all values apart.

    Example::

        >>> from pyspark.sql.types import LongType
        >>> tie_break_key("id", LongType()) is None  # doctest: +SKIP
        True
    """
    c = column(name)
    if isinstance(dtype, (FloatType, DoubleType)):
        return F.when(c == 0, c.cast("string"))  # '-0.0' < '0.0'; null for other values
    if _is_collated(dtype):
        return c.cast("binary")
    if _is_complex(dtype) and _ties_in_order(dtype):
        return _json(c, dtype)
    return None


def schema_of(df: DataFrame) -> dict[str, DataType]:
    """``df``'s column types by name; duplicate names, or names with the reserved
    :data:`HIDDEN_PREFIX`, are an error naming them.

    Example::

        >>> schema_of(spark.range(3))  # doctest: +SKIP
        {'id': LongType()}
    """
    names = [f.name for f in df.schema.fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(
            f"df has duplicate column names {duplicates}: rename them first "
            "(e.g. with toDF or withColumnRenamed)"
        )
    hidden = [n for n in names if n.startswith(HIDDEN_PREFIX)]
    if hidden:
        raise ConfigurationError(f"df has columns {hidden} whose prefix {HIDDEN_PREFIX!r} is reserved")
    return {f.name: f.dataType for f in df.schema.fields}


def resolve_keys(df: DataFrame, keys: str | Sequence[str], argument: str = "keys") -> list[str]:
    """Key names as they appear in ``df`` (exact match first, then a unique case-insensitive
    one); an unknown or repeated key is an error that names it.

    Example::

        >>> resolve_keys(spark.range(3), "ID")  # doctest: +SKIP
        ['id']
    """
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


def check_int(value: Any, argument: str, minimum: int) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else an error naming ``argument``.

    Example::

        >>> check_int(4, "num_partitions", 1)
        4
        >>> check_int(0, "num_partitions", 1)
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: num_partitions must be >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigurationError(f"{argument} must be >= {minimum}, got {value}")
    return value


def check_seed(seed: Any) -> int:
    """``seed`` if it is an int (not a bool) that fits in 64 bits, as Spark's hash takes it.

    Example::

        >>> check_seed(-7)
        -7
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not -(2**63) <= seed < 2**63:
        raise ConfigurationError(f"seed must fit in 64 bits, got {seed}")
    return seed


def schema_signature(schema: dict[str, DataType]) -> str:
    """Column names and types, in name order (nullability left out: it differs between routes
    to the same data).

    Example::

        >>> from pyspark.sql.types import DoubleType, LongType
        >>> schema_signature({"x": DoubleType(), "id": LongType()})
        'id:bigint;x:double'
    """
    return ";".join(f"{name}:{schema[name].simpleString()}" for name in sorted(schema))


def row_hash_parts(schema: dict[str, DataType], columns: Sequence[str] | None = None) -> list[Column]:
    """The values hashed for a row: of ``columns`` in that order, or of every column in name order.

    Example::

        >>> from pyspark.sql.types import DoubleType
        >>> len(row_hash_parts({"x": DoubleType()}))  # doctest: +SKIP
        3
    """
    names = sorted(schema) if columns is None else list(columns)
    parts: list[Column] = []
    for name in names:
        parts.extend(_hash_parts(name, schema[name]))
    return parts


def salted_hash(salt: str, parts: list[Column], seed: int | None = None) -> Column:
    """``xxhash64`` of ``parts`` after ``salt`` (and ``seed``): one independent hash per salt.

    Example::

        >>> from pyspark.sql.types import LongType
        >>> spark.range(3).select(salted_hash("pse-split", row_hash_parts({"id": LongType()}), seed=7))  # doctest: +SKIP
        DataFrame[xxhash64(pse-split, 7, id, (id IS NULL)): bigint]
    """
    head = [F.lit(salt)] if seed is None else [F.lit(salt), F.lit(seed).cast("long")]
    return F.xxhash64(*head, *parts)
