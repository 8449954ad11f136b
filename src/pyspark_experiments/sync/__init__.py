"""Keep Delta Lake tables in step with an MLflow tracking store: incremental, idempotent,
crash-safe. How it works, the lock, the state and the costs: ``docs/sync.md``.

:func:`sync` copies a tracking store into six Delta tables (``experiments``, ``runs``,
``metrics``, ``params``, ``tags``, ``inputs``), and the optional ``models``,
``registered_models``, ``model_versions`` (by default), ``artifacts`` and the trace tables
``traces``, ``spans``, ``assessments`` (when asked: option ``tables``), in a folder or a catalog
schema;
``pyspark-experiments sync --config conf/sync.toml`` runs it as a scheduled job. The package's
parts: :mod:`.config` (settings), :mod:`.state` (the ``_sync_state`` table), :mod:`.plan` (the
decisions, pure functions; the trace tables' in :mod:`.traces`), :mod:`.scope` (the store a sync covers), :mod:`.scan`, :mod:`.reads`
and :mod:`.writes` (the Spark side), :mod:`.result` (what a sync did), :mod:`.faults` (the crash
hook of the tests), :mod:`.runner` (the order of the steps), :mod:`.cli` (the command).

Example::

    >>> from pyspark_experiments.sync import sync
    >>> result = sync("sqlite:///mlflow.db", "/tmp/mlflow-delta", spark=spark)   # doctest: +SKIP
    >>> print(result.summary())                                                 # doctest: +SKIP
"""

from __future__ import annotations

from ..errors import ConfigurationError, TargetLockedError
from ..jobs.lock import LOCK_PREFIX, LOCK_TABLE
from ..jobs.run import EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK
from .cli import config_from_args, main
from .config import READ_MODES, SyncConfig
from .faults import KILL_ENV
from .plan import COMMIT_ORDER, Flags, Plan, Scan, make_plan
from .result import SyncResult, TableResult
from .runner import sync
from .state import STATE_TABLE, SyncState

#: Another job holds the target's lock (the target's error; kept under the sync's old name).
SyncLockedError = TargetLockedError
#: An invalid sync configuration (the package's ConfigurationError, a ValueError).
ConfigError = ConfigurationError
#: The old name of the invalid-configuration exit code.
EXIT_USAGE = EXIT_CONFIG

__all__ = [
    "COMMIT_ORDER",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "KILL_ENV",
    "LOCK_PREFIX",
    "LOCK_TABLE",
    "READ_MODES",
    "STATE_TABLE",
    "ConfigError",
    "Flags",
    "Plan",
    "Scan",
    "SyncConfig",
    "SyncLockedError",
    "SyncResult",
    "SyncState",
    "TableResult",
    "config_from_args",
    "main",
    "make_plan",
    "sync",
]
