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

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .. import tables
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..uri import TrackingUri

VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
MODES = ("FAILFAST", "PERMISSIVE")

RUN_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


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
    # For the trace tables only: request times before ``max_start_time_ms`` (exclusive; the
    # lower bound is ``min_start_time_ms``), these trace states and trace ids, and for
    # ``spans`` the ``inputs`` / ``outputs`` / ``events`` columns.
    max_start_time_ms: int | None = None
    trace_states: tuple[str, ...] | None = None
    trace_ids: tuple[str, ...] | None = None
    with_span_content: bool = False

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
    - ``trace_fingerprints``: whether :meth:`Store.trace_fingerprints` is implemented.
    - ``tables``: the values of the ``table`` option the store serves; ``active_only_tables``:
      those it serves for ``viewType`` ``ACTIVE_ONLY`` only (a tracking server's searches hide
      deleted logged models and model versions).
      The trace tables (:data:`~pyspark_experiments.tables.TRACE_TABLE_NAMES`) are served only
      where a backend declares them (a store written by an MLflow older than them reads empty).

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
    trace_fingerprints: bool = False
    tables: tuple[str, ...] = tables.TABLE_NAMES + tables.MODEL_TABLE_NAMES
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
        that a reader can tell which of the tables changed (see :func:`~.fingerprints.fingerprint_parts`).

        Example::

            >>> store.run_fingerprints(Selection("runs", ("1",), view_type="ALL"))  # doctest: +SKIP
            {'3f2a...': ('1', '9c1d...'), ...}
        """
        raise NotImplementedError(f"{self.uri.display} reports no run fingerprints")

    def trace_fingerprints(self, selection: Selection) -> dict[str, tuple[str, str]]:
        """``{trace_id: (experiment_id, fingerprint)}`` for every trace of the selected
        experiments (driver side; the selection's other narrowing is not applied).

        Only for stores whose ``capabilities.trace_fingerprints`` is true. The fingerprint reads
        ``trace=<digest>;spans=<digest>;assessments=<digest>``
        (:data:`~.fingerprints.TRACE_FINGERPRINT_PARTS`): one digest changes whenever the
        trace's ``traces`` row may have changed (its info, tags, request metadata, trace
        metrics), one whenever its spans may have (spans are added while a trace is in progress),
        one whenever its assessments may have (logged, updated, overridden, deleted).

        Example::

            >>> store.trace_fingerprints(Selection("traces", ("1",), view_type="ALL"))  # doctest: +SKIP
            {'tr-3f2a...': ('1', 'trace=9c1d...;spans=2;assessments=77aa...'), ...}
        """
        raise NotImplementedError(f"{self.uri.display} reports no trace fingerprints")
