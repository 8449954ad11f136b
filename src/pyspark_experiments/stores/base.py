"""The interface between where run data lives and how Spark sees it.

A :class:`Store` knows one store format. On the driver it lists experiments and plans a table
read into picklable :class:`Partition`\\ s; on an executor it reads one partition into
``pyarrow.RecordBatch``\\ es whose schema is the table's (:func:`tables.arrow_schema`). It knows
nothing of Spark, and opens connections only inside :meth:`Store.read` (and, for planning,
inside :meth:`Store.plan` / :meth:`Store.list_experiments`), never keeping them on ``self``.

Example::

    >>> from pyspark_experiments.stores import open_store
    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> store = open_store(resolve_tracking_uri("sqlite:////tmp/mlflow.db"))
    >>> store.capabilities.kind, store.capabilities.exact_metric_ranges
    ('sql', True)
"""

from __future__ import annotations

import logging
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .. import tables
from ..errors import ConfigurationError, MalformedRecordError

if TYPE_CHECKING:
    from ..uri import TrackingUri

log = logging.getLogger("pyspark_experiments")

VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
MODES = ("FAILFAST", "PERMISSIVE")

RUN_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}

# Rows per Arrow batch handed to Spark.
BATCH_ROWS = 65_536


def lifecycle_stages(view_type: str) -> tuple[str, ...]:
    """The lifecycle stages that MLflow's ``ViewType`` admits.

    Example::

        >>> lifecycle_stages("ALL")
        ('active', 'deleted')
    """
    return {
        "ACTIVE_ONLY": ("active",),
        "DELETED_ONLY": ("deleted",),
        "ALL": ("active", "deleted"),
    }[view_type]


@dataclass(frozen=True)
class ExperimentRef:
    """An experiment as planning sees it: id, name and lifecycle stage."""

    experiment_id: str
    name: str
    lifecycle_stage: str


@dataclass(frozen=True)
class Selection:
    """What to read: one table, from resolved experiments, narrowed at the source.

    Example::

        >>> Selection("metrics", ("1",), metric_keys=("loss",)).view_type
        'ACTIVE_ONLY'
    """

    table: str
    experiment_ids: tuple[str, ...]
    view_type: str = "ACTIVE_ONLY"
    run_ids: tuple[str, ...] | None = None
    metric_keys: tuple[str, ...] | None = None
    min_start_time_ms: int | None = None
    # Planning targets: rows (metric points, or runs for per-run tables) per partition,
    # or a fixed number of partitions.
    rows_per_partition: int | None = None
    num_partitions: int | None = None
    mode: str = "FAILFAST"
    # For `metrics` only: read just these series, each between two positions that
    # Store.metric_positions reported: ((run_id, key, after, upto), ...). A point belongs to the
    # range when its position is > after and <= upto, so consecutive ranges never overlap.
    metric_ranges: tuple[tuple[str, str, int, int], ...] | None = None
    # For `artifacts` only: list under this folder of each run's artifact root (``None``: the
    # root), this many levels deep (``None``: all), with the content of files up to
    # ``content_max_bytes`` (``None``: no content column).
    artifact_path: str | None = None
    max_depth: int | None = None
    content_max_bytes: int | None = None

    def admits_run(self, run_id: str, lifecycle_stage: str, start_time_ms: int | None) -> bool:
        """Whether a run passes the view type, run-id and start-time narrowing."""
        if lifecycle_stage not in lifecycle_stages(self.view_type):
            return False
        if self.run_ids is not None and run_id not in self.run_ids:
            return False
        if self.min_start_time_ms is not None and (
            start_time_ms is None or start_time_ms < self.min_start_time_ms
        ):
            return False
        return True

    def admits_metric_key(self, key: str) -> bool:
        return self.metric_keys is None or key in self.metric_keys


@dataclass(frozen=True)
class Partition:
    """One unit of read work: picklable, small, independent of any open connection.

    ``work`` is the backend's description of what to read (for example a chunk of run ids).
    """

    index: int
    selection: Selection
    work: Any = field(repr=False)


@dataclass(frozen=True)
class SkippedRecord:
    """One record a PERMISSIVE read skipped: where and why, and whose it was where known."""

    where: str
    experiment_id: str | None = None
    run_id: str | None = None


_collecting = threading.local()


@contextmanager
def collect_skipped() -> Iterator[list[SkippedRecord]]:
    """Collect every record that :class:`Problems` skips in this thread while the block runs.

    The Spark adapter wraps each partition's read in it to hand the skips to the caller as rows
    (option ``columnNameOfCorruptRecord``); a store needs no part in it.

    Example::

        >>> with collect_skipped() as skipped:
        ...     Problems("PERMISSIVE").skip("/m/1/r/meta.yaml: not valid YAML", run_id="r")
        >>> skipped
        [SkippedRecord(where='/m/1/r/meta.yaml: not valid YAML', experiment_id=None, run_id='r')]
    """
    stack = _collecting.__dict__.setdefault("stack", [])
    found: list[SkippedRecord] = []
    stack.append(found)
    try:
        yield found
    finally:
        stack.remove(found)


