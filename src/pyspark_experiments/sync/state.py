"""The sync's own Delta table, ``_sync_state``: what the last completed sync saw.

An append-only log of rows, the latest row per entry winning (by ``sync_id``):

- ``kind = "run"``: a run's experiment and fingerprint (``value``; null: removed);
- ``kind = "trace"``: a trace's experiment and fingerprint (``key``: the trace id; ``value``:
  the fingerprint, null: removed), where the sync keeps a trace table;
- ``kind = "series"``: a metric series' position (``position``; null: removed) and, where
  the store checks positions, a digest of the history just before it (``value``);
- ``kind = "meta"``: one JSON value per ``key``: ``sync`` (id, holder, mode, times, store),
  ``rows`` and ``versions`` per table, ``experiments`` (a digest per experiment),
  ``state_key`` and ``positions_key`` (the store's :class:`StoreCapabilities` keys the
  fingerprints and positions were taken with), ``metrics_exact``, ``appends``, ``tables`` (the
  optional tables kept), ``digests`` (per keyed table, a digest of the rows last read) and,
  where the store takes metric marks, ``metrics_mark`` (the mark the positions were taken at
  and the experiments they cover), and ``series_count`` / ``series_rows`` (the live series
  entries, and the series rows the table holds: what a read without the series cannot count).

Where the store takes metric marks, a sync reads the state without its series
(:func:`read_state` with ``series=False``: a tenth of the rows) and then only the series of
the runs whose points moved since the saved mark (:func:`read_series`): the others cannot
change in that sync.

State written by 0.1.0 recorded store kinds as class names (meta ``fingerprints`` =
``"SqlStore"`` / ``"FileStore"``, ``positions`` = ``"SqlStore:sqlite:exact"``, ...);
:func:`migrate_meta` maps them to the capability keys, so such targets keep syncing
incrementally.

Example::

    >>> migrate_meta({"fingerprints": "SqlStore", "positions": "SqlStore:sqlite:exact"})
    {'state_key': 'sql', 'positions_key': 'sql:rowid:exact'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..jobs.target import sql_string

#: The sync's state table in the target.
STATE_TABLE = "_sync_state"
#: Appends to the state after which a sync rewrites it in one file.
MAX_STATE_APPENDS = 50
#: Above this many runs, :func:`read_series` reads every series rather than list the runs.
MAX_LISTED_SERIES_RUNS = 900
#: The state's fingerprint of a run (or trace) that a read skipped (PERMISSIVE): matches no
#: scan, so every part of it is re-read (and merged: it is known) by the next sync.
UNSYNCED = "unsynced"

STATE_COLUMNS = ("kind", "run_id", "key", "experiment_id", "value", "position", "sync_id")

# 0.1.0 recorded class names; these are the capability keys the same stores declare now.
_LEGACY_STATE_KEYS = {"SqlStore": "sql", "FileStore": "file"}
_LEGACY_POSITION_KINDS = {
    ("SqlStore", "exact"): "sql:rowid:exact",
    ("SqlStore", "count"): "sql:count:whole",
    ("FileStore", "exact"): "file:bytes:exact",
}


def state_schema():
    """The Spark schema of ``_sync_state``."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    return StructType([
        StructField("kind", StringType(), False),  # run | series | meta
        StructField("run_id", StringType(), True),
        StructField("key", StringType(), True),
        StructField("experiment_id", StringType(), True),
        StructField("value", StringType(), True),  # run: fingerprint (null: removed); meta: JSON
        StructField("position", LongType(), True),  # series: position (null: removed)
        StructField("sync_id", LongType(), False),
    ])


