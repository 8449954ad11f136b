"""Connections of the SQL store: SQLite (``sqlite3`` for planning, ADBC for reads), PostgreSQL
(psycopg for planning, ADBC for reads) and MySQL (:mod:`.mysql`), each opened with its schema
checked and its errors turned into messages that name the store and hide its credentials; and
the queries the store runs through them (``?`` marks, bounded ``IN`` lists, Arrow results).

Example::

    >>> sorted(postgres_parameters("postgresql://bob@db/mlflow").items())
    [('dbname', 'mlflow'), ('host', 'db'), ('user', 'bob')]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import parse_qsl, quote, unquote

import pyarrow as pa

from ...errors import MissingDependencyError, StoreConnectionError, StoreNotFoundError, UnsupportedStoreError
from ...redact import hide, remember, remember_uri, split_userinfo
from ..planning import BATCH_ROWS, chunk
from .dialects import DIALECTS, IN_LIST, JSON_LIST, Dialect, numbered_placeholders

# How long a read waits for a SQLite lock held by a writer before it reports the lock.
SQLITE_TIMEOUT_S = 30.0
# ADBC SQLite infers each column's Arrow type from the values of a result's first batch.
_SQLITE_BATCH_ROWS = "adbc.sqlite.query.batch_rows"
# Row queries (planning, small tables) are read as one batch, so every value takes part.
_WHOLE_RESULT_ROWS = 1 << 30


def postgres_parameters(location: str) -> dict[str, str]:
    """libpq connection parameters from a PostgreSQL URL (any ``+driver`` suffix), with the
    userinfo split at its last ``@`` and percent-decoded, as SQLAlchemy reads MLflow's URLs.

    Example::

        >>> sorted(postgres_parameters("postgresql+psycopg://bob:a%2Fb@db:5433/mlflow?sslmode=require").items())
        [('dbname', 'mlflow'), ('host', 'db'), ('password', 'a/b'), ('port', '5433'), ('sslmode', 'require'), ('user', 'bob')]
        >>> postgres_parameters("postgresql://bob:Hunter/Two22@db/mlflow")["password"]
        'Hunter/Two22'
    """
    remember_uri(location)
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


class SqlConnections:
    """The SQL store's connections and queries (a part of :class:`~.store.SqlStore`, which
    provides ``uri``): :meth:`_connect` opens one for a block, the query helpers run SQL
    written with ``?`` marks through it in the driver's parameter style."""

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connect(self, reading: bool = False):
        """A connection to the store, its schema checked. ``reading``: for an executor's read
        (ADBC; planning uses the DB-API drivers, see the module's notes). An ADBC error while
        the block runs becomes a :class:`StoreConnectionError` naming the store."""
        # On an executor the URI arrives pickled: make its credentials known to the registry here too.
        remember_uri(self.uri.location)
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
        if self.uri.scheme == "postgresql":  # a password given as a libpq keyword or query argument
            remember(postgres_parameters(self.uri.location).get("password"))
        return hide(error).strip()

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
        return chunk(list(values), JSON_LIST if json_list else IN_LIST - reserved)

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
