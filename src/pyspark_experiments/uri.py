"""Tracking-URI resolution, by MLflow's rules, without importing mlflow.

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

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
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
        return redact(self.location)

    def __repr__(self) -> str:
        return f"TrackingUri(kind={self.kind!r}, uri={self.display!r}, source={self.source!r})"


_CREDENTIAL_IN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s]*)@")
_CREDENTIAL_IN_QUERY = re.compile(r"(?i)((?:password|passwd|pwd|token|secret|sslpassword)=)[^&\s]*")


def redact(text: str) -> str:
    """Hide passwords and tokens in ``text`` (URLs' userinfo, ``password=`` query values).

    Example::

        >>> redact("postgresql://u:pw@h/db?sslmode=require&password=x")
        'postgresql://u:***@h/db?sslmode=require&password=***'
    """

    def userinfo(match: re.Match) -> str:
        user, _, password = match.group("userinfo").partition(":")
        hidden = f"{user}:***" if password or ":" in match.group("userinfo") else user
        return f"{match.group('scheme')}{hidden}@"

    text = _CREDENTIAL_IN_URL.sub(userinfo, str(text))
    return _CREDENTIAL_IN_QUERY.sub(r"\1***", text)


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
        return TrackingUri("sql", base_scheme, uri, source)
    if base_scheme in REST_SCHEMES:
        return TrackingUri("rest", base_scheme, uri, source)
    raise ValueError(
        f"{source}: unsupported tracking URI scheme {scheme!r} in {redact(uri)!r}; expected a "
        f"path or file:// (file store), sqlite://, postgresql://, mysql://, mssql:// "
        f"(SQL store), or http(s):// / databricks (tracking server)"
    )


def _absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def _absolute_sqlite(uri: str, parts, cwd: str) -> str:
    # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them.
    path = unquote(parts.path)
    if path in ("", "/") or path == "/:memory:":
        raise ValueError(f"tracking URI {uri!r}: an in-memory SQLite database holds no store")
    relative = path[1:] if path.startswith("/") else path
    absolute = relative if relative.startswith("/") else _absolute(relative, cwd)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}:///{absolute}{query}"


def resolve_experiments(store, requested, view_type: str, table: str, environ=None) -> tuple[str, ...]:
    """Which experiments a read covers, by DESIGN.md's order.

    The load path (ids or names); else ``MLFLOW_EXPERIMENT_ID``; else
    ``MLFLOW_EXPERIMENT_NAME``; else every experiment the view type admits. For the run tables
    ``DELETED_ONLY`` looks in every experiment, since a deleted run may sit in an active one.
    An id or name that is not in the store is an error naming it.

    Example::

        >>> from pyspark_experiments.stores import open_store
        >>> store = open_store(resolve_tracking_uri("sqlite:///mlflow.db"))
        >>> resolve_experiments(store, ("Default",), "ACTIVE_ONLY", "runs")
        ('0',)
    """
    from .stores.base import lifecycle_stages

    environ = os.environ if environ is None else environ
    source = "load path"
    if not requested:
        if environ.get("MLFLOW_EXPERIMENT_ID", "").strip():
            requested, source = (environ["MLFLOW_EXPERIMENT_ID"].strip(),), "MLFLOW_EXPERIMENT_ID"
        elif environ.get("MLFLOW_EXPERIMENT_NAME", "").strip():
            requested, source = (environ["MLFLOW_EXPERIMENT_NAME"].strip(),), "MLFLOW_EXPERIMENT_NAME"
    known = store.list_experiments("ALL")
    if not requested:
        admitted = view_type if table == "experiments" or view_type != "DELETED_ONLY" else "ALL"
        return tuple(e.experiment_id for e in known if e.lifecycle_stage in lifecycle_stages(admitted))
    by_id = {e.experiment_id: e for e in known}
    by_name = {e.name: e for e in known}
    resolved: list[str] = []
    for item in requested:
        experiment = by_id.get(item) or by_name.get(item)
        if experiment is None:
            names = ", ".join(repr(e.name) for e in known[:10]) + (" ..." if len(known) > 10 else "")
            raise ValueError(
                f"{source}: no experiment with id or name {item!r} in the store at "
                f"{store.uri.display}; experiments there: {names or 'none'}"
            )
        if table == "experiments" and experiment.lifecycle_stage not in lifecycle_stages(view_type):
            continue
        if experiment.experiment_id not in resolved:
            resolved.append(experiment.experiment_id)
    return tuple(resolved)
