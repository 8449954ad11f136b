"""MLflow's SQL tracking store (SQLite, PostgreSQL, MySQL/MariaDB), read directly with a DB-API driver.

SQLite needs nothing beyond Python's ``sqlite3``; PostgreSQL needs ``psycopg`` (the
``postgres`` extra); MySQL needs PyMySQL (the ``mysql`` extra, see :mod:`.mysql`). One store
class reads them all: what differs between the databases is declared in :data:`DIALECTS`.
The queries use MLflow's schema: ``experiments``, ``experiment_tags``, ``runs``, ``params``,
``tags``, ``metrics`` (NaN stored as 0 with ``is_nan``), ``latest_metrics``, ``datasets``,
``inputs``, ``input_tags``.

Example::

    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> store = SqlStore(resolve_tracking_uri("sqlite:////tmp/mlflow.db"))
    >>> [e.name for e in store.list_experiments()]
    ['Default', ...]
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

import pyarrow as pa

from .. import tables
from ..errors import MissingDependencyError, StoreConnectionError, StoreNotFoundError, UnsupportedStoreError
from ..uri import redact, remember_secrets, split_userinfo
from .base import (
    BATCH_ROWS,
    ExperimentRef,
    Partition,
    Selection,
    Store,
    StoreCapabilities,
    batches_from_columns,
    chunk,
    fingerprint,
    lifecycle_stages,
    metric_units,
    ms_to_us,
    pack_partitions,
)

# Runs per partition for the per-run tables, metric points per partition for `metrics`.
DEFAULT_RUNS_PER_PARTITION = 2_000
DEFAULT_POINTS_PER_PARTITION = 250_000
# Bound on bound parameters per statement (SQLite allows 32,766).
_IN_LIST = 900
# How long a read waits for a SQLite lock held by a writer before it reports the lock.
SQLITE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases MLflow stores its runs in.

    - ``placeholder``: the driver's bind-parameter mark.
    - ``rowid``: rows carry an id in commit order (SQLite's ``rowid``), so a metric position
      is exact; elsewhere a position is a point count.
    - ``key_hint``: how to write the ``key`` column in a metric-key filter (SQLite: ``+key``
      keeps the planner on the (run_uuid, key, step) index).
    - ``exact_key_match``: ``=`` / ``IN`` on ``key`` compare exactly; MySQL's default
      collations ignore case and trailing spaces, so rows are filtered again in Python.
    - ``group_key``: how to group by ``key`` so that keys differing in case or trailing spaces
      stay apart (MySQL: ``BINARY key``).
    - ``arrow_points``: metric points may be read with an Arrow-native driver (MySQL: connectorx,
      see :mod:`.mysql`), the rest with the DB-API one.
    - ``missing_table``: text of the driver's error for a table that does not exist.

    Example::

        >>> DIALECTS["mysql"].placeholder, DIALECTS["mysql"].rowid, DIALECTS["sqlite"].key_hint
        ('%s', False, '+key')
    """

    placeholder: str
    rowid: bool = False
    key_hint: str = "key"
    exact_key_match: bool = True
    group_key: str = "key"
    arrow_points: bool = False
    missing_table: tuple[str, ...] = ("does not exist",)


DIALECTS = {
    "sqlite": Dialect("?", rowid=True, key_hint="+key", missing_table=("no such table",)),
    "postgresql": Dialect("%s"),
    "mysql": Dialect("%s", exact_key_match=False, group_key="BINARY key", arrow_points=True, missing_table=("doesn't exist",)),
}


def postgres_parameters(location: str) -> dict[str, str]:
    """libpq connection parameters from a PostgreSQL URL (any ``+driver`` suffix), with the
    userinfo split at its last ``@`` and percent-decoded, as SQLAlchemy reads MLflow's URLs.

    Example::

        >>> sorted(postgres_parameters("postgresql+psycopg://bob:a%2Fb@db:5433/mlflow?sslmode=require").items())
        [('dbname', 'mlflow'), ('host', 'db'), ('password', 'a/b'), ('port', '5433'), ('sslmode', 'require'), ('user', 'bob')]
        >>> postgres_parameters("postgresql://bob:Hunter/Two22@db/mlflow")["password"]
        'Hunter/Two22'
    """
    _, user, password, rest = split_userinfo(location)
    if user is None:
        rest = location.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    hostport, _, database = rest.partition("/")
    params: dict[str, str] = {}
    if hostport.startswith("["):  # [IPv6]:port
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    for name, value in (("host", unquote(host)), ("port", port), ("dbname", unquote(database)),
                        ("user", unquote(user or "")), ("password", unquote(password or ""))):
        if value:
            params[name] = value
    params.update(parse_qsl(query, keep_blank_values=True))
    return params


