"""The sync's settings: :class:`SyncConfig`, from a TOML file (the job layer's loader), flags
or keyword arguments.

Example::

    >>> cfg = SyncConfig(tracking_uri="sqlite:///mlflow.db", target_path="/tmp/delta")
    >>> cfg.override(full=True).full
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import tables as _tables
from ..errors import ConfigurationError
from ..jobs.config import CommandConfig, Key, Layout, job_layout
from ..redact import remember
from ..stores.rest.settings import REST_OPTIONS, SECRET_OPTIONS
from .plan import OPTIONAL_TABLES

READ_MODES = ("FAILFAST", "PERMISSIVE")

#: The optional tables a sync keeps unless told otherwise (``tables``): the logged models and the
#: registry (one small read each per sync). ``artifacts`` lists every changed run's artifact
#: store, which may be slow or unreachable from the sync's machine: asked for by name.
DEFAULT_TABLES = (_tables.MODELS, _tables.REGISTERED_MODELS, _tables.MODEL_VERSIONS)


_REST_NAMES = {name.lower(): name for name in REST_OPTIONS}


def rest_options(value: Any) -> dict:
    """REST options (``[store.rest]``, ``--rest-option``, ``rest_options=``) checked and
    spelled as the data source spells them; values as strings. A secret's value is hidden from
    every job output from here on.

    Example::

        >>> rest_options({"maxconcurrentrequests": 4, "insecureTls": True})
        {'maxConcurrentRequests': '4', 'insecureTls': 'true'}
    """
    if not isinstance(value, dict):
        raise ConfigurationError(f"REST options: expected a table of option = value, got {type(value).__name__}")
    found = {}
    for key, item in value.items():
        name = _REST_NAMES.get(str(key).strip().lower())
        if name is None:
            raise ConfigurationError(
                f"REST option {str(key)!r}: unknown; expected one of {', '.join(REST_OPTIONS)}"
            )
        if isinstance(item, (dict, list, tuple)) or item is None:
            raise ConfigurationError(f"REST option {name!r}: expected a string, number or boolean")
        text = str(item).lower() if isinstance(item, bool) else str(item)
        if name in SECRET_OPTIONS:
            remember(text)
        found[name] = text
    return found


def optional_tables(value: Any) -> tuple[str, ...]:
    """The optional tables to keep (``[sync] tables``, ``--tables``, ``tables=``): a list or a
    comma-separated string of :data:`~.plan.OPTIONAL_TABLES` names, ``"none"`` or empty for none;
    in their canonical order.

    Example::

        >>> optional_tables("Artifacts, models")
        ('artifacts', 'models')
        >>> optional_tables("none")
        ()
    """
    if isinstance(value, str):
        value = [] if value.strip().lower() == "none" else value.split(",")
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError(f"setting 'tables': expected a list of {', '.join(OPTIONAL_TABLES)}, got {value!r}")
    names = {str(item).strip().lower() for item in value if str(item).strip()}
    for name in sorted(names - set(OPTIONAL_TABLES)):
        always = name in _tables.TABLE_NAMES
        raise ConfigurationError(
            f"setting 'tables': {name!r} "
            + ("is always synced; " if always else "is not a table; ")
            + f"this setting lists the optional tables to keep besides the six run tables: {', '.join(OPTIONAL_TABLES)} "
            f"(or none)"
        )
    return tuple(t for t in OPTIONAL_TABLES if t in names)


#: The TOML layout of ``conf/sync.toml``: section -> key -> the setting it fills.
LAYOUT: dict[str, dict[str, Key]] = job_layout(
    store={
        "read_mode": Key("read_mode", (str,), "FAILFAST or PERMISSIVE", READ_MODES, kind="upper"),
        "rest": Key("rest_options", (dict,),
                    "a table of REST options (maxConcurrentRequests = 4, ...) with string, number or boolean values",
                    kind=rest_options),
    },
    sync={
        "full": Key("full", (bool,), "true or false", kind="bool"),
        "reconcile_purged": Key("reconcile_purged", (bool,), "true or false", kind="bool"),
        "optimize": Key("optimize", (bool,), "true or false", kind="bool"),
        "lock_timeout_minutes": Key("lock_timeout_minutes", (int, float), "a number of minutes", kind="number"),
        "tables": Key("tables", (list,), f"a list of optional tables, of {', '.join(OPTIONAL_TABLES)}",
                      kind=optional_tables),
        "relist_artifacts": Key("relist_artifacts", (bool,), "true or false", kind="bool"),
    },
)


@dataclass(frozen=True)
class SyncConfig(CommandConfig):
    """What to sync where, from a TOML file (:meth:`from_toml`), flags, or keyword arguments;
    the shared settings (store, target, Spark, logging) are :class:`CommandConfig`'s.

    Exactly one of ``target_path`` (a folder of Delta tables, any Hadoop path such as
    ``s3a://bucket/mlflow``) and ``target_schema`` (a catalog schema, ``schema`` or
    ``catalog.schema``) is required. ``experiments``: ids or names; none means every experiment
    of the store, deleted ones included. ``tracking_uri``: none means MLflow's rules
    (``MLFLOW_TRACKING_URI``, then the defaults); prefer the environment variable for URIs that
    hold a password.

    Example::

        >>> cfg = SyncConfig(tracking_uri="sqlite:///mlflow.db", target_path="/tmp/delta")
        >>> cfg.override(full=True, experiments=None).full
        True
        >>> SyncConfig.from_toml("conf/sync.toml").target_path
        'mlflow-delta'
    """

    full: bool = False
    reconcile_purged: bool = False
    optimize: bool = False
    read_mode: str = "FAILFAST"
    # Options of a tracking server read (http(s)://, databricks), as the data source takes them:
    # concurrency, retries, TLS, credential overrides (see stores/rest/settings.py).
    rest_options: dict = field(default_factory=dict, repr=False)
    lock_timeout_minutes: float = 360.0
    tables: tuple[str, ...] | None = None  # None: DEFAULT_TABLES
    relist_artifacts: bool = False

    LAYOUT: ClassVar[Layout] = LAYOUT

    def override(self, **changes) -> SyncConfig:
        """A copy with ``changes`` applied; ``None`` values leave a setting as it is; REST
        options given later add to (and win over) earlier ones.

        Example::

            >>> SyncConfig(target_path="/a").override(target_path=None, full=True).target_path
            '/a'
        """
        clean = self.coerce_changes(changes)
        if "rest_options" in clean:
            clean["rest_options"] = {**self.rest_options, **clean["rest_options"]}
        return dataclasses.replace(self, **clean)

    def validate(self) -> SyncConfig:
        """Check the settings together; returns ``self``.

        Example::

            >>> SyncConfig(target_path="/tmp/delta").validate().read_mode
            'FAILFAST'
        """
        self.check_shared(need_target=True)
        if self.read_mode not in READ_MODES:
            raise ConfigurationError(f"read_mode {self.read_mode!r}: expected one of {', '.join(READ_MODES)}")
        if self.lock_timeout_minutes <= 0:
            raise ConfigurationError("lock_timeout_minutes must be positive")
        return self
