"""Metric files of the file store parsed in bulk, in C: many files through one ``pyarrow.csv`` read.

A metric file holds one point a line, ``timestamp value step`` (older files: ``timestamp value``;
dataset-scoped points: ``timestamp value step dataset_name dataset_digest``). The files of a
partition are read, the terminated part of each (up to its last newline) is concatenated into
one buffer and parsed as a space-delimited CSV with column types int64 / float64 / int64. A file
takes the per-line path of :mod:`.file` instead, alone, when the bulk parse could differ from it:
a byte outside the plain number alphabet (Arrow also reads ``0x1f`` and ``nan(1)``, Python's
``int`` and ``float`` do not), a line that is not three fields, or an exact duplicate line (found
first by an order check: a point not after the previous one by (timestamp, step) in its file,
then confirmed on the file's raw lines).

Example::

    >>> import os, tempfile
    >>> from pyspark_experiments.stores.base import Problems
    >>> path = os.path.join(tempfile.mkdtemp(), "loss")
    >>> _ = open(path, "wb").write(b"1700000000000 0.5 0\\n1700000000001 nan 1\\n1700000000002 0.2")
    >>> chunk = next(read_metric_files([(path, 0, None)], Problems("FAILFAST")))
    >>> chunk.points.column("value").to_pylist(), chunk.counts
    ([0.5, nan], [2])
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from .base import Problems, read_local_file

#: Columns of the parsed points, in file order.
POINT_SCHEMA = pa.schema([("timestamp", pa.int64()), ("value", pa.float64()), ("step", pa.int64())])

# Every byte a three-field line of plain decimal numbers, nan and inf can hold (Python's float
# reads nan/inf/infinity in any case, with a sign). Anything else goes to the per-line path.
_PLAIN = b"0123456789+-.eE naifyNAIFYtT\n"
_BOM = b"\xef\xbb\xbf"

# A chunk closes once its files hold this many bytes (memory per chunk stays a few times this).
CHUNK_BYTES = 32 << 20
CHUNK_FILES = 8192

_READ = pcsv.ReadOptions(column_names=POINT_SCHEMA.names, use_threads=False, block_size=1 << 26)
_PARSE = pcsv.ParseOptions(
    delimiter=" ", quote_char=False, double_quote=False, escape_char=False, newlines_in_values=False, ignore_empty_lines=False
)
_CONVERT = pcsv.ConvertOptions(
    column_types={field.name: field.type for field in POINT_SCHEMA},
    null_values=[], true_values=[], false_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
)

# Not Schema.empty_table(), which imports pandas (a third of a second in every Python worker).
_EMPTY = pa.Table.from_batches([], schema=POINT_SCHEMA)

# Seconds a metric file may keep an unterminated last line before it is reported (a writer that
# stopped mid-line); until then the line is a point still being written.
UNTERMINATED_GRACE_S = 60.0


@dataclass
class MetricChunk:
    """Points of consecutive metric files: ``points`` (timestamp, value, step) in file order,
    ``counts`` the number of rows each file gave, ``first`` the index of the chunk's first file
    in the list passed to :func:`read_metric_files`."""

    first: int
    counts: list[int]
    points: pa.Table

    def file_index(self) -> pa.Array:
        """The index (into the files passed to :func:`read_metric_files`) of every row's file.

        Example::

            >>> MetricChunk(3, [2, 0, 1], POINT_SCHEMA.empty_table()).file_index().to_pylist()
            [3, 3, 5]
        """
        offsets = pa.array([0, *accumulate(self.counts)], type=pa.int32())
        parents = pc.list_parent_indices(pa.ListArray.from_arrays(offsets, pa.nulls(offsets[-1].as_py(), pa.null())))
        return pc.add(parents.cast(pa.int32()), pa.scalar(self.first, pa.int32()))


@dataclass
class _File:
    path: str
    data: bytes = b""
    end: int = 0  # bytes up to and including the last newline
    start: int = 0  # first byte of the first line that ends after `after`
    lines: int = 0  # terminated lines
    message: str | None = None  # a skip to report before the file's points
    bulk: bool = False


def parse_points(buffer) -> pa.Table | None:
    """Parse ``timestamp value step`` lines (each ending in a newline) in C; None when Arrow
    refuses them (another field count, a value that is not a number).

    Example::

        >>> parse_points(b"1 0.5 2\\n3 -inf 4\\n").to_pylist()
        [{'timestamp': 1, 'value': 0.5, 'step': 2}, {'timestamp': 3, 'value': -inf, 'step': 4}]
        >>> parse_points(b"1 0.5\\n") is None
        True
    """
    if not len(buffer):
        return _EMPTY
    try:
        table = pcsv.read_csv(pa.py_buffer(buffer), read_options=_READ, parse_options=_PARSE, convert_options=_CONVERT)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table.combine_chunks()


def _open(path: str, after: int, upto: int | None) -> _File:
    found = _File(path)
    try:
        data = read_local_file(path, upto)
    except FileNotFoundError:
        return found
    except IsADirectoryError:
        found.message = f"{path}: expected a metric file, found a folder"
        return found
    found.data = data
    found.end = data.rfind(b"\n") + 1
    terminated = data[:found.end]
    found.lines = terminated.count(b"\n")
    found.message = stale_last_line(path, data, found.lines)
    if after > 0:
        found.start = data.rfind(b"\n", 0, min(after, found.end)) + 1
    found.bulk = (
        found.end > found.start
        and not data.startswith(_BOM)
        and terminated.count(b" ") == 2 * found.lines  # three fields a line, or Arrow will refuse it
        and not terminated.translate(None, _PLAIN)
    )
    return found


def stale_last_line(path: str, data: bytes, lines: int) -> str | None:
    """The skip to report for the metric file at ``path`` whose bytes from its start are
    ``data`` (``lines`` of them terminated): where its last line has no newline, ``data`` is the
    whole file, and the file has not changed for :data:`UNTERMINATED_GRACE_S` (a writer that
    stopped mid-line). None otherwise: a point still being written is read once terminated.

    Example::

        >>> stale_last_line("/nonexistent", b"1 0.5 0\\n", 1) is None
        True
    """
    tail = data[data.rfind(b"\n") + 1:]
    if not tail:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    idle = time.time() - stat.st_mtime
    if len(data) != stat.st_size or idle <= UNTERMINATED_GRACE_S:
        return None
    return (f"{path}, line {lines + 1}: the last line has no final newline and the file has not changed for "
            f"{idle:.0f} s (a writer that stopped mid-line?): {tail[:200].decode('utf-8', 'replace')!r}")


def read_metric_files(
    files: Sequence[tuple[str, int, int | None]], problems: Problems, fallback=None
) -> Iterator[MetricChunk]:
    """The points of metric files ``(path, after, upto)``, in order, as chunks of consecutive files.

    The rules of the per-line reader :func:`~pyspark_experiments.stores.file.read_metric_file`
    hold for every file, with the same points and skips: a last line without its newline is left for
    the next read (and reported once the file is stale), exact duplicate lines are kept once at
    their first occurrence, only lines ending after byte ``after`` and at or before ``upto`` are
    returned. Skips are reported in file order. ``fallback(path, lines, first, problems)`` parses
    one file line by line (default: the file store's per-line parser).

    Example::

        >>> list(read_metric_files([("/nonexistent", 0, None)], Problems("FAILFAST")))[0].counts
        [0]
    """
    if fallback is None:
        from .file import _parse_file_lines as fallback
    chunk: list[_File] = []
    size = first = 0
    for index, (path, after, upto) in enumerate(files):
        opened = _open(path, after or 0, upto)
        chunk.append(opened)
        size += len(opened.data)
        if size >= CHUNK_BYTES or len(chunk) >= CHUNK_FILES:
            yield _parse_chunk(first, chunk, problems, fallback)
            chunk, size, first = [], 0, index + 1
    if chunk or not files:
        yield _parse_chunk(first, chunk, problems, fallback)


def _parse_chunk(first: int, files: list[_File], problems: Problems, fallback) -> MetricChunk:
    parsed = _bulk_parse([f for f in files if f.bulk])
    pieces, counts, whole = [], [], True
    for f in files:
        if f.message is not None:
            problems.skip(f.message)
        if f.bulk:
            table, offset = parsed[id(f)]
            skipped = f.data.count(b"\n", 0, f.start) if f.start else 0
            rows = table.slice(offset + skipped, f.lines - skipped)
        elif f.end > f.start:
            lines = f.data[:f.end].split(b"\n")
            lines.pop()
            timestamps, values, steps = fallback(f.path, lines, f.data.count(b"\n", 0, f.start), problems)
            rows = pa.table([pa.array(timestamps, pa.int64()), pa.array(values, pa.float64()), pa.array(steps, pa.int64())],
                            schema=POINT_SCHEMA)
            whole = False
        else:
            rows = _EMPTY
        if f.start:
            whole = False
        pieces.append(rows)
        counts.append(rows.num_rows)
    if whole and len(parsed) and len({id(t) for t, _ in parsed.values()}) == 1:
        points = next(iter(parsed.values()))[0]  # every file in one bulk parse, in order: no copy
    else:
        points = pa.concat_tables([p for p in pieces if p.num_rows]) if any(counts) else _EMPTY
    return MetricChunk(first, counts, points)


def _bulk_parse(files: list[_File]) -> dict[int, tuple[pa.Table, int]]:
    """``id(file) -> (table, row offset)`` for the files that parse in bulk without duplicates;
    the others are marked ``bulk = False``."""
    if not files:
        return {}
    lines = [f.lines for f in files]
    table = parse_points(b"".join(f.data[:f.end] for f in files) if len(files) > 1 else memoryview(files[0].data)[:files[0].end])
    if table is None or table.num_rows != sum(lines):
        if len(files) == 1:
            files[0].bulk = False
            return {}
        half = len(files) // 2  # some file is refused: find which by halves
        return {**_bulk_parse(files[:half]), **_bulk_parse(files[half:])}
    offsets = [0, *accumulate(lines)]
    repeated = _duplicated_files(table, lines)
    for number in repeated:
        f = files[number]
        raw = f.data[:f.end].split(b"\n")
        if len(set(raw)) != len(raw):
            f.bulk = False
    return {id(f): (table, offsets[number]) for number, f in enumerate(files) if f.bulk}


def _array(table: pa.Table, name: str) -> pa.Array:
    column = table[name]
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _duplicated_files(table: pa.Table, lines: list[int]) -> list[int]:
    """Files (by position) that may hold a line twice: those where a point does not come after
    the one before it by (timestamp, step), as MLflow appends them; a file where every point
    does holds no point, so no line, twice."""
    if table.num_rows < 2:
        return []
    files = MetricChunk(0, lines, table).file_index()
    timestamps, steps = _array(table, "timestamp"), _array(table, "step")
    later, earlier = slice(1, None), slice(None, -1)
    after = pc.or_(
        pc.greater(timestamps[later], timestamps[earlier]),
        pc.and_(pc.equal(timestamps[later], timestamps[earlier]), pc.greater(steps[later], steps[earlier])),
    )
    unordered = pc.and_(pc.equal(files[later], files[earlier]), pc.invert(after))
    if not pc.any(unordered).as_py():
        return []
    return pc.unique(files[later].filter(unordered)).to_pylist()


def latest_values(chunk: MetricChunk) -> list[float | None]:
    """The latest value of each file of ``chunk`` as MLflow picks it: Python's ``max`` over
    ``(step, timestamp, value)``, which keeps the first of equal points and, NaN comparing false
    both ways, the first point of the last (step, timestamp) when its value is NaN, else the
    largest other value of that (step, timestamp). None for a file without points.

    Example::

        >>> points = pa.table({"timestamp": [1, 1, 2], "value": [0.5, 0.7, float("nan")], "step": [3, 3, 1]})
        >>> latest_values(MetricChunk(0, [2, 0, 1], points))
        [0.7, None, nan]
    """
    table = chunk.points
    offsets = [0, *accumulate(chunk.counts)]
    latest: list[float | None] = [None] * len(chunk.counts)
    if not table.num_rows:
        return latest
    keyed = table.append_column("file", chunk.file_index())
    # Stable sorts: within a file, the points of its greatest (step, timestamp) come first in
    # file order; adding the value (descending; Arrow puts NaN last, -0.0 equal to 0.0) puts
    # the largest non-NaN value of them first, the first of equals.
    by_point = pc.sort_indices(keyed, sort_keys=[("file", "ascending"), ("step", "descending"), ("timestamp", "descending")])
    by_value = pc.sort_indices(
        keyed, sort_keys=[("file", "ascending"), ("step", "descending"), ("timestamp", "descending"), ("value", "descending")]
    )
    starts = pa.array([offsets[n] for n, count in enumerate(chunk.counts) if count], pa.int64())
    first_point = pc.take(table["value"], pc.take(by_point, starts))
    largest = pc.take(table["value"], pc.take(by_value, starts))
    chosen = pc.if_else(pc.is_nan(first_point), first_point, largest).to_pylist()
    for n, value in zip((n for n, count in enumerate(chunk.counts) if count), chosen):
        latest[n] = value
    return latest
