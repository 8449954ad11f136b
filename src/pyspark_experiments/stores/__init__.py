"""Store backends: one module per tracking-store format, behind :class:`base.Store`.

Example::

    >>> from pyspark_experiments.stores import open_store
    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> open_store(resolve_tracking_uri("/tmp/mlruns"))
    FileStore('/tmp/mlruns')
"""

from __future__ import annotations

from ..uri import TrackingUri
from .base import Store


def open_store(uri: TrackingUri, options: dict | None = None) -> Store:
    """The backend for a resolved tracking URI (no connection is opened here).

    ``options`` are the read's connection options (credentials, TLS, retries); only REST stores
    take them.

    Example::

        >>> from pyspark_experiments.uri import resolve_tracking_uri
        >>> type(open_store(resolve_tracking_uri("sqlite:////tmp/mlflow.db"))).__name__
        'SqlStore'
    """
    if options and uri.kind != "rest":
        from ..errors import ConfigurationError

        raise ConfigurationError(
            f"option(s) {', '.join(sorted(options))} apply to tracking servers (http://, https://, databricks) "
            f"only, not to {uri.display!r}"
        )
    if uri.kind == "sql":
        from .sql import SqlStore

        return SqlStore(uri)
    if uri.kind == "file":
        from .file import FileStore

        return FileStore(uri)
    if uri.kind == "rest":
        from .rest import RestStore

        return RestStore(uri, options)
    raise ValueError(f"tracking URI {uri.display!r}: unknown store kind {uri.kind!r}")
