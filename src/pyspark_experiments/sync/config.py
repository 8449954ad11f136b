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
from typing import Any

from .. import tables as _tables
from ..errors import ConfigurationError
from ..jobs import LOG_LEVELS, Key, job_layout, load_config, parse_config
from ..stores.rest.settings import REST_OPTIONS, SECRET_OPTIONS
from .plan import OPTIONAL_TABLES

READ_MODES = ("FAILFAST", "PERMISSIVE")

#: The optional tables a sync keeps unless told otherwise (``tables``): the logged models and the
#: registry (one small read each per sync). ``artifacts`` lists every changed run's artifact
#: store, which may be slow or unreachable from the sync's machine: asked for by name.
DEFAULT_TABLES = (_tables.MODELS, _tables.REGISTERED_MODELS, _tables.MODEL_VERSIONS)

#: The TOML layout of ``conf/sync.toml``: section -> key -> the setting it fills.
LAYOUT: dict[str, dict[str, Key]] = job_layout(
    store={
        "read_mode": Key("read_mode", (str,), "FAILFAST or PERMISSIVE", READ_MODES),
        "rest": Key("rest_options", (dict,),
                    "a table of REST options (maxConcurrentRequests = 4, ...) with string, number or boolean values"),
    },
    sync={
        "full": Key("full", (bool,), "true or false"),
        "reconcile_purged": Key("reconcile_purged", (bool,), "true or false"),
        "optimize": Key("optimize", (bool,), "true or false"),
        "lock_timeout_minutes": Key("lock_timeout_minutes", (int, float), "a number of minutes"),
        "tables": Key("tables", (list,), f"a list of optional tables, of {', '.join(OPTIONAL_TABLES)}"),
        "relist_artifacts": Key("relist_artifacts", (bool,), "true or false"),
    },
)


@dataclass(frozen=True)
class SyncConfig:
    """What to sync where, from a TOML file (:meth:`from_toml`), flags, or keyword arguments.

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
    """

    tracking_uri: str | None = None
    experiments: tuple[str, ...] | None = None
    target_path: str | None = None
    target_schema: str | None = None
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
    master: str | None = None
    spark_conf: dict = field(default_factory=dict)
    spark_log_level: str = "ERROR"
    log_level: str = "INFO"
    progress: bool | None = None  # None: when stderr is a terminal

    @classmethod
    def from_toml(cls, path: str) -> SyncConfig:
        """Load a config file (see ``conf/sync.toml``); unknown sections or keys, wrong types,
        a missing file or a folder are :class:`ConfigurationError`\\ s naming the key and file.

        Example::

            >>> SyncConfig.from_toml("conf/sync.toml").target_path
            'mlflow-delta'
        """
        return cls().override(**load_config(path, LAYOUT))

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> SyncConfig:
        """Build a config from the TOML layout (sections ``store``, ``target``, ``sync``, ...).

        Example::

            >>> SyncConfig.from_dict({"target": {"path": "/tmp/delta"}}).target_path
            '/tmp/delta'
        """
        return cls().override(**parse_config(data, LAYOUT, source))

    def override(self, **changes) -> SyncConfig:
        """A copy with ``changes`` applied; ``None`` values leave a setting as it is.

        Example::

            >>> SyncConfig(target_path="/a").override(target_path=None, full=True).target_path
            '/a'
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
        clean = {k: _coerce(k, v) for k, v in changes.items() if v is not None}
        if "rest_options" in clean:  # options given later add to (and win over) earlier ones
            clean["rest_options"] = {**self.rest_options, **clean["rest_options"]}
        return dataclasses.replace(self, **clean)

    def validate(self) -> SyncConfig:
        """Check the settings together; returns ``self``.

        Example::

            >>> SyncConfig(target_path="/tmp/delta").validate().read_mode
            'FAILFAST'
        """
        if bool(self.target_path) == bool(self.target_schema):
            raise ConfigurationError(
                "set exactly one target: a folder of Delta tables (--target-path, [target] path) "
                "or a catalog schema (--target-schema, [target] schema)"
            )
        if self.read_mode not in READ_MODES:
            raise ConfigurationError(f"read_mode {self.read_mode!r}: expected one of {', '.join(READ_MODES)}")
        if self.lock_timeout_minutes <= 0:
            raise ConfigurationError("lock_timeout_minutes must be positive")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigurationError(f"log level {self.log_level!r}: expected DEBUG, INFO, WARNING or ERROR")
        return self


_REST_NAMES = {name.lower(): name for name in REST_OPTIONS}


def rest_options(value: Any) -> dict:
    """REST options (``[store.rest]``, ``--rest-option``, ``rest_options=``) checked and
    spelled as the data source spells them; values as strings. A secret's value is hidden from
    every job output from here on.

    Example::

        >>> rest_options({"maxconcurrentrequests": 4, "insecureTls": True})
        {'maxConcurrentRequests': '4', 'insecureTls': 'true'}
    """
    from ..jobs import add_secret

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
            add_secret(text)
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


def _coerce(name: str, value: Any):
    if name == "rest_options":
        return rest_options(value)
    if name == "tables":
        return optional_tables(value)
    try:
        if name == "experiments":
            if isinstance(value, str):
                value = value.split(",")
            items = tuple(str(v).strip() for v in value if str(v).strip())
            return items or None
        if name in ("full", "reconcile_purged", "optimize", "relist_artifacts"):
            if isinstance(value, str):
                value = {"true": True, "false": False}[value.strip().lower()]
            if not isinstance(value, bool):
                raise TypeError
            return value
        if name == "progress":
            if isinstance(value, str):
                value = {"auto": None, "true": True, "false": False, "always": True, "never": False}[value.strip().lower()]
            return value
        if name == "lock_timeout_minutes":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if name == "spark_conf":
            if not isinstance(value, dict):
                raise TypeError
            return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}
        if name in ("read_mode", "log_level", "spark_log_level"):
            return str(value).strip().upper()
        return str(value)
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(f"setting {name!r}: invalid value {value!r}") from None
