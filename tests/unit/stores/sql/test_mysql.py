"""The MySQL dialect's pure logic: URL forms, connection arguments, reserved words, errors."""

from __future__ import annotations

import doctest
import re
import sys

import pytest

from pyspark_experiments.errors import (
    ConfigurationError,
    MissingDependencyError,
    StoreConnectionError,
    StoreNotFoundError,
)
from pyspark_experiments.redact import hide as redact
from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.sql import mysql as mysql_dialect
from pyspark_experiments.stores.sql.dialects import DIALECTS
from pyspark_experiments.stores.sql.mysql import arrow_reader, connection_error, mysql_parameters, quote_reserved, sql_literal
from pyspark_experiments.uri import resolve_tracking_uri

SECRET = "S3cr/et:@ 'x%"
ENCODED_SECRET = "S3cr%2Fet%3A%40%20%27x%25"


def test_doctests():
    result = doctest.testmod(mysql_dialect, optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed


@pytest.mark.parametrize(
    "uri",
    [
        "mysql://u:pw@db:3306/mlflow",
        "mysql+pymysql://u:pw@db:3306/mlflow?charset=utf8mb4",
        "mysql+mysqldb://u:pw@db/mlflow",
        "mysql+mysqlconnector://u:pw@db/mlflow",
        "MySQL+PyMySQL://u:pw@db/mlflow",
    ],
)
def test_mlflow_url_forms_are_the_mysql_sql_store(uri):
    resolved = resolve_tracking_uri(uri, {}, "/")
    assert (resolved.kind, resolved.scheme, resolved.location) == ("sql", "mysql", uri)
    assert resolved.display == uri.replace(":pw@", ":***@")
    assert open_store(resolved).capabilities.metric_positions == "count"


def test_unknown_driver_and_malformed_urls_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="unknown MySQL driver 'mysql\\+oursql'") as error:
        resolve_tracking_uri(f"mysql+oursql://u:{ENCODED_SECRET}@db/mlflow", {}, "/")
    assert ENCODED_SECRET not in str(error.value)
    with pytest.raises(ConfigurationError, match="expected mysql://user:password@host:port/database"):
        resolve_tracking_uri("mysql:/db/mlflow", {}, "/")


def test_parameters_split_and_decode_the_userinfo():
    params = mysql_parameters(f"mysql+pymysql://ann:{ENCODED_SECRET}@db.example:3307/ml%20flow?charset=utf8mb4", {})
    assert params == {
        "host": "db.example", "port": 3307, "database": "ml flow", "user": "ann", "password": SECRET,
        "charset": "utf8mb4", "connect_timeout": 10,
    }
    # a raw '/', ':' or '@' in the password stays in the password (the userinfo ends at the last '@')
    assert mysql_parameters("mysql://ann:a/b:c@d@db/mlflow", {})["password"] == "a/b:c@d"
    assert mysql_parameters("mysql://ann@[::1]:3310/mlflow", {})["host"] == "::1"
    assert "password" not in mysql_parameters("mysql://ann@db/mlflow", {})
    assert mysql_parameters("mysql://ann:@db/mlflow", {})["password"] == ""
    defaults = mysql_parameters("mysql:///mlflow?unix_socket=/run/mysqld/mysqld.sock", {})
    assert defaults["unix_socket"] == "/run/mysqld/mysqld.sock" and "host" not in defaults
    assert mysql_parameters("mysql://db/m?connect_timeout=3&ssl_verify_cert=true", {})["connect_timeout"] == 3
    assert mysql_parameters("mysql://db/m?ssl_verify_cert=true", {})["ssl_verify_cert"] is True


def test_parameters_take_mlflows_tls_variables_unless_the_url_names_them():
    environ = {"MLFLOW_MYSQL_SSL_CA": "/ca.pem", "MLFLOW_MYSQL_SSL_CERT": "/c.pem", "MLFLOW_MYSQL_SSL_KEY": "/k.pem"}
    params = mysql_parameters("mysql://u@db/m?ssl_ca=/mine.pem", environ)
    assert (params["ssl_ca"], params["ssl_cert"], params["ssl_key"]) == ("/mine.pem", "/c.pem", "/k.pem")


@pytest.mark.parametrize(
    "uri, message",
    [
        ("mysql://u:{s}@db/m?sslmode=require", "unknown query argument 'sslmode'"),
        ("mysql://u:{s}@db/m?connect_timeout=soon", "connect_timeout='soon' is not a number"),
        ("mysql://u:{s}@db:port/m", "port 'port' is not a number"),
        ("mysql://u:{s}@db", "names no database"),
    ],
)
def test_bad_parameters_name_what_is_wrong_without_the_password(uri, message):
    uri = uri.format(s=ENCODED_SECRET)
    resolve_tracking_uri(uri, {}, "/")  # remembers the secret, as every read does
    with pytest.raises(ConfigurationError, match=message) as error:
        mysql_parameters(uri, {})
    assert ENCODED_SECRET not in str(error.value) and SECRET not in str(error.value)


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT run_uuid, key, value FROM tags WHERE key IN (%s, %s)",
         "SELECT run_uuid, `key`, value FROM tags WHERE `key` IN (%s, %s)"),
        ("SELECT name, key, value FROM t WHERE x = 'key' AND y = 'it''s key'",
         "SELECT name, `key`, value FROM t WHERE x = 'key' AND y = 'it''s key'"),
        ("SELECT param_key, tag_key, monkey, keys, key_1 FROM t", "SELECT param_key, tag_key, monkey, keys, key_1 FROM t"),
        ("SELECT `key` FROM t", "SELECT `key` FROM t"),
        ("SELECT i.key FROM t i", "SELECT i.key FROM t i"),
        ("GROUP BY run_uuid, key\nORDER BY KEY", "GROUP BY run_uuid, `key`\nORDER BY `KEY`"),
    ],
)
def test_quote_reserved(sql, expected):
    assert quote_reserved(sql) == expected


