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
:data:`DIALECTS`. The queries use MLflow's schema: ``experiments``, ``experiment_tags``,
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
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
    chunk,
    default_partition_points,
    digests_by_run,
    fingerprint,
    lifecycle_stages,
    metric_units,
    pack_partitions,
)

# Runs per partition for the per-run tables (metric points: base.default_partition_points).
# Measured at L (20,000 runs, 2 cores): below this, each task's fixed cost dominates.
DEFAULT_RUNS_PER_PARTITION = 10_000
# Bound on bound parameters per statement (SQLite allows 32,766).
_IN_LIST = 900
# Values per IN list given as one JSON array (Dialect.json_list).
_JSON_LIST = 20_000
# How long a read waits for a SQLite lock held by a writer before it reports the lock.
SQLITE_TIMEOUT_S = 30.0
# ADBC SQLite infers each column's Arrow type from the values of a result's first batch.
_SQLITE_BATCH_ROWS = "adbc.sqlite.query.batch_rows"
# Row queries (planning, small tables) are read as one batch, so every value takes part.
_WHOLE_RESULT_ROWS = 1 << 30


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases MLflow stores its runs in.

    - ``placeholder``: the DB-API driver's bind-parameter mark (the SQL is written with ``?``;
      ADBC connections translate it themselves).
    - ``rowid``: rows carry an id in commit order (SQLite's ``rowid``), so a metric position
      is exact; elsewhere a position is a point count.
    - ``key_hint``: how to write a metric's ``key`` (table alias ``m``) in a key filter (SQLite:
      ``+m.key`` keeps the planner on the run's index; MySQL: compare bytes, since its default
      collations ignore case and trailing spaces).
    - ``exact_key_match``: ``=`` / ``IN`` on a plain ``key`` compare exactly (not on MySQL).
    - ``group_key``: how to group by ``key`` so that keys differing in case or trailing spaces
      stay apart (MySQL: ``BINARY key``).
    - ``arrow_points``: metric points may come from a second, Arrow-native driver without bind
      parameters (MySQL: connectorx, see :mod:`.mysql`); elsewhere the connection's own driver
      is Arrow-native (ADBC).
    - ``missing_table``: text of the driver's error for a table that does not exist.
    - ``json_list``: a subquery expanding one parameter holding a JSON array of strings, used
      for ``IN`` lists through ADBC (whose Python layer converts bound values one by one).

    Example::

        >>> DIALECTS["mysql"].placeholder, DIALECTS["mysql"].rowid, DIALECTS["sqlite"].key_hint
        ('%s', False, '+m.key')
    """

    placeholder: str
    rowid: bool = False
    key_hint: str = "m.key"
    exact_key_match: bool = True
    group_key: str = "key"
    arrow_points: bool = False
    missing_table: tuple[str, ...] = ("does not exist",)
    json_list: str | None = None


DIALECTS = {
    "sqlite": Dialect("?", rowid=True, key_hint="+m.key", missing_table=("no such table",),
                      json_list="SELECT value FROM json_each(?)"),
    "postgresql": Dialect("%s", json_list="SELECT jsonb_array_elements_text(CAST(? AS jsonb))"),
    "mysql": Dialect("%s", key_hint="CAST(m.key AS BINARY)", exact_key_match=False, group_key="BINARY key",
                     arrow_points=True, missing_table=("doesn't exist",)),
}


def numbered_placeholders(sql: str) -> str:
    """``sql`` with each ``?`` turned into PostgreSQL's numbered ``$1``, ``$2``, ...

    Example::

        >>> numbered_placeholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)")
        'SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)'
    """
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


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


def libpq_uri(params: dict[str, str]) -> str:
    """A libpq URI holding every connection parameter percent-encoded in its query, so that no
    character of a password can break its parse (ADBC PostgreSQL takes a URI).

    Example::

        >>> libpq_uri({"host": "db", "user": "bob", "password": "a b&c"})
        'postgresql://?host=db&user=bob&password=a%20b%26c'
    """
    return "postgresql://?" + "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params.items())


# A first row whose literals fix each column's type for ADBC SQLite's inference.
_SENTINELS = {pa.string(): "''", pa.float64(): "0.0", pa.int64(): "0", pa.bool_(): "0"}


class AdbcConnection:
    """An ADBC connection (SQLite or PostgreSQL) in the shape the store uses.

    ``execute(sql, params)`` returns rows with ``fetchall()`` (small tables);
    :meth:`arrow_batches` streams a query's result as Arrow batches of declared column types.
    SQL marks parameters with ``?`` (numbered for PostgreSQL here). Autocommit: each query reads
    by itself, as the DB-API drivers do, holding no lock between queries.

    Example::

        >>> import adbc_driver_sqlite.dbapi
        >>> connection = AdbcConnection(adbc_driver_sqlite.dbapi.connect(":memory:", autocommit=True), sqlite=True)
        >>> connection.execute("SELECT ? + 1", (41,)).fetchall()
        [(42,)]
        >>> next(connection.arrow_batches("SELECT NULL UNION ALL SELECT 'x'", (), [("v", pa.string())])).column(0).to_pylist()
        [None, 'x']
        >>> connection.close()
    """

    def __init__(self, connection, sqlite: bool) -> None:
        self._connection = connection
        self._sqlite = sqlite

    def _sql(self, sql: str) -> str:
        return sql if self._sqlite else numbered_placeholders(sql)

    @contextmanager
    def _executed(self, sql: str, params: Sequence, sqlite_batch_rows: int):
        cursor = self._connection.cursor()
        try:
            if self._sqlite:
                cursor.adbc_statement.set_options(**{_SQLITE_BATCH_ROWS: str(sqlite_batch_rows)})
            cursor.execute(self._sql(sql), tuple(params) if params else None)
            yield cursor
        finally:
            cursor.close()

    def execute(self, sql: str, params: Sequence = ()) -> _Rows:
        return _Rows(self.table(sql, params))

    def table(self, sql: str, params: Sequence = ()) -> pa.Table:
        """The whole result of ``sql`` as one Arrow table (one batch: its types from every row)."""
        with self._executed(sql, params, _WHOLE_RESULT_ROWS) as cursor:
            return cursor.fetch_arrow_table()

    def arrow_batches(self, sql: str, params: Sequence, columns: Sequence[tuple[str, pa.DataType]]) -> Iterator[pa.RecordBatch]:
        """The result of ``sql`` as batches with ``columns`` (names and types, in order)."""
        if self._sqlite:
            # ADBC SQLite types a column from its first batch's values (NULLs alone give int64,
            # and a later string then fails): a first row of typed literals fixes every type.
            sentinel = ", ".join(_SENTINELS[kind] for _, kind in columns)
            sql = f"SELECT {sentinel} UNION ALL SELECT * FROM ({sql})"
        with self._executed(sql, params, BATCH_ROWS) as cursor:
            first = self._sqlite
            for batch in cursor.fetch_record_batch():
                if first:
                    batch, first = batch.slice(1), False
                if batch.num_rows:
                    yield typed_batch(batch.columns, columns)

    def close(self) -> None:
        self._connection.close()

    def __repr__(self) -> str:
        return f"AdbcConnection({'sqlite' if self._sqlite else 'postgresql'})"


class _Rows:
    """A fetched result as DB-API rows."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def fetchall(self) -> list[tuple]:
        return list(zip(*(column.to_pylist() for column in self._table.columns))) if self._table.num_columns else []