def arrow_state_schema():
    """The Arrow schema of ``_sync_state``'s rows."""
    import pyarrow as pa

    return pa.schema([
        pa.field("kind", pa.string(), nullable=False),
        pa.field("run_id", pa.string()),
        pa.field("key", pa.string()),
        pa.field("experiment_id", pa.string()),
        pa.field("value", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("sync_id", pa.int64(), nullable=False),
    ])


def migrate_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """State meta with 0.1.0's class-name kinds replaced by capability keys.

    Unknown legacy values map to nothing (the next sync then re-reads that part in full).

    Example::

        >>> migrate_meta({"fingerprints": "FileStore", "positions": "FileStore:file:exact", "rows": {}})
        {'rows': {}, 'state_key': 'file', 'positions_key': 'file:bytes:exact'}
        >>> migrate_meta({"fingerprints": "SqlStore", "positions": "SqlStore:postgresql:count"})["positions_key"]
        'sql:count:whole'
        >>> migrate_meta({"state_key": "sql", "positions_key": "sql:rowid:exact"})
        {'state_key': 'sql', 'positions_key': 'sql:rowid:exact'}
    """
    meta = dict(meta)
    legacy_fingerprints = meta.pop("fingerprints", None)
    legacy_positions = meta.pop("positions", None)
    if "state_key" not in meta and isinstance(legacy_fingerprints, str):
        meta["state_key"] = _LEGACY_STATE_KEYS.get(legacy_fingerprints)
    if "positions_key" not in meta and isinstance(legacy_positions, str):
        parts = legacy_positions.split(":")
        meta["positions_key"] = _LEGACY_POSITION_KINDS.get((parts[0], parts[-1])) if len(parts) == 3 else None
    return meta


@dataclass
class SyncState:
    """The state as the last completed sync left it.

    Example::

        >>> state = SyncState.from_rows([("meta", None, "sync", None, '{"sync_id": 1}', None, 1),
        ...                              ("run", "r1", None, "1", "run=a;params=b;tags=c;inputs=d", None, 1)])
        >>> state.empty, state.runs["r1"][0]
        (False, '1')
    """

    runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # run_id -> (experiment, fingerprint)
    traces: dict[str, tuple[str, str]] = field(default_factory=dict)  # trace_id -> (experiment, fingerprint)
    series: dict[tuple[str, str], int] = field(default_factory=dict)  # (run_id, key) -> position
    series_checks: dict[tuple[str, str], str] = field(default_factory=dict)  # (run_id, key) -> check
    meta: dict[str, Any] = field(default_factory=dict)
    stored_rows: int = 0
    stored_series_rows: int = 0
    # Where ``series`` holds only some runs' entries (read_state(series=False), then
    # read_series): how many live series entries the whole state holds.
    partial_series_count: int | None = None

    @property
    def empty(self) -> bool:
        """No sync ever completed on this target."""
        return not self.meta.get("sync")

    @property
    def partial(self) -> bool:
        """Whether :attr:`series` holds only the entries of some runs (:func:`read_series`)."""
        return self.partial_series_count is not None

    @property
    def series_count(self) -> int:
        """Live series entries in the whole state, read or not."""
        return len(self.series) if self.partial_series_count is None else self.partial_series_count

    @property
    def live_rows(self) -> int:
        return len(self.runs) + len(self.traces) + self.series_count + len(self.meta)

    def series_meta(self, series: dict[tuple[str, str], int], written_series_rows: int, compact: bool) -> dict:
        """The meta entries ``series_count`` and ``series_rows`` after a sync that saves
        ``series`` (as :func:`~.plan.next_state` returns them: of the same runs as :attr:`series`
        where the state is partial) in ``written_series_rows`` rows.

        Example::

            >>> state = SyncState(series={("r", "loss"): 3}, partial_series_count=10, stored_series_rows=12)
            >>> state.series_meta({("r", "loss"): 5, ("r", "acc"): 5}, 2, compact=False)
            {'series_count': 11, 'series_rows': 14}
        """
        return {"series_count": self.series_count - len(self.series) + len(series),
                "series_rows": written_series_rows + (0 if compact else self.stored_series_rows)}

    @property
    def last_sync(self) -> dict:
        return dict(self.meta.get("sync") or {})

    @classmethod
    def from_rows(cls, rows) -> SyncState:
        """From ``(kind, run_id, key, experiment_id, value, position, sync_id)`` tuples, in any
        order; migrates legacy meta (:func:`migrate_meta`)."""
        rows = sorted(rows, key=lambda row: row[6])
        columns = list(zip(*rows)) if rows else [[] for _ in STATE_COLUMNS]
        return cls._latest(dict(zip(STATE_COLUMNS, columns)), len(rows))

    @classmethod
    def from_arrow(cls, arrow) -> SyncState:
        """From the state table read as an Arrow table."""
        arrow = arrow.sort_by([("sync_id", "ascending")])  # a stable sort: rows of one sync keep their order
        return cls._latest({name: arrow.column(name).to_pylist() for name in STATE_COLUMNS}, arrow.num_rows)

    @classmethod
    def _latest(cls, columns: dict, stored_rows: int) -> SyncState:
        """The latest row per entry (columns in ``sync_id`` order: later rows win, as dict
        keys do), a null removing the entry."""
        runs: dict = {}
        traces: dict = {}
        series: dict = {}
        meta: dict = {}
        kinds = columns["kind"]
        fields = zip(columns["run_id"], columns["key"], columns["experiment_id"], columns["value"], columns["position"])
        for kind, (run_id, key, experiment_id, value, position) in zip(kinds, fields):
            if kind == "run":
                runs[run_id] = (experiment_id, value)
            elif kind == "trace":
                traces[key] = (experiment_id, value)
            elif kind == "series":
                series[(run_id, key)] = (position, value)
            elif kind == "meta":
                meta[key] = value
        state = cls(stored_rows=stored_rows, stored_series_rows=sum(1 for kind in kinds if kind == "series"))
        state.runs = {run_id: entry for run_id, entry in runs.items() if entry[1] is not None}
        state.traces = {trace_id: entry for trace_id, entry in traces.items() if entry[1] is not None}
        state.series = {pair: int(position) for pair, (position, _) in series.items() if position is not None}
        state.series_checks = {pair: check for pair, (position, check) in series.items()
                               if position is not None and check is not None}
        state.meta = migrate_meta({key: json.loads(value) for key, value in meta.items()})
        return state


def state_update(state: SyncState, runs: dict[str, tuple[str, str]], series: dict[tuple[str, str], int],
                 meta: dict[str, Any], sync_id: int, compact: bool,
                 checks: dict[tuple[str, str], str] | None = None, count_series: bool = False,
                 traces: dict[str, tuple[str, str]] | None = None) -> dict[str, list]:
    """The rows a sync writes to the state, as columns: with ``compact``, every live entry
    (the table is overwritten); otherwise only what differs from ``state``, removals as nulls
    (appended). ``checks``: the position checks saved with ``series`` (in ``value``).
    ``count_series``: ``meta`` gets ``series_count`` and ``series_rows`` as they are after
    these rows (:meth:`SyncState.series_meta`): ``series`` holds the same runs as ``state``.
    ``traces``: the traces' fingerprints after this sync (None: as ``state`` holds them).

    Example::

        >>> old = SyncState(runs={"a": ("1", "x"), "b": ("1", "y")})
        >>> cols = state_update(old, {"a": ("1", "x2")}, {}, {"sync": {"sync_id": 2}}, 2, compact=False)
        >>> list(zip(cols["kind"], cols["run_id"], cols["value"]))
        [('run', 'a', 'x2'), ('run', 'b', None), ('meta', None, '{"sync_id": 2}')]
    """
    columns: dict[str, list] = {name: [] for name in STATE_COLUMNS}

    def add(kind, run_id=None, key=None, experiment_id=None, value=None, position=None):
        for name, item in zip(STATE_COLUMNS, (kind, run_id, key, experiment_id, value, position, sync_id)):
            columns[name].append(item)

    # Set differences of dict items (no Python loop over the 100,000s of unchanged entries).
    for run_id, (experiment_id, value) in sorted(runs.items() if compact else runs.items() - state.runs.items()):
        add("run", run_id=run_id, experiment_id=experiment_id, value=value)
    traces = state.traces if traces is None else traces
    for trace_id, (experiment_id, value) in sorted(traces.items() if compact else traces.items() - state.traces.items()):
        add("trace", key=trace_id, experiment_id=experiment_id, value=value)
    checks = {pair: check for pair, check in (checks or {}).items() if check is not None}
    if compact:
        differing = series.keys()
    else:
        differing = {pair for pair, _ in series.items() - state.series.items()}
        differing |= {pair for pair, _ in checks.items() ^ state.series_checks.items() if pair in series}
    for run_id, key in sorted(differing):
        add("series", run_id=run_id, key=key, value=checks.get((run_id, key)), position=int(series[(run_id, key)]))
    if not compact:
        for run_id in sorted(set(state.runs) - set(runs)):
            add("run", run_id=run_id)  # removed
        for trace_id in sorted(set(state.traces) - set(traces)):
            add("trace", key=trace_id)  # removed
        for run_id, key in sorted(set(state.series) - set(series)):
            add("series", run_id=run_id, key=key)  # removed
    if count_series:
        meta = {**meta, **state.series_meta(series, columns["kind"].count("series"), compact)}
    for name, value in meta.items():
        add("meta", key=name, value=json.dumps(value, sort_keys=True))
    return columns


def should_compact(state: SyncState, full: bool) -> tuple[bool, int]:
    """Whether this sync rewrites the state in one file (Delta reads many small files slowly),
    and the ``appends`` count to record.

    Example::

        >>> should_compact(SyncState(meta={"appends": 3}), full=False)
        (False, 4)
    """
    appends = int(state.meta.get("appends", 0)) + 1
    compact = full or appends > MAX_STATE_APPENDS or state.stored_rows > 2 * state.live_rows + 10_000
    return compact, 0 if compact else appends


def read_state(target, version: int | None = None, series: bool = True) -> tuple[SyncState, int]:
    """The state in ``target`` (a :class:`~pyspark_experiments.jobs.target.DeltaTarget`) at
    ``version`` (default: the latest), and that version.

    ``series=False``: without the series entries (a :attr:`SyncState.partial` state; add the
    runs' series needed with :func:`read_series`), where the state's meta counts them. A state
    without those counts (written by an earlier version), or with a series not recorded as
    synced, is read whole.

    Example::

        >>> state, version = read_state(target)                                # doctest: +SKIP
        >>> state, version = read_state(target, version, series=False)         # doctest: +SKIP
        >>> state.partial, state.series                                        # doctest: +SKIP
        (True, {})
    """
    if version is None:
        version = target.latest_version(STATE_TABLE)
    frame = target.read(STATE_TABLE, version=version)
    if not series:
        # A position below 0 is a series not recorded as synced: then the sync needs them all.
        state = SyncState.from_arrow(frame.where("kind <> 'series' OR position < 0").toArrow())
        counted = isinstance(state.meta.get("series_count"), int) and isinstance(state.meta.get("series_rows"), int)
        if counted and not state.series and not state.empty:
            state.partial_series_count = state.meta["series_count"]
            state.stored_series_rows = state.meta["series_rows"]
            state.stored_rows += state.stored_series_rows
            return state, version
    return SyncState.from_arrow(frame.toArrow()), version


def read_series(target, version: int, state: SyncState, run_ids=None) -> SyncState:
    """``state``, read at ``version`` without its series (:func:`read_state`), with the series
    entries of ``run_ids`` added (None, or more than :data:`MAX_LISTED_SERIES_RUNS`: all of them,
    and the state is whole). A whole state is returned as it is.

    Example::

        >>> state = read_series(target, version, state, {"5f1c..."})           # doctest: +SKIP
    """
    if not state.partial:
        return state
    if run_ids is None or len(run_ids) > MAX_LISTED_SERIES_RUNS:
        return read_state(target, version)[0]
    if not run_ids:
        return state
    listed = ", ".join(sql_string(run_id) for run_id in sorted(run_ids))
    frame = target.read(STATE_TABLE, version=version).where(f"kind = 'series' AND run_id IN ({listed})")
    found = SyncState.from_arrow(frame.toArrow())
    state.series.update(found.series)
    state.series_checks.update(found.series_checks)
    return state


def write_state(target, columns: dict[str, list], compact: bool, user_metadata: str | None = None) -> None:
    """Write the rows of :func:`state_update` in one commit (overwrite when ``compact``), with
    ``user_metadata`` kept in the commit (see :func:`head_metadata`)."""
    import pyarrow as pa

    arrow = pa.Table.from_pydict(columns, schema=arrow_state_schema())
    df = target.spark.createDataFrame(arrow, schema=state_schema())
    target.write(df.coalesce(1), STATE_TABLE, "overwrite" if compact else "append", user_metadata=user_metadata)


#: What a state commit's header holds besides the store's token and the sync's scope.
HEADER_KEYS = frozenset({"sync_id", "experiment_count", "run_count", "appends", "rows"})


def unchanged_since(head: Mapping, store_token: str | None, scope: str) -> bool:
    """Whether the state commit's header (``head``, :func:`state_header`) was kept by a sync
    of the same ``scope`` (:func:`scope_digest`) that took the token the store gives now.

    Example::

        >>> head = {"store_token": "t1", "scope": "s", "sync_id": 1, "experiment_count": 1, "run_count": 2,
        ...         "appends": 0, "rows": {"runs": 2}}
        >>> unchanged_since(head, "t1", "s"), unchanged_since(head, "t2", "s"), unchanged_since(head, "t1", "other")
        (True, False, False)
    """
    return (head.get("store_token") == store_token and head.get("scope") == scope
            and HEADER_KEYS <= head.keys() and isinstance(head["rows"], dict))


def state_header(store_token: str | None, scope: str, *, sync_id: int, experiment_count: int, run_count: int,
                 appends: int, rows: Mapping[str, int], skipped: bool, trace_count: int = 0) -> str | None:
    """What the state commit keeps (as Delta's user metadata) for the next sync to skip its
    scan when the store has not changed: the store's token taken before this sync's scan,
    with what this sync records (``trace_count`` where it keeps a trace table). None where the
    store takes no tokens or a record was ``skipped`` (the next sync re-reads it).

    Example::

        >>> state_header("t1", "s", sync_id=2, experiment_count=1, run_count=3, appends=1, rows={"runs": 3},
        ...              skipped=False)
        '{"store_token": "t1", "scope": "s", "sync_id": 2, "experiment_count": 1, "run_count": 3, "appends": 1, "rows": {"runs": 3}}'
        >>> state_header(None, "s", sync_id=2, experiment_count=1, run_count=3, appends=1, rows={}, skipped=False)
    """
    if store_token is None or skipped:
        return None
    return json.dumps({
        "store_token": store_token, "scope": scope, "sync_id": sync_id,
        "experiment_count": experiment_count, "run_count": run_count, "appends": appends, "rows": rows,
        **({"trace_count": trace_count} if trace_count else {}),
    })


def head_metadata(target) -> tuple[int, dict]:
    """The state table's latest version, and the user metadata (JSON) that the latest commit
    writing rows (an ``OPTIMIZE`` may follow it) kept; ``{}`` where it kept none.

    Example::

        >>> head_metadata(target)                                              # doctest: +SKIP
        (12, {'store_token': 'sqlite:2049:1835:14102528:1764339000123456789:292', 'scope': '5d41...'})
    """
    version, written = target.latest_write(STATE_TABLE)
    try:
        metadata = json.loads(written["userMetadata"] or "{}")
    except ValueError:
        metadata = {}
    return version, metadata if isinstance(metadata, dict) else {}
