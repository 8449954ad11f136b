"""The MySQL / MariaDB dialect of the SQL store: URL parsing, the connection, its errors.

MLflow accepts ``mysql://`` and SQLAlchemy's driver forms ``mysql+pymysql://``,
``mysql+mysqldb://``, ``mysql+mysqlconnector://``; all are read here with PyMySQL (the ``mysql``
extra), whatever driver the URL names, since the store's content does not depend on it. Each
connection reads one consistent snapshot (``REPEATABLE READ``, ``START TRANSACTION WITH
CONSISTENT SNAPSHOT, READ ONLY``): every query of a partition sees the store as it was when the
partition started, and the reader cannot write.

Metric points, the bulk of a store, are read with connectorx when it is installed (the ``mysql``
extra brings it): it returns Arrow tables, built in Rust, about 6x faster than PyMySQL's rows
(benchmarks/bench_mysql.py). connectorx takes no bind parameters, so those queries are built
from literals (:func:`inline_parameters`): strings quoted only when they are plain, as MLflow's
run ids are (letters, digits, ``-``, ``_``, ``.``), anything else as hex literals, which no
string can escape from whatever the server's ``sql_mode``; keys are compared as bytes. Each
such query is one statement, so it reads one consistent view by itself. A URL with TLS or socket arguments, or no connectorx, reads
everything with PyMySQL.

Example::

    >>> params = mysql_parameters("mysql+pymysql://bob:a%2Fb@db:3307/mlflow?charset=utf8mb4")
    >>> params["host"], params["port"], params["database"], params["charset"]
    ('db', 3307, 'mlflow', 'utf8mb4')
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, quote, unquote

from ...errors import ConfigurationError, MissingDependencyError, StoreConnectionError, StoreNotFoundError
from ...redact import hide, remember_uri, split_userinfo
from ...uri import MYSQL_DRIVERS

DEFAULT_PORT = 3306
CONNECT_TIMEOUT_S = 10

# Query arguments of a MySQL URL that reach PyMySQL's connect(), and how each is typed.
_QUERY_ARGUMENTS = {
    "charset": str,
    "unix_socket": str,
    "connect_timeout": int,
    "read_timeout": int,
    "write_timeout": int,
    "ssl_ca": str,
    "ssl_cert": str,
    "ssl_key": str,
    "ssl_verify_cert": lambda v: v.lower() in ("1", "true", "yes"),
    "ssl_verify_identity": lambda v: v.lower() in ("1", "true", "yes"),
    "ssl_disabled": lambda v: v.lower() in ("1", "true", "yes"),
    "local_infile": lambda v: False,  # never: the reader loads nothing
    "password": str,
    "user": str,
}

# TLS files PyMySQL loads, by query argument, and MLflow's variables that name them.
_TLS_FILES = (("ssl_ca", "MLFLOW_MYSQL_SSL_CA"), ("ssl_cert", "MLFLOW_MYSQL_SSL_CERT"), ("ssl_key", "MLFLOW_MYSQL_SSL_KEY"))

# MLflow's column names that are reserved words in MySQL, written bare in the store's shared SQL.
_RESERVED = re.compile(r"(?<![\w.`'\"+])(key)(?![\w`'\"])", re.IGNORECASE)

# MySQL error numbers the reader explains.
_ACCESS_DENIED = 1045
_UNKNOWN_DATABASE = 1049
_CANNOT_CONNECT = (2003, 2005, 2006, 2013)


def mysql_parameters(location: str, environ=None) -> dict:
    """PyMySQL ``connect()`` arguments from a MySQL URL (any ``+driver`` suffix), with the
    userinfo split at its last ``@`` and percent-decoded, as SQLAlchemy reads MLflow's URLs.

    MLflow's ``MLFLOW_MYSQL_SSL_CA`` / ``_CERT`` / ``_KEY`` variables fill the TLS files the
    URL does not name. A query argument PyMySQL would not understand is a
    :class:`~pyspark_experiments.errors.ConfigurationError` naming it.

    Example::

        >>> sorted(mysql_parameters("mysql://bob:p%40ss@[::1]/mlflow", environ={}).items())
        [('connect_timeout', 10), ('database', 'mlflow'), ('host', '::1'), ('password', 'p@ss'), ('port', 3306), ('user', 'bob')]
        >>> mysql_parameters("mysql+pymysql://bob:Hunter/Two22@db/mlflow", environ={})["password"]
        'Hunter/Two22'
    """
    environ = os.environ if environ is None else environ
    remember_uri(location)
    scheme = location.split("://", 1)[0].lower()
    if scheme not in MYSQL_DRIVERS:
        raise ConfigurationError(
            f"tracking URI {hide(location)!r}: unknown MySQL driver {scheme!r}; expected one of {', '.join(MYSQL_DRIVERS)}"
        )
    _, user, password, rest = split_userinfo(location)
    if user is None:
        rest = location.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    hostport, _, database = rest.partition("/")
    if hostport.startswith("["):  # [IPv6]:port
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if port and not port.isdigit():
        raise ConfigurationError(f"tracking URI {hide(location)!r}: port {port!r} is not a number")
    params: dict = {"host": unquote(host) or "localhost", "port": int(port or DEFAULT_PORT),
                    "connect_timeout": CONNECT_TIMEOUT_S}
    if database:
        params["database"] = unquote(database)
    if user:
        params["user"] = unquote(user)
    if password is not None:
        params["password"] = unquote(password)
    for name, value in parse_qsl(query, keep_blank_values=True):
        convert = _QUERY_ARGUMENTS.get(name)
        if convert is None:
            raise ConfigurationError(
                f"tracking URI {hide(location)!r}: unknown query argument {name!r}; "
                f"expected one of {', '.join(sorted(_QUERY_ARGUMENTS))}"
            )
        try:
            params[name] = convert(value)
        except ValueError:
            raise ConfigurationError(f"tracking URI {hide(location)!r}: {name}={hide(value)!r} is not a number") from None
    for name, variable in _TLS_FILES:
        if environ.get(variable) and name not in params:
            params[name] = environ[variable]
    if "unix_socket" in params and not host:
        params.pop("host")
    if "database" not in params:
        raise ConfigurationError(
            f"tracking URI {hide(location)!r} names no database; expected mysql://user:password@host:port/database"
        )
    return params


def quote_reserved(sql: str) -> str:
    """``sql`` (written for SQLite and PostgreSQL) with MLflow's column ``key``, a reserved word
    in MySQL, quoted as MySQL wants: ```key```. String literals are left alone.

    Example::

        >>> quote_reserved("SELECT run_uuid, key, value FROM params WHERE key IN (%s) AND x = 'key'")
        "SELECT run_uuid, `key`, value FROM params WHERE `key` IN (%s) AND x = 'key'"
        >>> quote_reserved("SELECT param_key, keys, monkey FROM t")
        'SELECT param_key, keys, monkey FROM t'
    """
    parts = re.split(r"('(?:[^']|'')*')", sql)
    return "".join(part if i % 2 else _RESERVED.sub(r"`\1`", part) for i, part in enumerate(parts))


_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def sql_literal(value, plain_id: bool = False) -> str:
    """``value`` as a MySQL literal that no content can break out of, whatever ``sql_mode``:
    integers as digits, strings as hex literals of their UTF-8 bytes (compare them with
    ``CAST(column AS BINARY)`` for MLflow's exact keys: MySQL otherwise applies the column's
    collation, which ignores case). With ``plain_id``, a string of letters, digits and
    ``_.-`` (an MLflow run id) is quoted as it is, so that the column's index serves it.

    Example::

        >>> sql_literal(42), sql_literal("it's"), sql_literal("9f2c0a", plain_id=True), sql_literal("")
        ('42', "X'69742773'", "'9f2c0a'", "''")
        >>> sql_literal("a'b", plain_id=True)
        "X'612762'"
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"no SQL literal for {type(value).__name__}")
    if isinstance(value, int):
        return str(int(value))
    if value == "":
        return "''"
    if plain_id and _PLAIN_ID.match(value):
        return f"'{value}'"
    return "X'" + value.encode("utf-8", "surrogatepass").hex() + "'"


