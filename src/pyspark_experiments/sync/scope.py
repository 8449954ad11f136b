"""What one sync covers: the tracking store (resolved, opened, its credentials hidden), its
capabilities, the optional tables kept and the settings that decide what is read. Opened once
per sync (:func:`open_scope`) and handed to the scan, the reads and the writes; never changed.

Example::

    >>> from pyspark_experiments.sync.config import SyncConfig
    >>> scope = open_scope(SyncConfig(tracking_uri="sqlite:///mlflow.db", target_path="/tmp/d"))  # doctest: +SKIP
    >>> scope.kept[:2], scope.view_type("runs")                                                    # doctest: +SKIP
    (('experiments', 'params'), 'ALL')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .. import jobs, tables
from ..stores.base import Selection
from ..uri import TrackingUri, resolve_tracking_uri
from .config import DEFAULT_TABLES, SyncConfig
from .plan import chosen_optional_tables, kept_tables, scope_digest, takes_store_token

log = logging.getLogger("pyspark_experiments.sync")


@dataclass(frozen=True)
class SyncScope:
    """The store a sync reads and how: ``cfg`` (validated), the resolved ``uri``, the opened
    ``store`` and the ``store_options`` its executor reads take (a tracking server's REST
    options), the ``optional`` tables kept, and the ``digest`` of all that
    (:func:`~.plan.scope_digest`).

    Example::

        >>> scope.all_experiments, scope.caps.kind                          # doctest: +SKIP
        (True, 'sql')
    """

    cfg: SyncConfig
    uri: TrackingUri
    store: Any
    store_options: dict = field(repr=False)
    optional: tuple[str, ...]
    digest: str

    @property
    def caps(self):
        """The store's :class:`~pyspark_experiments.stores.base.StoreCapabilities`."""
        return self.store.capabilities

    @property
    def kept(self) -> tuple[str, ...]:
        """Every table this sync keeps, in :data:`~.plan.COMMIT_ORDER`."""
        return kept_tables(self.optional)

    @property
    def all_experiments(self) -> bool:
        """Whether every experiment of the store is synced (no ``experiments`` setting)."""
        return not self.cfg.experiments

    def view_type(self, table: str) -> str:
        """``ALL``, or ``ACTIVE_ONLY`` where the store serves ``table`` for active records only
        (a tracking server's logged models and model versions: deleted ones leave the table).

        Example::

            >>> scope.view_type("models")                                    # doctest: +SKIP
            'ACTIVE_ONLY'
        """
        return "ACTIVE_ONLY" if table in self.caps.active_only_tables else "ALL"

    def metrics_selection(self, experiment_ids: tuple[str, ...], **narrowing) -> Selection:
        """The synced experiments' metric history, every view type, in the sync's read mode.

        Example::

            >>> scope.metrics_selection(("1",)).table                        # doctest: +SKIP
            'metrics'
        """
        return Selection(tables.METRICS, experiment_ids, view_type="ALL", mode=self.cfg.read_mode, **narrowing)

    def store_token(self) -> str | None:
        """The store's change token, where it takes them and this sync may skip its scan
        (:func:`~.plan.takes_store_token`); None otherwise.

        Example::

            >>> scope.store_token()                                          # doctest: +SKIP
            '4711'
        """
        cfg = self.cfg
        if not takes_store_token(self.caps.change_token, cfg.full, cfg.reconcile_purged, cfg.relist_artifacts):
            return None
        return self.store.change_token()


def open_scope(cfg: SyncConfig) -> SyncScope:
    """Resolve and open the store of a validated ``cfg``, hiding its password (and, for a
    tracking server, its credential, resolved now: a missing one fails before the lock) from
    every job output from here on; choose the optional tables
    (:func:`~.plan.chosen_optional_tables`).

    Example::

        >>> open_scope(SyncConfig(tracking_uri="sqlite:///mlflow.db", target_path="/tmp/d")).uri.kind  # doctest: +SKIP
        'sql'
    """
    from ..stores import open_store

    uri = resolve_tracking_uri(cfg.tracking_uri)
    password = jobs.password_in(uri.location)
    jobs.add_secret(password)
    # A tracking server's options (concurrency, retries, TLS, credential overrides) go to the
    # store, and to the executors' reads as data source options (Spark redacts the secret ones).
    store_options = dict(cfg.rest_options)
    store = open_store(uri, store_options or None)
    if uri.kind == "rest":
        # Whatever its source (options, environment, ~/.mlflow/credentials, ~/.databrickscfg).
        secret = store.connection.credential.secret
        if secret != password:
            jobs.add_secret(secret)
    caps = store.capabilities
    optional = chosen_optional_tables(caps.tables, cfg.tables, DEFAULT_TABLES, uri.display)
    digest = scope_digest(uri.display, cfg.experiments, optional, cfg.read_mode, caps.state_key, caps.positions_key)
    return SyncScope(cfg, uri, store, store_options, optional, digest)
