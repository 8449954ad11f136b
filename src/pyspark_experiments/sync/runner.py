"""The Spark side of the sync: scan the store, read what the plan says, write the tables,
commit the state. Every decision is :func:`~.plan.make_plan`'s; this module only carries it out.

Only SparkSession SQL and DataFrame APIs are used (through
:class:`~pyspark_experiments.target.DeltaTarget`): the sync runs from a classic or a Spark
Connect session alike. See ``docs/sync.md`` for how a run works.

Example::

    >>> from pyspark_experiments.sync import sync
    >>> result = sync("sqlite:///mlflow.db", "/tmp/mlflow-delta", spark=spark)    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import jobs, tables
from ..errors import ConfigurationError, TargetLockedError
from ..stores.base import Selection
from ..stores.fingerprints import fingerprint
from ..stores.problems import SkippedRecord, collect_skipped
from ..stores.resolve import resolve_experiments
from ..target import LOCK_TABLE, DeltaTarget, TargetLock, sql_string
from ..uri import TrackingUri, resolve_tracking_uri
from .columns import EVOLVED_TABLES, add_new_columns
from .config import DEFAULT_TABLES, SyncConfig
from .plan import (
    KEYED_TABLES,
    PER_RUN_TABLES,
    UNSYNCED_POSITION,
    Flags,
    Plan,
    Scan,
    is_recovery,
    make_plan,
    next_checks,
    next_state,
    purged_runs,
    skipped_runs,
)
from .state import (
    MAX_STATE_APPENDS,
    STATE_TABLE,
    SyncState,
    head_metadata,
    read_series,
    read_state,
    should_compact,
    state_schema,
    state_update,
    write_state,
)

log = logging.getLogger("pyspark_experiments.sync")

#: The tables in the order of the summary (and of their creation, reconcile and OPTIMIZE):
#: the six run tables, then the optional ones a sync keeps when asked (``tables``).
COMMIT_ORDER = (tables.EXPERIMENTS, tables.PARAMS, tables.TAGS, tables.INPUTS, tables.METRICS, tables.RUNS,
                tables.ARTIFACTS, tables.MODELS, tables.REGISTERED_MODELS, tables.MODEL_VERSIONS)
#: Tables whose rows belong to a run (deleted with it by a reconcile).
RUN_KEYED_TABLES = (tables.PARAMS, tables.TAGS, tables.INPUTS, tables.METRICS, tables.ARTIFACTS, tables.RUNS)

#: Test hook: a comma-separated list of phases at which the process SIGKILLs itself, e.g.
#: ``after-write:params``, ``before-state`` or ``during:metrics`` (while that table's write runs).
KILL_ENV = "PYSPARK_EXPERIMENTS_SYNC_KILL_AT"

# Above this size a narrowed read lists no run ids but reads all and filters.
_MAX_LISTED_RUNS = 5_000
# Up to these sizes, what changed is read on the driver through the same store backend the data
# source uses, and handed to Spark as one Arrow table: a Spark job per table costs more than the
# read itself. Larger reads go through the data source, spread over the executors.
_DRIVER_READ_RUNS = 500
_DRIVER_READ_POINTS = 250_000
# The column through which executor reads hand PERMISSIVE skips back (option
# columnNameOfCorruptRecord); split off before anything is written.
_CORRUPT = "_sync_corrupt_record"
# What a state commit's header holds besides the store's token and the sync's scope.
_HEADER_KEYS = {"sync_id", "experiment_count", "run_count", "appends", "rows"}
# Skipped records shown by place in the summary and JSON.
_SHOWN_SKIPS = 5


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------


@dataclass
class TableResult:
    """What one sync did to one table; ``version`` is the Delta version it wrote, if any."""

    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    version: int | None = None
    commits: int = 0


@dataclass
class SyncResult:
    """The outcome of :func:`sync`: per-table counts, Delta versions, what changed in the store.

    Example::

        >>> result = sync("sqlite:///mlflow.db", "/tmp/delta", spark=spark)   # doctest: +SKIP
        >>> result.tables["runs"].inserted                                    # doctest: +SKIP
        42
    """

    store: str
    target: str
    mode: str  # "full" or "incremental"
    started_at: datetime
    duration_s: float = 0.0
    experiments: int = 0
    runs: int = 0
    new_runs: int = 0
    changed_runs: int = 0
    purged_runs: int = 0
    series_read: int = 0
    # PERMISSIVE: distinct records the reads skipped, the runs they belong to (never recorded
    # as synced: the next sync re-reads them), and the first few places
    skipped_records: int = 0
    skipped_runs: int = 0
    skipped_where: list[str] = field(default_factory=list)
    tables: dict[str, TableResult] = field(default_factory=dict)
    state_version: int | None = None
    sync_id: int = 0
    # the store's change token showed nothing changed since the last sync: nothing was read
    store_unchanged: bool = False

    def summary(self) -> str:
        """A one-screen report for a job log.

        Example::

            >>> print(result.summary())                                      # doctest: +SKIP
            pyspark-experiments sync #3: OK, incremental, 12.4 s
            ...
        """
        skips = f" with {self.skipped_records:,} skipped records" if self.skipped_records else ""
        lines = [
            f"pyspark-experiments sync #{self.sync_id}: OK{skips}, {self.mode}, {self.duration_s:.1f} s "
            f"(started {self.started_at:%Y-%m-%d %H:%M:%S} UTC)",
            f"  store   {self.store}",
            f"          {self.experiments:,} experiments, {self.runs:,} runs: {self.new_runs:,} new, "
            f"{self.changed_runs:,} changed, "
            + (f"{self.skipped_runs:,} skipped, " if self.skipped_runs else "")
            + f"{self.purged_runs:,} purged; {self.series_read:,} metric series read",
        ]
        if self.store_unchanged:
            lines.append(f"          unchanged since sync #{self.sync_id - 1}: nothing read")
        if self.skipped_records:
            more = self.skipped_records - len(self.skipped_where)
            lines.append(f"  skipped {self.skipped_records:,} malformed records (PERMISSIVE; re-read by the next sync):")
            lines += [f"          {where[:160]}" for where in self.skipped_where]
            if more > 0:
                lines.append(f"          (and {more:,} more)")
        lines += [
            f"  target  {self.target}",
            "",
            f"  {'table':<17} {'inserted':>10} {'updated':>9} {'deleted':>9} {'unchanged':>11}  delta version",
        ]
        for name in COMMIT_ORDER:
            if name not in tables.TABLE_NAMES and name not in self.tables:
                continue  # an optional table this sync did not keep
            t = self.tables.get(name) or TableResult(name)
            version = "-" if t.version is None else (f"{t.version}" + (f" ({t.commits} commits)" if t.commits > 1 else ""))
            lines.append(
                f"  {name:<17} {t.inserted:>10,} {t.updated:>9,} {t.deleted:>9,} {t.unchanged:>11,}  {version}"
            )
        lines.append(f"  {STATE_TABLE:<17} {'':>10} {'':>9} {'':>9} {'':>11}  {self.state_version}")
        return jobs.hide("\n".join(lines))

    def to_dict(self) -> dict:
        """The result as plain data (JSON-ready).

        Example::

            >>> json.dumps(result.to_dict())                                # doctest: +SKIP
        """
        data = dataclasses.asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data


# ------------------------------------------------------------------------------------------------
# Fault injection (tests only)
# ------------------------------------------------------------------------------------------------


def _wanted_faults() -> list[str]:
    return [p.strip() for p in os.environ.get(KILL_ENV, "").split(",") if p.strip()]


def _kill(phase: str) -> None:
    log.warning("%s=%s: killing this process (SIGKILL)", KILL_ENV, phase)
    for handler in logging.getLogger("pyspark_experiments").handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _fault(phase: str) -> None:
    """SIGKILL this process at ``phase`` when :data:`KILL_ENV` names it (crash tests)."""
    if phase in _wanted_faults():
        _kill(phase)


def _fault_during(phase: str, target: DeltaTarget) -> None:
    """SIGKILL this process while the write of table ``phase`` runs, when :data:`KILL_ENV` names
    ``during:<phase>``: as soon as a new data file appears in the table's folder (written by
    the Spark job, before or as Delta commits it). No SparkContext: works over Spark Connect.
    Folder targets on a local file system only (a test hook)."""
    if f"during:{phase}" not in _wanted_faults():
        return
    if not target.path or "://" in target.path:
        log.warning("%s=during:%s: only for a local folder target; ignored", KILL_ENV, phase)
        return
    folder = target.name(phase)

    def files() -> set[str]:
        found = set()
        for root, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "_delta_log"]
            found.update(os.path.join(root, n) for n in names if n.endswith(".parquet"))
        return found

    before = files()

    def watch() -> None:
        while True:
            if files() - before:
                _kill(f"during:{phase}")
            time.sleep(0.005)

    threading.Thread(target=watch, daemon=True, name=f"kill-during-{phase}").start()


# ------------------------------------------------------------------------------------------------
# The sync
# ------------------------------------------------------------------------------------------------


def sync(
    tracking_uri: str | None = None,
    target_path: str | None = None,
    *,
    target_schema: str | None = None,
    experiments: Sequence[str] | str | None = None,
    full: bool | None = None,
    reconcile_purged: bool | None = None,
    optimize: bool | None = None,
    read_mode: str | None = None,
    lock_timeout_minutes: float | None = None,
    rest_options: dict | None = None,
    tables: Sequence[str] | str | None = None,
    relist_artifacts: bool | None = None,
    spark=None,
    config: SyncConfig | None = None,
    progress: bool | None = None,
) -> SyncResult:
    """Bring the Delta tables at the target in step with a tracking store; returns a summary.

    The first run copies everything; later runs read and write only what changed (see
    ``docs/sync.md``). ``full=True`` re-reads everything and merges it (the tables end the
    same; use it after editing the target by hand). ``reconcile_purged=True`` also deletes the
    runs that are no longer in the store (``mlflow gc``) from every table; without it they stay.
    ``optimize=True`` compacts the tables' small files (Delta ``OPTIMIZE``) after the sync.
    ``rest_options``: for a tracking server (``http(s)://``, ``databricks``), the data source's
    REST options (``maxConcurrentRequests``, ``maxRetries``, ``requestTimeout``, ``token``, ...).
    ``tables``: the optional tables to keep besides the six run tables, of ``artifacts``,
    ``models``, ``registered_models``, ``model_versions`` (default: the last three, where the
    store serves them; ``()`` or ``"none"``: none); ``relist_artifacts=True`` re-lists every
    run's artifacts, not only those of runs re-read for another change (see ``docs/sync.md``).
    Keyword arguments override ``config``. ``spark`` defaults to the active session, or a new
    :func:`pyspark_experiments.session`; a Spark Connect session works too.

    Raises :class:`~pyspark_experiments.errors.TargetLockedError` (``SyncLockedError``) if
    another job holds the target, :class:`~pyspark_experiments.errors.ConfigurationError` for
    invalid settings, and the store's or Delta's error otherwise; in every case the target stays
    consistent and the next run completes the work.

    Example::

        >>> from pyspark_experiments import session
        >>> from pyspark_experiments.sync import sync
        >>> spark = session(master="local[2]")                                # doctest: +SKIP
        >>> sync("sqlite:///mlflow.db", "/tmp/mlflow-delta", spark=spark).mode  # doctest: +SKIP
        'full'
        >>> sync("sqlite:///mlflow.db", "/tmp/mlflow-delta", spark=spark).mode  # doctest: +SKIP
        'incremental'
    """
    cfg = (config or SyncConfig()).override(
        tracking_uri=tracking_uri,
        target_path=target_path,
        target_schema=target_schema,
        experiments=experiments,
        full=full,
        reconcile_purged=reconcile_purged,
        optimize=optimize,
        read_mode=read_mode,
        lock_timeout_minutes=lock_timeout_minutes,
        rest_options=rest_options,
        tables=tables,
        relist_artifacts=relist_artifacts,
        progress=progress,
    ).validate()
    # Whatever fails from here on, the store's password is never printed by the job layer.
    jobs.add_secret(jobs.password_in(cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")))
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            spark = jobs.job_session("sync", master=cfg.master, conf=cfg.spark_conf, log_level=cfg.spark_log_level)
    from .. import register

    register(spark)
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    steps = 7 + bool(cfg.reconcile_purged) + bool(cfg.optimize)
    with _small_table_settings(spark):
        return _Runner(spark, cfg, jobs.Progress("sync", bool(show), steps=steps, logger=log)).run()


_SNAPSHOT_PARTITIONS = "spark.databricks.delta.snapshotPartitions"


def _cores(spark) -> int:
    """The session's parallelism without a SparkContext: ``spark.default.parallelism``, the
    cores of a ``local[N]`` master, else this machine's."""
    try:
        value = spark.conf.get("spark.default.parallelism", None)
        master = str(spark.conf.get("spark.master", "") or "")
    except Exception:  # a server that does not show these settings
        value, master = None, ""
    if value and str(value).isdigit():
        return int(value)
    match = re.fullmatch(r"local\[(\d+)(?:,\d+)?\]", master)
    if match:
        return int(match.group(1))
    return os.cpu_count() or 2


@contextlib.contextmanager
def _small_table_settings(spark):
    """While the sync runs, Delta rebuilds the snapshots of small tables (its state, the lock)
    with as many tasks as the session has cores instead of Delta's default 50, unless the
    session sets ``spark.databricks.delta.snapshotPartitions`` itself (measured: a read after a
    commit took 10 s with 50 tasks, 3 s with 2, on 2 cores)."""
    try:
        set_by_session = spark.conf.get(_SNAPSHOT_PARTITIONS, None) is not None
    except Exception:  # a Connect server that does not let us read it
        set_by_session = True
    if set_by_session:
        yield
        return
    spark.conf.set(_SNAPSHOT_PARTITIONS, str(max(2, min(50, _cores(spark)))))
    try:
        yield
    finally:
        spark.conf.unset(_SNAPSHOT_PARTITIONS)


def _plain(value):
    """Rows as JSON-ready data for digests and comparisons (NaN marked, datetimes as ISO)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _digest(row: dict) -> str:
    return hashlib.sha256(json.dumps(_plain(row), sort_keys=True, default=str).encode()).hexdigest()


def _table_digest(arrow) -> str:
    """A digest of an Arrow table's rows, whatever their order."""
    rows = sorted(_digest(row) for row in arrow.to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


class _Runner:
    def __init__(self, spark, cfg: SyncConfig, progress: jobs.Progress) -> None:
        from ..stores import open_store

        self.spark = spark
        self.cfg = cfg
        self.progress = progress
        self.uri: TrackingUri = resolve_tracking_uri(cfg.tracking_uri)
        jobs.add_secret(jobs.password_in(self.uri.location))
        # A tracking server's options (concurrency, retries, TLS, credential overrides) go to the
        # store, and to the executors' reads as data source options (Spark redacts the secret ones).
        self.store_options = dict(cfg.rest_options)
        self.store = open_store(self.uri, self.store_options or None)
        if self.uri.kind == "rest":
            # Resolved now (a missing credential fails before the lock); whatever its source
            # (options, environment, ~/.mlflow/credentials, ~/.databrickscfg), its value is hidden.
            jobs.add_secret(self.store.connection.credential.secret)
        self.caps = self.store.capabilities
        self.optional = self._optional_tables()
        self.target = DeltaTarget(spark, path=cfg.target_path, schema=cfg.target_schema)
        self.lock = TargetLock(self.target, job="sync", timeout_minutes=cfg.lock_timeout_minutes)
        self.me = self.lock.me
        self.rows: dict[str, int] = {}
        self.versions: dict[str, int] = {}
        self.experiment_ids: tuple[str, ...] = ()
        self.experiment_digests: dict[str, str] = {}
        self.state_read_version = -1
        self._average_series = 0
        self.skipped: list[SkippedRecord] = []  # what this sync's PERMISSIVE reads skipped
        self.table_skips: list[SkippedRecord] = []  # ... in reads of whole tables (no run of theirs)
        self.digests: dict[str, str] = {}  # keyed tables: the digest of what this sync read
        self.metrics_mark: str | None = None  # where the store takes marks: this scan's
        self.store_token: str | None = None  # where the store takes change tokens: this sync's
        self._skipped_lock = threading.Lock()
        self.result = SyncResult(
            store=self.uri.display, target=self.target.display, mode="full",
            started_at=datetime.now(UTC).replace(microsecond=0),
        )

    def _optional_tables(self) -> tuple[str, ...]:
        """The optional tables this sync keeps: those asked for (all must be served by the
        store: ``StoreCapabilities.tables``), else the defaults the store serves."""
        served = set(self.caps.tables)
        if self.cfg.tables is None:
            return tuple(t for t in DEFAULT_TABLES if t in served)
        missing = [t for t in self.cfg.tables if t not in served]
        if missing:
            raise ConfigurationError(
                f"setting 'tables': {self.uri.display} does not serve {', '.join(missing)} "
                f"(it serves {', '.join(t for t in self.caps.tables if t not in tables.TABLE_NAMES) or 'no optional table'})"
            )
        return tuple(self.cfg.tables)

    @property
    def _kept(self) -> tuple[str, ...]:
        """Every table this sync keeps, in :data:`COMMIT_ORDER`."""
        return tuple(t for t in COMMIT_ORDER if t in tables.TABLE_NAMES or t in self.optional)

    def _view_type(self, table: str) -> str:
        """``ALL``, or ``ACTIVE_ONLY`` where the store serves ``table`` for active records only
        (a tracking server's logged models and model versions: deleted ones leave the table)."""
        return "ACTIVE_ONLY" if table in self.caps.active_only_tables else "ALL"

    # -- orchestration -------------------------------------------------------------------------

    def run(self) -> SyncResult:
        started = time.monotonic()
        log.info("sync: store %s -> target %s", self.uri.display, self.target.display)
        self.progress.step("taking the target's lock, reading the sync state, scanning the store")
        self.target.prepare()
        # Two first syncs at once both create these: one ends with the tables, the other with
        # them too or with TargetLockedError (never Delta's "non-empty location").
        self.lock.ensure_table()
        self.target.ensure(STATE_TABLE, state_schema())
        # Taken before anything is read from the store: whatever changes from here on changes
        # the next sync's token.
        self.store_token = self._store_token()
        head_read: Future = Future()  # the state's version as read before the lock (None: not read)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sync-start") as pool:
            locking = pool.submit(self._lock_and_version, head_read)
            try:
                begun, begin_error = self._begin(pool, locking, head_read), None
            except BaseException as error:  # noqa: BLE001 - re-raised below, once the lock is settled
                begun, begin_error = None, error
            finally:
                if not head_read.done():
                    head_read.set_result(None)
        if locking.exception() is not None:
            self.progress.done()
            raise locking.exception()
        try:
            if begin_error is not None:
                raise begin_error
            if begun is None:  # the store has not changed: recorded
                self.lock.release()
                return self._finished(started)
            state, version, scan, experiments = begun
            self.state_read_version = version
            _fault("after-lock")
            recovering = is_recovery(self.lock.taken_over, state.last_sync)
            if recovering:
                log.warning("the previous sync did not finish: this one merges everything it reads")
            scan, state = self._positioned(scan, state, recovering)
            scan = self._checked(scan, state)
            self.metrics_mark = scan.metrics_mark
            plan = make_plan(scan, state, Flags(full=self.cfg.full, recovering=recovering, tables=self.optional,
                                                relist_artifacts=self.cfg.relist_artifacts))
            self._carry_out(state, plan, experiments)
            self.progress.step("releasing the lock")
            self.lock.release()
        except BaseException as error:
            self.lock.give_up()
            if self.skipped or self.table_skips:
                with contextlib.suppress(AttributeError, TypeError):
                    error.skipped_records = len({s.where for s in self.skipped + self.table_skips})  # for the FAILED line
            raise
        finally:
            self.progress.done()
        return self._finished(started)

    def _lock_and_version(self, head_read: Future) -> int:
        """Take the lock, then the state's version: no other sync commits the state while this
        one holds the lock. Where the state's version was read before the lock (``head_read``),
        it is checked against the state's log (a third of the CPU of its history)."""
        self.lock.acquire()
        try:
            head_version = head_read.result()
            if self.target.is_latest_version(STATE_TABLE, head_version):
                return head_version
            return self.target.latest_version(STATE_TABLE)
        except BaseException:
            self.lock.give_up()
            raise

    def _begin(self, pool: ThreadPoolExecutor, locking: Future, head_read: Future):
        """While ``locking`` (:meth:`_lock_and_version`) runs: where the store gives a change
        token equal to the state's, record an unchanged store once locked and return None;
        else the state read in ``pool`` while the store is scanned on this thread, and
        ``(state, version, scan, experiments)``: the state at the version as of the lock (read
        again if a sync committed between the first read and the lock). The version read
        first goes to ``head_read``."""
        head_version, head = head_metadata(self.target) if self.store_token is not None else (None, {})
        head_read.set_result(head_version)
        if head and self._unchanged_since(head):
            locked_version = locking.result()
            if self._record_unchanged_store(locked_version, head_version, head):
                return None
            head_version = locked_version
        reading = pool.submit(read_state, self.target, head_version, not self._series_read_by_run)
        with collect_skipped() as skipped:
            scan, experiments = self._scan()
        self._add_skipped(skipped)
        state, version = reading.result()
        locked_version = locking.result()
        if version != locked_version:
            state, version = read_state(self.target, locked_version, not self._series_read_by_run)
        return state, version, scan, experiments

    @property
    def _series_read_by_run(self) -> bool:
        """Whether the state is read without its series, and then only the series of the runs
        whose points moved (:meth:`_positioned`): where the store takes metric marks, a sync
        that neither re-reads everything nor reconciles purged runs sees only those move."""
        return self.caps.metric_marks and not self.cfg.full and not self.cfg.reconcile_purged

    def _finished(self, started: float) -> SyncResult:
        self.result.duration_s = round(time.monotonic() - started, 2)
        log.info("sync #%d done in %.1f s", self.result.sync_id, self.result.duration_s)
        return self.result

    # -- a store that has not changed ------------------------------------------------------------

    def _store_token(self) -> str | None:
        """The store's change token, where it takes them and this sync may skip its scan (it
        neither re-reads everything, nor reconciles purged runs, nor re-lists artifacts: those
        look beyond the store's tables)."""
        if not self.caps.change_token or self.cfg.full or self.cfg.reconcile_purged or self.cfg.relist_artifacts:
            return None
        return self.store.change_token()

    @functools.cached_property
    def _scope_digest(self) -> str:
        """A digest of what, besides the store's content, decides what a sync reads: the store,
        the experiments and optional tables asked for, the read mode and the kind of state; and
        the columns of the tables that gained some (a target synced before gets them at the
        next sync, even of an unchanged store)."""
        scope = [self.uri.display, list(self.cfg.experiments or []), list(self.optional), self.cfg.read_mode,
                 self.caps.state_key, self.caps.positions_key,
                 *(tables.spark_schema(table).fieldNames() for table in EVOLVED_TABLES)]
        return hashlib.sha1(json.dumps(scope).encode()).hexdigest()

    def _unchanged_since(self, head: dict) -> bool:
        """Whether the state commit's header (:meth:`_state_header`) was kept by a sync of the
        same scope that took the token the store gives now."""
        return (head.get("store_token") == self.store_token and head.get("scope") == self._scope_digest
                and _HEADER_KEYS <= head.keys() and isinstance(head["rows"], dict))

    def _state_header(self, appends: int) -> str | None:
        """What the state commit keeps (as Delta's user metadata) for the next sync to skip its
        scan when the store has not changed: the store's token taken before this sync's scan,
        with what that sync then records. None where the store takes no tokens or a record
        was skipped (the next sync re-reads it)."""
        if self.store_token is None or self.skipped or self.table_skips:
            return None
        result = self.result
        return json.dumps({
            "store_token": self.store_token, "scope": self._scope_digest, "sync_id": result.sync_id,
            "experiment_count": result.experiments, "run_count": result.runs, "appends": appends, "rows": self.rows,
        })

    def _record_unchanged_store(self, version: int, head_version: int, head: dict) -> bool:
        """With the lock held and the state at ``version``, where the store's token equals the
        one the state commit at ``head_version`` kept (``head``, :meth:`_state_header`): record
        this sync without reading the store (one commit of the state's ``sync`` entry). False,
        having written nothing, when a scan is due after all: another sync committed since
        ``head_version``, a failed one left its claim (this one then merges everything), or the
        state is due for compaction."""
        if self.lock.taken_over or version != head_version:
            return False
        appends = int(head["appends"]) + 1
        if appends > MAX_STATE_APPENDS:
            return False
        log.info("the store has not changed since sync #%s (its change token is the same): nothing to read",
                 head.get("sync_id"))
        self.rows = {table: int(count) for table, count in head["rows"].items()}
        result = self.result
        result.mode, result.store_unchanged = "incremental", True
        result.sync_id = int(head["sync_id"]) + 1
        result.experiments, result.runs = int(head["experiment_count"]), int(head["run_count"])
        for table in self._kept:
            self._untouched(table)
        self.progress.step("saving the sync state")
        columns = state_update(SyncState(), {}, {}, {"sync": self._sync_meta(), "appends": appends},
                               result.sync_id, compact=False)
        write_state(self.target, columns, compact=False, user_metadata=self._state_header(appends))
        result.state_version = version + 1
        return True

    def _carry_out(self, state: SyncState, plan: Plan, experiments) -> None:
        previous = state.last_sync
        if previous.get("store") and previous["store"] != self.uri.display:
            log.warning("the target was last synced from %s; now syncing %s into it", previous["store"], self.uri.display)
        if not state.empty and state.meta.get("state_key") != plan.state_key:
            log.warning("the saved state was taken from a store of another kind (%s, now %s): re-reading everything",
                        state.meta.get("state_key"), plan.state_key)
        result = self.result
        result.sync_id = int(previous.get("sync_id", 0)) + 1
        result.mode = plan.mode
        result.experiments = len(plan.experiment_ids)
        result.runs = len(plan.fingerprints)
        result.new_runs = plan.new_run_count
        result.changed_runs = plan.changed_run_count
        result.series_read = plan.series_read
        log.info(
            "%s sync: %d experiments, %d runs (%d new, %d changed), %d metric series with new points",
            plan.mode, result.experiments, result.runs, result.new_runs, result.changed_runs, plan.series_read,
        )
        self.rows = dict(state.meta.get("rows", {}))
        self.versions = dict(state.meta.get("versions", {}))
        self._average_series = int(self.rows.get(tables.METRICS, 0) / state.series_count) if state.series_count else 0
        if plan.recovering:
            self._forget_counts_of_tables_written_since(state)

        _fault("after-scan")
        for table in self._kept:
            if (plan.full or table not in self.versions) and not self.target.exists(table):
                self.target.create(table, tables.spark_schema(table))
                self.rows[table], self.versions[table] = 0, self.target.latest_version(table)
            elif table in EVOLVED_TABLES:
                self._add_new_columns(table, plan.recovering)

        self.progress.step("experiments")
        self._sync_experiments(state, plan, experiments)

        # The tables are independent: their reads, writes and commits overlap. (A reader of the
        # target may see a run's new params a moment before its row, or the other way round.)
        self.progress.step(
            ", ".join(f"{t}: {len(plan.changed[t]):,} runs" for t in PER_RUN_TABLES)
            + f", metrics: {plan.series_read:,} series"
        )
        per_run = PER_RUN_TABLES + ((tables.ARTIFACTS,) if tables.ARTIFACTS in plan.tables else ())
        self._parallel([(lambda t=t: self._sync_per_run(t, plan)) for t in per_run]
                       + [lambda: self._sync_metrics(plan)]
                       + [(lambda t=t: self._sync_keyed(t, plan, state)) for t in KEYED_TABLES if t in plan.tables])

        purged: set[str] = set()
        if self.cfg.reconcile_purged:
            self.progress.step("reconciling runs purged from the store")
            purged = self._reconcile_purged(plan)
        self.progress.step("saving the sync state")
        _fault("before-state")
        self._save_state(state, plan, purged)
        _fault("after-state")
        if self.cfg.optimize:
            self.progress.step("compacting small files (OPTIMIZE)")
            for table in (*self._kept, STATE_TABLE):
                self.target.optimize(table)

    def _add_new_columns(self, table: str, recovering: bool) -> None:
        """Give a table written by an older version the columns added since (``columns``),
        filled for its rows, before anything is written to it; booked as this sync's write."""
        added, filled = add_new_columns(self.target, table, refill=recovering)
        if added:
            log.info("%s: added the column(s) %s, which the target's table lacked; filled %d row(s)",
                        table, ", ".join(added), filled)
        if added or filled:
            self._finish_write(table, inserted=0, updated=filled, rows_after=self._known_rows(table))

    def _forget_counts_of_tables_written_since(self, state: SyncState) -> None:
        """A sync that failed may have committed tables after the state was saved: their row
        counts in the state are stale (a table the state holds empty may have rows, and must be
        merged into rather than appended to), so they are counted again when needed."""
        for table in COMMIT_ORDER:
            if table in self.versions and self.target.exists(table) and self.target.latest_version(table) != self.versions[table]:
                log.info("%s was written by the sync that did not finish: counting its rows", table)
                self.rows.pop(table, None)
                self.versions.pop(table)

    @staticmethod
    def _parallel(tasks) -> None:
        """Run independent table commits at once: their Spark jobs and commits overlap."""
        with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="sync") as pool:
            futures = [pool.submit(task) for task in tasks]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]

    @property
    def _all_experiments(self) -> bool:
        return not self.cfg.experiments

    # -- the scan: what the store holds now ------------------------------------------------------

    def _scan(self):
        """Experiment rows, run fingerprints and series positions, cheaply."""
        import pyarrow as pa

        caps = self.caps
        experiment_ids = resolve_experiments(self.store, self.cfg.experiments, "ALL", tables.RUNS, environ={})
        self.experiment_ids = experiment_ids
        selection = self._metrics_selection()
        # Positions first: whatever is read later is at least as new as they are. Where the
        # store takes marks, the mark comes first and the positions as of it later
        # (:meth:`_positioned`), from the saved state.
        state_key, positions_key, kind, exact = caps.state_key, caps.positions_key, caps.metric_positions, caps.exact_metric_ranges
        mark = None
        if not experiment_ids:
            positions = {}
        elif caps.metric_marks:
            mark, positions = self.store.metric_mark(), None
        elif caps.metric_positions != "none":
            positions = self.store.metric_positions(selection)
        else:
            positions = self._counted_positions()
            kind, exact, positions_key = "count", False, f"{caps.state_key}:count:whole"
        run_selection = dataclasses.replace(selection, table=tables.RUNS)
        if not experiment_ids:
            fingerprints = {}
        elif caps.run_fingerprints:
            fingerprints = self.store.run_fingerprints(run_selection)
        else:
            fingerprints = self._hashed_fingerprints()
            state_key = f"{caps.state_key}:hashed"
        # A handful of rows: read on the driver, through the store backend.
        selection = dataclasses.replace(selection, table=tables.EXPERIMENTS)
        batches = [b for p in self.store.plan(selection) for b in self.store.read(p)] if experiment_ids else []
        experiments = pa.Table.from_batches(batches, schema=tables.arrow_schema(tables.EXPERIMENTS))
        scan = Scan(experiment_ids, fingerprints, positions, state_key=state_key, positions_key=positions_key,
                    position_kind=kind, exact_ranges=exact, metrics_mark=mark)
        return scan, experiments

    def _metrics_selection(self, **narrowing) -> Selection:
        """The synced experiments' metric history, every view type, in the sync's read mode."""
        return Selection(tables.METRICS, self.experiment_ids, view_type="ALL", mode=self.cfg.read_mode, **narrowing)

    def _positioned(self, scan: Scan, state: SyncState, recovering: bool) -> tuple[Scan, SyncState]:
        """The scan with its positions, where the store takes marks: the saved positions moved by
        the points logged between the saved mark and this scan's, when the last completed sync
        saved a mark for the same experiments and left no series unsynced; else a full scan.
        Only series of the scanned runs are kept (a run created after the fingerprints were
        taken has points past the mark: the next sync reads them).

        And the state with the series this sync needs, where it was read without them
        (:attr:`_series_read_by_run`): those of the runs that moved when the positions were
        moved and the state is not due for a rewrite, else all of them."""
        if scan.positions is not None:
            return scan, read_series(self.target, self.state_read_version, state)
        saved = state.meta.get("metrics_mark") or {}
        selection = self._metrics_selection()
        moved = None
        if (saved.get("mark") and saved.get("experiments") == list(scan.experiment_ids) and not self.cfg.full
                and not recovering and state.meta.get("positions_key") == scan.positions_key
                and UNSYNCED_POSITION not in state.series.values()):
            moved = self.store.metric_positions_since(selection, saved["mark"], scan.metrics_mark)
            if moved is None:
                log.info("metric rows were removed since the last sync: scanning every series")
        if moved is None or state.meta.get("state_key") != scan.state_key or should_compact(state, False)[0]:
            needed = None  # every series
        else:  # the series of a run the state does not hold are new: nothing to read
            needed = {run_id for run_id, _ in moved if run_id in state.runs}
        state = read_series(self.target, self.state_read_version, state, needed)
        positions = self.store.metric_positions(selection) if moved is None else {**state.series, **moved}
        positions = {pair: position for pair, position in positions.items() if pair[0] in scan.fingerprints}
        return dataclasses.replace(scan, positions=positions), state

    def _checked(self, scan: Scan, state: SyncState) -> Scan:
        """Where positions are bytes of append-only files, the checks of the series that moved:
        a digest of the line before the current position (saved with it) and of the line
        before the saved position as the file holds it now (compared with the saved one)."""
        if self.caps.metric_positions != "bytes" or not scan.positions:
            return scan
        comparable = state.meta.get("positions_key") == scan.positions_key
        saved = state.series if comparable else {}
        moved = tuple(sorted(
            (run_id, key, max(0, saved.get((run_id, key), 0)), int(position))
            for (run_id, key), position in scan.positions.items() if saved.get((run_id, key)) != position
        ))
        if not moved:
            return scan
        selection = self._metrics_selection(metric_ranges=moved)
        found = self.store.metric_positions(selection)
        checks = {pair: p.check for pair, p in found.items() if getattr(p, "check", None)
                  and int(p) == scan.positions[pair]}  # a file still being appended to: checked next time
        after = {pair: p.check_after for pair, p in found.items() if getattr(p, "check_after", None)}
        return dataclasses.replace(scan, checks=checks, checks_after=after)

    def _counted_positions(self) -> dict[tuple[str, str], int]:
        log.info("%s reports no metric positions: counting points per series", self.uri.display)
        counts = self._reader(tables.METRICS).groupBy("run_id", "key").count().collect()
        return {(r["run_id"], r["key"]): int(r["count"]) for r in counts}

    def _hashed_fingerprints(self) -> dict[str, tuple[str, str]]:
        from pyspark.sql import functions as F

        log.info("%s reports no run fingerprints: hashing the runs and inputs tables", self.uri.display)
        columns = [c for c in tables.spark_schema(tables.RUNS).fieldNames() if c != "metrics"]
        runs = self._reader(tables.RUNS).select(
            "run_id", "experiment_id", F.sha2(F.to_json(F.struct(*columns)), 256).alias("h"))
        inputs = self._reader(tables.INPUTS).groupBy("run_id").agg(
            F.sha2(F.to_json(F.sort_array(F.collect_list(F.to_json(F.struct("*"))))), 256).alias("i"))
        rows = runs.join(inputs, "run_id", "left").collect()
        # One digest for the run's row (params and tags included), one for its inputs.
        return {
            r["run_id"]: (r["experiment_id"], fingerprint(
                {"run": r["h"], "params": r["h"], "tags": r["h"], "inputs": str(r["i"])}))
            for r in rows
        }

    # -- reading ---------------------------------------------------------------------------------

    def _book_skips(self, plan: Plan, skipped: set[str]) -> None:
        """Report what PERMISSIVE reads skipped: each distinct place once, in the result."""
        places = list(dict.fromkeys(s.where for s in self.skipped + self.table_skips))
        result = self.result
        result.skipped_records, result.skipped_runs = len(places), len(skipped)
        result.skipped_where = places[:_SHOWN_SKIPS]
        result.new_runs = len((plan.touched_runs & plan.new_runs) - skipped)
        result.changed_runs = len((plan.touched_runs - plan.new_runs) - skipped)
        if places:
            log.warning("PERMISSIVE: skipped %d malformed record(s) in %d run(s), not recorded as synced (the next "
                        "sync re-reads them): %s%s", len(places), len(skipped), "; ".join(places[:_SHOWN_SKIPS]),
                        f" (and {len(places) - _SHOWN_SKIPS} more)" if len(places) > _SHOWN_SKIPS else "")

    def _add_skipped(self, skipped) -> None:
        with self._skipped_lock:
            self.skipped.extend(skipped)

    def _written_part(self, df):
        """The rows of a :meth:`_reader` read with ``report`` to write; the records it skipped
        (PERMISSIVE) are collected into :attr:`skipped` (a second pass over the read)."""
        if _CORRUPT not in df.columns:
            return df
        from pyspark.sql import functions as F

        bad = df.where(F.col(_CORRUPT).isNotNull()).select("experiment_id", "run_id", _CORRUPT).collect()
        self._add_skipped(SkippedRecord(r[_CORRUPT], r["experiment_id"], r["run_id"]) for r in bad)
        return df.where(F.col(_CORRUPT).isNull()).drop(_CORRUPT)

    def _reader(self, table: str, run_ids=None, ranges=None, report: bool = False):
        """The store's ``table`` through the ``experiments`` data source, read on the executors,
        narrowed to ``run_ids`` and, for metrics, to ``ranges``. With ``report``, a PERMISSIVE
        read carries its skips in column :data:`_CORRUPT` (see :meth:`_written_part`)."""
        from pyspark.sql import functions as F

        reader = (
            self.spark.read.format("experiments")
            .option("trackingUri", self.uri.location)
            .option("table", table)
            .option("viewType", self._view_type(table))
            .option("mode", self.cfg.read_mode)
            .options(**self.store_options)
        )
        if report and self.cfg.read_mode == "PERMISSIVE":
            reader = reader.option("columnNameOfCorruptRecord", _CORRUPT)
        if ranges is not None:
            listed: dict[str, dict[str, list[int]]] = {}
            for (run_id, key), (after, upto) in ranges.items():
                listed.setdefault(run_id, {})[key] = [after, upto]
            reader = reader.option("metricRanges", json.dumps(listed, separators=(",", ":")))
        semi = None
        if run_ids is not None and ranges is None:
            if len(run_ids) <= _MAX_LISTED_RUNS:
                reader = reader.option("runIds", ",".join(sorted(run_ids)))
            else:
                semi = self.spark.createDataFrame([(r,) for r in sorted(run_ids)], "run_id string")
        df = reader.load(",".join(self.experiment_ids))
        if semi is not None:
            df = df.join(F.broadcast(semi), "run_id", "left_semi")
        return df

    def _driver_read(self, table: str, run_ids=None, ranges=None):
        """A small read on the driver, through the store backend the data source uses: a Spark
        job per table would cost more than the read. Returns an Arrow table; a table with
        nothing to write never becomes a DataFrame (see :meth:`_arrow_frame`)."""
        import pyarrow as pa

        experiment_ids = () if table in tables.REGISTRY_TABLES else self.experiment_ids  # the registry is store-wide
        selection = Selection(
            table, experiment_ids, view_type=self._view_type(table), mode=self.cfg.read_mode,
            run_ids=None if run_ids is None else tuple(sorted(run_ids)),
            metric_ranges=None if ranges is None else tuple(
                (run_id, key, after, upto) for (run_id, key), (after, upto) in sorted(ranges.items())
            ),
        )
        batches = []
        if experiment_ids or table in tables.REGISTRY_TABLES:
            with collect_skipped() as skipped:
                batches = [batch for partition in self.store.plan(selection) for batch in self.store.read(partition)]
            if table in KEYED_TABLES:  # a whole table's skips name no run to re-read
                with self._skipped_lock:
                    self.table_skips.extend(skipped)
            else:
                self._add_skipped(skipped)
        return pa.Table.from_batches(batches, schema=tables.arrow_schema(table))

    def _arrow_frame(self, arrow, table: str):
        if arrow.num_rows == 0:  # pyspark 4.2 cannot convert an Arrow table without chunks
            return self.spark.createDataFrame([], schema=tables.spark_schema(table))
        # One file per table and sync, not one per core.
        return self.spark.createDataFrame(arrow, schema=tables.spark_schema(table)).coalesce(1)

    def _estimated_points(self, ranges: dict) -> int:
        """About how many points ``ranges`` hold (only chooses between driver and executors)."""
        if self.caps.metric_positions == "bytes":
            per_point = max(1, self.caps.position_units_per_point)
            return sum(max(0, upto - after) // per_point + 1 for after, upto in ranges.values())
        # Row ids (or counts): a range spans other series' rows too; cap each range at the
        # average series length of the last sync.
        average = self._average_series or 1_000
        return sum(min(max(0, upto - after), average) for after, upto in ranges.values())

    # -- writing ---------------------------------------------------------------------------------

    def _commit_info(self, table: str, marker: str | None = None) -> tuple[int, dict, int | None]:
        """The table's latest version, and the metrics and read version of its latest commit
        that changed data (an OPTIMIZE, e.g. Delta's auto compaction, may follow a write).

        ``marker``: the user metadata of the commit this sync just made. Where the table's
        version before it is known, that commit is read from the table's log at the next
        version (a third of the CPU of its history) when it carries the marker and is the
        table's latest: nobody committed before or after it."""
        known = self.versions.get(table)
        ours: dict = {}
        if marker is not None and known is not None:
            found = self.target.commits(table, [known + 1, known + 2]) or {}
            if known + 2 not in found and (found.get(known + 1) or {}).get("userMetadata") == marker:
                ours = found[known + 1]
        if ours:
            version, metrics, read = known + 1, ours.get("operationMetrics"), ours.get("readVersion")
        else:
            version, data = self.target.latest_write(table)
            metrics, read = data["operationMetrics"], data["readVersion"]
        return version, dict(metrics or {}), None if read is None else int(read)

    def _known_rows(self, table: str) -> int:
        """Rows in ``table`` as the state knows them (counted when it does not)."""
        if table not in self.rows:
            self.rows[table] = self.target.read(table).count()
        return int(self.rows[table])

    def _finish_write(self, table: str, *, inserted: int | None = None, updated: int = 0, deleted: int = 0,
                      rows_after: int | None = None, marker: str | None = None) -> None:
        """Book a commit just made to ``table`` (with user metadata ``marker``, if any): its
        version and row counts, from one look at the commit (its read version tells whether
        anybody else wrote)."""
        version, metrics, read_version = self._commit_info(table, marker)
        if inserted is None:
            inserted = int(metrics.get("numOutputRows", 0))
        if rows_after is None:
            if table in self.rows and read_version is not None and self.versions.get(table) == read_version:
                rows_after = int(self.rows[table]) + inserted - deleted
            else:
                log.info("%s: written outside the sync since its last run: counting its rows", table)
                rows_after = self.target.read(table).count()
        result = self.result.tables.setdefault(table, TableResult(table))
        result.inserted += inserted
        result.updated += updated
        result.deleted += deleted
        result.version = version
        result.commits += 1
        self.versions[table] = version
        self.rows[table] = rows_after
        result.unchanged = max(0, rows_after - result.inserted - result.updated)

    def _untouched(self, table: str) -> None:
        result = self.result.tables.setdefault(table, TableResult(table))
        if table not in self.rows:
            self.rows[table] = self.target.read(table).count()
            self.versions[table] = self.target.latest_version(table)
        result.unchanged = max(0, self.rows[table] - result.inserted - result.updated)

    def _append(self, table: str, source) -> None:
        _fault(f"before-write:{table}")
        _fault_during(table, self.target)
        marker = f"pyspark-experiments sync {self.result.sync_id}, write {uuid.uuid4().hex}"
        self.target.write(source, table, "append", user_metadata=marker)
        self._finish_write(table, marker=marker)
        _fault(f"after-write:{table}")

    def _merge(self, table: str, source, *, insert_only: bool, runs=None, delete_stale: str | None = None) -> None:
        """MERGE ``source`` into ``table`` on its natural keys (null- and NaN-safe).

        ``runs``: the runs the source covers (lets Delta skip other runs' files);
        ``delete_stale``: a condition on the target's rows (``t.``) that the source lacks and
        that are deleted. An empty table is simply appended to.
        """
        if self._known_rows(table) == 0:
            self._append(table, source)
            return
        _fault(f"before-write:{table}")
        _fault_during(table, self.target)
        keys = tables.NATURAL_KEYS[table]
        on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        if runs is not None and len(runs) <= _MAX_LISTED_RUNS:
            on += " AND t.run_id IN ({})".format(", ".join(sql_string(r) for r in sorted(runs)))
        differs = None
        if not insert_only:
            differs = " OR ".join(
                f"NOT (to_json(t.`{f.name}`) <=> to_json(s.`{f.name}`))" if f.dataType.typeName() == "map"
                else f"NOT (t.`{f.name}` <=> s.`{f.name}`)"
                for f in tables.spark_schema(table).fields if f.name not in keys
            )
        counts = self.target.merge(table, source, on, update=not insert_only, update_when=differs,
                                   delete_when=delete_stale)
        self._finish_write(
            table,
            inserted=counts.get("num_inserted_rows", 0),
            updated=counts.get("num_updated_rows", 0),
            deleted=counts.get("num_deleted_rows", 0),
        )
        _fault(f"after-write:{table}")

    def _sync_experiments(self, state: SyncState, plan: Plan, arrow) -> None:
        """A handful of rows, read on the driver during the scan, compared with the digests the
        state keeps per experiment; the table is rewritten in one commit when any changed."""
        import pyarrow as pa
        import pyarrow.compute as pc

        schema = tables.arrow_schema(tables.EXPERIMENTS)
        wanted = {r["experiment_id"]: _digest(r) for r in arrow.to_pylist()}
        known = {} if plan.full or plan.recovering else dict(state.meta.get("experiments", {}))
        rows_before = self._known_rows(tables.EXPERIMENTS)
        if rows_before and not known:  # no digests to compare with: compare with the table
            known = {r["experiment_id"]: _digest(r)
                     for r in self.target.read(tables.EXPERIMENTS).toArrow().select(schema.names).to_pylist()}
        gone = set(known) - set(wanted)
        reconcile = self.cfg.reconcile_purged and self._all_experiments
        inserted = len(set(wanted) - set(known))
        updated = sum(1 for e in wanted if e in known and wanted[e] != known[e])
        deleted = len(gone) if reconcile else 0
        # Experiments that left the store (or the selection) stay, unless purged ones are
        # reconciled; their digests stay in the state with them.
        self.experiment_digests = dict(wanted, **{e: known[e] for e in gone if not reconcile})
        if not inserted and not updated and not deleted:
            self._untouched(tables.EXPERIMENTS)
            return
        if gone and not reconcile:
            target = self.target.read(tables.EXPERIMENTS).toArrow().select(schema.names)
            kept = target.filter(pc.is_in(target.column("experiment_id"), value_set=pa.array(sorted(gone))))
            arrow = pa.concat_tables([arrow, kept.cast(schema)])
        _fault(f"before-write:{tables.EXPERIMENTS}")
        self.target.write(self._arrow_frame(arrow, tables.EXPERIMENTS), tables.EXPERIMENTS, "overwrite")
        self._finish_write(tables.EXPERIMENTS, inserted=inserted, updated=updated, deleted=deleted,
                           rows_after=len(arrow))
        _fault(f"after-write:{tables.EXPERIMENTS}")

    def _sync_per_run(self, table: str, plan: Plan) -> None:
        run_ids = plan.changed[table]
        if not run_ids:
            self._untouched(table)
            return
        append = plan.appends(table)
        stale = table in (tables.TAGS, tables.INPUTS, tables.ARTIFACTS)  # MLflow never deletes params
        if len(run_ids) <= _DRIVER_READ_RUNS:
            arrow = self._driver_read(table, run_ids=run_ids)
            # Nothing to write, nor to delete (Delta commits no empty append).
            if arrow.num_rows == 0 and (append or not stale or self._known_rows(table) == 0):
                self._untouched(table)
                return
            source = self._arrow_frame(arrow, table)
        else:
            source = self._written_part(self._reader(table, run_ids=run_ids, report=True))
        if append:
            self._append(table, source)
        else:
            delete = "t.run_id IN ({})".format(", ".join(sql_string(r) for r in sorted(run_ids))) if stale else None
            self._merge(table, source, insert_only=False, runs=run_ids, delete_stale=delete)

    def _sync_keyed(self, table: str, plan: Plan, state: SyncState) -> None:
        """A keyed table (logged models, the registry): read whole on the driver, compared with
        the digest the state keeps, and when it differs (or the plan rewrites it) merged on its
        natural keys, deleting what the store no longer holds: the table mirrors the store
        (models: within the synced experiments; the registry: whole)."""
        with collect_skipped() as skipped:
            arrow = self._driver_read(table)
        # A skipped record (PERMISSIVE) is no run's: the table's digest is not saved, so the next
        # sync reads and merges it again (once the record is repaired, it comes in).
        digest = None if skipped else _table_digest(arrow)
        if digest is not None:
            self.digests[table] = digest
        if not plan.writes_keyed(table, digest, state.meta.get("digests") or {}):
            self._untouched(table)
            return
        if arrow.num_rows == 0 and self._known_rows(table) == 0:
            self._untouched(table)
            return
        if table == tables.MODELS and not self._all_experiments:
            scope = "t.experiment_id IN ({})".format(", ".join(sql_string(e) for e in self.experiment_ids) or "NULL")
        else:
            scope = "true"
        self._merge(table, self._arrow_frame(arrow, table), insert_only=False, delete_stale=scope)

    def _sync_metrics(self, plan: Plan) -> None:
        ranges = dict(plan.ranges)
        whole = set(plan.whole_series)
        if not ranges and not whole:
            self._untouched(tables.METRICS)
            return
        runs = {run_id for run_id, _ in ranges} | {run_id for run_id, _ in whole}
        if plan.bounded:
            # A whole series: from 0 to its scanned position (digests have no order: to the end).
            ordered = self.caps.metric_positions != "digest"
            listed = {**ranges, **{pair: (0, plan.positions[pair] if ordered else 2**62) for pair in whole}}
            if self._estimated_points(ranges) + len(whole) * max(1, self._average_series) <= _DRIVER_READ_POINTS:
                arrow = self._driver_read(tables.METRICS, ranges=listed)
                if arrow.num_rows == 0 and not whole:
                    self._untouched(tables.METRICS)
                    return
                source = self._arrow_frame(arrow, tables.METRICS)
            else:
                source = self._written_part(self._reader(tables.METRICS, ranges=listed, report=True))
        else:
            # Too many series to list them: the whole histories of their runs, merged.
            source = self._written_part(self._reader(tables.METRICS, run_ids=runs, report=True))
        if plan.append_metrics:
            self._append(tables.METRICS, source)
            return
        # Series read whole replace what the table holds of them (a shrunk or rewritten series).
        stale = " OR ".join(f"(t.run_id = {sql_string(r)} AND t.key = {sql_string(k)})" for r, k in sorted(whole))
        self._merge(tables.METRICS, source, insert_only=True, runs=runs, delete_stale=stale or None)

    def _reconcile_purged(self, plan: Plan) -> set[str]:
        """Delete the rows of runs that are in the tables but no longer in the store."""
        found: dict[str, str] = {}
        for table in (tables.RUNS, tables.PARAMS, tables.TAGS, tables.INPUTS, tables.METRICS):
            for row in self.target.read(table).select("run_id", "experiment_id").distinct().collect():
                found.setdefault(row["run_id"], row["experiment_id"])
        purged = purged_runs(found, plan.fingerprints, self.experiment_ids, self._all_experiments)
        self.result.purged_runs = len(purged)
        if not purged:
            return purged
        log.info("reconciling %d run(s) purged from the store: deleting their rows", len(purged))
        listed = ", ".join(sql_string(r) for r in sorted(purged))
        for table in RUN_KEYED_TABLES:
            if table not in self._kept:
                continue
            before = self.target.latest_version(table)
            _fault(f"before-purge:{table}")
            self.target.delete(table, f"run_id IN ({listed})")
            version, operation, _ = self._commit_info(table)
            if version != before:
                self._finish_write(table, inserted=0, deleted=int(operation.get("numDeletedRows", 0)))
        return purged

    # -- state -----------------------------------------------------------------------------------

    def _save_state(self, state: SyncState, plan: Plan, purged: set[str]) -> None:
        if not self.lock.held():
            raise TargetLockedError(
                f"the lock on {self.target.display} was taken over while this sync ran; the data "
                f"it wrote is kept, its state is not saved (the next sync redoes the work)"
            )
        sync_id = self.result.sync_id
        compact, appends = should_compact(state, plan.full)
        if compact and state.partial:  # _positioned reads every series where a rewrite is due
            raise RuntimeError("internal error: the state is due for a rewrite but was read without its series")
        meta = {
            "sync": self._sync_meta(),
            "rows": self.rows,
            "versions": self.versions,
            "experiments": self.experiment_digests,
            "state_key": plan.state_key,
            "positions_key": plan.positions_key,
            # whether the saved positions are exactly what the metrics table holds
            "metrics_exact": plan.metrics_exact,
            "appends": appends,
            # the optional tables kept, and the digests of the keyed ones as read
            "tables": list(plan.tables),
            "digests": self.digests,
            # where the store takes marks: the one the saved positions were taken at
            "metrics_mark": {"mark": self.metrics_mark, "experiments": list(plan.experiment_ids)}
            if self.metrics_mark else None,
        }
        skipped = skipped_runs(plan, self.skipped)
        self._book_skips(plan, skipped)
        runs, series = next_state(state, plan, purged, skipped)
        columns = state_update(state, runs, series, meta, sync_id, compact, next_checks(state, plan, series),
                               count_series=True)
        write_state(self.target, columns, compact, user_metadata=self._state_header(appends))
        # This sync holds the lock: nobody else writes the state, so this commit is the next one.
        self.result.state_version = self.state_read_version + 1
        log.info("state saved (%s, %d rows, %d live)", "rewritten" if compact else "appended",
                 len(columns["kind"]), len(runs) + len(series) + len(meta))

    def _sync_meta(self) -> dict:
        """The state's ``sync`` entry: which sync this is, who ran it, when, from where."""
        result = self.result
        return {
            "sync_id": result.sync_id,
            "holder": self.me["holder"],
            "mode": result.mode,
            "started_at": result.started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "store": self.uri.display,
            "experiments": list(self.cfg.experiments or []),
            "store_unchanged": result.store_unchanged,
        }


__all__ = ["COMMIT_ORDER", "KILL_ENV", "LOCK_TABLE", "SyncResult", "TableResult", "sync"]
