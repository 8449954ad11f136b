"""Tracking-URI resolution, by MLflow's rules, without importing mlflow. Credentials a URI
carries are remembered by the one registry, :mod:`pyspark_experiments.redact`, and never shown.

This module knows URIs only: which experiments a read covers is decided next to the stores
(:mod:`pyspark_experiments.stores.resolve`), and nothing here imports a store.

The order is: an explicit URI (the ``trackingUri`` option), then ``MLFLOW_TRACKING_URI``, then
MLflow's own default: ``./mlruns`` where it already holds experiments, else
``sqlite:///mlflow.db`` in the working directory.

Relative paths are made absolute here, on the driver, so that executors on other machines
read the same store.

Example::

    >>> resolve_tracking_uri("sqlite:////tmp/mlflow.db").kind
    'sql'
    >>> resolve_tracking_uri("/tmp/mlruns").location
    '/tmp/mlruns'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .errors import ConfigurationError, UnsupportedStoreError
from .redact import hide, hide_uri, remember_uri

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
#: URL forms MLflow (through SQLAlchemy) accepts for MySQL; all are read with PyMySQL.
MYSQL_DRIVERS = ("mysql", "mysql+pymysql", "mysql+mysqldb", "mysql+mysqlconnector")
FILE_SCHEMES = ("file",)
REST_SCHEMES = ("http", "https", "databricks")
SUPPORTED_SCHEMES = SQL_SCHEMES + FILE_SCHEMES + REST_SCHEMES

DEFAULT_SQLITE_URI = "sqlite:///mlflow.db"
DEFAULT_FILE_STORE = "mlruns"


@dataclass(frozen=True)
class TrackingUri:
    """A resolved tracking URI.

    ``kind`` is ``sql``, ``file`` or ``rest``; ``location`` is what the store backend opens
    (an absolute SQLAlchemy-style URL, an absolute directory, or a server URL). ``location``
    may hold a credential: show users :attr:`display` instead, which never does.

    Example::

        >>> uri = resolve_tracking_uri("postgresql://bob:s3cret@db:5432/mlflow")
        >>> uri.display
        'postgresql://bob:***@db:5432/mlflow'
        >>> "s3cret" in repr(uri)
        False
    """

    kind: str
    scheme: str
    location: str = field(repr=False)
    source: str = "option"

    @property
    def display(self) -> str:
        return hide_uri(self.location)

    def __repr__(self) -> str:
        return f"TrackingUri(kind={self.kind!r}, uri={self.display!r}, source={self.source!r})"


_LIBPQ_KEYWORDS = re.compile(r"^\s*(?:host|hostaddr|port|dbname|user|password|sslmode|service)\s*=", re.IGNORECASE)


def resolve_tracking_uri(
    explicit: str | None = None,
    environ: os._Environ | dict | None = None,
    cwd: str | None = None,
) -> TrackingUri:
    """Resolve which tracking store to read, as MLflow would.

    Example::

        >>> resolve_tracking_uri(None, environ={"MLFLOW_TRACKING_URI": "sqlite:////x.db"}).source
        'MLFLOW_TRACKING_URI'
    """
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    if explicit is not None and str(explicit).strip():
        return _parse(str(explicit).strip(), "option 'trackingUri'", cwd)
    from_env = environ.get("MLFLOW_TRACKING_URI", "").strip()
    if from_env:
        return _parse(from_env, "MLFLOW_TRACKING_URI", cwd)
    mlruns = os.path.join(cwd, DEFAULT_FILE_STORE)
    if holds_file_store_experiments(mlruns):
        return TrackingUri("file", "file", mlruns, "default (./mlruns holds experiments)")
    return _parse(DEFAULT_SQLITE_URI, "default (sqlite:///mlflow.db)", cwd)


def holds_file_store_experiments(path: str) -> bool:
    """MLflow's test for a file store: a numeric sub-folder holding ``meta.yaml``.

    Example::

        >>> holds_file_store_experiments("/nonexistent")
        False
    """
    try:
        with os.scandir(path) as entries:
            return any(
                entry.is_dir() and entry.name.isdigit()
                and os.path.lexists(os.path.join(entry.path, "meta.yaml"))
                for entry in entries
            )
    except OSError:
        return False


def _parse(uri: str, source: str, cwd: str) -> TrackingUri:
    remember_uri(uri)
    if _LIBPQ_KEYWORDS.match(uri):
        raise ConfigurationError(
            f"{source}: a libpq keyword string (host=... dbname=...) is not a tracking URI; MLflow "
            f"tracking URIs are URLs: postgresql://user:password@host:port/database (percent-encode "
            f"special characters in the password, e.g. '/' as %2F)"
        )
    # `databricks` and `databricks://<profile>`: a Databricks workspace, not a relative path.
    if uri == "databricks" or uri.lower().startswith("databricks://"):
        return TrackingUri("rest", "databricks", uri, source)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    # A Windows drive letter or a bare path: the file store.
    if not scheme or len(scheme) == 1:
        return TrackingUri("file", "file", _absolute(uri, cwd), source)
    base_scheme = scheme.split("+", 1)[0]
    if base_scheme == "file":
        path = unquote(parts.path)
        if parts.netloc and parts.netloc != "localhost":
            path = f"//{parts.netloc}{path}"
        return TrackingUri("file", "file", _absolute(path, cwd), source)
    if base_scheme == "sqlite":
        return TrackingUri("sql", "sqlite", _absolute_sqlite(uri, parts, cwd), source)
    if base_scheme in SQL_SCHEMES:
        if not uri.lower().startswith(f"{scheme}://"):
            raise ConfigurationError(
                f"{source}: tracking URI {hide_uri(uri)!r} is not a {base_scheme} URL; expected "
                f"{base_scheme}://user:password@host:port/database"
            )
        if base_scheme == "mysql" and scheme not in MYSQL_DRIVERS:
            raise ConfigurationError(
                f"{source}: tracking URI {hide_uri(uri)!r}: unknown MySQL driver {scheme!r}; "
                f"expected one of {', '.join(MYSQL_DRIVERS)}"
            )
        return TrackingUri("sql", base_scheme, uri, source)
    if base_scheme in REST_SCHEMES:
        return TrackingUri("rest", base_scheme, uri, source)
    raise UnsupportedStoreError(
        f"{source}: unsupported tracking URI scheme {scheme!r} in {hide(uri)!r}; expected a "
        f"path or file:// (file store), sqlite://, postgresql://, mysql://, mssql:// "
        f"(SQL store), or http(s):// / databricks (tracking server)"
    )


def _absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def _absolute_sqlite(uri: str, parts, cwd: str) -> str:
    # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them.
    path = unquote(parts.path)
    if path in ("", "/") or path == "/:memory:":
        raise ConfigurationError(f"tracking URI {hide(uri)!r}: an in-memory SQLite database holds no store")
    if not uri.lower().startswith(f"{parts.scheme.lower()}:///"):
        raise ConfigurationError(
            f"tracking URI {hide(uri)!r}: expected sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    relative = path[1:] if path.startswith("/") else path
    absolute = relative if relative.startswith("/") else _absolute(relative, cwd)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}:///{absolute}{query}"
