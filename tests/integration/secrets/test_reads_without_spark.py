"""Random passwords and tokens never show in what a read shows without Spark: its errors (``str``
and ``repr``, with every exception a traceback of them shows), its log records at DEBUG, and the
``repr`` of the data source, its reader, request, store, selection and partitions. Each read runs
as an executor runs it (the data source's reader, in this process), with the registry knowing no
secret beforehand, as in a new process.

Store kinds and the credentials each carries:

- PostgreSQL (a real server; the role's password set to the secret for real): the URL's userinfo
  (percent-encoded, with a driver suffix, raw where it reads one way only: see
  ``shown.ambiguous_raw``), ``?password=``, ``PGPASSWORD``; right password,
  wrong password, unknown database, no server, and the malformed forms users write (a libpq
  keyword string, ``postgresql:/`` with one slash).
- REST tracking servers (a loopback server answering 400, 401, 403, 404, a redirect or 503 and
  echoing the credential it received): options ``username``/``password`` and ``token``,
  ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``, ``~/.mlflow/credentials``,
  the URL's userinfo.
- Databricks (the same server as the workspace): option ``token``, ``DATABRICKS_TOKEN``, a
  ``~/.databrickscfg`` profile, OAuth client credentials (databricks-sdk's token request answered
  with the echo).
- SQLite and the file store, which hold no password: the credential-bearing values that reach
  them, an artifact URI with credentials (``s3://KEY:SECRET@bucket``) and the REST credential
  options given to a store that takes none. A secret in a file store's path is a path, not a
  credential: it is shown as the place at fault, as any path is, and is not tested here.

MariaDB is in test_mysql_secrets.py, a real ``mlflow server --app-name basic-auth`` in
test_basic_auth_server.py, the commands in test_commands.py (all three in the slow tier).
"""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import HealthCheck, example, given, settings

from pyspark_experiments.datasource import ExperimentsDataSource
from support.stores import environ

from .conftest import EXPERIMENT, set_artifact_uri
from .shown import EVERY_SPECIAL, ambiguous_raw, assert_hidden, error_texts, log_everything, secrets, unknown_to_the_registry

FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                        "MLFLOW_TRACKING_TOKEN", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE",
                        "DATABRICKS_CONFIG_FILE", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "PGPASSWORD")


@pytest.fixture(autouse=True)
def _no_credentials_around(monkeypatch, tmp_path):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def read(options: dict, shown: list) -> list[dict]:
    """Read as Spark's Python workers do (data source, reader, partitions, each partition read);
    the rows. Every ``repr`` along the way goes into ``shown``."""
    source = ExperimentsDataSource(options)
    reader = source.reader(source.schema())
    shown += [repr(source), repr(reader), repr(source.request), repr(source.request.uri), source.request.uri.display]
    partitions = reader.partitions()
    shown += [repr(partitions), *(repr(p.partition) for p in partitions), repr(source.request.open_store())]
    return [row for p in partitions for batch in reader.read(p) for row in batch.to_pylist()]


def attempt(options: dict, shown: list, outcome: str) -> list[dict] | None:
    """:func:`read` as a new process would (the registry knowing no secret), the error's texts
    into ``shown`` (under ``outcome``): its rows, or ``None`` where it failed."""
    with unknown_to_the_registry():
        try:
            return read(options, shown)
        except Exception as error:  # every error a read raises is shown to someone
            shown.append(f"{outcome}: {error_texts(error)}")
            return None


# -- PostgreSQL -----------------------------------------------------------------------------------


@FEW
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_postgresql_passwords_never_shown(secret_postgres, caplog, secret):
    pg = secret_postgres
    pg.set_password(secret)
    log_everything(caplog)
    shown: list = []
    table = {"table": "metrics", "path": EXPERIMENT}
    encoded = pg.uri(secret)
    for uri in (encoded, pg.uri(secret, scheme="postgresql+psycopg"),
                f"postgresql://{pg.reader}@{pg.host}:{pg.port}/{pg.database}?password={encoded.split(':')[2].split('@')[0]}"):
        rows = attempt({"trackingUri": uri, **table}, shown, "right password")
        assert [r["value"] for r in rows or []] == [0.5], shown[-1]
    with environ(PGPASSWORD=secret):  # libpq's variable: the driver's own read only
        rows = attempt({"trackingUri": f"postgresql://{pg.reader}@{pg.host}:{pg.port}/{pg.database}", **table},
                       shown, "PGPASSWORD")
        assert [r["value"] for r in rows or []] == [0.5], shown[-1]
    raw = f"postgresql://{pg.reader}:{secret}@{pg.host}:{pg.port}/{pg.database}"
    failing = {
        "wrong password": pg.uri(secret, role=pg.decoy),
        "unknown database": pg.uri(secret, database="no_such_database"),
        "no server": pg.uri(secret, port=9),
        **({} if ambiguous_raw(secret) else {
            "raw userinfo": raw,  # works where no character needs encoding; else a clear error
            "one slash": raw.replace("://", ":/"),
        }),
        "libpq keywords": f"host={pg.host} port={pg.port} user={pg.reader} password={secret} dbname={pg.database}",
    }
    for outcome, uri in failing.items():
        rows = attempt({"trackingUri": uri, **table}, shown, outcome)
        assert rows is None or outcome == "raw userinfo", outcome
    with environ(PGPASSWORD=secret):
        attempt({"trackingUri": f"postgresql://{pg.decoy}@{pg.host}:{pg.port}/{pg.database}", **table}, shown,
                "PGPASSWORD wrong")
    assert any("password authentication failed" in text for text in shown)
    assert_hidden({**{f"shown {i}": text for i, text in enumerate(shown)}, "log": caplog.text},
                  (pg.reader, pg.decoy), secret)