def typed_batch(arrays, columns: Sequence[tuple[str, pa.DataType]]) -> pa.RecordBatch:
    """A record batch of ``arrays`` cast to ``columns`` (names and types, in order).

    Example::

        >>> typed_batch([pa.array([1, None])], [("id", pa.string())]).to_pylist()
        [{'id': '1'}, {'id': None}]
    """
    return pa.RecordBatch.from_arrays(
        [array.cast(kind) for array, (_, kind) in zip(arrays, columns)], names=[name for name, _ in columns]
    )


def _driver_errors() -> tuple[type, ...]:
    """The exception classes of the Arrow-native drivers that are installed."""
    found: list[type] = []
    try:
        import adbc_driver_manager

        found.append(adbc_driver_manager.Error)
    except ImportError:
        pass
    return tuple(found)


def sqlite_change_token(path: str) -> str | None:
    """The SQLite database file's identity, size, modification time and change counter (the
    header's bytes 24 to 27, which SQLite increments at every commit in rollback-journal mode,
    MLflow's). ``None`` where the counter says nothing: a database in WAL mode (commits go to
    the ``-wal`` file), a counter the header marks as stale, or a file that is not SQLite 3's.

    Example::

        >>> sqlite_change_token("/tmp/mlflow.db")                              # doctest: +SKIP
        'sqlite:2049:1835:14102528:1764339000123456789:292'
    """
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            header = handle.read(100)
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00") or header[18] != 1 or header[19] != 1:
        return None
    counter, valid_for = int.from_bytes(header[24:28], "big"), int.from_bytes(header[92:96], "big")
    if counter != valid_for:
        return None
    return f"sqlite:{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{counter}"