def test_every_query_of_the_sql_store_is_valid_after_quoting():
    """The store's SQL names ``key`` bare; once quoted no bare ``key`` word is left."""


    import pathlib

    from pyspark_experiments.stores import sql

    # every module of the store but the dialect's own (whose examples quote 'key' on purpose)
    modules = sorted(path for path in pathlib.Path(sql.__file__).parent.glob("*.py") if path.name != "mysql.py")
    source = "".join(path.read_text() for path in modules)
    literals = re.findall(r'"((?:SELECT|FROM|WHERE|GROUP)[^"]*)"', source)
    assert literals
    for literal in literals:
        assert not re.search(r"(?<![\w.`+])key(?![\w`])", quote_reserved(literal)), literal


def test_dialects_are_declared():
    assert set(DIALECTS) == {"sqlite", "postgresql", "mysql"}
    mysql = DIALECTS["mysql"]
    assert (mysql.placeholder, mysql.rowid, mysql.exact_key_match) == ("%s", False, False)
    caps = open_store(resolve_tracking_uri("mysql://u:pw@db/m", {}, "/")).capabilities
    assert (caps.kind, caps.metric_positions, caps.exact_metric_ranges, caps.run_fingerprints) == ("sql", "count", False, True)


@pytest.mark.parametrize(
    "code, text, kind, expected",
    [
        (1045, "Access denied for user 'ann'@'10.1.2.3' (using password: YES)", StoreConnectionError,
         "access denied for user .ann. \\(wrong user name or password"),
        (1049, "Unknown database 'm'", StoreNotFoundError, "the server has no database 'm'"),
        (2003, "Can't connect to MySQL server on 'db' ([Errno 111] Connection refused)", StoreConnectionError,
         "no MySQL server answers at db:3306 within 10 s"),
        (1105, f"weird failure mentioning {SECRET}", StoreConnectionError, "cannot connect to mysql://ann:\\*\\*\\*@db/m: weird"),
    ],
)
def test_connection_errors_are_clear_and_hide_the_password(code, text, kind, expected):
    import pymysql

    resolve_tracking_uri(f"mysql://ann:{ENCODED_SECRET}@db/m", {}, "/")
    params = mysql_parameters(f"mysql://ann:{ENCODED_SECRET}@db/m", {})
    error = connection_error(pymysql.err.OperationalError(code, text), params, "mysql://ann:***@db/m")
    assert isinstance(error, kind)
    assert re.search(expected, str(error)), str(error)
    assert SECRET not in str(error) and ENCODED_SECRET not in str(error)
    assert redact(str(error)) == str(error)


def test_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymysql", None)
    store = open_store(resolve_tracking_uri("mysql://u:pw@127.0.0.1:9/m", {}, "/"))
    with pytest.raises(MissingDependencyError, match=r"pyspark-experiments\[mysql\]"):
        store.list_experiments()


HOSTILE = [
    "x' OR '1'='1", "x\\' OR 1=1 -- ", "'; DROP TABLE runs; --", "a\x00b", "\\", "'", '"', "`key`", "0x41 ",
    "X'41'", "é/ü 🙂", "line\nbreak", "%s", "?", "\ud800",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_sql_literal_cannot_be_escaped(value):
    literal = sql_literal(value)
    assert re.fullmatch(r"X'(?:[0-9a-f]{2})+'", literal), literal
    assert bytes.fromhex(literal[2:-1]).decode("utf-8", "surrogatepass") == value
    assert sql_literal(value, plain_id=True) == literal  # not a plain id: hex as well


def test_sql_literal_plain_ids_and_integers():
    run_id = "0123456789abcdef0123456789abcdef"
    assert sql_literal(run_id, plain_id=True) == f"'{run_id}'"
    assert sql_literal(run_id) == "X'" + run_id.encode().hex() + "'"
    assert sql_literal("m-1_2.3", plain_id=True) == "'m-1_2.3'"
    assert sql_literal("0x41", plain_id=True) == "'0x41'"  # a string, never a number
    assert sql_literal("a" * 65, plain_id=True).startswith("X'")
    assert sql_literal(7) == "7" and sql_literal("") == "''"
    for bad in (True, 1.5, None, b"x"):
        with pytest.raises(TypeError):
            sql_literal(bad)


def test_arrow_reader_only_where_connectorx_honours_the_url(monkeypatch):
    pytest.importorskip("connectorx")
    assert arrow_reader("mysql://u:pw@db/m") is not None
    assert arrow_reader("mysql+pymysql://u:pw@db/m?charset=utf8mb4&connect_timeout=5") is not None
    for url in ("mysql://u:pw@db/m?ssl_ca=/ca.pem", "mysql:///m?unix_socket=/s.sock", "mysql://u@db/m?charset=latin1",
                "mysql://u@db/m?read_timeout=5"):
        assert arrow_reader(url) is None, url
    monkeypatch.setenv("MLFLOW_MYSQL_SSL_CA", "/ca.pem")
    assert arrow_reader("mysql://u:pw@db/m") is None
    monkeypatch.delenv("MLFLOW_MYSQL_SSL_CA")
    monkeypatch.setitem(sys.modules, "connectorx", None)
    assert arrow_reader("mysql://u:pw@db/m") is None