class SqlStore(Store):
    """Reads an MLflow SQL store."""

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connect(self):
        # On an executor the URI arrives pickled: make its credentials known to redact() here too.
        remember_secrets(self.uri.location)
        if self.uri.scheme == "sqlite":
            connection = self._connect_sqlite()
        elif self.uri.scheme == "postgresql":
            connection = self._connect_postgresql()
        elif self.uri.scheme == "mysql":
            from .mysql import connect_mysql

            connection = connect_mysql(self.uri.location, self.uri.display)
        else:
            raise UnsupportedStoreError(
                f"tracking URI {self.uri.display!r}: SQL dialect {self.uri.scheme!r} is not "
                f"supported yet; supported: {', '.join(DIALECTS)}"
            )
        try:
            self._check_schema(connection)
            yield connection
        finally:
            connection.close()

    @property
    def _sqlite_path(self) -> str:
        # the location holds the path as given (already percent-decoded once by uri.py)
        return self.uri.location.split("://", 1)[1].split("?", 1)[0][1:]

    def _connect_sqlite(self):
        import sqlite3

        path = self._sqlite_path
        if not os.path.isfile(path):
            raise StoreNotFoundError(f"tracking URI {self.uri.display!r}: no SQLite database at {path!r}")
        try:
            # Read-only, so a reader can never create or change a store.
            return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_S)
        except sqlite3.Error as error:
            raise self._sqlite_error(error) from None

    def _sqlite_error(self, error) -> StoreConnectionError:
        path = self._sqlite_path
        text = str(error)
        if "locked" in text:
            what = (f"is locked: another process has held a lock on it for longer than "
                    f"{SQLITE_TIMEOUT_S:g} s (a writer in a long transaction?); retry when it is released")
        elif "not a database" in text:
            what = "is not a SQLite database (file is not a database)"
        elif "unable to open" in text:
            readable = os.access(path, os.R_OK)
            folder_writable = os.access(os.path.dirname(path) or ".", os.W_OK)
            what = (f"cannot be opened (unable to open database file; file readable: {readable}, "
                    f"folder writable for SQLite's -shm/-wal files: {folder_writable})")
        else:
            what = f"cannot be read ({text})"
        return StoreConnectionError(f"tracking URI {self.uri.display!r}: the SQLite database at {path!r} {what}")

    def _connect_postgresql(self):
        try:
            import psycopg
        except ImportError as error:
            raise MissingDependencyError(
                "reading a PostgreSQL store needs psycopg: pip install 'pyspark-experiments[postgres]'"
            ) from error
        # Parameters, not a conninfo string: a password with spaces, quotes or '=' can then
        # neither break the parse nor be echoed by libpq's parse errors.
        try:
            connection = psycopg.connect(**postgres_parameters(self.uri.location), autocommit=True)
        except Exception as error:
            raise StoreConnectionError(
                f"cannot connect to {self.uri.display}: {redact(str(error)).strip()}"
            ) from None
        return connection

    def _check_schema(self, connection) -> None:
        try:
            connection.execute("SELECT run_uuid FROM runs WHERE 1 = 0").fetchall()
        except Exception as error:
            text = str(error)
            if self.uri.scheme == "sqlite" and "no such table" not in text:
                raise self._sqlite_error(error) from None
            if self.uri.scheme != "sqlite" and not any(t in text for t in self._dialect.missing_table):
                raise StoreConnectionError(
                    f"tracking URI {self.uri.display!r}: cannot check MLflow's schema: {redact(text).strip()}"
                ) from None
            raise StoreNotFoundError(
                f"tracking URI {self.uri.display!r} holds no MLflow tracking store "
                f"(expected MLflow's 'runs' table)"
            ) from None

    @property
    def _dialect(self) -> Dialect:
        return DIALECTS[self.uri.scheme]

    @property
    def _placeholder(self) -> str:
        return self._dialect.placeholder

    def _query(self, connection, sql: str, params: Sequence = ()) -> list[tuple]:
        sql = sql.replace("?", self._placeholder)
        return connection.execute(sql, tuple(params)).fetchall()

    def _query_in(self, connection, sql: str, values: Sequence, params: Sequence = ()) -> list[tuple]:
        """Run ``sql`` whose ``{in}`` stands for a list of ``values``, in bounded chunks."""
        rows: list[tuple] = []
        for part in chunk(list(values), _IN_LIST):
            marks = ", ".join("?" * len(part))
            rows.extend(self._query(connection, sql.format(**{"in": marks}), [*params, *part]))
        return rows

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
        if selection.table == tables.EXPERIMENTS:
            return [Partition(0, selection, selection.experiment_ids)]
        with self._connect() as connection:
            run_ids = self._selected_run_ids(connection, selection)
            if selection.table != tables.METRICS:
                return _per_run_partitions(selection, run_ids)
            if selection.metric_ranges is not None:
                return self._plan_metric_ranges(connection, selection, run_ids)
            counts = self._query_in(
                connection,
                "SELECT run_uuid, key, COUNT(*) FROM metrics WHERE run_uuid IN ({in}) "
                f"GROUP BY run_uuid, {self._dialect.group_key}",
                run_ids,
            )
        return pack_partitions(
            selection, metric_units(selection, counts, DEFAULT_POINTS_PER_PARTITION), DEFAULT_POINTS_PER_PARTITION
        )

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
        return pack_partitions(selection, units, DEFAULT_POINTS_PER_PARTITION)

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
        )

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

    def run_fingerprints(self, selection: Selection) -> dict[str, tuple[str, str]]:
        """A digest of each run's ``runs`` row, params, tags, dataset inputs and their tags."""
        import hashlib

        with self._connect() as connection:
            run_ids = self._selected_run_ids(connection, selection)
            content: dict[str, list] = defaultdict(list)
            experiment_of = {}
            for row in self._query_in(connection, "SELECT run_uuid, runs.* FROM runs WHERE run_uuid IN ({in})", run_ids):
                content[row[0]].append(("run", row))
            for run_id, experiment_id in self._query_in(
                connection, "SELECT run_uuid, experiment_id FROM runs WHERE run_uuid IN ({in})", run_ids
            ):
                experiment_of[run_id] = str(experiment_id)
            for table in ("params", "tags"):
                for run_id, key, value in self._query_in(
                    connection, f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({{in}})", run_ids
                ):
                    content[run_id].append((table, key, value))
            for row in self._query_in(
                connection,
                "SELECT i.destination_id, i.input_uuid, i.source_type, i.source_id, t.name, t.value "
                "FROM inputs i LEFT JOIN input_tags t ON t.input_uuid = i.input_uuid "
                "WHERE i.destination_type = 'RUN' AND i.destination_id IN ({in})",
                run_ids,
            ):
                content[row[0]].append(("input", row[1:]))
        found = {}
        for run_id in run_ids:
            digests = {part: hashlib.sha1() for part in ("run", "params", "tags", "inputs")}
            for item in sorted(content[run_id], key=repr):
                digest = digests["inputs" if item[0] == "input" else item[0]]
                digest.update(repr(item).encode("utf-8", "surrogatepass"))
                digest.update(b"\n")
            found[run_id] = (experiment_of[run_id], fingerprint({p: d.hexdigest() for p, d in digests.items()}))
        return found

    def _selected_run_ids(self, connection, selection: Selection) -> list[str]:
        conditions = ["lifecycle_stage IN ({in})".format(**{"in": ", ".join("?" * len(lifecycle_stages(selection.view_type)))})]
        params: list = list(lifecycle_stages(selection.view_type))
        if selection.min_start_time_ms is not None:
            conditions.append("start_time >= ?")
            params.append(selection.min_start_time_ms)
        run_ids: list[str] = []
        for part in chunk(list(selection.experiment_ids), _IN_LIST):
            sql = (
                "SELECT run_uuid FROM runs WHERE experiment_id IN ({}) AND {}".format(
                    ", ".join("?" * len(part)), " AND ".join(conditions)
                )
            )
            run_ids.extend(
                r[0] for r in self._query(connection, sql, [*(int(e) for e in part), *params])
            )
        if selection.run_ids is not None:
            wanted = set(selection.run_ids)
            run_ids = [r for r in run_ids if r in wanted]
        return sorted(run_ids)

    # -- reading (executor) ------------------------------------------------------------------

    def read(self, partition: Partition) -> Iterator[pa.RecordBatch]:
        table = partition.selection.table
        if table in tables.MODEL_TABLE_NAMES:
            yield from self._read_model_tables(partition)
            return
        with self._connect() as connection:
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

    def _read_experiments(self, connection, experiment_ids) -> Iterator[pa.RecordBatch]:
        ids = [int(e) for e in experiment_ids]
        rows = self._query_in(
            connection,
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, "
            "last_update_time FROM experiments WHERE experiment_id IN ({in}) ORDER BY experiment_id",
            ids,
        )
        tags = defaultdict(list)
        for experiment_id, key, value in self._query_in(
            connection,
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ({in})",
            ids,
        ):
            tags[experiment_id].append((key, value))
        yield from batches_from_columns(
            tables.EXPERIMENTS,
            {
                "experiment_id": [str(r[0]) for r in rows],
                "name": [r[1] for r in rows],
                "artifact_location": [r[2] for r in rows],
                "lifecycle_stage": [r[3] for r in rows],
                "creation_time": [ms_to_us(r[4]) for r in rows],
                "last_update_time": [ms_to_us(r[5]) for r in rows],
                "tags": [sorted(tags[r[0]]) for r in rows],
            },
        )

    def _read_runs(self, connection, run_ids) -> Iterator[pa.RecordBatch]:
        rows = self._query_in(
            connection,
            "SELECT run_uuid, experiment_id, start_time, end_time, status, artifact_uri, name, "
            "user_id, lifecycle_stage FROM runs WHERE run_uuid IN ({in})",
            run_ids,
        )
        metrics = defaultdict(list)
        for run_id, key, value, is_nan in self._query_in(
            connection,
            "SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({in})",
            run_ids,
        ):
            metrics[run_id].append((key, math.nan if is_nan else float(value)))
        params = self._key_values(connection, "params", run_ids)
        tags = self._key_values(connection, "tags", run_ids)
        rows.sort(key=lambda r: r[0])
        yield from batches_from_columns(
            tables.RUNS,
            {
                "run_id": [r[0] for r in rows],
                "experiment_id": [str(r[1]) for r in rows],
                "metrics": [sorted(metrics[r[0]]) for r in rows],
                "params": [sorted(params[r[0]]) for r in rows],
                "tags": [sorted(tags[r[0]]) for r in rows],
                "start_time": [ms_to_us(r[2]) for r in rows],
                "end_time": [ms_to_us(r[3]) for r in rows],
                "status": [r[4] for r in rows],
                "artifact_uri": [r[5] for r in rows],
                "run_name": [r[6] for r in rows],
                "user_id": [r[7] for r in rows],
                "lifecycle_stage": [r[8] for r in rows],
            },
        )

    def _key_values(self, connection, table: str, run_ids) -> dict[str, list[tuple[str, str]]]:
        result = defaultdict(list)
        for run_id, key, value in self._query_in(
            connection, f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({{in}})", run_ids
        ):
            result[run_id].append((key, value))
        return result

    def _experiment_of(self, connection, run_ids) -> dict[str, str]:
        return {
            run_id: str(experiment_id)
            for run_id, experiment_id in self._query_in(
                connection, "SELECT run_uuid, experiment_id FROM runs WHERE run_uuid IN ({in})", run_ids
            )
        }

    def _read_key_values(self, connection, table: str, run_ids) -> Iterator[pa.RecordBatch]:
        experiment_of = self._experiment_of(connection, run_ids)
        rows = sorted(
            self._query_in(
                connection, f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({{in}})", run_ids
            )
        )
        yield from batches_from_columns(
            table,
            {
                "experiment_id": [experiment_of[r[0]] for r in rows],
                "run_id": [r[0] for r in rows],
                "key": [r[1] for r in rows],
                "value": [r[2] for r in rows],
            },
        )

    def _read_metric_ranges(self, connection, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Points of each (run, key) between two positions (rowids on SQLite; elsewhere a
        position is a count, so the whole history of the series is read)."""
        ranges = {(run_id, key): (after, upto) for run_id, key, after, upto in partition.work}
        run_ids = sorted({run_id for run_id, _ in ranges})
        experiment_of = self._experiment_of(connection, run_ids)
        exact = self.capabilities.exact_metric_ranges
        for runs in chunk(run_ids, _IN_LIST - 1):
            members = set(runs)
            # Exact positions are rowids: skip what every range of this chunk has already read.
            lowest = min(after for (run_id, _), (after, _) in ranges.items() if run_id in members) if exact else None
            sql = (
                f"SELECT {'rowid' if exact else '0'}, run_uuid, key, value, is_nan, step, timestamp FROM metrics "
                f"WHERE {'rowid > ? AND ' if exact else ''}run_uuid IN ({', '.join('?' * len(runs))})"
            )
            cursor = connection.execute(sql.replace("?", self._placeholder), (*([lowest] if exact else []), *runs))
            while True:
                rows = cursor.fetchmany(BATCH_ROWS)
                if not rows:
                    break
                get = ranges.get
                if exact:
                    kept = [row[1:] for row in rows if (b := get((row[1], row[2]))) is not None and b[0] < row[0] <= b[1]]
                else:
                    kept = [row[1:] for row in rows if (row[1], row[2]) in ranges]
                if kept:
                    yield from _metric_batches(experiment_of, kept)

    def _read_metrics(self, connection, partition: Partition) -> Iterator[pa.RecordBatch]:
        arrow = None
        if self._dialect.arrow_points:
            from .mysql import arrow_reader

            arrow = arrow_reader(self.uri.location)
        if arrow is not None:
            yield from self._read_metrics_arrow(arrow, partition)
            return
        if partition.selection.metric_ranges is not None:
            yield from self._read_metric_ranges(connection, partition)
            return
        whole_runs = [run_id for run_id, key in partition.work if key is None]
        single_keys = [(run_id, key) for run_id, key in partition.work if key is not None]
        experiment_of = self._experiment_of(connection, whole_runs + [run_id for run_id, _ in single_keys])
        columns = "SELECT run_uuid, key, value, is_nan, step, timestamp FROM metrics WHERE "
        metric_keys = partition.selection.metric_keys
        # On SQLite, "+key" keeps the planner on the (run_uuid, key, step) index instead of
        # scanning the primary key's index on key over the whole store.
        key_filter = "" if metric_keys is None else "{} IN ({}) AND ".format(
            self._dialect.key_hint, ", ".join("?" * len(metric_keys))
        )
        # Where the database compares keys loosely (case, trailing spaces), keep exact matches only.
        exact = self._dialect.exact_key_match
        wanted_keys = None if exact or metric_keys is None else frozenset(metric_keys)
        for runs in chunk(whole_runs, _IN_LIST - len(metric_keys or ())):
            cursor = connection.execute(
                (columns + key_filter + "run_uuid IN ({})".format(", ".join("?" * len(runs)))).replace("?", self._placeholder),
                (*(metric_keys or ()), *runs),
            )
            yield from _fetch_metric_batches(cursor, experiment_of, wanted_keys)
        for run_id, key in single_keys:
            cursor = connection.execute(
                (columns + "run_uuid = ? AND key = ?").replace("?", self._placeholder), (run_id, key)
            )
            yield from _fetch_metric_batches(cursor, experiment_of, None if exact else frozenset((key,)))

    def _read_metrics_arrow(self, arrow, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Metric points as Arrow tables from ``arrow(sql)`` (a driver without bind parameters:
        the SQL carries literals). Each query joins ``runs`` for the experiment id, so it reads
        one consistent view by itself. Positions here are counts, so a range is its whole series."""
        from .mysql import sql_literal

        selection = partition.selection
        head = ("SELECT m.run_uuid, r.experiment_id, m.key, m.value, m.is_nan, m.step, m.timestamp "
                "FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid WHERE ")
        if selection.metric_ranges is not None:
            whole, single = [], sorted({(run_id, key) for run_id, key, _, _ in partition.work})
        else:
            whole = [run_id for run_id, key in partition.work if key is None]
            single = [(run_id, key) for run_id, key in partition.work if key is not None]
        # MySQL compares a column with a hex literal in the column's collation: compare bytes.
        key_filter = "" if selection.metric_keys is None else "CAST(m.key AS BINARY) IN ({}) AND ".format(
            ", ".join(sql_literal(key) for key in selection.metric_keys)
        )
        for runs in chunk(whole, _IN_LIST):
            in_runs = ", ".join(sql_literal(run_id, plain_id=True) for run_id in runs)
            yield from _arrow_metric_batches(arrow(f"{head}{key_filter}m.run_uuid IN ({in_runs})"))
        for part in chunk(single, _IN_LIST):
            series = " OR ".join(
                f"(m.run_uuid = {sql_literal(run_id, plain_id=True)} AND CAST(m.key AS BINARY) = {sql_literal(key)})"
                for run_id, key in part
            )
            yield from _arrow_metric_batches(arrow(head + series))

    def _read_inputs(self, connection, run_ids) -> Iterator[pa.RecordBatch]:
        experiment_of = self._experiment_of(connection, run_ids)
        rows = self._query_in(
            connection,
            "SELECT i.destination_id, i.input_uuid, d.name, d.digest, d.dataset_source_type, "
            "d.dataset_source, d.dataset_schema, d.dataset_profile "
            "FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id "
            "WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' "
            "AND i.destination_id IN ({in})",
            run_ids,
        )
        input_tags = defaultdict(list)
        for input_id, name, value in self._query_in(
            connection,
            "SELECT input_uuid, name, value FROM input_tags WHERE input_uuid IN ({in})",
            [r[1] for r in rows],
        ):
            input_tags[input_id].append((name, value))
        rows.sort(key=lambda r: (r[0], r[2] or "", r[3] or "", r[1]))
        yield from batches_from_columns(
            tables.INPUTS,
            {
                "experiment_id": [experiment_of[r[0]] for r in rows],
                "run_id": [r[0] for r in rows],
                "dataset_name": [r[2] for r in rows],
                "dataset_digest": [r[3] for r in rows],
                "dataset_source_type": [r[4] for r in rows],
                "dataset_source": [r[5] for r in rows],
                "dataset_schema": [r[6] for r in rows],
                "dataset_profile": [r[7] for r in rows],
                "context": [dict(input_tags[r[1]]).get("mlflow.data.context") for r in rows],
                "tags": [sorted(input_tags[r[1]]) for r in rows],
            },
        )

    # -- artifacts, logged models, model registry (issue 12) ---------------------------------

    def _plan_model_tables(self, selection: Selection) -> list[Partition]:
        if selection.table != tables.ARTIFACTS:
            # Small tables: one partition (the registry is store-wide, models per experiment).
            return [Partition(0, selection, selection.experiment_ids)]
        from .artifacts import plan_artifacts

        with self._connect() as connection:
            run_ids = self._selected_run_ids(connection, selection)
            runs = self._query_in(
                connection, "SELECT experiment_id, run_uuid, artifact_uri FROM runs WHERE run_uuid IN ({in})", run_ids
            )
        return plan_artifacts(selection, [(str(e), r, uri) for e, r, uri in runs])

    def _read_model_tables(self, partition: Partition) -> Iterator[pa.RecordBatch]:
        table = partition.selection.table
        if table == tables.ARTIFACTS:
            from .artifacts import read_artifacts

            yield from read_artifacts(partition)
            return
        with self._connect() as connection:
            if table == tables.MODELS:
                yield from self._read_logged_models(connection, partition.selection)
            elif table == tables.REGISTERED_MODELS:
                yield from self._read_registered_models(connection)
            elif table == tables.MODEL_VERSIONS:
                yield from self._read_model_versions(connection, partition.selection)

    def _has_table(self, connection, table: str, column: str) -> bool:
        try:
            self._query(connection, f"SELECT {column} FROM {table} WHERE 1 = 0")
            return True
        except Exception:
            return False

    def _read_logged_models(self, connection, selection: Selection) -> Iterator[pa.RecordBatch]:
        from .models import logged_model_status, model_batches

        if not self._has_table(connection, "logged_models", "model_id"):
            return  # a store written before MLflow 3 holds no logged models
        stages = lifecycle_stages(selection.view_type)
        rows = self._query_in(
            connection,
            "SELECT model_id, experiment_id, name, source_run_id, status, model_type, artifact_location, "
            "creation_timestamp_ms, last_updated_timestamp_ms, COALESCE(lifecycle_stage, 'active') "
            "FROM logged_models WHERE experiment_id IN ({in})",
            [int(e) for e in selection.experiment_ids],
        )
        wanted_runs = None if selection.run_ids is None else set(selection.run_ids)
        rows = [r for r in rows if r[9] in stages and (wanted_runs is None or r[3] in wanted_runs)]
        model_ids = [r[0] for r in rows]
        params, tags, metrics = defaultdict(dict), defaultdict(dict), defaultdict(list)
        for model_id, key, value in self._query_in(
            connection, "SELECT model_id, param_key, param_value FROM logged_model_params WHERE model_id IN ({in})", model_ids
        ):
            params[model_id][key] = value
        for model_id, key, value in self._query_in(
            connection, "SELECT model_id, tag_key, tag_value FROM logged_model_tags WHERE model_id IN ({in})", model_ids
        ):
            tags[model_id][key] = value
        for model_id, key, value, step, timestamp, run_id, dataset_name, dataset_digest in self._query_in(
            connection,
            "SELECT model_id, metric_name, metric_value, metric_step, metric_timestamp_ms, run_id, dataset_name, "
            "dataset_digest FROM logged_model_metrics WHERE model_id IN ({in})",
            model_ids,
        ):
            metrics[model_id].append({
                "key": key, "value": None if value is None else float(value), "step": int(step), "timestamp": timestamp,
                "run_id": run_id, "dataset_name": dataset_name, "dataset_digest": dataset_digest,
            })
        yield from model_batches([
            {
                "model_id": r[0], "experiment_id": str(r[1]), "name": r[2], "source_run_id": r[3],
                "status": logged_model_status(r[4]), "model_type": r[5], "artifact_location": r[6],
                "creation_time": r[7], "last_updated_time": r[8], "lifecycle_stage": r[9],
                "params": params[r[0]], "tags": tags[r[0]], "metrics": metrics[r[0]],
            }
            for r in rows
        ])

    def _registry_scope(self, connection, table: str) -> str:
        # MLflow 3.17 keeps the registry per workspace; a single-tenant server uses 'default'.
        return " WHERE workspace = 'default'" if self._has_table(connection, table, "workspace") else ""

    def _read_registered_models(self, connection) -> Iterator[pa.RecordBatch]:
        from .models import registered_model_batches

        rows = self._query(
            connection,
            "SELECT name, description, creation_time, last_updated_time FROM registered_models"
            + self._registry_scope(connection, "registered_models"),
        )
        tags, aliases = defaultdict(dict), defaultdict(dict)
        for name, key, value in self._query(
            connection, "SELECT name, key, value FROM registered_model_tags" + self._registry_scope(connection, "registered_model_tags")
        ):
            tags[name][key] = value
        for name, alias, version in self._query(
            connection,
            "SELECT name, alias, version FROM registered_model_aliases" + self._registry_scope(connection, "registered_model_aliases"),
        ):
            aliases[name][alias] = str(version)
        yield from registered_model_batches([
            {"name": n, "description": d, "creation_time": c, "last_updated_time": u, "tags": tags[n], "aliases": aliases[n]}
            for n, d, c, u in rows
        ])

    def _read_model_versions(self, connection, selection: Selection) -> Iterator[pa.RecordBatch]:
        from .models import model_id_from_source, model_version_batches, version_admitted

        rows = self._query(
            connection,
            "SELECT name, version, source, run_id, status, current_stage, description, creation_time, "
            "last_updated_time FROM model_versions" + self._registry_scope(connection, "model_versions"),
        )
        rows = [
            r for r in rows
            if version_admitted(r[5], selection.view_type) and (selection.run_ids is None or r[3] in selection.run_ids)
        ]
        tags, aliases = defaultdict(dict), defaultdict(list)
        for name, version, key, value in self._query(
            connection,
            "SELECT name, version, key, value FROM model_version_tags" + self._registry_scope(connection, "model_version_tags"),
        ):
            tags[(name, int(version))][key] = value
        for name, alias, version in self._query(
            connection,
            "SELECT name, alias, version FROM registered_model_aliases" + self._registry_scope(connection, "registered_model_aliases"),
        ):
            aliases[(name, int(version))].append(alias)
        # MLflow's SQL registry stores no model id (search_model_versions answers None): a version
        # registered from a logged model names it in its source, models:/<model_id>.
        yield from model_version_batches([
            {
                "name": r[0], "version": r[1], "source": r[2], "run_id": r[3], "model_id": model_id_from_source(r[2]),
                "status": r[4], "current_stage": r[5], "description": r[6], "creation_time": r[7],
                "last_updated_time": r[8], "tags": tags[(r[0], int(r[1]))], "aliases": aliases[(r[0], int(r[1]))],
            }
            for r in rows
        ])


def _fetch_metric_batches(cursor, experiment_of: dict[str, str], keys: frozenset | None = None) -> Iterator[pa.RecordBatch]:
    """Metric batches from ``cursor``'s rows; with ``keys``, only rows whose key is one of them."""
    while True:
        rows = cursor.fetchmany(BATCH_ROWS)
        if not rows:
            return
        if keys is not None:
            rows = [row for row in rows if row[1] in keys]
            if not rows:
                continue
        yield from _metric_batches(experiment_of, rows)


def _metric_batches(experiment_of: dict[str, str], rows: list[tuple]) -> Iterator[pa.RecordBatch]:
    """Rows of (run_uuid, key, value, is_nan, step, timestamp ms) as one metrics batch."""
    import pyarrow.compute as pc

    run_ids, keys, values, is_nans, steps, timestamps = zip(*rows)
    schema = tables.arrow_schema(tables.METRICS)
    run_array = pa.array(run_ids, type=pa.string())
    distinct_runs = pc.unique(run_array)
    experiments = pa.array([experiment_of[r] for r in distinct_runs.to_pylist()], type=pa.string())
    value_array = pa.array(values, type=pa.float64())
    nan_mask = pa.array(is_nans).cast(pa.bool_())
    if pc.any(nan_mask).as_py():
        value_array = pc.if_else(nan_mask, math.nan, value_array)
    arrays = [
        experiments.take(pc.index_in(run_array, value_set=distinct_runs)),
        run_array,
        pa.array(keys, type=pa.string()),
        value_array,
        pa.array(steps, type=pa.int64()),
        pa.array(timestamps, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC")).cast(schema.field("timestamp").type),
    ]
    yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _arrow_metric_batches(table: pa.Table) -> Iterator[pa.RecordBatch]:
    """An Arrow table of (run_uuid, experiment_id, key, value, is_nan, step, timestamp ms) as
    metrics batches, MLflow's encodings applied as Arrow compute."""
    import pyarrow.compute as pc

    schema = tables.arrow_schema(tables.METRICS)
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        if not batch.num_rows:
            continue
        run_ids, experiment_ids, keys, values, is_nans, steps, timestamps = batch.columns
        values = values.cast(pa.float64())
        nan_mask = is_nans.cast(pa.bool_())
        if pc.any(nan_mask).as_py():
            values = pc.if_else(nan_mask, math.nan, values)
        arrays = [
            experiment_ids.cast(pa.string()),
            run_ids.cast(pa.string()),
            keys.cast(pa.string()),
            values,
            steps.cast(pa.int64()),
            timestamps.cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC")).cast(schema.field("timestamp").type),
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _per_run_partitions(selection: Selection, run_ids: list[str]) -> list[Partition]:
    total = len(run_ids)
    size = selection.rows_per_partition or DEFAULT_RUNS_PER_PARTITION
    if selection.num_partitions:
        size = max(1, math.ceil(total / selection.num_partitions))
    return [Partition(i, selection, tuple(part)) for i, part in enumerate(chunk(run_ids, size))]