class Problems:
    """Collects malformed records under ``mode``: raise at once (FAILFAST) or skip and report.

    PERMISSIVE never drops silently: every skip goes to the caller as a row of the
    ``columnNameOfCorruptRecord`` column when the read asked for one (see
    :func:`collect_skipped`), and :meth:`report` logs how many records were skipped and where,
    once per partition. ``locate`` turns a place into (experiment id, run id) where a store can.

    Example::

        >>> problems = Problems("PERMISSIVE")
        >>> problems.skip("mlruns/1/abc/metrics/loss, line 3: expected 'timestamp value step'")
        >>> problems.count
        1
    """

    def __init__(self, mode: str, context: str = "", locate=None) -> None:
        self.mode = mode
        self.context = context
        self.locate = locate
        self.where: list[str] = []

    def skip(self, where: str, experiment_id: str | None = None, run_id: str | None = None) -> None:
        if self.mode == "FAILFAST":
            raise MalformedRecordError(
                f"malformed record at {where} (mode FAILFAST; use option('mode', 'PERMISSIVE') "
                f"to skip malformed records and report them)"
            )
        self.where.append(where)
        if self.locate is not None and (experiment_id is None or run_id is None):
            found_experiment, found_run = self.locate(where)
            experiment_id, run_id = experiment_id or found_experiment, run_id or found_run
        for found in getattr(_collecting, "stack", ()):
            found.append(SkippedRecord(where, experiment_id, run_id))

    @property
    def count(self) -> int:
        return len(self.where)

    def report(self) -> None:
        if self.where:
            shown = "; ".join(self.where[:20])
            more = f" (and {len(self.where) - 20} more)" if len(self.where) > 20 else ""
            log.warning(
                "PERMISSIVE: skipped %d malformed record(s)%s: %s%s",
                len(self.where), f" in {self.context}" if self.context else "", shown, more,
            )


class MetricPosition(int):
    """A metric position with what a store can tell of the history before it: ``check``, a
    digest of the series just before this position (file store: of the line that ends there),
    and ``check_after``, the same digest taken now at the ``after`` position the caller listed
    (:meth:`Store.metric_positions` with ``metric_ranges``). A saved check that differs from
    ``check_after`` means the series did not just grow since: it was changed in place.

    Example::

        >>> position = MetricPosition(96, check="9f1c", check_after="77aa")
        >>> position + 0, position.check
        (96, '9f1c')
    """

    check: str | None
    check_after: str | None

    def __new__(cls, value: int, check: str | None = None, check_after: str | None = None):
        position = super().__new__(cls, value)
        position.check, position.check_after = check, check_after
        return position


#: What a metric position counts (see :class:`StoreCapabilities`).
POSITION_KINDS = ("bytes", "rowid", "count", "digest", "none")


@dataclass(frozen=True)
class StoreCapabilities:
    """What a store can do, declared by each backend (never guessed from its class).

    - ``kind``: the store family, ``sql``, ``file`` or ``rest``.
    - ``state_key``: a stable name for saved state (the sync's fingerprints and positions): two
      stores with the same key produce comparable fingerprints. Never a class name.
    - ``metric_positions``: what :meth:`Store.metric_positions` reports per series: ``bytes``
      (of an append-only file), ``rowid`` (the largest row id), ``count`` (points), ``digest``
      (a number that changes whenever the series may have changed, with no order: a change
      means "re-read the whole series"), or ``none`` (the store reports no positions: readers
      count points themselves).
    - ``exact_metric_ranges``: reading a series between two positions returns exactly the points
      logged in between; otherwise a range read returns the series' whole history.
    - ``position_units_per_point``: about how many position units one point takes (to turn a
      row limit into a position range).
    - ``run_fingerprints``: whether :meth:`Store.run_fingerprints` is implemented.
    - ``metric_marks``: whether :meth:`Store.metric_mark` and :meth:`Store.metric_positions_since`
      are implemented: the store can tell which series got points since an earlier scan
      without scanning every series (SQLite: rows past a row id).
    - ``change_token``: whether :meth:`Store.change_token` is implemented: the store can tell,
      without reading a table, that nothing in it changed since an earlier token (SQLite: the
      database file's change counter; PostgreSQL: the write-ahead log's position).
    - ``tables``: the values of the ``table`` option the store serves; ``active_only_tables``:
      those it serves for ``viewType`` ``ACTIVE_ONLY`` only (a tracking server's searches hide
      deleted logged models and model versions).

    Example::

        >>> caps = StoreCapabilities("file", "file", "bytes", True, 32, True)
        >>> caps.positions_key
        'file:bytes:exact'
    """

    kind: str
    state_key: str
    metric_positions: str = "none"
    exact_metric_ranges: bool = False
    position_units_per_point: int = 1
    run_fingerprints: bool = False
    metric_marks: bool = False
    change_token: bool = False
    tables: tuple[str, ...] = tables.ALL_TABLE_NAMES
    active_only_tables: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.metric_positions not in POSITION_KINDS:
            raise ConfigurationError(f"metric_positions {self.metric_positions!r}: expected one of {POSITION_KINDS}")

    @property
    def positions_key(self) -> str:
        """A stable name for what saved metric positions mean: equal keys, comparable positions."""
        return f"{self.state_key}:{self.metric_positions}:{'exact' if self.exact_metric_ranges else 'whole'}"