# -- REST tracking servers and Databricks ----------------------------------------------------------

ANSWERS = (401, 403, 400, 404, 302, 503)
FAST = {"maxRetries": "1", "backoffFactor": "0.01", "backoffJitter": "0.01", "requestTimeout": "10"}


def _tracking_server_credentials(url: str, user: str, secret: str, home: str):
    """(name, options, environment) of each way a tracking server read gets a credential."""
    from urllib.parse import quote

    host = url.split("://", 1)[1]
    credentials_file = os.path.join(home, ".mlflow", "credentials")
    yield "options username/password", {"trackingUri": url, "username": user, "password": secret}, {}
    yield "option token", {"trackingUri": url, "token": secret}, {}
    yield "MLFLOW_TRACKING_USERNAME/PASSWORD", {"trackingUri": url}, {"MLFLOW_TRACKING_USERNAME": user,
                                                                      "MLFLOW_TRACKING_PASSWORD": secret}
    yield "MLFLOW_TRACKING_TOKEN", {"trackingUri": url}, {"MLFLOW_TRACKING_TOKEN": secret}
    os.makedirs(os.path.dirname(credentials_file), exist_ok=True)
    with open(credentials_file, "w", encoding="utf-8") as handle:
        handle.write(f"[mlflow]\nmlflow_tracking_username = {user}\nmlflow_tracking_password = {secret}\n")
    yield "~/.mlflow/credentials", {"trackingUri": url}, {}
    os.remove(credentials_file)
    yield "userinfo", {"trackingUri": f"http://{user}:{quote(secret, safe='')}@{host}"}, {}
    yield "MLFLOW_TRACKING_URI with userinfo", {}, {"MLFLOW_TRACKING_URI": f"http://{user}:{quote(secret, safe='')}@{host}"}


def _databricks_credentials(url: str, client: str, secret: str, home: str):
    config = os.path.join(home, ".databrickscfg")
    yield "option token", {"trackingUri": "databricks", "databricksHost": url, "token": secret}, {}
    yield "DATABRICKS_TOKEN", {"trackingUri": "databricks"}, {"DATABRICKS_HOST": url, "DATABRICKS_TOKEN": secret}
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(f"[DEFAULT]\nhost = {url}\ntoken = {secret}\n\n[oauth]\nhost = {url}\n"
                     f"client_id = {client}\nclient_secret = {secret}\n")
    yield "profile DEFAULT", {"trackingUri": "databricks"}, {}
    yield "profile in the URI", {"trackingUri": "databricks://DEFAULT"}, {}
    yield "options clientId/clientSecret", {"trackingUri": "databricks", "databricksHost": url, "clientId": client,
                                            "clientSecret": secret}, {}
    yield "OAuth profile", {"trackingUri": "databricks://oauth"}, {}
    os.remove(config)


@FEW
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
@example(secret="Qx7-00000")  # ASCII, so sent: databricks-sdk's token request error echoed it
def test_tracking_server_and_databricks_credentials_never_shown(echo_server, caplog, tmp_path, secret):
    user = "alice"
    home = os.environ["HOME"]
    os.makedirs(home, exist_ok=True)
    log_everything(caplog)
    shown: list = []
    sources = itertools.chain(_tracking_server_credentials(echo_server.url, user, secret, home),
                              _databricks_credentials(echo_server.url, user, secret, home))
    for name, options, variables in sources:  # one at a time: each may write a file for itself
        for status in ANSWERS:
            echo_server.status = status
            with environ(**variables):
                rows = attempt({**options, **FAST, "table": "experiments"}, shown, f"{name}, HTTP {status}")
            assert rows is None, (name, status)
    sent = echo_server.credentials_received()
    if secret.isascii():  # HTTP headers are Latin-1: the server got every credential it could be sent
        assert any(secret in text for text in sent)
    assert_hidden({**{f"shown {i}": text for i, text in enumerate(shown)}, "log": caplog.text}, (user,), secret)


# -- SQLite and the file store ---------------------------------------------------------------------


@FEW
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
@example(secret="Qx7-0001[")  # raw, a '[' made urlsplit fail the whole read
def test_credentials_in_artifact_uris_and_options_of_password_less_stores_never_shown(small_stores, caplog, secret):
    from urllib.parse import quote

    log_everything(caplog)
    shown: list = []
    key = "AKIAEXAMPLEKEY"
    for kind, store in small_stores.items():
        encoded = quote(secret, safe="")
        raw = [] if ambiguous_raw(secret) else [f"s3://{key}:{secret}@bucket/runs/x"]
        for form in (f"s3://{key}:{encoded}@bucket/runs/x", *raw, f"gs://{key}:{encoded}@bucket/x",
                     f"hdfs://me:{encoded}@nn:8020/x", f"https://me:{encoded}@artifacts.example.com/x"):
            run_id = set_artifact_uri(kind, store, form)
            for mode in ("FAILFAST", "PERMISSIVE"):
                options = {"trackingUri": store, "table": "artifacts", "mode": mode}
                rows = attempt(options, shown, f"{kind} {form[:5]} {mode}")
                if mode == "PERMISSIVE":
                    rows = attempt({**options, "columnNameOfCorruptRecord": "_bad"}, shown, f"{kind} {mode} rows")
                    shown.append(repr(rows))
                    assert any(r["run_id"] == run_id and r["_bad"] for r in rows or []), (kind, form)
        for name in ("password", "token", "clientSecret"):
            assert attempt({"trackingUri": store, name: secret}, shown, f"{kind} option {name}") is None
    assert_hidden({**{f"shown {i}": text for i, text in enumerate(shown)}, "log": caplog.text}, (key, "me"), secret)
