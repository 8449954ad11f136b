"""The real servers the secret-hiding tests talk to, one of each for the whole run.

- ``secret_postgres``: an MLflow store on the real PostgreSQL server and two login roles:
  ``reader``, whose password each example sets to its random secret, and ``decoy``, whose
  password is never the secret (so the secret given for it is a real wrong password).
- ``small_stores``: a SQLite and a file store written by real mlflow, whose runs' artifact URIs
  :func:`set_artifact_uri` points elsewhere.
- ``echo_server``: a loopback HTTP server answering every request with the status asked of it
  and a body echoing the request's credential back (the ``Authorization`` header, the decoded
  Basic user and password, plain and percent-encoded), as careless servers and proxies do.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from support.proxies import MisbehavingServer

EXPERIMENT = "secret-exp"


@dataclass
class SecretPostgres:
    """An MLflow store on a real PostgreSQL server, readable by role ``reader``."""

    host: str
    port: int
    database: str
    admin: tuple[str, str]
    reader: str = "reader"
    decoy: str = "decoy"

    def set_password(self, secret: str) -> None:
        """Make ``secret`` the password of role ``reader``, for real."""
        import psycopg
        from psycopg import sql

        user, password = self.admin
        with psycopg.connect(host=self.host, port=self.port, user=user, password=password, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(self.reader), sql.Literal(secret)))

    def uri(self, secret: str, role: str | None = None, database: str | None = None, port: int | None = None,
            scheme: str = "postgresql") -> str:
        """The store's URL with ``secret`` percent-encoded in its userinfo, as MLflow documents it."""
        return (f"{scheme}://{role or self.reader}:{quote(secret, safe='')}@{self.host}:{port or self.port}/"
                f"{database or self.database}")


@pytest.fixture(scope="session")
def secret_postgres(postgres_server) -> SecretPostgres:
    import psycopg
    from mlflow import MlflowClient
    from psycopg import sql

    from support.postgres import create_database

    host, port, user, password = postgres_server
    uri = create_database(host, port, user, password, "mlflow_secret_hiding")
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment(EXPERIMENT), tags={"mlflow.user": "ann"})
    client.log_metric(run.info.run_id, "loss", 0.5, step=0)
    client.log_param(run.info.run_id, "lr", "0.1")
    client.set_terminated(run.info.run_id)
    with psycopg.connect(host=host, port=port, user=user, password=password, dbname="postgres", autocommit=True) as conn:
        for role in ("reader", "decoy"):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(f"{role}-Passw0rd-not-the-secret")))
    return SecretPostgres(host, port, "mlflow_secret_hiding", (user, password))


@dataclass
class EchoServer:
    """A server that answers ``status`` to everything, echoing the credential it was sent."""

    server: MisbehavingServer
    status: int = 401
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url

    def credentials_received(self) -> list[str]:
        """Every ``Authorization`` header received so far, and every form body (a token request's)."""
        return [h.get("Authorization", "") for h in self.server.headers] + [b.decode("utf-8", "replace")
                                                                             for _, _, b in self.server.log]

    def answer(self, n: int, method: str, path: str, body: bytes):
        headers = self.server.headers[n - 1]
        if path.startswith("/.well-known/databricks-config"):  # databricks-sdk's host metadata
            return 200, {}, {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": "1"}
        if path.startswith("/oidc/.well-known/oauth-authorization-server"):  # Databricks OAuth discovery
            return 200, {}, {"authorization_endpoint": f"{self.url}/oidc/v1/authorize",
                             "token_endpoint": f"{self.url}/oidc/v1/token"}
        authorization = headers.get("Authorization", "")
        scheme, _, value = authorization.partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
            except ValueError:
                pass
        echo = (f"credential {authorization!r} ({value}) rejected: user {user!r} password {password!r} "
                f"({quote(password, safe='')}); request body {body.decode('utf-8', 'replace')!r}")
        if self.status in (301, 302, 307):
            return self.status, {"Location": f"http://{user}:{quote(password, safe='')}@127.0.0.1:9/?auth={value}"}, b""
        if self.status == 503:
            return 503, {"Content-Type": "text/plain"}, echo.encode()
        return self.status, {}, {"error_code": "UNAUTHENTICATED", "message": echo, "details": json.dumps(dict(headers)),
                                 "error": "invalid_client", "error_description": echo}  # the last two as OAuth has them


@pytest.fixture(scope="session")
def echo_server():
    holder: list[EchoServer] = []
    with MisbehavingServer(lambda *request: holder[0].answer(*request)) as server:
        holder.append(EchoServer(server))
        yield holder[0]


@pytest.fixture(scope="session")
def small_stores(tmp_path_factory):
    """A SQLite and a file store (two runs each) written by real mlflow."""
    from support.small import write_small_stores

    root = tmp_path_factory.mktemp("secret-artifacts")
    return write_small_stores(root, names=("remote",), runs_per_experiment=2)


def set_artifact_uri(kind: str, store: str, artifact_uri: str) -> str:
    """Point one run's artifact URI at ``artifact_uri`` (as a user's ``artifact_location``
    would); the run's id."""
    if kind == "sqlite":
        connection = sqlite3.connect(store.split("sqlite:///", 1)[1])
        with connection:
            run_id = connection.execute("SELECT min(run_uuid) FROM runs").fetchone()[0]
            connection.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (artifact_uri, run_id))
        connection.close()
        return run_id
    import yaml

    meta = sorted(Path(store).glob("*/*/meta.yaml"))[0]
    content = yaml.safe_load(meta.read_text())
    content["artifact_uri"] = artifact_uri
    meta.write_text(yaml.safe_dump(content))
    return content["run_id"]


@dataclass
class SecretMysql:
    """An MLflow store on a real MariaDB server, readable by user ``reader`` from loopback."""

    host: str
    port: int
    database: str
    admin: tuple[str, str]
    reader: str = "reader"
    decoy: str = "decoy"

    def set_password(self, secret: str) -> None:
        """Make ``secret`` the password of user ``reader``, for real (over a utf8mb4 connection)."""
        import pymysql

        user, password = self.admin
        connection = pymysql.connect(host=self.host, port=self.port, user=user, password=password, autocommit=True,
                                     charset="utf8mb4")
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER USER '{self.reader}'@'127.0.0.1' IDENTIFIED BY %s", (secret,))
        finally:
            connection.close()

    def uri(self, secret: str, user: str | None = None, database: str | None = None, port: int | None = None) -> str:
        """The store's URL with ``secret`` percent-encoded in its userinfo."""
        return (f"mysql+pymysql://{user or self.reader}:{quote(secret, safe='')}@{self.host}:{port or self.port}/"
                f"{database or self.database}")


@pytest.fixture(scope="session")
def secret_mysql(mysql_server) -> SecretMysql:
    import pymysql
    from mlflow import MlflowClient

    from support.mysql import create_database

    host, port, user, password = mysql_server
    uri = create_database(host, port, user, password, "mlflow_secret_hiding")
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment(EXPERIMENT), tags={"mlflow.user": "ann"})
    client.log_metric(run.info.run_id, "loss", 0.5, step=0)
    client.set_terminated(run.info.run_id)
    connection = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)
    try:
        with connection.cursor() as cursor:
            for name in ("reader", "decoy"):
                cursor.execute(f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY %s", (f"{name}-Passw0rd-not-the-secret",))
                cursor.execute(f"GRANT SELECT ON mlflow_secret_hiding.* TO '{name}'@'127.0.0.1'")
    finally:
        connection.close()
    return SecretMysql(host, port, "mlflow_secret_hiding", (user, password))