class Store(ABC):
    """One tracking-store format. Subclasses: ``SqlStore``, ``FileStore``.

    What a backend can do beyond listing, planning and reading is declared by
    :attr:`capabilities`; callers decide from it, never from the class.
    """

    def __init__(self, uri: TrackingUri) -> None:
        self.uri = uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri.display!r})"

    @property
    @abstractmethod
    def capabilities(self) -> StoreCapabilities:
        """What this store can do (see :class:`StoreCapabilities`)."""

    @abstractmethod
    def list_experiments(self, view_type: str = "ALL") -> list[ExperimentRef]:
        """Every experiment of the store whose lifecycle stage ``view_type`` admits."""

    @abstractmethod
    def plan(self, selection: Selection) -> list[Partition]:
        """Split reading ``selection`` into partitions of bounded size (driver side)."""

    @abstractmethod
    def read(self, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Read one partition as record batches of the table's Arrow schema (executor side)."""

    # -- change detection (used by the Delta sync and the stream reader) -------------------------

    def change_token(self) -> str | None:
        """A short text, taken without reading any table, that is different whenever anything
        the store holds may have changed since an earlier token was taken; equal tokens mean
        nothing changed in between. ``None`` when the store cannot tell right now (a SQLite
        database in WAL mode): the caller then scans. Only where ``capabilities.change_token``.

        Example::

            >>> store.change_token()  # doctest: +SKIP
            'sqlite:2049:1835:14102528:1764339000123456789:292'
        """
        raise NotImplementedError(f"{self.uri.display} takes no change tokens")

    def metric_positions(self, selection: Selection) -> dict[tuple[str, str], int]:
        """``{(run_id, key): position}`` for every metric series of the selected runs (driver side).

        Only for stores whose ``capabilities.metric_positions`` is not ``none``. A position only
        grows while points are logged (file store: bytes written to the metric file, which is
        append-only; SQLite: the largest ``rowid`` of the series; other SQL stores: the number
        of points). The view type and start time may be applied later, at read time.

        Example::

            >>> store.metric_positions(Selection("metrics", ("1",)))  # doctest: +SKIP
            {('3f2a...', 'loss'): 1893, ...}
        """
        raise NotImplementedError(f"{self.uri.display} reports no metric positions")

    def metric_mark(self) -> str:
        """An opaque mark of the metric points the store holds now (driver side), for a later
        :meth:`metric_positions_since`. Only where ``capabilities.metric_marks``.

        Example::

            >>> store.metric_mark()  # doctest: +SKIP
            '10000000:5d41402abc4b2a76'
        """
        raise NotImplementedError(f"{self.uri.display} takes no metric marks")

    def metric_positions_since(self, selection: Selection, since: str, upto: str) -> dict[tuple[str, str], int] | None:
        """The positions, as :meth:`metric_positions` reports them, of the selected series that
        got points after mark ``since`` and up to mark ``upto`` (both from :meth:`metric_mark`);
        every other series is where it was at ``since``. None when the store cannot tell (points
        were removed since ``since``): then only a full :meth:`metric_positions` scan can.
        Only where ``capabilities.metric_marks``.

        Example::

            >>> earlier = store.metric_mark()                                   # doctest: +SKIP
            >>> store.metric_positions_since(Selection("metrics", ("1",)), earlier, store.metric_mark())  # doctest: +SKIP
            {('3f2a...', 'loss'): 10000042}
        """
        raise NotImplementedError(f"{self.uri.display} takes no metric marks")

    def run_fingerprints(self, selection: Selection) -> dict[str, tuple[str, str]]:
        """``{run_id: (experiment_id, fingerprint)}`` for the selected runs (driver side).

        Only for stores whose ``capabilities.run_fingerprints`` is true. The fingerprint changes
        whenever the run's row in ``runs`` (except its latest metrics, which
        :meth:`metric_positions` covers), its params, tags or dataset inputs change; it may
        also change when nothing visible did (a rewritten file). It reads
        ``run=<digest>;params=<digest>;tags=<digest>;inputs=<digest>``, one digest per part, so
        that a reader can tell which of the tables changed (see :func:`fingerprint_parts`).

        Example::

            >>> store.run_fingerprints(Selection("runs", ("1",), view_type="ALL"))  # doctest: +SKIP
            {'3f2a...': ('1', '9c1d...'), ...}
        """
        raise NotImplementedError(f"{self.uri.display} reports no run fingerprints")


FINGERPRINT_PARTS = ("run", "params", "tags", "inputs")


def fingerprint(digests: dict[str, str]) -> str:
    """Join per-part digests into a run fingerprint (parts as in :data:`FINGERPRINT_PARTS`).

    Example::

        >>> fingerprint({"run": "a", "params": "b", "tags": "c", "inputs": "d"})
        'run=a;params=b;tags=c;inputs=d'
    """
    return ";".join(f"{part}={digests[part]}" for part in FINGERPRINT_PARTS)


def digests_by_run(rows: pa.Table) -> dict[str, str]:
    """A digest per run of ``rows`` (first column: the run id; the others: any values, cast to
    text), whatever the rows' order. Each row is written with every value's length before it
    (``<bytes>:<text>:<bytes>:<text>``, ``-`` for null), so that no two different rows read
    alike; the rows of a run are sorted and their bytes hashed. Everything but the hashing of
    each run's bytes is Arrow compute.

    Example::

        >>> rows = pa.table({"run": ["r", "r", "s"], "key": ["b", "a", "a"], "value": ["2", "1", None]})
        >>> digests = digests_by_run(rows)
        >>> digests == digests_by_run(rows.take([2, 1, 0])), digests["r"] != digests["s"]
        (True, True)
    """
    import hashlib

    import numpy as np
    import pyarrow.compute as pc

    parts = []
    for column in rows.columns[1:]:
        text = pc.cast(column, pa.large_string())
        length = pc.cast(pc.binary_length(text), pa.large_string())
        parts += [pc.fill_null(length, "-"), pc.fill_null(text, "")]
    line = pc.binary_join_element_wise(*parts, pa.scalar(":", pa.large_string()))
    ordered = pa.table({"run": rows.column(0), "line": line}).sort_by([("run", "ascending"), ("line", "ascending")])
    runs = ordered.column("run").combine_chunks()
    lines = ordered.column("line").combine_chunks()
    if not len(lines):
        return {}
    encoded = pc.run_end_encode(runs)
    ends = encoded.run_ends.to_numpy()
    starts = np.concatenate(([0], ends[:-1]))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    data = memoryview(lines.buffers()[2] or b"")
    return {
        run_id: hashlib.sha1(data[offsets[start]:offsets[end]]).hexdigest()
        for run_id, start, end in zip(encoded.values.to_pylist(), starts, ends)
    }


def fingerprint_parts(value: str | None) -> dict[str, str]:
    """Split a run fingerprint into its parts; ``{}`` for ``None`` or an unstructured one.

    Example::

        >>> fingerprint_parts("run=a;params=b;tags=c;inputs=d")["tags"]
        'c'
    """
    parts = dict(item.partition("=")[::2] for item in (value or "").split(";") if "=" in item)
    return parts if set(parts) == set(FINGERPRINT_PARTS) else {}


#: The bytes :func:`read_local_file` reads before it asks for the file's size.
_FIRST_READ = 1 << 16


def read_local_file(path: str, limit: int | None = None) -> bytes:
    """The bytes of a local file: the first ``limit`` of them, or up to its end however it grew
    meanwhile. Raises what ``open()`` and ``read()`` raise (``FileNotFoundError``,
    ``IsADirectoryError``, ...).

    It goes through ``os.open`` and ``os.read``, with no ``stat`` for a file that fits one read:
    a file store read opens some 26 small files a run, and ``open()``'s buffered file object
    takes three times as long as reading them (27 to 36 µs against 10 to 13 µs a file, measured).

    Example::

        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "loss")
        >>> _ = open(path, "wb").write(b"1 0.5 0\\n")
        >>> read_local_file(path), read_local_file(path, limit=3)
        (b'1 0.5 0\\n', b'1 0')
    """
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        pieces, remaining, size = [], limit, _FIRST_READ
        while remaining is None or remaining > 0:
            piece = os.read(descriptor, size if remaining is None else min(size, remaining))
            if not piece:
                break
            pieces.append(piece)
            if remaining is not None:
                remaining -= len(piece)
            if len(pieces) == 1 and len(piece) == size:  # a larger file: the rest in one read
                size = max(size, os.fstat(descriptor).st_size - len(piece) + 1)
        return b"".join(pieces)
    finally:
        os.close(descriptor)


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
