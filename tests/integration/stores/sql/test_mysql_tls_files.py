"""TLS files of a MySQL store (``ssl_ca``/``ssl_cert``/``ssl_key`` query arguments and MLflow's
``MLFLOW_MYSQL_SSL_*`` variables) that are missing or not PEM, against a real MariaDB server:
a ConfigurationError naming the argument or variable and the path, never the password."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.stores import open_store
from pyspark_experiments.uri import resolve_tracking_uri


def _uri(server, query: str = "") -> str:
    host, port, user, password = server
    return f"mysql+pymysql://{user}:{quote(password, safe='')}@{host}:{port}/mlflow_reference{query}"


def _list(uri: str):
    return open_store(resolve_tracking_uri(uri, environ={})).list_experiments()


@pytest.mark.parametrize("argument", ["ssl_ca", "ssl_cert", "ssl_key"])
def test_a_missing_tls_file_in_the_url_names_the_argument_and_the_path(mysql_server, mysql_store, tmp_path, argument):
    missing = str(tmp_path / f"no-{argument}.pem")
    with pytest.raises(ConfigurationError) as error:
        _list(_uri(mysql_server, f"?{argument}={quote(missing)}"))
    message = str(error.value)
    assert f"query argument {argument!r}" in message and missing in message
    assert mysql_server[3] not in message


@pytest.mark.parametrize("variable", ["MLFLOW_MYSQL_SSL_CA", "MLFLOW_MYSQL_SSL_CERT", "MLFLOW_MYSQL_SSL_KEY"])
def test_a_missing_tls_file_from_mlflows_variables_names_the_variable(mysql_server, mysql_store, tmp_path, monkeypatch, variable):
    missing = str(tmp_path / "nowhere" / "file.pem")
    monkeypatch.setenv(variable, missing)
    with pytest.raises(ConfigurationError) as error:
        _list(_uri(mysql_server))
    assert variable in str(error.value) and missing in str(error.value)
    # a folder is not a file either
    monkeypatch.setenv(variable, str(tmp_path))
    with pytest.raises(ConfigurationError, match="a folder, not a file"):
        _list(_uri(mysql_server))


def test_a_tls_file_that_is_not_pem_is_a_clear_error(mysql_server, mysql_store, tmp_path):
    garbage = tmp_path / "ca.pem"
    garbage.write_text("this is not a certificate\n")
    with pytest.raises(ConfigurationError) as error:
        _list(_uri(mysql_server, f"?ssl_ca={quote(str(garbage))}"))
    message = str(error.value)
    assert "TLS files" in message and str(garbage) in message
    assert mysql_server[3] not in message


def test_the_url_wins_over_the_variable(mysql_server, mysql_store, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_MYSQL_SSL_CA", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="query argument 'ssl_ca'"):
        _list(_uri(mysql_server, f"?ssl_ca={quote(str(tmp_path / 'also-missing.pem'))}"))
    monkeypatch.delenv("MLFLOW_MYSQL_SSL_CA")
    assert _list(_uri(mysql_server, "?ssl_disabled=true")), "the same server, without TLS files, reads"
