"""Every rule of the file store's metric files: listing them, reading them line by line
(:func:`read_metric_file`) and in bulk, in C, many files through one ``pyarrow.csv`` read
(:func:`read_metric_files`), position checks, latest values, and logged models' metric files.

A metric file holds one point a line, ``timestamp value step`` (older files: ``timestamp value``;
dataset-scoped points: ``timestamp value step dataset_name dataset_digest``). The files of a
partition are read, the terminated part of each (up to its last newline) is concatenated into
one buffer and parsed as a space-delimited CSV with column types int64 / float64 / int64. A file
takes the per-line path (:func:`parse_file_lines`) instead, alone, when the bulk parse could differ from it:
a byte outside the plain number alphabet (Arrow also reads ``0x1f`` and ``nan(1)``, Python's
``int`` and ``float`` do not), a line that is not three fields, or an exact duplicate line (found
first by an order check: a point not after the previous one by (timestamp, step) in its file,
then confirmed on the file's raw lines).

Example::

    >>> import os, tempfile
    >>> from pyspark_experiments.stores.problems import Problems
    >>> path = os.path.join(tempfile.mkdtemp(), "loss")
    >>> _ = open(path, "wb").write(b"1700000000000 0.5 0\\n1700000000001 nan 1\\n1700000000002 0.2")
    >>> chunk = next(read_metric_files([(path, 0, None)], Problems("FAILFAST")))
    >>> chunk.points.column("value").to_pylist(), chunk.counts
    ([0.5, nan], [2])
"""

from __future__ import annotations

import math
import os
import time
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..problems import Problems
from .meta import key_entries, key_files, read_local_file

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

    The rules of the per-line reader :func:`read_metric_file`
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
        fallback = parse_file_lines
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


def metric_file_sizes(folder: str, problems: Problems | None = None) -> list[tuple[str, int]]:
    found = []
    for key, entry in key_entries(folder, problems):
        try:
            found.append((key, entry.stat().st_size))
        except FileNotFoundError:
            continue  # removed since the listing
    return found


# The longest tail of a line a position check digests.
_CHECK_BYTES = 4096


def line_check(handle, position: int) -> str | None:
    """A digest of the line of an open metric file that ends at byte ``position`` (its last
    4 KiB at most; None at 0 or past the end, where no such line is).

    Example::

        >>> import io
        >>> line_check(io.BytesIO(b"1 0.5 0\\n2 0.25 1\\n"), 8) == line_check(io.BytesIO(b"1 0.5 0\\n"), 8)
        True
    """
    import hashlib

    if position <= 0:
        return None
    start = max(0, position - _CHECK_BYTES)
    handle.seek(start)
    data = handle.read(position - start)
    if len(data) != position - start:
        return None
    line = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
    return hashlib.sha1(line).hexdigest()[:16]


def read_metric_file(
    path: str, problems: Problems, after: int = 0, upto: int | None = None
) -> tuple[list[int], list[float], list[int]]:
    """The points of one metric file as columns (timestamps ms, values, steps), duplicates once.

    A last line without its newline is a point still being written: it is left for the next
    read, not parsed half-written. Exact duplicate lines (MLflow 3 writes some points twice)
    are kept once, at their first occurrence.

    With ``after`` / ``upto`` (byte positions, as :meth:`FileStore.metric_positions` reports
    them), only the points whose line ends after byte ``after`` and at or before byte ``upto``
    are returned, and only where that line is the point's first occurrence in the file: reads of
    consecutive ranges return every distinct point exactly once, whatever the ranges' bounds.

    Example::

        >>> read_metric_file("/nonexistent", Problems("FAILFAST"))
        ([], [], [])
    """
    try:
        data = read_local_file(path, upto)
    except FileNotFoundError:
        return [], [], []
    except IsADirectoryError:
        problems.skip(f"{path}: expected a metric file, found a folder")
        return [], [], []
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line still being written
    stale = stale_last_line(path, data, len(lines))
    if stale is not None:
        problems.skip(stale)
    first = 0
    if after > 0:
        ends = list(accumulate(len(line) + 1 for line in lines))
        first = bisect_right(ends, after)
        if first == len(lines):
            return [], [], []  # nothing new after `after`
    return parse_file_lines(path, lines, first, problems)


def parse_file_lines(path: str, lines: list[bytes], first: int, problems: Problems):
    """The per-line path: the terminated ``lines`` of one file as columns, from line ``first``."""
    fast = _parse_three_field_lines(lines, first)
    if fast is not None:
        return fast
    return _parse_lines_one_by_one(path, lines, first, problems)