def inline_parameters(sql: str, params) -> str:
    """``sql`` with each ``?`` replaced by the next of ``params`` as a :func:`sql_literal`
    (strings that are plain ids quoted, so that indexes serve them; any other as hex).

    Example::

        >>> inline_parameters("SELECT 1 FROM m WHERE run_uuid IN (?, ?) AND k = ?", ["a1", 7, "it's"])
        "SELECT 1 FROM m WHERE run_uuid IN ('a1', 7) AND k = X'69742773'"
    """
    parts = sql.split("?")
    if len(parts) != len(params) + 1:
        raise ValueError(f"{len(parts) - 1} parameter marks for {len(params)} parameters")
    return parts[0] + "".join(sql_literal(value, plain_id=True) + part for value, part in zip(params, parts[1:]))


def arrow_reader(location: str):
    """A function ``(sql, params) -> pyarrow.Table`` reading with connectorx (``sql`` marks its
    parameters with ``?``; they are written into it as literals, see :func:`inline_parameters`),
    or ``None`` where PyMySQL must read (connectorx not installed, or the URL has arguments
    connectorx would not honour: TLS, a socket, timeouts).

    Example::

        >>> arrow_reader("mysql://u:pw@db/m?ssl_ca=/ca.pem") is None
        True
    """
    try:
        import connectorx
    except ImportError:
        return None
    params = mysql_parameters(location)
    if set(params) - {"host", "port", "database", "user", "password", "charset", "connect_timeout"}:
        return None
    if params.get("charset", "utf8mb4") not in ("utf8mb4", "utf8"):
        return None
    host = params["host"]
    host = f"[{host}]" if ":" in host else host
    url = (f"mysql://{quote(params.get('user', ''), safe='')}:{quote(params.get('password', ''), safe='')}"
           f"@{host}:{params['port']}/{quote(params['database'], safe='')}")

    def read(sql: str, values=()):
        try:
            return connectorx.read_sql(url, quote_reserved(inline_parameters(sql, values)), return_type="arrow")
        except Exception as error:  # connectorx raises RuntimeError / PanicException with the URL's parts
            text = hide(error)
            raise StoreConnectionError(f"reading metric points from {hide(location)}: {text}") from None

    return read


