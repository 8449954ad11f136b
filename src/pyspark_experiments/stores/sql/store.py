"""MLflow's SQL tracking store (SQLite, PostgreSQL, MySQL/MariaDB), read as Arrow columns.

Data is read with Arrow-native drivers, so columns arrive as Arrow arrays built in C: ADBC for
SQLite (``adbc-driver-sqlite``, a runtime dependency) and PostgreSQL (``adbc-driver-postgresql``,
the ``postgres`` extra); for MySQL, connectorx for metric points and PyMySQL for the rest (the
``mysql`` extra, see :mod:`.mysql`). Planning on the driver (experiments, run lists, point
counts, metric positions, fingerprints: small, row-shaped results) uses the DB-API drivers,
Python's ``sqlite3`` and psycopg (the ``postgres`` extra): an ADBC PostgreSQL connection costs
about ten times psycopg's to open (it loads the server's type catalogue), which planning would
pay several times per read. MLflow's encodings are applied as Arrow compute: NaN
stored as 0 with ``is_nan``, milliseconds to timestamps, latest values, params and tags as maps.
One store class reads them all: what differs between the databases is declared in
:data:`~.dialects.DIALECTS`. The queries use MLflow's schema: ``experiments``, ``experiment_tags``,
``runs``, ``params``, ``tags``, ``metrics``, ``latest_metrics``, ``datasets``, ``inputs``,
``input_tags``.

SQLite is opened read-only (``file:...?mode=ro``). ADBC links its own copy of SQLite, and two
copies in one process do not see each other's POSIX locks (closing one drops the other's): the
driver, where a notebook's mlflow may be writing the same file, keeps to ``sqlite3``.

Example::

    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> store = SqlStore(resolve_tracking_uri("sqlite:////tmp/mlflow.db"))
    >>> [e.name for e in store.list_experiments()]
    ['Default', ...]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pyarrow as pa

from ... import tables
from ..base import ExperimentRef, Partition, Selection, Store, StoreCapabilities, lifecycle_stages
from ..fingerprints import digests_by_run, fingerprint
from ..planning import chunk, default_partition_points, metric_units, pack_partitions
from .connections import AdbcConnection, SqlConnections, sqlite_change_token
from .dialects import IN_LIST
from .encodings import STR
from .models import SqlModelTables
from .reads import RowidSpan, SqlTableReads
from .traces import SqlTraceTables

# Runs per partition for the per-run tables (metric points: planning.default_partition_points).
# Measured at L (20,000 runs, 2 cores): below this, each task's fixed cost dominates.
DEFAULT_RUNS_PER_PARTITION = 10_000


class SqlStore(SqlTableReads, SqlModelTables, SqlTraceTables, SqlConnections, Store):
    """Reads an MLflow SQL store: planning and change detection here; connections and queries
    in :mod:`.connections`, table reads in :mod:`.reads`, the model tables in :mod:`.models`,
    the trace tables in :mod:`.traces`."""

    # -- planning (driver) -------------------------------------------------------------------

    def list_experiments(self, view_type: str = "ALL") -> list[ExperimentRef]:
        stages = lifecycle_stages(view_type)
        with self._connect() as connection:
            rows = self._query_in(
                connection,
                "SELECT experiment_id, name, lifecycle_stage FROM experiments "
                "WHERE lifecycle_stage IN ({in}) ORDER BY experiment_id",
                stages,
            )
        return [ExperimentRef(str(i), name, stage) for i, name, stage in rows]

    def plan(self, selection: Selection) -> list[Partition]:
        if selection.table in tables.MODEL_TABLE_NAMES:
            return self._plan_model_tables(selection)
        if selection.table in tables.TRACE_TABLE_NAMES:
            return self._plan_trace_tables(selection)
        if selection.table == tables.EXPERIMENTS:
            return [Partition(0, selection, selection.experiment_ids)]
        with self._connect() as connection:
            if selection.metric_ranges is not None:
                ranged = self._selected_among(connection, selection, {r[0] for r in selection.metric_ranges})
                return self._plan_metric_ranges(connection, selection, ranged)
            run_ids = self._selected_run_ids(connection, selection)
            if selection.table != tables.METRICS:
                return _per_run_partitions(selection, run_ids)
            if self._dialect.rowid and run_ids and 2 * len(run_ids) >= self._query(connection, "SELECT COUNT(*) FROM runs")[0][0]:
                return self._plan_rowid_spans(connection, selection)
            counts = self._query_in(
                connection,
                "SELECT run_uuid, key, COUNT(*) FROM metrics WHERE run_uuid IN ({in}) "
                f"GROUP BY run_uuid, {self._dialect.group_key}",
                run_ids,
            )
        target = default_partition_points(sum(count for _, _, count in counts))
        return pack_partitions(selection, metric_units(selection, counts, target), target)

    def _plan_rowid_spans(self, connection, selection: Selection) -> list[Partition]:
        """SQLite, a selection of most runs: the ``metrics`` table cut into ``rowid`` spans of
        about the target number of points. ``MIN``/``MAX(rowid)`` cost nothing, where counting
        the points of each run reads an index of the whole table; each partition then scans its
        span in table order and keeps the points of the runs the selection admits."""
        # Apart, each is one B-tree descent; together in one SELECT, SQLite scans the table.
        first, last = self._query(connection, "SELECT (SELECT MIN(rowid) FROM metrics), (SELECT MAX(rowid) FROM metrics)")[0]
        if first is None:
            return []
        rows = last - first + 1
        count = selection.num_partitions or math.ceil(rows / (selection.rows_per_partition or default_partition_points(rows)))
        count = max(1, min(count, rows))
        bounds = [first - 1 + rows * i // count for i in range(count + 1)]
        return [Partition(i, selection, RowidSpan(after, upto)) for i, (after, upto) in enumerate(zip(bounds, bounds[1:]))]

    def _plan_metric_ranges(self, connection, selection: Selection, run_ids: list[str]) -> list[Partition]:
        admitted = set(run_ids)
        ranges = [
            (run_id, key, after, upto) for run_id, key, after, upto in sorted(selection.metric_ranges)
            if run_id in admitted and upto > after and selection.admits_metric_key(key)
        ]
        counts = {
            (run_id, key): count
            for run_id, key, count in self._query_in(
                connection,
                f"SELECT run_uuid, key, COUNT(*) FROM metrics WHERE run_uuid IN ({{in}}) GROUP BY run_uuid, {self._dialect.group_key}",
                sorted({r[0] for r in ranges}),
            )
        }
        units = []
        for run_id, key, after, upto in ranges:
            count = counts.get((run_id, key), 0)
            # rowids are unique: a rowid range holds at most (upto - after) points
            estimate = min(count, upto - after) if self.capabilities.exact_metric_ranges else count
            units.append(((run_id, key, after, upto), max(1, estimate)))
        return pack_partitions(selection, units, default_partition_points(sum(points for _, points in units)))

    # -- change detection (driver) -----------------------------------------------------------

    @property
    def capabilities(self) -> StoreCapabilities:
        # SQLite's rowid orders points as they were committed; other databases have no such
        # column, so a position there is a point count and a range read returns the history.
        exact = self._dialect.rowid
        return StoreCapabilities(
            kind="sql",
            state_key="sql",
            metric_positions="rowid" if exact else "count",
            exact_metric_ranges=exact,
            position_units_per_point=1,
            run_fingerprints=True,
            metric_marks=exact,
            change_token=self.uri.scheme in ("sqlite", "postgresql"),
            trace_fingerprints=True,
            tables=tables.ALL_TABLE_NAMES,
        )

    def change_token(self) -> str | None:
        """SQLite: :func:`sqlite_change_token` of the database file. PostgreSQL: the position at
        which the server inserts its next write-ahead log record (on a standby: the position
        replayed), which moves with every write, committed or not, before anyone can see it."""
        if self.uri.scheme == "sqlite":
            return sqlite_change_token(self._sqlite_path)
        if self.uri.scheme == "postgresql":
            with self._connect() as connection:
                rows = self._query(connection, "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                                               "ELSE pg_current_wal_insert_lsn() END)::text")
            return f"postgresql:{rows[0][0]}" if rows and rows[0][0] else None
        raise NotImplementedError(f"{self.uri.display} takes no change tokens")

    def metric_positions(self, selection: Selection) -> dict[tuple[str, str], int]:
        """SQLite: the largest ``rowid`` of each series; other databases: its number of points."""
        column = "MAX(rowid)" if self.capabilities.metric_positions == "rowid" else "COUNT(*)"
        with self._connect() as connection:
            run_ids = self._selected_run_ids(connection, selection)
            rows = self._query_in(
                connection,
                f"SELECT run_uuid, key, {column} FROM metrics WHERE run_uuid IN ({{in}}) GROUP BY run_uuid, {self._dialect.group_key}",
                run_ids,
            )
        return {(run_id, key): int(position) for run_id, key, position in rows if selection.admits_metric_key(key)}

    # SQLite gives a new row the largest rowid plus one, so the points logged after a mark are
    # the rows past its rowid, unless rows at the end were deleted and their rowids reused. MLflow
    # deletes metric rows only with their run (a purge), and a purged run id never returns: if
    # the row at the mark's rowid still holds the same point, no rowid up to it was reused.

    def metric_mark(self) -> str:
        """SQLite: ``<largest metrics rowid>:<digest of that row's point>`` (``0:`` when empty).

        Example::

            >>> SqlStore(resolve_tracking_uri("sqlite:///mlflow.db")).metric_mark()  # doctest: +SKIP
            '10000000:5d41402abc4b2a76'
        """
        with self._connect() as connection:
            rows = self._query(connection, f"SELECT rowid, {_MARK_COLUMNS} FROM metrics ORDER BY rowid DESC LIMIT 1")
        if not rows:
            return "0:"
        rowid, *point = rows[0]
        return f"{rowid}:{_point_digest(point)}"

    def metric_positions_since(self, selection: Selection, since: str, upto: str) -> dict[tuple[str, str], int] | None:
        """SQLite: the largest rowid of each selected series with rows past ``since``'s rowid and
        up to ``upto``'s; None when the row at ``since``'s rowid no longer holds its point."""
        since_rowid, since_digest = _parse_mark(since)
        upto_rowid, _ = _parse_mark(upto)
        with self._connect() as connection:
            if since_rowid:
                row = self._query(connection, f"SELECT {_MARK_COLUMNS} FROM metrics WHERE rowid = ?", [since_rowid])
                if not row or _point_digest(row[0]) != since_digest:
                    return None
            if upto_rowid < since_rowid:
                return None
            rows = self._query(
                connection,
                "SELECT run_uuid, key, MAX(rowid) FROM metrics WHERE rowid > ? AND rowid <= ? GROUP BY run_uuid, key",
                [since_rowid, upto_rowid],
            )
            selected = set(self._selected_among(connection, selection, {row[0] for row in rows}))
        return {(run_id, key): int(position) for run_id, key, position in rows
                if run_id in selected and selection.admits_metric_key(key)}

    def run_fingerprints(self, selection: Selection) -> dict[str, tuple[str, str]]:
        """A digest of each run's ``runs`` row, params, tags, dataset inputs and their tags,
        computed with Arrow (:func:`~..fingerprints.digests_by_run`)."""
        with self._connect(reading=True) as connection:
            run_ids = self._selected_run_ids(connection, selection)
            if not run_ids:
                return {}
            parts = {
                "run": self._text_table_in(connection, "SELECT run_uuid, runs.* FROM runs WHERE run_uuid IN ({in})", run_ids),
                "params": self._text_table_in(connection, "SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({in})", run_ids),
                "tags": self._text_table_in(connection, "SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({in})", run_ids),
                "inputs": self._text_table_in(
                    connection,
                    "SELECT i.destination_id, i.input_uuid, i.source_type, i.source_id, t.name, t.value "
                    "FROM inputs i LEFT JOIN input_tags t ON t.input_uuid = i.input_uuid "
                    "WHERE i.destination_type = 'RUN' AND i.destination_id IN ({in})",
                    run_ids,
                ),
            }
        runs = parts["run"]
        experiment_of = dict(zip(runs.column(0).to_pylist(), runs.column("experiment_id").to_pylist()))
        digests = {part: digests_by_run(rows) for part, rows in parts.items()}
        empty = hashlib.sha1().hexdigest()
        return {
            run_id: (experiment_of[run_id], fingerprint({part: digests[part].get(run_id, empty) for part in digests}))
            for run_id in run_ids if run_id in experiment_of
        }

    def _text_table_in(self, connection, sql: str, values: Sequence) -> pa.Table:
        """The result of ``sql`` whose ``{in}`` stands for ``values`` (in bounded chunks), every
        column as text."""
        found = []
        for query, params in self._in_chunks(connection, sql, values):
            query = self._sql(connection, query)
            if isinstance(connection, AdbcConnection):
                table = connection.table(query, params)
            else:  # a DB-API connection (PyMySQL)
                cursor = connection.execute(query, tuple(params))
                names = [column[0] for column in cursor.description]
                rows = cursor.fetchall()
                table = pa.table([pa.array(list(column)) for column in zip(*rows)] if rows else
                                 [pa.array([], pa.string())] * len(names), names=names)
            found.append(pa.table([column.cast(pa.large_string()) for column in table.columns], names=table.column_names))
        return pa.concat_tables(found)

    @staticmethod
    def _selected_runs_query(selection: Selection, experiment_ids: Sequence[str]) -> tuple[str, list]:
        """``(run_uuid, experiment_id)`` of the runs in ``experiment_ids`` that pass the
        selection's view type and start time (not its run ids), and the query's parameters."""
        stages = lifecycle_stages(selection.view_type)
        sql = (f"SELECT run_uuid, experiment_id FROM runs WHERE experiment_id IN ({', '.join('?' * len(experiment_ids))}) "
               f"AND lifecycle_stage IN ({', '.join('?' * len(stages))})")
        params: list = [*(int(e) for e in experiment_ids), *stages]
        if selection.min_start_time_ms is not None:
            sql += " AND start_time >= ?"
            params.append(selection.min_start_time_ms)
        return sql, params

    def _selected_runs(self, connection, selection: Selection) -> pa.Table:
        """``(run_id, experiment_id)`` of the runs the selection admits: its experiments, view
        type, start time and run ids."""
        import pyarrow.compute as pc

        named = selection.run_ids
        if named is not None and selection.experiment_ids:
            sql, params = self._selected_runs_query(selection, selection.experiment_ids)
            if len(named) + len(params) <= IN_LIST:
                # A few runs named (an incremental sync's reads): looked up by their primary
                # key, not by scanning every run of the experiments.
                return self._arrow_in(connection, sql + " AND run_uuid IN ({in})", sorted(set(named)), _RUN_COLUMNS, params)
        runs = pa.Table.from_batches(
            [batch for part in chunk(list(selection.experiment_ids), IN_LIST)
             for batch in self._arrow(connection, *self._selected_runs_query(selection, part), _RUN_COLUMNS)],
            schema=pa.schema(_RUN_COLUMNS),
        )
        if named is not None:
            runs = runs.filter(pc.is_in(runs.column(0), value_set=pa.array(selection.run_ids, STR)))
        return runs

    def _selected_run_ids(self, connection, selection: Selection) -> list[str]:
        return sorted(self._selected_runs(connection, selection).column(0).to_pylist())

    def _selected_among(self, connection, selection: Selection, candidates: set[str]) -> list[str]:
        """The ids of the runs among ``candidates`` that the selection admits (a few are
        looked up by id, see :meth:`_selected_runs`)."""
        if not candidates:
            return []
        named = candidates if selection.run_ids is None else candidates & set(selection.run_ids)
        return self._selected_run_ids(connection, replace(selection, run_ids=tuple(sorted(named))))

    # -- reading (executor) ------------------------------------------------------------------

    def read(self, partition: Partition) -> Iterator[pa.RecordBatch]:
        table = partition.selection.table
        if table in tables.MODEL_TABLE_NAMES:
            yield from self._read_model_tables(partition)
            return
        if table in tables.TRACE_TABLE_NAMES:
            yield from self._read_trace_tables(partition)
            return
        with self._connect(reading=True) as connection:
            if table == tables.EXPERIMENTS:
                yield from self._read_experiments(connection, partition.work)
            elif table == tables.METRICS:
                yield from self._read_metrics(connection, partition)
            elif table == tables.RUNS:
                yield from self._read_runs(connection, partition.work)
            elif table in (tables.PARAMS, tables.TAGS):
                yield from self._read_key_values(connection, table, partition.work)
            elif table == tables.INPUTS:
                yield from self._read_inputs(connection, partition.work)


_RUN_COLUMNS = [("run_id", STR), ("experiment_id", STR)]
_MARK_COLUMNS = "run_uuid, key, timestamp, step, value, is_nan"


def _point_digest(point: Sequence) -> str:
    return hashlib.sha1(repr(tuple(point)).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _parse_mark(mark: str) -> tuple[int, str]:
    """A metric mark's rowid and point digest.

    Example::

        >>> _parse_mark("42:ab12"), _parse_mark("0:")
        ((42, 'ab12'), (0, ''))
    """
    rowid, _, digest = mark.partition(":")
    return int(rowid), digest


def _per_run_partitions(selection: Selection, run_ids: list[str]) -> list[Partition]:
    total = len(run_ids)
    size = selection.rows_per_partition or DEFAULT_RUNS_PER_PARTITION
    if selection.num_partitions:
        size = max(1, math.ceil(total / selection.num_partitions))
    return [Partition(i, selection, tuple(part)) for i, part in enumerate(chunk(run_ids, size))]
