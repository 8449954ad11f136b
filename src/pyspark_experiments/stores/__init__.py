"""Store backends: one module per tracking-store format, behind :class:`base.Store`.

Example::

    >>> from pyspark_experiments.stores import open_store
    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> open_store(resolve_tracking_uri("/tmp/mlruns"))
    FileStore('/tmp/mlruns')
"""

from __future__ import annotations

from ..errors import ConfigurationError, UnsupportedStoreError
from ..uri import TrackingUri
from .base import Store, StoreCapabilities
from .file import FileStore
from .resolve import resolve_experiments
from .sql import SqlStore


def open_store(uri: TrackingUri, options: dict | None = None) -> Store:
    """The backend for a resolved tracking URI (no connection is opened here).

    ``options`` are the read's connection options (credentials, TLS, retries); only REST stores
    take them.

    Example::

        >>> from pyspark_experiments.uri import resolve_tracking_uri
        >>> open_store(resolve_tracking_uri("sqlite:////tmp/mlflow.db")).capabilities.kind
        'sql'
    """
    if options and uri.kind != "rest":
        raise ConfigurationError(
            f"option(s) {', '.join(sorted(options))} apply to tracking servers (http://, https://, databricks) "
            f"only, not to {uri.display!r}"
        )
    if uri.kind == "sql":
        return SqlStore(uri)
    if uri.kind == "file":
        return FileStore(uri)
    if uri.kind == "rest":
        from .rest import RestStore

        return RestStore(uri, options)
    raise UnsupportedStoreError(f"tracking URI {uri.display!r}: unknown store kind {uri.kind!r}")


__all__ = ["FileStore", "SqlStore", "Store", "StoreCapabilities", "open_store", "resolve_experiments"]
