"""MLflow's SQL tracking store (SQLite, PostgreSQL, MySQL/MariaDB), read as Arrow columns.

The store (:mod:`.store`) plans and detects changes; :mod:`.connections` opens SQLite and
PostgreSQL connections (DB-API drivers for planning, ADBC for reads) and runs the queries,
:mod:`.mysql` is the MySQL dialect and its connections, :mod:`.dialects` declares what differs
between the databases, :mod:`.reads` reads the tables, :mod:`.encodings` decodes MLflow's
encodings with Arrow compute and :mod:`.models` reads the logged-model and registry tables.

Example::

    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> store = SqlStore(resolve_tracking_uri("sqlite:////tmp/mlflow.db"))  # doctest: +SKIP
    >>> store.capabilities.exact_metric_ranges                               # doctest: +SKIP
    True
"""

from .store import SqlStore

__all__ = ["SqlStore"]