def _parse_three_field_lines(lines: list[bytes], first: int):
    """The common case in bulk: every line ``timestamp value step``, no duplicate line."""
    if len(set(lines)) != len(lines) or set(map(bytes.count, lines, repeat(b" "))) - {2}:
        return None
    tokens = b" ".join(lines[first:]).split(b" ")
    try:
        timestamps, values, steps = list(map(int, tokens[0::3])), list(map(float, tokens[1::3])), list(map(int, tokens[2::3]))
    except ValueError:
        return None
    integers = timestamps + steps
    if integers and (min(integers) not in _INT64 or max(integers) not in _INT64):
        return None
    return timestamps, values, steps


# The range of the table's timestamp and step columns (Python reads any integer).
_INT64 = range(-(2**63), 2**63)


def _parse_lines_one_by_one(path: str, lines: list[bytes], first: int, problems: Problems):
    timestamps, values, steps = [], [], []
    seen = set()
    for number, raw in enumerate(lines, start=1):
        fields = raw.split()
        try:
            if len(fields) not in (2, 3, 5):
                raise ValueError(f"{len(fields)} fields")
            timestamp, value = int(fields[0]), float(fields[1])
            step = int(fields[2]) if len(fields) >= 3 else 0
            if timestamp not in _INT64 or step not in _INT64:
                raise ValueError("beyond 64 bits")
        except ValueError:
            if number > first:
                problems.skip(
                    f"{path}, line {number}: expected 'timestamp value step' (2, 3 or 5 space-separated "
                    f"fields; timestamp and step 64-bit integers), got {raw[:200].decode('utf-8', 'replace')!r}"
                )
            continue
        identity = (timestamp, step, value if value == value else "nan")
        if identity in seen:
            continue
        seen.add(identity)
        if number > first:
            timestamps.append(timestamp)
            values.append(value)
            steps.append(step)
    return timestamps, values, steps


def latest_values_of_runs(runs, problems: Problems) -> dict[str, list[tuple[str, float]]]:
    """``run folder -> [(key, latest value)]`` for the runs' metric files, parsed in bulk; the
    latest value as MLflow picks it (see :func:`latest_values`)."""
    owners, files = [], []
    for run_dir, _meta in runs:
        for key, path in key_files(os.path.join(run_dir, "metrics"), problems):
            owners.append((run_dir, key))
            files.append((path, 0, None))
    found: dict[str, list[tuple[str, float]]] = {}
    for chunk in read_metric_files(files, problems):
        for (run_dir, key), value in zip(owners[chunk.first:], latest_values(chunk)):
            if value is not None:
                found.setdefault(run_dir, []).append((key, value))
    return found


def _latest_point(path: str, problems: Problems) -> float | None:
    """The latest value of one metric file as MLflow picks it: ``max`` by (step, timestamp,
    value), first on ties (the per-line reference of :func:`latest_values_of_runs`)."""
    timestamps, values, steps = read_metric_file(path, problems)
    if not values:
        return None
    if any(map(math.isnan, values)):
        return _python_max(steps, timestamps, values)
    return max(zip(steps, timestamps, values))[2]


def _python_max(steps, timestamps, values) -> float:
    # NaN compares false both ways, so Python's max() keeps whichever came first: replay it.
    best_key = None
    for key in zip(steps, timestamps, values):
        if best_key is None or key > best_key:
            best_key = key
    return best_key[2]


def read_model_metric_file(key: str, path: str, problems: Problems) -> list[dict]:
    """A logged model's metric file: ``timestamp value step run_id [dataset_name dataset_digest]``
    per line, exact duplicate lines once (a last line without its newline is still being written)."""
    lines = read_local_file(path).split(b"\n")
    lines.pop()
    points, seen = [], set()
    for number, raw in enumerate(lines, start=1):
        if raw in seen:
            continue
        seen.add(raw)
        fields = raw.decode("utf-8", "replace").split()
        try:
            if len(fields) not in (4, 6):
                raise ValueError(f"{len(fields)} fields")
            point = {
                "key": key, "timestamp": int(fields[0]), "value": float(fields[1]), "step": int(fields[2]),
                "run_id": fields[3], "dataset_name": fields[4] if len(fields) == 6 else None,
                "dataset_digest": fields[5] if len(fields) == 6 else None,
            }
        except ValueError:
            problems.skip(
                f"{path}, line {number}: expected 'timestamp value step run_id [dataset_name dataset_digest]', "
                f"got {raw[:200].decode('utf-8', 'replace')!r}"
            )
            continue
        points.append(point)
    return points