class MySqlConnection:
    """A PyMySQL connection with the ``execute(sql, params) -> cursor`` shape the SQL store uses.

    Cursors are unbuffered (rows stream from the server), so each must be read to its end
    before the next query, as the store does.

    Example::

        >>> connection = connect_mysql("mysql://u:pw@127.0.0.1:9/mlflow", "mysql://u:***@127.0.0.1:9/mlflow")  # doctest: +SKIP
        >>> connection.execute("SELECT 1").fetchall()  # doctest: +SKIP
        ((1,),)
    """

    def __init__(self, connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params=()):
        import pymysql.cursors

        cursor = self._connection.cursor(pymysql.cursors.SSCursor)
        # PyMySQL formats only when given arguments; "%" in such SQL would need doubling.
        cursor.execute(quote_reserved(sql), tuple(params) if params else None)
        return cursor

    def cursor(self):
        """A buffered DB-API cursor with ``%s`` marks, for code written against DB-API
        connections (the trace tables, :mod:`.traces`, which quote no reserved word)."""
        return self._connection.cursor()

    def close(self) -> None:
        try:
            self._connection.close()
        except Exception:  # already closed by the server
            pass

    def __repr__(self) -> str:
        return "MySqlConnection()"


def connect_mysql(location: str, display: str) -> MySqlConnection:
    """Open a read-only snapshot of the MySQL store at ``location`` (``display`` names it in errors).

    Example::

        >>> connect_mysql("mysql://u:pw@127.0.0.1:9/mlflow", "mysql://u:***@127.0.0.1:9/mlflow")  # doctest: +SKIP
        Traceback (most recent call last):
        StoreConnectionError: cannot connect to mysql://u:***@127.0.0.1:9/mlflow: no MySQL server answers at 127.0.0.1:9 ...
    """
    try:
        import pymysql
    except ImportError as error:
        raise MissingDependencyError(
            "reading a MySQL store needs PyMySQL: pip install 'pyspark-experiments[mysql]'"
        ) from error
    params = mysql_parameters(location)
    check_tls_files(location, params)
    encodings = password_encodings(params.get("password"))
    for n, password in enumerate(encodings, 1):
        try:
            connection = pymysql.connect(**(params if password is None else {**params, "password": password}),
                                         autocommit=False)
            break
        except pymysql.err.MySQLError as error:
            if n == len(encodings) or not (error.args and error.args[0] == _ACCESS_DENIED):
                raise connection_error(error, params, display) from None
        except OSError as error:  # PyMySQL loads the TLS files before it connects: one that is not PEM
            files = ", ".join(f"{name}={params[name]!r}" for name, _ in _TLS_FILES if params.get(name))
            raise ConfigurationError(f"cannot connect to {display}: the TLS files ({files}) cannot be loaded: "
                                     f"{hide(str(error))}") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    except pymysql.err.MySQLError as error:
        connection.close()
        raise StoreConnectionError(f"cannot start a read-only snapshot of {display}: {hide(str(error))}") from None
    return MySqlConnection(connection)


