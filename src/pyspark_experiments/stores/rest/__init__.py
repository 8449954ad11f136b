"""MLflow tracking servers and Databricks workspaces, read over MLflow's REST API.

- :mod:`.settings`: options, retry policy, the resolved :class:`~.settings.Connection`
  (no HTTP library needed);
- :mod:`.auth`: where credentials come from (MLflow's and Databricks' rules);
- :mod:`.client`: HTTP calls with retries, backoff, throttling and clear errors (``requests``);
- :mod:`.transport`: ``requests`` sessions whose attempts end at a deadline, body included;
- :mod:`.convert`: MLflow's REST JSON as Arrow batches;
- :mod:`.store`: the :class:`~.store.RestStore` backend.

Example::

    >>> from pyspark_experiments.stores import open_store
    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> open_store(resolve_tracking_uri("http://127.0.0.1:5000"))
    RestStore('http://127.0.0.1:5000')
"""

from __future__ import annotations

from .settings import REST_OPTIONS, SECRET_OPTIONS
from .store import RestStore

__all__ = ["REST_OPTIONS", "SECRET_OPTIONS", "RestStore"]
