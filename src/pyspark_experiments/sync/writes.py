"""The sync's writes to the Delta tables: appends and null-safe MERGEs booked in the result
and the row counts the state keeps (:class:`TableWriter`), and what each table's step writes
(:func:`sync_experiments`, :func:`sync_per_run`, :func:`sync_metrics`, :func:`sync_keyed`,
:func:`sync_trace_table`, :func:`reconcile_purged`). The plan decides; these carry it out.

Example::

    >>> writer = TableWriter(target, result, Tally({}, {}))                  # doctest: +SKIP
    >>> sync_per_run(writer, reads, "params", plan)                          # doctest: +SKIP
    >>> result.tables["params"].inserted                                     # doctest: +SKIP
    120
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from .. import tables
from ..jobs.target import sql_string
from ..stores.problems import collect_skipped
from .columns import EVOLVED_TABLES, add_new_columns
from .faults import fault, fault_during
from .plan import (
    COMMIT_ORDER,
    DRIVER_READ_RUNS,
    MAX_LISTED_RUNS,
    RUN_KEYED_TABLES,
    STALE_DELETING_TABLES,
    Plan,
    experiment_changes,
    purged_runs,
    reads_metrics_on_driver,
)
from .reads import Reads
from .result import SyncResult, TableResult
from .state import SyncState

log = logging.getLogger("pyspark_experiments.sync")


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


def row_digest(row: dict) -> str:
    """A digest of one row (NaN-safe; datetimes as ISO).

    Example::

        >>> row_digest({"a": float("nan")}) == row_digest({"a": float("nan")})
        True
    """
    return hashlib.sha256(json.dumps(_plain(row), sort_keys=True, default=str).encode()).hexdigest()


def table_digest(arrow) -> str:
    """A digest of an Arrow table's rows, whatever their order.

    Example::

        >>> import pyarrow as pa
        >>> table_digest(pa.table({"a": [1, 2]})) == table_digest(pa.table({"a": [2, 1]}))
        True
    """
    rows = sorted(row_digest(row) for row in arrow.to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@dataclass
class Tally:
    """Per table, the rows it holds and the Delta version they were counted at, as the state
    keeps them (``rows`` and ``versions`` of its meta); a table missing is counted when needed.

    Example::

        >>> Tally({"runs": 3}, {"runs": 1}).rows["runs"]
        3
    """

    rows: dict[str, int]
    versions: dict[str, int]


@dataclass(frozen=True)
class TableWriter:
    """Writes to ``target`` (a :class:`~pyspark_experiments.jobs.target.DeltaTarget`), each booked in
    ``result`` and ``tally``. The tables are written from several threads at once, each table
    from one.

    Example::

        >>> TableWriter(target, result, Tally({}, {})).known_rows("runs")    # doctest: +SKIP
        42
    """

    target: object
    result: SyncResult
    tally: Tally

    def create_missing(self, kept: tuple[str, ...], full: bool) -> None:
        """Create the ``kept`` tables the target lacks (checked for those the state does not
        know, or for all on a ``full`` sync)."""
        tally = self.tally
        for table in kept:
            if (full or table not in tally.versions) and not self.target.exists(table):
                self.target.create(table, tables.spark_schema(table))
                tally.rows[table], tally.versions[table] = 0, self.target.latest_version(table)

    def add_new_columns(self, kept: tuple[str, ...], recovering: bool) -> None:
        """Give the ``kept`` tables that an older version wrote the columns added since, filled
        for their rows (:func:`~.columns.add_new_columns`; filled again when ``recovering``),
        before anything is written to them; booked as this sync's writes."""
        for table in (t for t in kept if t in EVOLVED_TABLES):
            added, filled = add_new_columns(self.target, table, refill=recovering)
            if added:
                log.info("%s: added the column(s) %s, which the target's table lacked; filled %d row(s)",
                         table, ", ".join(added), filled)
            if added or filled:
                self.finish_write(table, inserted=0, updated=filled, rows_after=self.known_rows(table))

    def forget_tables_written_since(self) -> None:
        """A sync that failed may have committed tables after the state was saved: their row
        counts in the state are stale (a table the state holds empty may have rows, and must be
        merged into rather than appended to), so they are counted again when needed."""
        tally = self.tally
        for table in COMMIT_ORDER:
            if table in tally.versions and self.target.exists(table) and self.target.latest_version(table) != tally.versions[table]:
                log.info("%s was written by the sync that did not finish: counting its rows", table)
                tally.rows.pop(table, None)
                tally.versions.pop(table)

    def commit_info(self, table: str, marker: str | None = None) -> tuple[int, dict, int | None]:
        """The table's latest version, and the metrics and read version of its latest commit
        that changed data (an OPTIMIZE, e.g. Delta's auto compaction, may follow a write).

        ``marker``: the user metadata of the commit this sync just made. Where the table's
        version before it is known, that commit is read from the table's log at the next
        version (a third of the CPU of its history) when it carries the marker and is the
        table's latest: nobody committed before or after it."""
        known = self.tally.versions.get(table)
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

    def known_rows(self, table: str) -> int:
        """Rows in ``table`` as the state knows them (counted when it does not)."""
        rows = self.tally.rows
        if table not in rows:
            rows[table] = self.target.read(table).count()
        return int(rows[table])

    def finish_write(self, table: str, *, inserted: int | None = None, updated: int = 0, deleted: int = 0,
                     rows_after: int | None = None, marker: str | None = None) -> None:
        """Book a commit just made to ``table`` (with user metadata ``marker``, if any): its
        version and row counts, from one look at the commit (its read version tells whether
        anybody else wrote)."""
        tally = self.tally
        version, metrics, read_version = self.commit_info(table, marker)
        if inserted is None:
            inserted = int(metrics.get("numOutputRows", 0))
        if rows_after is None:
            if table in tally.rows and read_version is not None and tally.versions.get(table) == read_version:
                rows_after = int(tally.rows[table]) + inserted - deleted
            else:
                log.info("%s: written outside the sync since its last run: counting its rows", table)
                rows_after = self.target.read(table).count()
        result = self.result.tables.setdefault(table, TableResult(table))
        result.inserted += inserted
        result.updated += updated
        result.deleted += deleted
        result.version = version
        result.commits += 1
        tally.versions[table] = version
        tally.rows[table] = rows_after
        result.unchanged = max(0, rows_after - result.inserted - result.updated)

    def untouched(self, table: str) -> None:
        """Book ``table`` as left as it is (counted when the state does not know it)."""
        tally = self.tally
        result = self.result.tables.setdefault(table, TableResult(table))
        if table not in tally.rows:
            tally.rows[table] = self.target.read(table).count()
            tally.versions[table] = self.target.latest_version(table)
        result.unchanged = max(0, tally.rows[table] - result.inserted - result.updated)

    def append(self, table: str, source) -> None:
        """Append ``source`` (a DataFrame) to ``table``."""
        fault(f"before-write:{table}")
        fault_during(table, self.target)
        marker = f"pyspark-experiments sync {self.result.sync_id}, write {uuid.uuid4().hex}"
        self.target.write(source, table, "append", user_metadata=marker)
        self.finish_write(table, marker=marker)
        fault(f"after-write:{table}")

    def merge(self, table: str, source, *, insert_only: bool, runs=None, delete_stale: str | None = None,
              column: str = "run_id") -> None:
        """MERGE ``source`` into ``table`` on its natural keys (null- and NaN-safe).

        ``runs``: the runs (traces, with ``column`` ``trace_id``) the source covers (lets Delta
        skip other runs' files);
        ``delete_stale``: a condition on the target's rows (``t.``) that the source lacks and
        that are deleted. An empty table is simply appended to.
        """
        if self.known_rows(table) == 0:
            self.append(table, source)
            return
        fault(f"before-write:{table}")
        fault_during(table, self.target)
        keys = tables.NATURAL_KEYS[table]
        on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        if runs is not None and len(runs) <= MAX_LISTED_RUNS:
            on += " AND t.`{}` IN ({})".format(column, ", ".join(sql_string(r) for r in sorted(runs)))
        differs = None
        if not insert_only:
            differs = " OR ".join(
                f"NOT (to_json(t.`{f.name}`) <=> to_json(s.`{f.name}`))" if f.dataType.typeName() == "map"
                else f"NOT (t.`{f.name}` <=> s.`{f.name}`)"
                for f in tables.spark_schema(table).fields if f.name not in keys
            )
        counts = self.target.merge(table, source, on, update=not insert_only, update_when=differs,
                                   delete_when=delete_stale)
        self.finish_write(
            table,
            inserted=counts.get("num_inserted_rows", 0),
            updated=counts.get("num_updated_rows", 0),
            deleted=counts.get("num_deleted_rows", 0),
        )
        fault(f"after-write:{table}")


