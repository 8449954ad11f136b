"""The sync's decisions, as a pure function: from what the store holds now (:class:`Scan`), what
the last completed sync saw (:class:`~.state.SyncState`) and the flags (:class:`Flags`), to what
this sync reads and how it writes it (:class:`Plan`). No Spark, no store, no I/O.

The rules:

- a first sync, ``full``, or saved fingerprints taken with another ``state_key`` (a store of
  another kind) re-read everything and MERGE it (mode ``full``);
- a run is re-read for each part of its fingerprint that changed (run row, params, tags,
  inputs); a run's row is also re-read when any of its metric series moved;
- a metric series whose position grew is read between the saved and the current position,
  unless the store checks positions and the history before the saved one changed in place
  (``Scan.checks_after`` differs from the saved check): then it is read whole; a series that
  shrank, or whose positions are of kind ``digest`` (no order: "changed"), is read
  whole and replaces the saved series; positions of another ``positions_key`` than the saved
  ones are read from 0;
- rows of runs the target has never seen are appended, and exactly-bounded new points too
  (``exact_metric_ranges``, the previous sync's ranges exact as well); everything else is
  merged. After a killed or failed sync (``recovering``) everything is merged: it may have
  written some of it;
- the optional tables (``Flags.tables``): ``artifacts`` is re-listed for the runs re-read for
  any other reason (new, changed, or with metric series that moved: logging an artifact
  changes nothing else a scan sees), and for every run on a full sync, a sync that keeps the
  table for the first time, or ``relist_artifacts``; ``models``, ``registered_models`` and
  ``model_versions`` (:data:`KEYED_TABLES`) are read whole and written when their digest differs
  from the saved one (:meth:`Plan.writes_keyed`), always on a full or recovering sync or the
  first time the table is kept; ``traces``, ``spans`` and ``assessments`` follow each trace's
  fingerprint (:mod:`.traces`).

Example::

    >>> scan = Scan(("1",), {"r": ("1", "run=a;params=b;tags=c;inputs=d")}, {("r", "loss"): 96},
    ...             state_key="file", positions_key="file:bytes:exact", position_kind="bytes", exact_ranges=True)
    >>> plan = make_plan(scan, SyncState(), Flags())
    >>> plan.mode, sorted(plan.changed["runs"]), plan.ranges
    ('full', ['r'], {('r', 'loss'): (0, 96)})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .. import tables
from ..stores.fingerprints import FINGERPRINT_PARTS, fingerprint_parts
from .state import UNSYNCED, SyncState, should_compact
from .traces import TRACE_TABLES, TracePlan, plan_traces

#: Above this many series a narrowed read lists no ranges but reads whole runs and merges.
MAX_LISTED_SERIES = 50_000

#: The state's position of a series whose run a read skipped: the next sync reads it whole.
UNSYNCED_POSITION = -1

PER_RUN_TABLES = (tables.PARAMS, tables.TAGS, tables.INPUTS, tables.RUNS)

#: Tables the sync keeps besides the six run tables, when asked (``Flags.tables``).
OPTIONAL_TABLES = (tables.ARTIFACTS, tables.MODELS, tables.REGISTERED_MODELS, tables.MODEL_VERSIONS, *TRACE_TABLES)
#: Optional tables read whole every sync (small), compared by digest, mirrored by MERGE.
KEYED_TABLES = (tables.MODELS, tables.REGISTERED_MODELS, tables.MODEL_VERSIONS)

#: The tables in the order of the summary (and of their creation, reconcile and OPTIMIZE):
#: the six run tables, then the optional ones a sync keeps when asked (``tables``).
COMMIT_ORDER = (tables.EXPERIMENTS, tables.PARAMS, tables.TAGS, tables.INPUTS, tables.METRICS, tables.RUNS,
                tables.ARTIFACTS, tables.MODELS, tables.REGISTERED_MODELS, tables.MODEL_VERSIONS, *TRACE_TABLES)
#: Tables whose rows belong to a run (deleted with it by a reconcile).
RUN_KEYED_TABLES = (tables.PARAMS, tables.TAGS, tables.INPUTS, tables.METRICS, tables.ARTIFACTS, tables.RUNS)
#: Per-run tables whose rows a re-read run no longer has are deleted (MLflow never deletes params).
STALE_DELETING_TABLES = (tables.TAGS, tables.INPUTS, tables.ARTIFACTS)

#: Above this many runs a narrowed read lists no run ids but reads all and filters.
MAX_LISTED_RUNS = 5_000
#: Up to these sizes, what changed is read on the driver through the same store backend the data
#: source uses, and handed to Spark as one Arrow table: a Spark job per table costs more than the
#: read itself. Larger reads go through the data source, spread over the executors.
DRIVER_READ_RUNS = 500
#: Traces whose rows (spans included) are read on the driver at most.
DRIVER_READ_TRACES = 500
DRIVER_READ_POINTS = 250_000


@dataclass(frozen=True)
class Scan:
    """What the store holds now, cheaply: the selected experiments, a fingerprint per run and a
    position per metric series, with the keys they were taken with (from
    :class:`~pyspark_experiments.stores.base.StoreCapabilities`).

    ``position_kind`` is ``bytes``, ``rowid``, ``count`` or ``digest`` (a store that reports
    none is counted: ``count``); ``exact_ranges``: a read between two positions returns exactly
    the points logged in between.
    """

    experiment_ids: tuple[str, ...]
    fingerprints: Mapping[str, tuple[str, str]]
    positions: Mapping[tuple[str, str], int]
    state_key: str
    positions_key: str
    position_kind: str = "count"
    exact_ranges: bool = False
    # Where the store checks positions (file store): per series, a digest of the history just
    # before its current position, and the same digest taken now at the saved position.
    checks: Mapping[tuple[str, str], str] = field(default_factory=dict)
    checks_after: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # Where the store takes metric marks (SQLite): the mark taken before the positions.
    metrics_mark: str | None = None
    # Where a trace table is kept: {trace_id: (experiment_id, fingerprint)} of the store's traces.
    traces: Mapping[str, tuple[str, str]] | None = None


@dataclass(frozen=True)
class Flags:
    """How this sync was asked to run, and what the lock found.

    ``recovering``: the lock was taken over from a sync that did not save its state
    (:func:`is_recovery`).
    """

    full: bool = False
    recovering: bool = False
    max_listed_series: int = MAX_LISTED_SERIES
    tables: tuple[str, ...] = ()  # optional tables kept (OPTIONAL_TABLES)
    relist_artifacts: bool = False  # re-list every run's artifacts, not only re-read runs'
    # every experiment of the store is synced: a trace deleted from any of them leaves the tables
    all_experiments: bool = False


@dataclass
class Plan:
    """What one sync reads and how it writes it."""

    mode: str  # "full" or "incremental"
    full: bool
    recovering: bool
    experiment_ids: tuple[str, ...]
    fingerprints: dict[str, tuple[str, str]]
    positions: dict[tuple[str, str], int]
    changed: dict[str, set[str]]  # per-run table -> runs to re-read
    new_runs: set[str]  # runs the target has never seen
    ranges: dict[tuple[str, str], tuple[int, int]]  # series -> (after, upto]
    whole_series: set[tuple[str, str]] = field(default_factory=set)  # read whole, replace
    append_metrics: bool = False
    metrics_exact: bool = False
    bounded: bool = True  # the series are few enough to list them in the read
    state_key: str = ""
    positions_key: str = ""
    checks: dict[tuple[str, str], str] = field(default_factory=dict)  # saved with the positions
    tables: tuple[str, ...] = ()  # optional tables kept by this sync
    rewrite: set[str] = field(default_factory=set)  # keyed tables merged whatever their digest
    traces: TracePlan | None = None  # the trace tables kept, if any

    def writes_keyed(self, table: str, digest: str, saved: Mapping[str, str]) -> bool:
        """Whether a keyed table (:data:`KEYED_TABLES`), read whole with ``digest``, is merged
        into the target: its digest differs from the ``saved`` one (state meta ``digests``), or
        the plan rewrites it (full, recovering, kept for the first time).

        Example::

            >>> plan = make_plan(Scan((), {}, {}, "sql", "sql:rowid:exact"), SyncState(), Flags(tables=("models",)))
            >>> plan.writes_keyed("models", "d1", {"models": "d1"})           # a first sync writes it
            True
            >>> plan.rewrite.clear()                                         # a later sync: by digest
            >>> plan.writes_keyed("models", "d1", {"models": "d1"}), plan.writes_keyed("models", "d2", {"models": "d1"})
            (False, True)
        """
        return table in self.rewrite or saved.get(table) != digest

    def appends(self, table: str) -> bool:
        """Whether ``table``'s rows are appended (only runs the target never saw, no recovery)
        rather than merged.

        Example::

            >>> Plan("incremental", False, False, (), {}, {}, {"tags": {"r"}}, {"r"}, {}).appends("tags")
            True
        """
        if table == tables.METRICS:
            return self.append_metrics
        return bool(self.changed.get(table)) and self.changed[table] <= self.new_runs and not self.full and not self.recovering

    @property
    def series_read(self) -> int:
        return len(self.ranges) + len(self.whole_series)

    @property
    def touched_runs(self) -> set[str]:
        runs = set()
        for table in PER_RUN_TABLES:
            runs |= self.changed.get(table, set())
        return runs

    @property
    def new_run_count(self) -> int:
        return len(self.touched_runs & self.new_runs)

    @property
    def changed_run_count(self) -> int:
        return len(self.touched_runs - self.new_runs)


def make_plan(scan: Scan, state: SyncState, flags: Flags = Flags()) -> Plan:
    """The plan of a sync (see the module documentation for the rules).

    Example::

        >>> fp = "run=a;params=b;tags=c;inputs=d"
        >>> scan = Scan(("1",), {"r": ("1", fp)}, {("r", "loss"): 5}, "sql", "sql:rowid:exact", "rowid", True)
        >>> saved = SyncState(runs={"r": ("1", fp)}, series={("r", "loss"): 3},
        ...                   meta={"sync": {"sync_id": 1}, "state_key": "sql", "positions_key": "sql:rowid:exact",
        ...                         "metrics_exact": True})
        >>> plan = make_plan(scan, saved)
        >>> plan.mode, plan.ranges, plan.append_metrics, sorted(plan.changed["runs"]), plan.changed["tags"]
        ('incremental', {('r', 'loss'): (3, 5)}, True, ['r'], set())
    """
    same_kind = state.meta.get("state_key") == scan.state_key
    full = flags.full or state.empty or not same_kind
    comparable_series = not full and state.meta.get("positions_key") == scan.positions_key
    old_runs = {} if full else state.runs
    old_series = state.series if comparable_series else {}
    known = set(state.runs) if same_kind else set()

    changed: dict[str, set[str]] = {part: set() for part in FINGERPRINT_PARTS}
    for run_id, (_, value) in scan.fingerprints.items():
        old = old_runs.get(run_id, (None, None))[1]
        if old == value:
            continue
        new_parts, old_parts = fingerprint_parts(value), fingerprint_parts(old)
        for part in FINGERPRINT_PARTS:
            if not new_parts or not old_parts or new_parts[part] != old_parts[part]:
                changed[part].add(run_id)

    ranges: dict[tuple[str, str], tuple[int, int]] = {}
    whole: set[tuple[str, str]] = set()
    for pair, position in scan.positions.items():
        before = old_series.get(pair)
        if before == position:
            continue
        if scan.position_kind == "digest" or before == UNSYNCED_POSITION:
            whole.add(pair)  # no order (or not synced): re-read the whole series
        elif before is None:
            ranges[pair] = (0, position)
        elif position < before:
            whole.add(pair)  # shrank: not an append-only history any more
        elif pair in state.series_checks and scan.checks_after.get(pair) != state.series_checks[pair]:
            whole.add(pair)  # grew, but what was before the saved position changed in place
        else:
            ranges[pair] = (before, position)

    # A run's row holds its params, tags and latest metrics, not its inputs.
    moved = {run_id for run_id, _ in ranges} | {run_id for run_id, _ in whole}
    runs_changed = changed["run"] | changed["params"] | changed["tags"] | moved
    bounded = len(ranges) + len(whole) <= flags.max_listed_series
    exact = scan.exact_ranges and bounded

    # Optional tables: those the last completed sync did not keep are read whole this time.
    kept = tuple(t for t in OPTIONAL_TABLES if t in flags.tables)
    first_time = set(kept) if full else set(kept) - set(state.meta.get("tables") or ())
    artifacts: set[str] = set()
    if tables.ARTIFACTS in kept:
        if flags.relist_artifacts or tables.ARTIFACTS in first_time:
            artifacts = set(scan.fingerprints)
        else:  # a run re-read for any reason is re-listed (logging an artifact changes nothing a scan sees)
            artifacts = (runs_changed | changed["inputs"]) & set(scan.fingerprints)
    rewrite = {t for t in KEYED_TABLES if t in kept and (flags.recovering or t in first_time)}
    trace_plan = None
    if any(t in kept for t in TRACE_TABLES):
        scanned = dict(scan.traces or {})
        saved = state.traces if same_kind else {}
        gone = purged_runs({t: e for t, (e, _) in saved.items()}, scanned, scan.experiment_ids, flags.all_experiments)
        trace_plan = plan_traces(scanned, saved, kept=kept, gone=gone, full=full, recovering=flags.recovering,
                                 first_time=first_time)
    return Plan(
        mode="full" if full else "incremental",
        full=full,
        recovering=flags.recovering,
        experiment_ids=tuple(scan.experiment_ids),
        fingerprints=dict(scan.fingerprints),
        positions=dict(scan.positions),
        changed={
            tables.PARAMS: changed["params"], tables.TAGS: changed["tags"],
            tables.INPUTS: changed["inputs"], tables.RUNS: runs_changed,
            tables.ARTIFACTS: artifacts,
        },
        new_runs=set(scan.fingerprints) - known,
        ranges=ranges,
        whole_series=whole,
        # Reads bounded by the scanned positions return exactly the points not in the table yet
        # when the previous sync completed with exact positions: those are appended.
        append_metrics=exact and comparable_series and not whole and not flags.recovering
        and bool(state.meta.get("metrics_exact")),
        metrics_exact=exact,
        bounded=bounded,
        state_key=scan.state_key,
        positions_key=scan.positions_key,
        checks=dict(scan.checks),
        tables=kept,
        rewrite=rewrite,
        traces=trace_plan,
    )


def is_recovery(taken_over: Iterable[Mapping], last_sync: Mapping) -> bool:
    """Whether a claim taken over belonged to a sync that did not save its state (it may have
    committed some tables: this sync merges everything).

    Example::

        >>> is_recovery([{"holder": "b"}], {"holder": "a"}), is_recovery([{"holder": "a"}], {"holder": "a"})
        (True, False)
    """
    return any(holder.get("holder") != last_sync.get("holder") for holder in taken_over)


def purged_runs(found: Mapping[str, str], present: Iterable[str], experiment_ids: Iterable[str],
                all_experiments: bool) -> set[str]:
    """Runs (or traces) in the target's tables (``{run_id: experiment_id}``) that the store no
    longer holds, within the selected experiments (or all, when every experiment is synced).

    Example::

        >>> sorted(purged_runs({"a": "1", "b": "1", "c": "2"}, {"a"}, ["1"], all_experiments=False))
        ['b']
    """
    present, selected = set(present), set(experiment_ids)
    return {run_id for run_id, experiment_id in found.items()
            if run_id not in present and (all_experiments or experiment_id in selected)}


def skipped_runs(plan: Plan, skipped: Iterable) -> set[str]:
    """The scanned runs whose reads skipped a record (PERMISSIVE): each
    :class:`~pyspark_experiments.stores.problems.SkippedRecord` with a run id names its run; one
    with only an experiment id names that experiment's runs; one with neither, every run.

    Example::

        >>> from pyspark_experiments.stores.problems import SkippedRecord
        >>> plan = make_plan(Scan(("1", "2"), {"a": ("1", "x"), "b": ("2", "y")}, {}, "file", "file:bytes:exact"), SyncState())
        >>> sorted(skipped_runs(plan, [SkippedRecord("/m/2/meta.yaml: not valid YAML", "2")]))
        ['b']
    """
    found: set[str] = set()
    for record in skipped:
        if record.run_id:
            found.add(record.run_id)
        elif record.experiment_id:
            found |= {r for r, (e, _) in plan.fingerprints.items() if e == record.experiment_id}
        else:
            found |= set(plan.fingerprints)
    return found


def next_state(state: SyncState, plan: Plan, purged: Iterable[str] = (), skipped: Iterable[str] = ()) -> tuple[dict, dict]:
    """The runs and series the state records after this sync: the scanned ones, plus those of
    runs that left the store (or the selection) until a reconcile deletes them.

    A run in ``skipped`` (its reads skipped a record: :func:`skipped_runs`) is never recorded
    as synced: it gets the fingerprint :data:`UNSYNCED` and its series the position
    :data:`UNSYNCED_POSITION`, so that the next sync re-reads all of it and merges it (some of
    its rows may have been written).

    Example::

        >>> saved = SyncState(runs={"gone": ("1", "x")}, series={("gone", "loss"): 3})
        >>> plan = make_plan(Scan(("1",), {}, {}, "sql", "sql:rowid:exact"), saved)
        >>> next_state(saved, plan), next_state(saved, plan, purged={"gone"})
        (({'gone': ('1', 'x')}, {('gone', 'loss'): 3}), ({}, {}))
        >>> plan = make_plan(Scan(("1",), {"r": ("1", "fp")}, {("r", "loss"): 9}, "sql", "sql:rowid:exact"), SyncState())
        >>> next_state(SyncState(), plan, skipped={"r"})
        ({'r': ('1', 'unsynced')}, {('r', 'loss'): -1})
    """
    purged, skipped = set(purged), set(skipped)
    runs = {r: v for r, v in state.runs.items() if r not in purged}
    runs.update(plan.fingerprints)
    series = {p: v for p, v in state.series.items() if p[0] not in purged and p[0] not in plan.fingerprints}
    series.update(plan.positions)
    for run_id in skipped & set(runs):
        runs[run_id] = (runs[run_id][0], UNSYNCED)
    for pair in series:
        if pair[0] in skipped:
            series[pair] = UNSYNCED_POSITION
    return runs, series


def next_checks(state: SyncState, plan: Plan, series: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], str]:
    """The position checks saved with ``series`` (as :func:`next_state` returns them): this
    scan's where it took the position, the saved one where the position did not move, none for
    a series not recorded as synced.

    Example::

        >>> plan = make_plan(Scan(("1",), {}, {("r", "loss"): 9}, "file", "file:bytes:exact", checks={("r", "loss"): "c9"}),
        ...                  SyncState())
        >>> next_checks(SyncState(), plan, {("r", "loss"): 9}), next_checks(SyncState(), plan, {("r", "loss"): -1})
        ({('r', 'loss'): 'c9'}, {})
    """
    checks = {}
    for pair, position in series.items():
        if position == UNSYNCED_POSITION:
            continue
        if pair in plan.checks and plan.positions.get(pair) == position:
            checks[pair] = plan.checks[pair]
        elif pair in state.series_checks and state.series.get(pair) == position:
            checks[pair] = state.series_checks[pair]
    return checks


# ------------------------------------------------------------------------------------------------
# How the state is read
# ------------------------------------------------------------------------------------------------


def series_read_by_run(metric_marks: bool, full: bool, reconcile_purged: bool) -> bool:
    """Whether the state is read without its series, and then only the series of the runs
    whose points moved: where the store takes metric marks, a sync that neither re-reads
    everything nor reconciles purged runs sees only those move.

    Example::

        >>> series_read_by_run(True, False, False), series_read_by_run(True, False, True)
        (True, False)
    """
    return metric_marks and not full and not reconcile_purged


# ------------------------------------------------------------------------------------------------
# Positions, where the store takes marks or checks them
# ------------------------------------------------------------------------------------------------


def moves_saved_positions(scan: Scan, state: SyncState, full: bool, recovering: bool) -> bool:
    """Whether, where the store takes metric marks, the saved positions may be moved by the
    points logged since the saved mark: the last completed sync saved a mark for the same
    experiments and positions, left no series unsynced, and this sync neither re-reads
    everything nor recovers (else every series is scanned).

    Example::

        >>> saved = SyncState(meta={"metrics_mark": {"mark": "7", "experiments": ["1"]}, "positions_key": "sql:rowid:exact"})
        >>> scan = Scan(("1",), {}, None, "sql", "sql:rowid:exact", "rowid", True, metrics_mark="9")
        >>> moves_saved_positions(scan, saved, False, False), moves_saved_positions(scan, saved, False, True)
        (True, False)
    """
    saved = state.meta.get("metrics_mark") or {}
    return bool(saved.get("mark") and saved.get("experiments") == list(scan.experiment_ids) and not full
                and not recovering and state.meta.get("positions_key") == scan.positions_key
                and UNSYNCED_POSITION not in state.series.values())


def series_needed(moved: Iterable[tuple[str, str]] | None, scan: Scan, state: SyncState) -> set[str] | None:
    """The runs whose saved series a sync reads (None: every series), where the state was read
    without them: those of the runs whose points ``moved`` (the series of a run the state does
    not hold are new: nothing to read), unless the positions could not be moved (``moved`` is
    None), the state is of another kind, or it is due for a rewrite.

    Example::

        >>> saved = SyncState(runs={"a": ("1", "x")}, meta={"state_key": "sql"})
        >>> scan = Scan(("1",), {}, None, "sql", "sql:rowid:exact")
        >>> series_needed([("a", "loss"), ("new", "loss")], scan, saved), series_needed(None, scan, saved)
        ({'a'}, None)
    """
    if moved is None or state.meta.get("state_key") != scan.state_key or should_compact(state, False)[0]:
        return None
    return {run_id for run_id, _ in moved if run_id in state.runs}


def moved_series(scan: Scan, state: SyncState) -> tuple[tuple[str, str, int, int], ...]:
    """The series whose position moved since the saved one, as ``(run_id, key, saved, now)``
    (saved: 0 where the saved positions are of another kind), for the store to check.

    Example::

        >>> saved = SyncState(series={("r", "loss"): 40, ("r", "acc"): 8}, meta={"positions_key": "file:bytes:exact"})
        >>> scan = Scan(("1",), {}, {("r", "loss"): 96, ("r", "acc"): 8}, "file", "file:bytes:exact", "bytes", True)
        >>> moved_series(scan, saved)
        (('r', 'loss', 40, 96),)
    """
    saved = state.series if state.meta.get("positions_key") == scan.positions_key else {}
    return tuple(sorted(
        (run_id, key, max(0, saved.get((run_id, key), 0)), int(position))
        for (run_id, key), position in scan.positions.items() if saved.get((run_id, key)) != position
    ))


# ------------------------------------------------------------------------------------------------
# Reads and writes
# ------------------------------------------------------------------------------------------------


def estimated_points(ranges: Mapping[tuple[str, str], tuple[int, int]], position_kind: str,
                     units_per_point: int, average_series: int) -> int:
    """About how many points ``ranges`` hold (only chooses between driver and executors):
    where positions are bytes, the bytes over ``units_per_point``; where they are row ids (or
    counts), a range spans other series' rows too: each is capped at the ``average_series``
    length of the last sync (1,000 when unknown).

    Example::

        >>> estimated_points({("r", "loss"): (0, 960)}, "bytes", 48, 0)
        21
        >>> estimated_points({("r", "loss"): (100, 90_000)}, "rowid", 1, 0)
        1000
    """
    if position_kind == "bytes":
        per_point = max(1, units_per_point)
        return sum(max(0, upto - after) // per_point + 1 for after, upto in ranges.values())
    average = average_series or 1_000
    return sum(min(max(0, upto - after), average) for after, upto in ranges.values())


def average_series_length(metric_rows: int, series_count: int) -> int:
    """The metrics table's rows per series as the state counts them (0 when it counts none).

    Example::

        >>> average_series_length(1_000, 30), average_series_length(1_000, 0)
        (33, 0)
    """
    return int(metric_rows / series_count) if series_count else 0


def reads_metrics_on_driver(plan: Plan, position_kind: str, units_per_point: int, average_series: int) -> bool:
    """Whether the metric points a bounded plan reads are few enough to read on the driver:
    the points of its ranges, and of its whole series at the average length of the last sync.

    Example::

        >>> plan = Plan("incremental", False, False, (), {}, {}, {}, set(), {("r", "loss"): (3, 5)})
        >>> reads_metrics_on_driver(plan, "rowid", 1, 100)
        True
    """
    points = estimated_points(plan.ranges, position_kind, units_per_point, average_series)
    return points + len(plan.whole_series) * max(1, average_series) <= DRIVER_READ_POINTS


def experiment_changes(wanted: Mapping[str, str], known: Mapping[str, str],
                       reconcile: bool) -> tuple[int, int, set[str], dict[str, str]]:
    """What a sync does to the experiments table, from the digest of each experiment in the
    store (``wanted``) and in the target (``known``): how many are inserted and updated, which
    left the store (or the selection), and the digests the state keeps. Experiments that left
    stay, and their digests with them, unless purged runs are reconciled (``reconcile``):
    then they are deleted.

    Example::

        >>> experiment_changes({"1": "a", "2": "b2"}, {"2": "b", "3": "c"}, reconcile=False)
        (1, 1, {'3'}, {'1': 'a', '2': 'b2', '3': 'c'})
        >>> experiment_changes({"1": "a"}, {"1": "a", "3": "c"}, reconcile=True)
        (0, 0, {'3'}, {'1': 'a'})
    """
    gone = set(known) - set(wanted)
    inserted = len(set(wanted) - set(known))
    updated = sum(1 for e in wanted if e in known and wanted[e] != known[e])
    digests = dict(wanted, **{e: known[e] for e in gone if not reconcile})
    return inserted, updated, gone, digests
