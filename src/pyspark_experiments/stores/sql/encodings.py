"""MLflow's SQL encodings decoded as Arrow compute: NaN stored as 0 with ``is_nan``,
epoch milliseconds as timestamps, params, tags and latest metrics as maps.

Example::

    >>> nan_where(pa.array([0.0, 2.5]), pa.array([True, False])).to_pylist()
    [nan, 2.5]
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pyarrow as pa

from ... import tables
from ..planning import BATCH_ROWS

STR, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()


def as_array(values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def metric_batches(batches) -> Iterator[pa.RecordBatch]:
    """Batches of points (run, experiment, key, value, is_nan, step, ms) as ``metrics`` batches,
    MLflow's encodings applied as Arrow compute."""
    schema = tables.arrow_schema(tables.METRICS)
    for batch in batches:
        run_ids, experiment_ids, keys, values, is_nans, steps, timestamps = batch.columns
        yield pa.RecordBatch.from_arrays(
            [experiment_ids, run_ids, keys, nan_where(values, is_nans), steps, ms_timestamps(timestamps)], schema=schema
        )


def nan_where(values, is_nan):
    """MLflow's SQL encoding of NaN (value 0, ``is_nan`` true) decoded.

    Example::

        >>> nan_where(pa.array([0.0, 1.5]), pa.array([True, False])).to_pylist()
        [nan, 1.5]
    """
    import pyarrow.compute as pc

    mask = is_nan.fill_null(False)
    return pc.if_else(mask, math.nan, values) if pc.any(mask).as_py() else values


def ms_timestamps(values):
    """MLflow's epoch milliseconds as the tables' UTC microsecond timestamps.

    Example::

        >>> ms_timestamps(pa.array([1700000000123, None])).to_pylist()[0].isoformat()
        '2023-11-14T22:13:20.123000+00:00'
    """
    return values.cast(INT).cast(pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))


def map_column(owners, entry_owners, keys, values, map_type: pa.MapType) -> pa.Array:
    """A map per owner (owners unique, in any order) from entries (owner, key, value), each map
    sorted by key; entries of other owners are left out.

    Example::

        >>> column = map_column(pa.array(["r2", "r1"]), pa.array(["r1", "r2", "r1"]), pa.array(["b", "x", "a"]),
        ...                     pa.array([2.0, 9.0, 1.0]), pa.map_(pa.string(), pa.float64()))
        >>> column.to_pylist()
        [[('x', 9.0)], [('a', 1.0), ('b', 2.0)]]
    """
    import pyarrow.compute as pc

    owners = as_array(owners)
    count = len(owners)
    position = pc.index_in(as_array(entry_owners), value_set=owners).cast(pa.int64())
    entries = (pa.table({"position": position, "key": as_array(keys), "value": as_array(values)})
               .filter(position.is_valid())
               .sort_by([("position", "ascending"), ("key", "ascending")]))
    found = pc.value_counts(as_array(entries["position"]))
    everyone = pc.subtract(pc.cumulative_sum(pa.repeat(1, count).cast(pa.int64())), 1) if count else pa.array([], pa.int64())
    per_owner = found.field("counts").take(pc.index_in(everyone, value_set=found.field("values"))).fill_null(0)
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(per_owner).cast(pa.int64())])
    return pa.MapArray.from_arrays(offsets.cast(pa.int32()), as_array(entries["key"]), as_array(entries["value"]), type=map_type)


def table_batches(schema: pa.Schema, columns) -> Iterator[pa.RecordBatch]:
    """``columns`` (in ``schema``'s order) as record batches of at most ``BATCH_ROWS`` rows."""
    table = pa.Table.from_arrays([as_array(column) for column in columns], schema=schema)
    yield from (batch for batch in table.to_batches(max_chunksize=BATCH_ROWS) if batch.num_rows)