def password_encodings(password: str | None) -> list[bytes | None]:
    """The bytes to try a password as: Latin-1, as PyMySQL (and so MLflow) sends it, then UTF-8,
    as a server hashed it from a UTF-8 client; one of them where both are the same. PyMySQL
    cannot send a password beyond Latin-1 itself: its error would show the password.

    Example::

        >>> password_encodings("pässwörd€"), password_encodings("ascii"), password_encodings(None)
        ([b'p\\xc3\\xa4ssw\\xc3\\xb6rd\\xe2\\x82\\xac'], [b'ascii'], [None])
        >>> password_encodings("pä")
        [b'p\\xe4', b'p\\xc3\\xa4']
    """
    if password is None:
        return [None]
    encodings = []
    try:
        encodings.append(password.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    utf8 = password.encode("utf-8")
    return encodings + [utf8] if utf8 not in encodings else encodings


def check_tls_files(location: str, params: dict) -> None:
    """Refuse a TLS file (``ssl_ca``, ``ssl_cert``, ``ssl_key``) that is not there, naming the
    URL's query argument or MLflow's ``MLFLOW_MYSQL_SSL_*`` variable that gave it, and its path.

    Example::

        >>> check_tls_files("mysql://u@db/m?ssl_ca=/no/ca.pem", {"ssl_ca": "/no/ca.pem"})
        Traceback (most recent call last):
        pyspark_experiments.errors.ConfigurationError: query argument 'ssl_ca' of the tracking URI: no file at '/no/ca.pem'
    """
    in_url = {name for name, _ in parse_qsl(location.partition("?")[2], keep_blank_values=True)}
    for name, variable in _TLS_FILES:
        path = params.get(name)
        if path and not os.path.isfile(path):
            source = f"query argument {name!r} of the tracking URI" if name in in_url else f"environment variable {variable}"
            what = "a folder, not a file" if os.path.isdir(path) else "no file"
            raise ConfigurationError(f"{source}: {what} at {path!r}")


def connection_error(error, params: dict, display: str) -> Exception:
    """A clear error for a failed connection: wrong password, unknown database, no server.

    Example::

        >>> import pymysql
        >>> error = pymysql.err.OperationalError(1045, "Access denied for user 'bob'@'10.0.0.1' (using password: YES)")
        >>> message = str(connection_error(error, {"user": "bob", "host": "db", "port": 3306}, "mysql://bob:***@db/mlflow"))
        >>> message.split(" (")[0]
        "cannot connect to mysql://bob:***@db/mlflow: access denied for user 'bob'"
    """
    code = error.args[0] if error.args and isinstance(error.args[0], int) else None
    text = hide(str(error.args[1] if len(error.args) > 1 else error)).strip()
    where = params.get("unix_socket") or f"{params.get('host')}:{params.get('port')}"
    if code == _ACCESS_DENIED:
        return StoreConnectionError(
            f"cannot connect to {display}: access denied for user {params.get('user', '')!r} "
            f"(wrong user name or password, or no grant from this host): {text}"
        )
    if code == _UNKNOWN_DATABASE:
        return StoreNotFoundError(
            f"tracking URI {display!r}: the server has no database {params.get('database')!r} ({text})"
        )
    if code in _CANNOT_CONNECT:
        return StoreConnectionError(
            f"cannot connect to {display}: no MySQL server answers at {where} within "
            f"{params.get('connect_timeout', CONNECT_TIMEOUT_S)} s ({text})"
        )
    return StoreConnectionError(f"cannot connect to {display}: {text}")


__all__ = [
    "MYSQL_DRIVERS", "MySqlConnection", "arrow_reader", "check_tls_files", "connect_mysql", "connection_error", "inline_parameters",
    "mysql_parameters", "password_encodings", "quote_reserved", "sql_literal",
]