class SqlStore(Store):
    """Reads an MLflow SQL store."""

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connect(self, reading: bool = False):
        """A connection to the store, its schema checked. ``reading``: for an executor's read
        (ADBC; planning uses the DB-API drivers, see the module's notes). An ADBC error while
        the block runs becomes a :class:`StoreConnectionError` naming the store."""
        # On an executor the URI arrives pickled: make its credentials known to redact() here too.
        remember_secrets(self.uri.location)
        if self.uri.scheme == "sqlite":
            connection = self._connect_sqlite_adbc() if reading else self._connect_sqlite()
        elif self.uri.scheme == "postgresql":
            connection = self._connect_postgresql_adbc() if reading else self._connect_postgresql()
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
        except _driver_errors() as error:
            raise self._read_error(error) from None
        finally:
            connection.close()

    def _read_error(self, error) -> StoreConnectionError:
        if self.uri.scheme == "sqlite":
            return self._sqlite_error(error)
        return StoreConnectionError(f"reading {self.uri.display}: {self._redacted(error)}")

    def _redacted(self, error) -> str:
        text = redact(str(error)).strip()
        password = postgres_parameters(self.uri.location).get("password") if self.uri.scheme == "postgresql" else None
        for form in {password, quote(password or "", safe=""), quote(password or "")} - {None, ""}:
            text = text.replace(form, "***")
        return text

    @property
    def _sqlite_path(self) -> str:
        # the location holds the path as given (already percent-decoded once by uri.py)
        return self.uri.location.split("://", 1)[1].split("?", 1)[0][1:]

    def _sqlite_uri(self) -> str:
        path = self._sqlite_path
        if not os.path.isfile(path):
            raise StoreNotFoundError(f"tracking URI {self.uri.display!r}: no SQLite database at {path!r}")
        # Read-only, so a reader can never create or change a store.
        return f"file:{quote(path)}?mode=ro"

    def _connect_sqlite(self):
        import sqlite3

        uri = self._sqlite_uri()
        try:
            return sqlite3.connect(uri, uri=True, timeout=SQLITE_TIMEOUT_S)
        except sqlite3.Error as error:
            raise self._sqlite_error(error) from None

    def _connect_sqlite_adbc(self) -> AdbcConnection:
        try:
            import adbc_driver_sqlite.dbapi
        except ImportError as error:
            raise MissingDependencyError(
                "reading a SQLite store needs adbc-driver-sqlite: pip install adbc-driver-sqlite"
            ) from error
        uri = self._sqlite_uri()
        try:
            connection = AdbcConnection(adbc_driver_sqlite.dbapi.connect(uri, autocommit=True), sqlite=True)
        except _driver_errors() as error:
            raise self._sqlite_error(error) from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(SQLITE_TIMEOUT_S * 1000)}")
        except _driver_errors() as error:
            connection.close()
            raise self._sqlite_error(error) from None
        return connection

    def _sqlite_error(self, error) -> StoreConnectionError:
        path = self._sqlite_path
        text = str(error)
        if "locked" in text:
            what = (f"is locked: another process has held a lock on it for longer than "
                    f"{SQLITE_TIMEOUT_S:g} s (a writer in a long transaction?); retry when it is released")
        elif "not a database" in text:
            what = "is not a SQLite database (file is not a database)"
        elif "unable to open" in text or "failed to open" in text:
            readable = os.access(path, os.R_OK)
            folder_writable = os.access(os.path.dirname(path) or ".", os.W_OK)
            what = (f"cannot be opened (unable to open database file; file readable: {readable}, "
                    f"folder writable for SQLite's -shm/-wal files: {folder_writable})")
        else:
            what = f"cannot be read ({text.strip()})"
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
            return psycopg.connect(**postgres_parameters(self.uri.location), autocommit=True)
        except Exception as error:
            raise StoreConnectionError(f"cannot connect to {self.uri.display}: {self._redacted(error)}") from None

    def _connect_postgresql_adbc(self) -> AdbcConnection:
        try:
            import adbc_driver_postgresql.dbapi
        except ImportError as error:
            raise MissingDependencyError(
                "reading a PostgreSQL store needs adbc-driver-postgresql: pip install 'pyspark-experiments[postgres]'"
            ) from error
        # Every parameter percent-encoded in the URI's query: a password with spaces, quotes,
        # '@' or '&' can neither break the parse nor be echoed by libpq's parse errors.
        try:
            connection = adbc_driver_postgresql.dbapi.connect(
                libpq_uri(postgres_parameters(self.uri.location)), autocommit=True
            )
        except Exception as error:
            raise StoreConnectionError(f"cannot connect to {self.uri.display}: {self._redacted(error)}") from None
        return AdbcConnection(connection, sqlite=False)

    def _check_schema(self, connection) -> None:
        try:
            connection.execute("SELECT run_uuid FROM runs WHERE 1 = 0").fetchall()
        except Exception as error:
            text = str(error)
            if self.uri.scheme == "sqlite" and "no such table" not in text:
                raise self._sqlite_error(error) from None
            if self.uri.scheme != "sqlite" and not any(t in text for t in self._dialect.missing_table):
                raise StoreConnectionError(
                    f"tracking URI {self.uri.display!r}: cannot check MLflow's schema: {self._redacted(error)}"
                ) from None
            raise StoreNotFoundError(
                f"tracking URI {self.uri.display!r} holds no MLflow tracking store "
                f"(expected MLflow's 'runs' table)"
            ) from None

    @property
    def _dialect(self) -> Dialect:
        return DIALECTS[self.uri.scheme]

    def _sql(self, connection, sql: str) -> str:
        """``sql`` written with ``?`` marks, in the DB-API driver's parameter style (ADBC
        connections take ``?``)."""
        return sql if isinstance(connection, AdbcConnection) else sql.replace("?", self._dialect.placeholder)

    def _query(self, connection, sql: str, params: Sequence = ()) -> list[tuple]:
        return connection.execute(self._sql(connection, sql), tuple(params)).fetchall()

    def _in(self, connection, values: Sequence) -> tuple[str, list]:
        """What stands in ``IN (...)`` for ``values``, and its parameters: through ADBC, where
        the dialect expands one, a JSON array in a single parameter; else a mark per value."""
        expand = self._dialect.json_list
        if expand and isinstance(connection, AdbcConnection) and all(isinstance(v, str) for v in values):
            return expand, [json.dumps(list(values))]
        return ", ".join("?" * len(values)), list(values)

    def _chunks(self, connection, values: Sequence, reserved: int = 0) -> list[Sequence]:
        """``values`` in chunks that fit one statement's ``IN`` list (``reserved``: other parameters)."""
        json_list = self._dialect.json_list and isinstance(connection, AdbcConnection)
        return chunk(list(values), _JSON_LIST if json_list else _IN_LIST - reserved)

    def _in_chunks(self, connection, sql: str, values: Sequence, params: Sequence = ()) -> Iterator[tuple[str, list]]:
        """``(sql, parameters)`` for each bounded chunk of ``values``, which ``sql``'s ``{in}``
        stands for (after ``params``)."""
        for part in self._chunks(connection, values, len(params)):
            marks, values_params = self._in(connection, part)
            yield sql.format(**{"in": marks}), [*params, *values_params]

    def _query_in(self, connection, sql: str, values: Sequence, params: Sequence = ()) -> list[tuple]:
        """Run ``sql`` whose ``{in}`` stands for a list of ``values``, in bounded chunks."""
        return [row for query, chunk_params in self._in_chunks(connection, sql, values, params)
                for row in self._query(connection, query, chunk_params)]

    def _arrow(self, connection, sql: str, params: Sequence, columns) -> Iterator[pa.RecordBatch]:
        """The result of ``sql`` (``?`` marks) as batches of ``columns`` (names and types)."""
        sql = self._sql(connection, sql)
        if isinstance(connection, AdbcConnection):
            yield from connection.arrow_batches(sql, params, columns)
            return
        # A DB-API connection (PyMySQL): rows into columns.
        cursor = connection.execute(sql, tuple(params))
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield typed_batch([pa.array(values) for values in zip(*rows)], columns)

    def _arrow_in(self, connection, sql: str, values: Sequence, columns, params: Sequence = ()) -> pa.Table:
        """:meth:`_arrow` of ``sql`` whose ``{in}`` stands for ``values``, in bounded chunks, as one table."""
        batches = [batch for query, chunk_params in self._in_chunks(connection, sql, values, params)
                   for batch in self._arrow(connection, query, chunk_params, columns)]
        return pa.Table.from_batches(batches, schema=pa.schema(columns))

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
        computed with Arrow (:func:`~.base.digests_by_run`)."""
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
            if len(named) + len(params) <= _IN_LIST:
                # A few runs named (an incremental sync's reads): looked up by their primary
                # key, not by scanning every run of the experiments.
                return self._arrow_in(connection, sql + " AND run_uuid IN ({in})", sorted(set(named)), _RUN_COLUMNS, params)
        runs = pa.Table.from_batches(
            [batch for part in chunk(list(selection.experiment_ids), _IN_LIST)
             for batch in self._arrow(connection, *self._selected_runs_query(selection, part), _RUN_COLUMNS)],
            schema=pa.schema(_RUN_COLUMNS),
        )
        if named is not None:
            runs = runs.filter(pc.is_in(runs.column(0), value_set=pa.array(selection.run_ids, _STR)))
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

    def _read_experiments(self, connection, experiment_ids) -> Iterator[pa.RecordBatch]:
        ids = [int(e) for e in experiment_ids]
        rows = self._arrow_in(
            connection,
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, "
            "last_update_time FROM experiments WHERE experiment_id IN ({in})",
            ids,
            [("experiment_id", _INT), ("name", _STR), ("artifact_location", _STR), ("lifecycle_stage", _STR),
             ("creation_time", _INT), ("last_update_time", _INT)],
        ).sort_by("experiment_id")
        tags = self._arrow_in(
            connection, "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ({in})", ids,
            [("experiment_id", _INT), ("key", _STR), ("value", _STR)],
        )
        schema = tables.arrow_schema(tables.EXPERIMENTS)
        yield from _table_batches(schema, [
            rows["experiment_id"].cast(_STR), rows["name"], rows["artifact_location"], rows["lifecycle_stage"],
            ms_timestamps(rows["creation_time"]), ms_timestamps(rows["last_update_time"]),
            map_column(rows["experiment_id"], tags["experiment_id"], tags["key"], tags["value"], schema.field("tags").type),
        ])

    def _read_runs(self, connection, run_ids) -> Iterator[pa.RecordBatch]:
        runs = self._arrow_in(
            connection,
            "SELECT run_uuid, experiment_id, start_time, end_time, status, artifact_uri, name, "
            "user_id, lifecycle_stage FROM runs WHERE run_uuid IN ({in})",
            run_ids,
            [("run_id", _STR), ("experiment_id", _STR), ("start_time", _INT), ("end_time", _INT), ("status", _STR),
             ("artifact_uri", _STR), ("run_name", _STR), ("user_id", _STR), ("lifecycle_stage", _STR)],
        ).sort_by("run_id")
        latest = self._arrow_in(
            connection, "SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({in})", run_ids,
            [("run_id", _STR), ("key", _STR), ("value", _FLOAT), ("is_nan", _BOOL)],
        )
        params, tags = (
            self._arrow_in(connection, f"SELECT run_uuid, key, value FROM {name} WHERE run_uuid IN ({{in}})", run_ids,
                           [("run_id", _STR), ("key", _STR), ("value", _STR)])
            for name in ("params", "tags")
        )
        schema = tables.arrow_schema(tables.RUNS)

        def as_map(name: str, entries: pa.Table, values) -> pa.Array:
            return map_column(runs["run_id"], entries["run_id"], entries["key"], values, schema.field(name).type)

        yield from _table_batches(schema, [
            runs["run_id"], runs["experiment_id"],
            as_map("metrics", latest, nan_where(latest["value"], latest["is_nan"])),
            as_map("params", params, params["value"]), as_map("tags", tags, tags["value"]),
            ms_timestamps(runs["start_time"]), ms_timestamps(runs["end_time"]),
            runs["status"], runs["artifact_uri"], runs["run_name"], runs["user_id"], runs["lifecycle_stage"],
        ])

    def _read_key_values(self, connection, table: str, run_ids) -> Iterator[pa.RecordBatch]:
        rows = self._arrow_in(
            connection,
            f"SELECT t.run_uuid, r.experiment_id, t.key, t.value FROM {table} t JOIN runs r ON r.run_uuid = t.run_uuid "
            "WHERE t.run_uuid IN ({in})",
            run_ids,
            [("run_id", _STR), ("experiment_id", _STR), ("key", _STR), ("value", _STR)],
        ).sort_by([("run_id", "ascending"), ("key", "ascending"), ("value", "ascending")])
        yield from _table_batches(tables.arrow_schema(table), [rows["experiment_id"], rows["run_id"], rows["key"], rows["value"]])

    def _read_inputs(self, connection, run_ids) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        rows = self._arrow_in(
            connection,
            "SELECT i.destination_id, r.experiment_id, i.input_uuid, d.name, d.digest, d.dataset_source_type, "
            "d.dataset_source, d.dataset_schema, d.dataset_profile "
            "FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id JOIN runs r ON r.run_uuid = i.destination_id "
            "WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' "
            "AND i.destination_id IN ({in})",
            run_ids,
            [("run_id", _STR), ("experiment_id", _STR), ("input_uuid", _STR), ("dataset_name", _STR),
             ("dataset_digest", _STR), ("dataset_source_type", _STR), ("dataset_source", _STR),
             ("dataset_schema", _STR), ("dataset_profile", _STR)],
        )
        # Ordered by run, dataset name and digest (a missing one as ''), then input id.
        rows = (rows.append_column("name_order", rows["dataset_name"].fill_null(""))
                .append_column("digest_order", rows["dataset_digest"].fill_null(""))
                .sort_by([(c, "ascending") for c in ("run_id", "name_order", "digest_order", "input_uuid")]))
        tags = self._arrow_in(
            connection, "SELECT input_uuid, name, value FROM input_tags WHERE input_uuid IN ({in})",
            rows["input_uuid"].to_pylist(), [("input_uuid", _STR), ("name", _STR), ("value", _STR)],
        )
        context = tags.filter(pc.equal(tags["name"], "mlflow.data.context"))
        found = pc.index_in(rows["input_uuid"], value_set=_array(context["input_uuid"]))
        schema = tables.arrow_schema(tables.INPUTS)
        yield from _table_batches(schema, [
            *(rows[name] for name in schema.names[:8]),
            _array(context["value"]).take(found),
            map_column(rows["input_uuid"], tags["input_uuid"], tags["name"], tags["value"], schema.field("tags").type),
        ])

    # Metric points as every dialect reads them: run, experiment, key, value, is_nan, step, ms.
    _POINTS = ("SELECT m.run_uuid, r.experiment_id, m.key, m.value, m.is_nan, m.step, m.timestamp "
               "FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid WHERE ")

    def _points_reader(self, connection):
        """``(sql, params, columns) -> batches`` for metric points: the connection's own driver,
        or, where the dialect has one, a second Arrow-native driver (MySQL: connectorx)."""
        if self._dialect.arrow_points:
            from .mysql import arrow_reader

            arrow = arrow_reader(self.uri.location)
            if arrow is not None:
                def read(sql, params, columns):
                    for batch in arrow(sql, params).to_batches(max_chunksize=BATCH_ROWS):
                        if batch.num_rows:
                            yield typed_batch(batch.columns, columns)
                return read
        return lambda sql, params, columns: self._arrow(connection, sql, params, columns)

    def _read_metrics(self, connection, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Metric points as Arrow batches. Each query joins ``runs`` for the experiment id, so it
        reads one consistent view by itself. Where positions are counts (not exact), a range is
        its whole series."""
        selection = partition.selection
        if isinstance(partition.work, RowidSpan):
            yield from self._read_rowid_span(connection, partition)
            return
        points = self._points_reader(connection)
        if selection.metric_ranges is not None:
            if self.capabilities.exact_metric_ranges:
                yield from self._read_metric_ranges(connection, points, partition)
                return
            whole, single = [], sorted({(run_id, key) for run_id, key, _, _ in partition.work})
        else:
            whole = [run_id for run_id, key in partition.work if key is None]
            single = [(run_id, key) for run_id, key in partition.work if key is not None]
        keys = selection.metric_keys or ()
        key_hint = self._dialect.key_hint
        # SQLite: "+m.key" keeps the planner on the run's index instead of scanning the primary
        # key's index on key over the whole store; MySQL compares the key's bytes (exact).
        key_marks, key_params = self._in(connection, keys)
        key_filter = f"{key_hint} IN ({key_marks}) AND " if keys else ""
        for runs in self._chunks(connection, whole, len(keys)):
            run_marks, run_params = self._in(connection, runs)
            sql = f"{self._POINTS}{key_filter}m.run_uuid IN ({run_marks})"
            yield from _metric_batches(points(sql, [*(key_params if keys else ()), *run_params], _POINT_COLUMNS))
        for part in chunk(single, _IN_LIST // 2):
            sql = self._POINTS + " OR ".join(f"(m.run_uuid = ? AND {key_hint} = ?)" for _ in part)
            yield from _metric_batches(points(sql, [value for series in part for value in series], _POINT_COLUMNS))

    def _read_rowid_span(self, connection, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Points with a rowid in the partition's span whose run the selection admits.

        The admitted runs are read first: every point of the span was written before planning
        took its last rowid, so its run already exists. The experiment id is attached by lookup,
        which costs far less than a join per point."""
        import pyarrow.compute as pc

        selection, span = partition.selection, partition.work
        runs = self._selected_runs(connection, selection)
        run_ids, experiment_ids = _array(runs.column(0)), _array(runs.column(1))
        keys = selection.metric_keys or ()
        key_marks, key_params = self._in(connection, keys)
        key_filter = f" AND {self._dialect.key_hint} IN ({key_marks})" if keys else ""
        sql = (f"SELECT m.run_uuid, m.key, m.value, m.is_nan, m.step, m.timestamp FROM metrics m "
               f"WHERE m.rowid > ? AND m.rowid <= ?{key_filter}")
        columns = [column for column in _POINT_COLUMNS if column[0] != "experiment_id"]
        for batch in self._arrow(connection, sql, [span.after, span.upto, *(key_params if keys else ())], columns):
            run = pc.index_in(batch.column(0), value_set=run_ids)
            if run.null_count:
                admitted = run.is_valid()
                batch, run = batch.filter(admitted), run.filter(admitted)
            if batch.num_rows:
                yield from _metric_batches(
                    [pa.RecordBatch.from_arrays([batch.column(0), experiment_ids.take(run), *batch.columns[1:]],
                                                names=[name for name, _ in _POINT_COLUMNS])]
                )

    def _read_metric_ranges(self, connection, points, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Points of each (run, key) with a rowid between two positions (SQLite)."""
        import pyarrow.compute as pc

        ranges = {(run_id, key): (after, upto) for run_id, key, after, upto in partition.work}
        run_ids = sorted({run_id for run_id, _ in ranges})
        for runs in self._chunks(connection, run_ids, 1):
            members = set(runs)
            mine = sorted(item for item in ranges.items() if item[0][0] in members)
            series = pa.array([_series_key(run_id, key) for (run_id, key), _ in mine], _STR)
            after = pa.array([bounds[0] for _, bounds in mine], _INT)
            upto = pa.array([bounds[1] for _, bounds in mine], _INT)
            # Skip, in the query, what every range of this chunk has already read.
            run_marks, run_params = self._in(connection, runs)
            sql = f"{self._POINTS.replace('SELECT ', 'SELECT m.rowid, ', 1)}m.rowid > ? AND m.run_uuid IN ({run_marks})"
            for batch in points(sql, [min(after.to_pylist()), *run_params], [("rowid", _INT), *_POINT_COLUMNS]):
                found = pc.index_in(pc.binary_join_element_wise(batch.column(1), batch.column(3), "\x00"), value_set=series)
                rowid = batch.column(0)
                kept = pc.and_(pc.greater(rowid, after.take(found)), pc.less_equal(rowid, upto.take(found))).fill_null(False)
                batch = batch.filter(kept)
                if batch.num_rows:
                    yield from _metric_batches([pa.RecordBatch.from_arrays(batch.columns[1:], names=batch.schema.names[1:])])

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
        with self._connect(reading=True) as connection:
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


_STR, _INT, _FLOAT, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_POINT_COLUMNS = [("run_id", _STR), ("experiment_id", _STR), ("key", _STR), ("value", _FLOAT), ("is_nan", _BOOL),
                  ("step", _INT), ("timestamp", _INT)]


_RUN_COLUMNS = [("run_id", _STR), ("experiment_id", _STR)]
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


@dataclass(frozen=True)
class RowidSpan:
    """A partition's share of a SQLite ``metrics`` table: the rows with ``after < rowid <= upto``."""

    after: int
    upto: int


def _series_key(run_id: str, key: str) -> str:
    return f"{run_id}\x00{key}"


def _array(values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _metric_batches(batches) -> Iterator[pa.RecordBatch]:
    """Batches of points (run, experiment, key, value, is_nan, step, ms) as ``metrics`` batches,
    MLflow's encodings applied as Arrow compute."""
    schema = tables.arrow_schema(tables.METRICS)
    for batch in batches:
        run_ids, experiment_ids, keys, values, is_nans, steps, timestamps = batch.columns
        yield pa.RecordBatch.from_arrays(
            [experiment_ids, run_ids, keys, nan_where(values, is_nans), steps, ms_timestamps(timestamps)], schema=schema
        )


def nan_where(values, is_nan):
    """MLflow's SQL encoding of NaN (value 0, ``is_nan`` true) decoded.

    Example::

        >>> nan_where(pa.array([0.0, 1.5]), pa.array([True, False])).to_pylist()
        [nan, 1.5]
    """
    import pyarrow.compute as pc

    mask = is_nan.fill_null(False)
    return pc.if_else(mask, math.nan, values) if pc.any(mask).as_py() else values


def ms_timestamps(values):
    """MLflow's epoch milliseconds as the tables' UTC microsecond timestamps.

    Example::

        >>> ms_timestamps(pa.array([1700000000123, None])).to_pylist()[0].isoformat()
        '2023-11-14T22:13:20.123000+00:00'
    """
    return values.cast(_INT).cast(pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))


def map_column(owners, entry_owners, keys, values, map_type: pa.MapType) -> pa.Array:
    """A map per owner (owners unique, in any order) from entries (owner, key, value), each map
    sorted by key; entries of other owners are left out.

    Example::

        >>> column = map_column(pa.array(["r2", "r1"]), pa.array(["r1", "r2", "r1"]), pa.array(["b", "x", "a"]),
        ...                     pa.array([2.0, 9.0, 1.0]), pa.map_(pa.string(), pa.float64()))
        >>> column.to_pylist()
        [[('x', 9.0)], [('a', 1.0), ('b', 2.0)]]
    """
    import pyarrow.compute as pc

    owners = _array(owners)
    count = len(owners)
    position = pc.index_in(_array(entry_owners), value_set=owners).cast(pa.int64())
    entries = (pa.table({"position": position, "key": _array(keys), "value": _array(values)})
               .filter(position.is_valid())
               .sort_by([("position", "ascending"), ("key", "ascending")]))
    found = pc.value_counts(_array(entries["position"]))
    everyone = pc.subtract(pc.cumulative_sum(pa.repeat(1, count).cast(pa.int64())), 1) if count else pa.array([], pa.int64())
    per_owner = found.field("counts").take(pc.index_in(everyone, value_set=found.field("values"))).fill_null(0)
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(per_owner).cast(pa.int64())])
    return pa.MapArray.from_arrays(offsets.cast(pa.int32()), _array(entries["key"]), _array(entries["value"]), type=map_type)


def _table_batches(schema: pa.Schema, columns) -> Iterator[pa.RecordBatch]:
    """``columns`` (in ``schema``'s order) as record batches of at most ``BATCH_ROWS`` rows."""
    table = pa.Table.from_arrays([_array(column) for column in columns], schema=schema)
    yield from (batch for batch in table.to_batches(max_chunksize=BATCH_ROWS) if batch.num_rows)


def _per_run_partitions(selection: Selection, run_ids: list[str]) -> list[Partition]:
    total = len(run_ids)
    size = selection.rows_per_partition or DEFAULT_RUNS_PER_PARTITION
    if selection.num_partitions:
        size = max(1, math.ceil(total / selection.num_partitions))
    return [Partition(i, selection, tuple(part)) for i, part in enumerate(chunk(run_ids, size))]