def sync_experiments(writer: TableWriter, reads: Reads, state: SyncState, plan: Plan, arrow,
                     reconcile: bool) -> dict[str, str]:
    """The experiments table: a handful of rows (``arrow``, read on the driver during the
    scan), compared with the digests the state keeps per experiment; the table is rewritten
    in one commit when any changed. ``reconcile``: experiments that left the store are
    deleted. Returns the digests the state keeps (:func:`~.plan.experiment_changes`).

    Example::

        >>> sync_experiments(writer, reads, state, plan, experiments, reconcile=False)  # doctest: +SKIP
        {'1': '5d41...'}
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    target = writer.target
    schema = tables.arrow_schema(tables.EXPERIMENTS)
    wanted = {r["experiment_id"]: row_digest(r) for r in arrow.to_pylist()}
    known = {} if plan.full or plan.recovering else dict(state.meta.get("experiments", {}))
    rows_before = writer.known_rows(tables.EXPERIMENTS)
    if rows_before and not known:  # no digests to compare with: compare with the table
        known = {r["experiment_id"]: row_digest(r)
                 for r in target.read(tables.EXPERIMENTS).toArrow().select(schema.names).to_pylist()}
    inserted, updated, gone, digests = experiment_changes(wanted, known, reconcile)
    deleted = len(gone) if reconcile else 0
    if not inserted and not updated and not deleted:
        writer.untouched(tables.EXPERIMENTS)
        return digests
    if gone and not reconcile:
        kept = target.read(tables.EXPERIMENTS).toArrow().select(schema.names)
        kept = kept.filter(pc.is_in(kept.column("experiment_id"), value_set=pa.array(sorted(gone))))
        arrow = pa.concat_tables([arrow, kept.cast(schema)])
    fault(f"before-write:{tables.EXPERIMENTS}")
    target.write(reads.arrow_frame(arrow, tables.EXPERIMENTS), tables.EXPERIMENTS, "overwrite")
    writer.finish_write(tables.EXPERIMENTS, inserted=inserted, updated=updated, deleted=deleted,
                        rows_after=len(arrow))
    fault(f"after-write:{tables.EXPERIMENTS}")
    return digests


def sync_per_run(writer: TableWriter, reads: Reads, table: str, plan: Plan) -> None:
    """A per-run table (params, tags, inputs, runs, artifacts): the runs the plan re-reads,
    appended (runs the target never saw) or merged, deleting the rows a re-read run no longer
    has where the store deletes them (:data:`~.plan.STALE_DELETING_TABLES`).

    Example::

        >>> sync_per_run(writer, reads, "tags", plan)                         # doctest: +SKIP
    """
    run_ids = plan.changed[table]
    if not run_ids:
        writer.untouched(table)
        return
    append = plan.appends(table)
    stale = table in STALE_DELETING_TABLES
    if len(run_ids) <= DRIVER_READ_RUNS:
        arrow = reads.driver_read(table, run_ids=run_ids)
        # Nothing to write, nor to delete (Delta commits no empty append).
        if arrow.num_rows == 0 and (append or not stale or writer.known_rows(table) == 0):
            writer.untouched(table)
            return
        source = reads.arrow_frame(arrow, table)
    else:
        source = reads.written_part(reads.executor_read(table, run_ids=run_ids, report=True))
    if append:
        writer.append(table, source)
    else:
        delete = "t.run_id IN ({})".format(", ".join(sql_string(r) for r in sorted(run_ids))) if stale else None
        writer.merge(table, source, insert_only=False, runs=run_ids, delete_stale=delete)


def sync_keyed(writer: TableWriter, reads: Reads, table: str, plan: Plan, saved: Mapping[str, str],
               all_experiments: bool) -> str | None:
    """A keyed table (logged models, the registry): read whole on the driver, compared with
    the digest the state keeps (``saved``), and when it differs (or the plan rewrites it)
    merged on its natural keys, deleting what the store no longer holds: the table mirrors the
    store (models: within the synced experiments, unless ``all_experiments``; the registry:
    whole). Returns the digest of what was read, None when a record was skipped (PERMISSIVE:
    the next sync reads and merges the table again; once repaired, the record comes in).

    Example::

        >>> sync_keyed(writer, reads, "models", plan, {}, all_experiments=True)  # doctest: +SKIP
        '2c26...'
    """
    with collect_skipped() as skipped:
        arrow = reads.driver_read(table)
    digest = None if skipped else table_digest(arrow)
    if not plan.writes_keyed(table, digest, saved):
        writer.untouched(table)
        return digest
    if arrow.num_rows == 0 and writer.known_rows(table) == 0:
        writer.untouched(table)
        return digest
    if table == tables.MODELS and not all_experiments:
        scope = "t.experiment_id IN ({})".format(", ".join(sql_string(e) for e in reads.experiment_ids) or "NULL")
    else:
        scope = "true"
    writer.merge(table, reads.arrow_frame(arrow, table), insert_only=False, delete_stale=scope)
    return digest


def sync_metrics(writer: TableWriter, reads: Reads, plan: Plan, average_series: int) -> None:
    """The metrics table: the plan's ranges and whole series, read on the driver when few
    (:func:`~.plan.reads_metrics_on_driver`, with the ``average_series`` length of the last
    sync), appended when the plan says so, else merged (series read whole replace what the
    table holds of them).

    Example::

        >>> sync_metrics(writer, reads, plan, average_series=100)            # doctest: +SKIP
    """
    caps = reads.scope.caps
    ranges = dict(plan.ranges)
    whole = set(plan.whole_series)
    if not ranges and not whole:
        writer.untouched(tables.METRICS)
        return
    runs = {run_id for run_id, _ in ranges} | {run_id for run_id, _ in whole}
    if plan.bounded:
        # A whole series: from 0 to its scanned position (digests have no order: to the end).
        ordered = caps.metric_positions != "digest"
        listed = {**ranges, **{pair: (0, plan.positions[pair] if ordered else 2**62) for pair in whole}}
        if reads_metrics_on_driver(plan, caps.metric_positions, caps.position_units_per_point, average_series):
            arrow = reads.driver_read(tables.METRICS, ranges=listed)
            if arrow.num_rows == 0 and not whole:
                writer.untouched(tables.METRICS)
                return
            source = reads.arrow_frame(arrow, tables.METRICS)
        else:
            source = reads.written_part(reads.executor_read(tables.METRICS, ranges=listed, report=True))
    else:
        # Too many series to list them: the whole histories of their runs, merged.
        source = reads.written_part(reads.executor_read(tables.METRICS, run_ids=runs, report=True))
    if plan.append_metrics:
        writer.append(tables.METRICS, source)
        return
    stale = " OR ".join(f"(t.run_id = {sql_string(r)} AND t.key = {sql_string(k)})" for r, k in sorted(whole))
    writer.merge(tables.METRICS, source, insert_only=True, runs=runs, delete_stale=stale or None)


def sync_trace_table(writer: TableWriter, reads: Reads, table: str, plan: Plan, all_experiments: bool) -> set[str]:
    """A trace table (traces, spans, assessments) as the plan's :class:`~.traces.TracePlan`
    says: the traces read appended (traces the target never saw) or merged, deleting the rows
    of re-read traces that the store no longer has and of traces deleted from the store; a
    mirrored table (full sync, first time kept) ends as the store's traces of the synced
    experiments (all, with ``all_experiments``). After a sync that did not finish, traces the
    table holds but the store does not are deleted too. Returns the traces deleted.

    Example::

        >>> sync_trace_table(writer, reads, "assessments", plan, all_experiments=True)  # doctest: +SKIP
        {'tr-9f2c...'}
    """
    traces = plan.traces
    read = traces.changed.get(table, set())
    mirrored = table in traces.mirrored
    deleted = set(traces.gone)
    if plan.recovering and not mirrored and writer.known_rows(table):
        found = {r["trace_id"]: r["experiment_id"]
                 for r in writer.target.read(table).select("trace_id", "experiment_id").distinct().collect()}
        deleted |= purged_runs(found, traces.fingerprints, plan.experiment_ids, all_experiments)
    if not read and not deleted and not mirrored:
        writer.untouched(table)
        return deleted
    append = traces.appends(table)
    source, rows = reads.trace_read(table, read)
    if rows == 0 and (append or writer.known_rows(table) == 0):
        writer.untouched(table)  # nothing to write, nor to delete (Delta commits no empty append)
        return deleted
    if append:
        writer.append(table, source)
        return deleted
    if mirrored:
        stale = "true" if all_experiments else "t.experiment_id IN ({})".format(
            ", ".join(sql_string(e) for e in plan.experiment_ids) or "NULL")
    else:
        stale = "t.trace_id IN ({})".format(", ".join(sql_string(t) for t in sorted(read | deleted)))
    writer.merge(table, source, insert_only=False, runs=read if read and not mirrored else None, delete_stale=stale,
                 column="trace_id")
    return deleted


def reconcile_purged(writer: TableWriter, plan: Plan, kept: tuple[str, ...], all_experiments: bool) -> set[str]:
    """Delete the rows of runs that are in the tables but no longer in the store (within the
    plan's experiments, unless ``all_experiments``) from the ``kept`` run-keyed tables;
    returns those runs.

    Example::

        >>> reconcile_purged(writer, plan, kept, all_experiments=True)       # doctest: +SKIP
        {'abc'}
    """
    target = writer.target
    found: dict[str, str] = {}
    for table in (tables.RUNS, tables.PARAMS, tables.TAGS, tables.INPUTS, tables.METRICS):
        for row in target.read(table).select("run_id", "experiment_id").distinct().collect():
            found.setdefault(row["run_id"], row["experiment_id"])
    purged = purged_runs(found, plan.fingerprints, plan.experiment_ids, all_experiments)
    writer.result.purged_runs = len(purged)
    if not purged:
        return purged
    log.info("reconciling %d run(s) purged from the store: deleting their rows", len(purged))
    listed = ", ".join(sql_string(r) for r in sorted(purged))
    for table in RUN_KEYED_TABLES:
        if table not in kept:
            continue
        before = target.latest_version(table)
        fault(f"before-purge:{table}")
        target.delete(table, f"run_id IN ({listed})")
        version, operation, _ = writer.commit_info(table)
        if version != before:
            writer.finish_write(table, inserted=0, deleted=int(operation.get("numDeletedRows", 0)))
    return purged
