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

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import tables
from ..errors import ConfigurationError
from ..redact import remember
from ..stores.base import Selection
from ..uri import TrackingUri, resolve_tracking_uri
from .columns import EVOLVED_TABLES
from .config import DEFAULT_TABLES, SyncConfig
from .plan import COMMIT_ORDER
from .traces import TRACE_TABLES

log = logging.getLogger("pyspark_experiments.sync")


def kept_tables(optional: Iterable[str]) -> tuple[str, ...]:
    """Every table a sync keeps: the six run tables and the ``optional`` ones, in
    :data:`COMMIT_ORDER`.

    Example::

        >>> kept_tables(["models"])
        ('experiments', 'params', 'tags', 'inputs', 'metrics', 'runs', 'models')
    """
    optional = set(optional)
    return tuple(t for t in COMMIT_ORDER if t in tables.TABLE_NAMES or t in optional)


def chosen_optional_tables(served: Iterable[str], asked: Iterable[str] | None, default: Iterable[str],
                           store: str) -> tuple[str, ...]:
    """The optional tables a sync keeps: those ``asked`` for (all must be ``served`` by the
    store, else a :class:`~pyspark_experiments.errors.ConfigurationError` naming ``store``),
    or, when none were asked for, the ``default`` ones the store serves.

    Example::

        >>> chosen_optional_tables(["runs", "models"], None, ["models", "model_versions"], "/m")
        ('models',)
        >>> chosen_optional_tables(["runs"], ["artifacts"], [], "/m")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: setting 'tables': /m does not serve artifacts (it serves no optional table)
    """
    served = tuple(served)
    if asked is None:
        return tuple(t for t in default if t in served)
    missing = [t for t in asked if t not in served]
    if missing:
        raise ConfigurationError(
            f"setting 'tables': {store} does not serve {', '.join(missing)} "
            f"(it serves {', '.join(t for t in served if t not in tables.TABLE_NAMES) or 'no optional table'})"
        )
    return tuple(asked)


def takes_store_token(change_token: bool, full: bool, reconcile_purged: bool, relist_artifacts: bool) -> bool:
    """Whether a sync takes the store's change token and may skip its scan: the store takes
    tokens (``change_token``) and the sync neither re-reads everything, nor reconciles purged
    runs, nor re-lists artifacts (those look beyond the store's tables).

    Example::

        >>> takes_store_token(True, False, False, False), takes_store_token(True, True, False, False)
        (True, False)
    """
    return change_token and not full and not reconcile_purged and not relist_artifacts


def scope_digest(store: str, experiments: Iterable[str] | None, optional: Iterable[str], read_mode: str,
                 state_key: str, positions_key: str) -> str:
    """A digest of what, besides the store's content, decides what a sync reads: the store,
    the experiments and optional tables asked for, the read mode and the kind of state; and the
    columns of the tables that gained some (:mod:`.columns`), so that a target synced before
    scans once and gets them even when the store has not changed.

    Example::

        >>> len(scope_digest("/m", None, ["models"], "FAILFAST", "file", "file:bytes:exact"))
        40
    """
    scope = [store, list(experiments or []), list(optional), read_mode, state_key, positions_key,
             *(tables.spark_schema(table).fieldNames() for table in EVOLVED_TABLES)]
    return hashlib.sha1(json.dumps(scope).encode()).hexdigest()


@dataclass(frozen=True)
class SyncScope:
    """The store a sync reads and how: ``cfg`` (validated), the resolved ``uri``, the opened
    ``store`` and the ``store_options`` its executor reads take (a tracking server's REST
    options), the ``optional`` tables kept, and the ``digest`` of all that
    (:func:`scope_digest`).

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
        """Every table this sync keeps, in :data:`~.plan.COMMIT_ORDER` (:func:`kept_tables`)."""
        return kept_tables(self.optional)

    @property
    def keeps_traces(self) -> bool:
        """Whether this sync keeps a trace table (``traces``, ``spans``, ``assessments``)."""
        return any(t in self.optional for t in TRACE_TABLES)

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
        (:func:`takes_store_token`); None otherwise.

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
    (:func:`chosen_optional_tables`).

    Example::

        >>> open_scope(SyncConfig(tracking_uri="sqlite:///mlflow.db", target_path="/tmp/d")).uri.kind  # doctest: +SKIP
        'sql'
    """
    from ..stores import open_store

    uri = resolve_tracking_uri(cfg.tracking_uri)  # remembers the URI's credentials (redact)
    # A tracking server's options (concurrency, retries, TLS, credential overrides) go to the
    # store, and to the executors' reads as data source options (Spark redacts the secret ones).
    store_options = dict(cfg.rest_options)
    store = open_store(uri, store_options or None)
    if uri.kind == "rest":
        # Whatever its source (options, environment, ~/.mlflow/credentials, ~/.databrickscfg).
        remember(store.connection.credential.secret)
    caps = store.capabilities
    # The sync follows traces by their fingerprints: a store that takes none serves no trace table to it.
    served = tuple(t for t in caps.tables if caps.trace_fingerprints or t not in TRACE_TABLES)
    optional = chosen_optional_tables(served, cfg.tables, DEFAULT_TABLES, uri.display)
    digest = scope_digest(uri.display, cfg.experiments, optional, cfg.read_mode, caps.state_key, caps.positions_key)
    return SyncScope(cfg, uri, store, store_options, optional, digest)
