"""The sync's orchestration: the order of its steps. Take the target's lock, read the state
while the store is scanned (:mod:`.scan`), plan (:func:`~.plan.make_plan`: every decision), write
the tables (:mod:`.writes`, reading through :mod:`.reads`), commit the state, release the lock.
What the sync covers is opened once (:mod:`.scope`); what it did is its :class:`~.result.SyncResult`.

Only SparkSession SQL and DataFrame APIs are used (through
:class:`~pyspark_experiments.jobs.target.DeltaTarget`): the sync runs from a classic or a Spark
Connect session alike. See ``docs/sync.md`` for how a run works.

Example::

    >>> from pyspark_experiments.sync import sync
    >>> result = sync("sqlite:///mlflow.db", "/tmp/mlflow-delta", spark=spark)    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from .. import jobs, tables
from ..datasource import register
from ..errors import TargetLockedError
from ..jobs.lock import LOCK_TABLE, TargetLock
from ..jobs.target import DeltaTarget
from ..stores.problems import collect_skipped
from .config import SyncConfig
from .faults import KILL_ENV, fault
from .plan import (
    COMMIT_ORDER,
    KEYED_TABLES,
    PER_RUN_TABLES,
    Flags,
    Plan,
    average_series_length,
    is_recovery,
    make_plan,
    next_checks,
    next_state,
    series_read_by_run,
    skipped_runs,
)
from .reads import Reads, Skips
from .result import SyncResult, TableResult, book_plan, book_skips, sync_entry
from .scan import checked, positioned, scan_store
from .scope import open_scope
from .state import (
    MAX_STATE_APPENDS,
    STATE_TABLE,
    SyncState,
    head_metadata,
    read_state,
    should_compact,
    state_header,
    state_schema,
    state_update,
    unchanged_since,
    write_state,
)
from .traces import TRACE_TABLES, next_traces
from .writes import (
    TableWriter,
    Tally,
    reconcile_purged,
    sync_experiments,
    sync_keyed,
    sync_metrics,
    sync_per_run,
    sync_trace_table,
)

log = logging.getLogger("pyspark_experiments.sync")


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
    ``models``, ``registered_models``, ``model_versions``, ``traces``, ``spans``,
    ``assessments`` (default: the logged models and the registry, where the store serves them;
    ``()`` or ``"none"``: none); ``relist_artifacts=True`` re-lists every
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
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
    if spark is None:  # session() registers the source where Spark has not found it
        spark = jobs.job_session("sync", master=cfg.master, conf=cfg.spark_conf, log_level=cfg.spark_log_level)
    else:
        register(spark)
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    return run_sync(spark, cfg, bool(show))


def run_sync(spark, cfg: SyncConfig, progress: bool) -> SyncResult:
    """Run one sync of a validated ``cfg`` on ``spark``, a session that reads the
    ``experiments`` source (:func:`sync` checks the settings and gets the session first);
    ``progress``: show a progress line on stderr.

    Example::

        >>> cfg = SyncConfig(tracking_uri="sqlite:///mlflow.db", target_path="/tmp/d").validate()
        >>> run_sync(spark, cfg, progress=False).mode                         # doctest: +SKIP
        'full'
    """
    steps = 7 + bool(cfg.reconcile_purged) + bool(cfg.optimize)
    with _small_table_settings(spark):
        return _Runner(spark, cfg, jobs.Progress("sync", progress, steps=steps, logger=log)).run()


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


def _parallel(tasks) -> list:
    """Run independent table commits at once (their Spark jobs and commits overlap); returns
    their results in the order of ``tasks``."""
    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="sync") as pool:
        futures = [pool.submit(task) for task in tasks]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


class _Runner:
    """One sync, step by step. Its collaborators are set here, once: what the sync covers
    (``scope``), the ``target`` and its ``lock``, the ``skips`` its reads collect and the
    ``result`` it books; everything else goes from step to step as arguments."""

    def __init__(self, spark, cfg: SyncConfig, progress: jobs.Progress) -> None:
        self.spark = spark
        self.cfg = cfg
        self.progress = progress
        self.scope = open_scope(cfg)
        self.target = DeltaTarget(spark, path=cfg.target_path, schema=cfg.target_schema)
        self.lock = TargetLock(self.target, job="sync", timeout_minutes=cfg.lock_timeout_minutes)
        self.skips = Skips()
        self.result = SyncResult(
            store=self.scope.uri.display, target=self.target.display, mode="full",
            started_at=datetime.now(UTC).replace(microsecond=0),
        )

    def run(self) -> SyncResult:
        started = time.monotonic()
        scope, target, lock = self.scope, self.target, self.lock
        log.info("sync: store %s -> target %s", scope.uri.display, target.display)
        self.progress.step("taking the target's lock, reading the sync state, scanning the store")
        target.prepare()
        # Two first syncs at once both create these: one ends with the tables, the other with
        # them too or with TargetLockedError (never Delta's "non-empty location").
        lock.ensure_table()
        target.ensure(STATE_TABLE, state_schema())
        # Taken before anything is read from the store: whatever changes from here on changes
        # the next sync's token.
        store_token = scope.store_token()
        head_read: Future = Future()  # the state's version as read before the lock (None: not read)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sync-start") as pool:
            locking = pool.submit(self._lock_and_version, head_read)
            try:
                begun, begin_error = self._begin(pool, locking, head_read, store_token), None
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
                lock.release()
                return self._finished(started)
            state, version, scan, experiments = begun
            fault("after-lock")
            recovering = is_recovery(lock.taken_over, state.last_sync)
            if recovering:
                log.warning("the previous sync did not finish: this one merges everything it reads")
            scan, state = positioned(scope, target, version, scan, state, recovering)
            scan = checked(scope, scan, state)
            plan = make_plan(scan, state, Flags(full=self.cfg.full, recovering=recovering, tables=scope.optional,
                                                relist_artifacts=self.cfg.relist_artifacts,
                                                all_experiments=scope.all_experiments))
            self._carry_out(state, version, plan, experiments, scan.metrics_mark, store_token)
            self.progress.step("releasing the lock")
            lock.release()
        except BaseException as error:
            lock.give_up()
            if self.skips:
                with contextlib.suppress(AttributeError, TypeError):
                    error.skipped_records = len(self.skips.places())  # for the FAILED line
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

    def _begin(self, pool: ThreadPoolExecutor, locking: Future, head_read: Future, store_token: str | None):
        """While ``locking`` (:meth:`_lock_and_version`) runs: where the store gives a change
        token (``store_token``) equal to the state's, record an unchanged store once locked and
        return None; else the state read in ``pool`` while the store is scanned on this thread,
        and ``(state, version, scan, experiments)``: the state at the version as of the lock
        (read again if a sync committed between the first read and the lock). The version read
        first goes to ``head_read``. Where the store takes metric marks, the state is read
        without its series (:func:`~.plan.series_read_by_run`; :func:`~.scan.positioned` reads
        those needed)."""
        cfg = self.cfg
        with_series = not series_read_by_run(self.scope.caps.metric_marks, cfg.full, cfg.reconcile_purged)
        head_version, head = head_metadata(self.target) if store_token is not None else (None, {})
        head_read.set_result(head_version)
        if head and unchanged_since(head, store_token, self.scope.digest):
            locked_version = locking.result()
            if self._record_unchanged_store(locked_version, head_version, head, store_token):
                return None
            head_version = locked_version
        reading = pool.submit(read_state, self.target, head_version, with_series)
        with collect_skipped() as skipped:
            scan, experiments = scan_store(self.spark, self.scope, self.skips)
        self.skips.add(skipped)
        state, version = reading.result()
        locked_version = locking.result()
        if version != locked_version:
            state, version = read_state(self.target, locked_version, with_series)
        return state, version, scan, experiments

    def _finished(self, started: float) -> SyncResult:
        self.result.duration_s = round(time.monotonic() - started, 2)
        log.info("sync #%d done in %.1f s", self.result.sync_id, self.result.duration_s)
        return self.result

    def _header(self, store_token: str | None, appends: int, rows: dict[str, int]) -> str | None:
        """The state commit's header (:func:`~.state.state_header`) for what this sync records."""
        result = self.result
        return state_header(store_token, self.scope.digest, sync_id=result.sync_id,
                            experiment_count=result.experiments, run_count=result.runs, appends=appends,
                            rows=rows, skipped=bool(self.skips), trace_count=result.traces)

    def _sync_entry(self) -> dict:
        return sync_entry(self.result, self.lock.me["holder"], self.scope.uri.display, self.cfg.experiments)

    def _record_unchanged_store(self, version: int, head_version: int, head: dict, store_token: str) -> bool:
        """With the lock held and the state at ``version``, where the store's token equals the
        one the state commit at ``head_version`` kept (``head``, :func:`~.state.state_header`):
        record this sync without reading the store (one commit of the state's ``sync`` entry).
        False, having written nothing, when a scan is due after all: another sync committed
        since ``head_version``, a failed one left its claim (this one then merges everything),
        or the state is due for compaction."""
        if self.lock.taken_over or version != head_version:
            return False
        appends = int(head["appends"]) + 1
        if appends > MAX_STATE_APPENDS:
            return False
        log.info("the store has not changed since sync #%s (its change token is the same): nothing to read",
                 head.get("sync_id"))
        tally = Tally({table: int(count) for table, count in head["rows"].items()}, {})
        result = self.result
        result.mode, result.store_unchanged = "incremental", True
        result.sync_id = int(head["sync_id"]) + 1
        result.experiments, result.runs = int(head["experiment_count"]), int(head["run_count"])
        result.traces = int(head.get("trace_count") or 0)
        writer = TableWriter(self.target, result, tally)
        for table in self.scope.kept:
            writer.untouched(table)
        self.progress.step("saving the sync state")
        columns = state_update(SyncState(), {}, {}, {"sync": self._sync_entry(), "appends": appends},
                               result.sync_id, compact=False)
        write_state(self.target, columns, compact=False, user_metadata=self._header(store_token, appends, tally.rows))
        result.state_version = version + 1
        return True

    def _carry_out(self, state: SyncState, state_version: int, plan: Plan, experiments,
                   metrics_mark: str | None, store_token: str | None) -> None:
        scope, target, cfg = self.scope, self.target, self.cfg
        previous = state.last_sync
        if previous.get("store") and previous["store"] != scope.uri.display:
            log.warning("the target was last synced from %s; now syncing %s into it", previous["store"], scope.uri.display)
        if not state.empty and state.meta.get("state_key") != plan.state_key:
            log.warning("the saved state was taken from a store of another kind (%s, now %s): re-reading everything",
                        state.meta.get("state_key"), plan.state_key)
        book_plan(self.result, plan, int(previous.get("sync_id", 0)) + 1)
        tally = Tally(dict(state.meta.get("rows", {})), dict(state.meta.get("versions", {})))
        average_series = average_series_length(tally.rows.get(tables.METRICS, 0), state.series_count)
        writer = TableWriter(target, self.result, tally)
        if plan.recovering:
            writer.forget_tables_written_since()

        fault("after-scan")
        writer.create_missing(scope.kept, plan.full)
        writer.add_new_columns(scope.kept, plan.recovering)
        reads = Reads(self.spark, scope, plan.experiment_ids, self.skips)

        self.progress.step("experiments")
        experiment_digests = sync_experiments(writer, reads, state, plan, experiments,
                                              reconcile=cfg.reconcile_purged and scope.all_experiments)

        # The tables are independent: their reads, writes and commits overlap. (A reader of the
        # target may see a run's new params a moment before its row, or the other way round.)
        self.progress.step(
            ", ".join(f"{t}: {len(plan.changed[t]):,} runs" for t in PER_RUN_TABLES)
            + f", metrics: {plan.series_read:,} series"
        )
        per_run = PER_RUN_TABLES + ((tables.ARTIFACTS,) if tables.ARTIFACTS in plan.tables else ())
        keyed = [t for t in KEYED_TABLES if t in plan.tables]
        traced = [t for t in TRACE_TABLES if t in plan.tables]
        saved_digests = state.meta.get("digests") or {}
        outcomes = _parallel(
            [(lambda t=t: sync_per_run(writer, reads, t, plan)) for t in per_run]
            + [lambda: sync_metrics(writer, reads, plan, average_series)]
            + [(lambda t=t: sync_keyed(writer, reads, t, plan, saved_digests, scope.all_experiments)) for t in keyed]
            + [(lambda t=t: sync_trace_table(writer, reads, t, plan, scope.all_experiments)) for t in traced]
        )
        # keyed tables: the digest of what this sync read (none where a read skipped a record)
        digests = {t: d for t, d in zip(keyed, outcomes[len(per_run) + 1:]) if d is not None}
        # trace tables: the traces deleted from them (deleted from the store)
        deleted_traces: set[str] = set().union(*outcomes[len(per_run) + 1 + len(keyed):])
        self.result.deleted_traces = len(deleted_traces)

        purged: set[str] = set()
        if cfg.reconcile_purged:
            self.progress.step("reconciling runs purged from the store")
            purged = reconcile_purged(writer, plan, scope.kept, scope.all_experiments)
        self.progress.step("saving the sync state")
        fault("before-state")
        self._save_state(state, state_version, plan, tally, purged=purged, experiment_digests=experiment_digests,
                         digests=digests, metrics_mark=metrics_mark, store_token=store_token,
                         deleted_traces=deleted_traces)
        fault("after-state")
        if cfg.optimize:
            self.progress.step("compacting small files (OPTIMIZE)")
            for table in (*scope.kept, STATE_TABLE):
                target.optimize(table)

    def _save_state(self, state: SyncState, state_version: int, plan: Plan, tally: Tally, *, purged: set[str],
                    experiment_digests: dict[str, str], digests: dict[str, str], metrics_mark: str | None,
                    store_token: str | None, deleted_traces: set[str]) -> None:
        """Commit the state this sync leaves: the runs, series and traces it synced (those whose
        reads skipped a record marked unsynced; the traces ``deleted_traces`` from the tables
        gone), the row counts and versions of ``tally``, the digests of the experiments and
        keyed tables, the metrics mark of the scan."""
        if not self.lock.held():
            raise TargetLockedError(
                f"the lock on {self.target.display} was taken over while this sync ran; the data "
                f"it wrote is kept, its state is not saved (the next sync redoes the work)"
            )
        sync_id = self.result.sync_id
        compact, appends = should_compact(state, plan.full)
        if compact and state.partial:  # positioned() reads every series where a rewrite is due
            raise RuntimeError("internal error: the state is due for a rewrite but was read without its series")
        meta = {
            "sync": self._sync_entry(),
            "rows": tally.rows,
            "versions": tally.versions,
            "experiments": experiment_digests,
            "state_key": plan.state_key,
            "positions_key": plan.positions_key,
            # whether the saved positions are exactly what the metrics table holds
            "metrics_exact": plan.metrics_exact,
            "appends": appends,
            # the optional tables kept, and the digests of the keyed ones as read
            "tables": list(plan.tables),
            "digests": digests,
            # where the store takes marks: the one the saved positions were taken at
            "metrics_mark": {"mark": metrics_mark, "experiments": list(plan.experiment_ids)}
            if metrics_mark else None,
        }
        skipped = skipped_runs(plan, self.skips.of_runs)
        book_skips(self.result, plan, self.skips.places(), skipped)
        runs, series = next_state(state, plan, purged, skipped)
        traces = next_traces(state.traces, plan.traces, deleted_traces,
                             plan.traces.read if plan.traces is not None and self.skips.of_traces else ())
        columns = state_update(state, runs, series, meta, sync_id, compact, next_checks(state, plan, series),
                               count_series=True, traces=traces)
        write_state(self.target, columns, compact, user_metadata=self._header(store_token, appends, tally.rows))
        # This sync holds the lock: nobody else writes the state, so this commit is the next one.
        self.result.state_version = state_version + 1
        log.info("state saved (%s, %d rows, %d live)", "rewritten" if compact else "appended",
                 len(columns["kind"]), len(runs) + len(series) + len(meta))


__all__ = ["COMMIT_ORDER", "KILL_ENV", "LOCK_TABLE", "SyncResult", "TableResult", "run_sync", "sync"]
