"""Keep Delta Lake tables in step with an MLflow tracking store: incremental, idempotent, crash-safe.

:func:`sync` copies a tracking store into six Delta tables, ``experiments``, ``runs``,
``metrics``, ``params``, ``tags`` and ``inputs`` (the schemas of :mod:`pyspark_experiments.tables`),
in a folder (``<folder>/<table>``) or a catalog schema (``<schema>.<table>``). The command
``pyspark-experiments sync --config conf/sync.toml`` runs it as a scheduled job.

How a run works:

1. It takes the target's lock: a claim (a table property) on the Delta table ``_sync_lock``;
   of two syncs started at once, the one whose claim comes first in the table's log holds it,
   the other stops with :class:`SyncLockedError`. A claim whose process is gone is taken over.
2. It reads its own state, the Delta table ``_sync_state``: what the last completed sync saw.
3. It scans the store cheaply, without reading metric histories: a *fingerprint* per run (run
   row, params, tags, inputs: one digest each) and a *position* per metric series (file store:
   bytes of the append-only metric file; SQLite: the largest ``rowid``), and compares them
   with the state.
4. It reads only what changed, through the same store backends as the ``experiments`` data
   source: new and changed runs, and for each changed series only the points between the saved
   and the current position (the data source's ``metricRanges`` option). Small reads happen on
   the driver, large ones on the executors.
5. It writes each table in one Delta commit, runs last: rows of runs the target has never seen
   and exactly-bounded new metric points are appended; changed runs are merged with ``MERGE``
   on the natural keys (:data:`tables.NATURAL_KEYS`, null- and NaN-safe), which also deletes
   tags that were deleted.
6. Only then it appends the new fingerprints and positions to ``_sync_state`` and withdraws its
   claim.

A job killed at any point leaves the old state in place and its claim behind. The next run takes
the claim over, re-reads everything the killed one may have written and, because the previous
run did not finish, merges all of it on the natural keys instead of appending: rows already
written are matched and left alone. The tables end exactly as a clean full sync leaves them.

Example::

    >>> from pyspark_experiments import session
    >>> from pyspark_experiments.sync import sync
    >>> spark = session(master="local[2]")
    >>> result = sync("sqlite:///mlflow.db", "/tmp/mlflow-delta", spark=spark)
    >>> print(result.summary())                                          # doctest: +SKIP
    >>> spark.read.format("delta").load("/tmp/mlflow-delta/runs").count() # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import tables
from .stores.base import FINGERPRINT_PARTS, fingerprint, fingerprint_parts
from .uri import TrackingUri, redact, resolve_tracking_uri

log = logging.getLogger("pyspark_experiments.sync")

#: The sync's own Delta table in the target: fingerprints, positions, run metadata, the lock.
STATE_TABLE = "_sync_state"

#: The order in which tables are committed: runs last, so that a run's row appears once its
#: params, tags, inputs and metrics are there.
COMMIT_ORDER = (tables.EXPERIMENTS, tables.PARAMS, tables.TAGS, tables.INPUTS, tables.METRICS, tables.RUNS)

#: Test hook: a comma-separated list of phases at which the process SIGKILLs itself, e.g.
#: ``after-merge:params`` or ``during:metrics`` (while that table's Spark job runs).
KILL_ENV = "PYSPARK_EXPERIMENTS_SYNC_KILL_AT"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: Another sync holds the target (EX_TEMPFAIL: a scheduler may retry later).
EXIT_LOCKED = 75

READ_MODES = ("FAILFAST", "PERMISSIVE")

# Above these sizes a narrowed read lists no run ids / ranges but reads all and filters.
_MAX_LISTED_RUNS = 5_000
_MAX_LISTED_SERIES = 50_000
# Up to these sizes, what changed is read on the driver through the same store backend the data
# source uses, and handed to Spark as one Arrow table: a Spark job per table costs more than the
# read itself. Larger reads go through the data source, spread over the executors.
_DRIVER_READ_RUNS = 500
_DRIVER_READ_POINTS = 250_000


class SyncError(RuntimeError):
    """A sync that cannot go on; the message says why and what to do."""


class SyncLockedError(SyncError):
    """Another sync holds the target's lock."""


class ConfigError(ValueError):
    """A sync configuration that is not valid (unknown key, wrong type, missing target)."""


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------

# TOML layout: section -> {key in the file: SyncConfig field}
_TOML_KEYS = {
    "store": {"tracking_uri": "tracking_uri", "experiments": "experiments", "read_mode": "read_mode"},
    "target": {"path": "target_path", "schema": "target_schema"},
    "sync": {
        "full": "full",
        "reconcile_purged": "reconcile_purged",
        "optimize": "optimize",
        "lock_timeout_minutes": "lock_timeout_minutes",
    },
    "spark": {"master": "master", "conf": "spark_conf", "log_level": "spark_log_level"},
    "logging": {"level": "log_level", "progress": "progress"},
}


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
    lock_timeout_minutes: float = 360.0
    master: str | None = None
    spark_conf: dict = field(default_factory=dict)
    spark_log_level: str = "ERROR"
    log_level: str = "INFO"
    progress: bool | None = None  # None: when stderr is a terminal

    @classmethod
    def from_toml(cls, path: str) -> SyncConfig:
        """Load a config file (see ``conf/sync.toml``); unknown sections or keys are errors.

        Example::

            >>> SyncConfig.from_toml("conf/sync.toml").target_path
            'mlflow-delta'
        """
        import tomllib

        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file {path!r} not found") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path!r}: not valid TOML: {error}") from None
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> SyncConfig:
        """Build a config from the TOML layout (sections ``store``, ``target``, ``sync``, ...).

        Example::

            >>> SyncConfig.from_dict({"target": {"path": "/tmp/delta"}}).target_path
            '/tmp/delta'
        """
        values: dict[str, Any] = {}
        for section, content in data.items():
            if section not in _TOML_KEYS:
                raise ConfigError(
                    f"{source}: unknown section [{section}]; expected {', '.join(f'[{s}]' for s in _TOML_KEYS)}"
                )
            if not isinstance(content, dict):
                raise ConfigError(f"{source}: [{section}] must be a table of keys")
            for key, value in content.items():
                if key not in _TOML_KEYS[section]:
                    raise ConfigError(
                        f"{source}: unknown key {key!r} in [{section}]; expected one of "
                        f"{', '.join(_TOML_KEYS[section])}"
                    )
                values[_TOML_KEYS[section][key]] = value
        return cls().override(**values)

    def override(self, **changes) -> SyncConfig:
        """A copy with ``changes`` applied; ``None`` values leave a setting as it is.

        Example::

            >>> SyncConfig(target_path="/a").override(target_path=None, full=True).target_path
            '/a'
        """
        clean = {k: _coerce(k, v) for k, v in changes.items() if v is not None}
        unknown = sorted(set(clean) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **clean)

    def validate(self) -> SyncConfig:
        """Check the settings together; returns ``self``.

        Example::

            >>> SyncConfig(target_path="/tmp/delta").validate().read_mode
            'FAILFAST'
        """
        if bool(self.target_path) == bool(self.target_schema):
            raise ConfigError(
                "set exactly one target: a folder of Delta tables (--target-path, [target] path) "
                "or a catalog schema (--target-schema, [target] schema)"
            )
        if self.read_mode not in READ_MODES:
            raise ConfigError(f"read_mode {self.read_mode!r}: expected one of {', '.join(READ_MODES)}")
        if self.lock_timeout_minutes <= 0:
            raise ConfigError("lock_timeout_minutes must be positive")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log level {self.log_level!r}: expected DEBUG, INFO, WARNING or ERROR")
        return self


def _coerce(name: str, value):
    try:
        if name == "experiments":
            if isinstance(value, str):
                value = [v for v in value.split(",")]
            items = tuple(str(v).strip() for v in value if str(v).strip())
            return items or None
        if name in ("full", "reconcile_purged", "optimize"):
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
            return float(value)
        if name == "spark_conf":
            if not isinstance(value, dict):
                raise TypeError
            return {str(k): str(v) for k, v in value.items()}
        if name in ("read_mode", "log_level", "spark_log_level"):
            return str(value).strip().upper()
        return str(value)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"setting {name!r}: invalid value {value!r}") from None


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------


@dataclass
class TableResult:
    """What one sync did to one table; ``version`` is the Delta version it wrote, if any."""

    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    version: int | None = None
    commits: int = 0


@dataclass
class SyncResult:
    """The outcome of :func:`sync`: per-table counts, Delta versions, what changed in the store.

    Example::

        >>> result = sync("sqlite:///mlflow.db", "/tmp/delta", spark=spark)   # doctest: +SKIP
        >>> result.tables["runs"].inserted                                    # doctest: +SKIP
        42
    """

    store: str
    target: str
    mode: str  # "full" or "incremental"
    started_at: datetime
    duration_s: float = 0.0
    experiments: int = 0
    runs: int = 0
    new_runs: int = 0
    changed_runs: int = 0
    purged_runs: int = 0
    series_read: int = 0
    tables: dict[str, TableResult] = field(default_factory=dict)
    state_version: int | None = None
    sync_id: int = 0

    def summary(self) -> str:
        """A one-screen report for a job log.

        Example::

            >>> print(result.summary())                                      # doctest: +SKIP
            pyspark-experiments sync #3: OK, incremental, 12.4 s
            ...
        """
        lines = [
            f"pyspark-experiments sync #{self.sync_id}: OK, {self.mode}, {self.duration_s:.1f} s "
            f"(started {self.started_at:%Y-%m-%d %H:%M:%S} UTC)",
            f"  store   {self.store}",
            f"          {self.experiments:,} experiments, {self.runs:,} runs: {self.new_runs:,} new, "
            f"{self.changed_runs:,} changed, {self.purged_runs:,} purged; "
            f"{self.series_read:,} metric series read",
            f"  target  {self.target}",
            "",
            f"  {'table':<12} {'inserted':>10} {'updated':>9} {'deleted':>9} {'unchanged':>11}  delta version",
        ]
        for name in COMMIT_ORDER:
            t = self.tables.get(name) or TableResult(name)
            version = "-" if t.version is None else (f"{t.version}" + (f" ({t.commits} commits)" if t.commits > 1 else ""))
            lines.append(
                f"  {name:<12} {t.inserted:>10,} {t.updated:>9,} {t.deleted:>9,} {t.unchanged:>11,}  {version}"
            )
        lines.append(f"  {STATE_TABLE:<12} {'':>10} {'':>9} {'':>9} {'':>11}  {self.state_version}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The result as plain data (JSON-ready).

        Example::

            >>> json.dumps(result.to_dict())                                # doctest: +SKIP
        """
        data = dataclasses.asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data


# ------------------------------------------------------------------------------------------------
# Target: a folder of Delta tables or a catalog schema
# ------------------------------------------------------------------------------------------------


class _Target:
    def __init__(self, spark, path: str | None = None, schema: str | None = None) -> None:
        self.spark = spark
        self.schema = schema
        if path is not None and "://" not in path and not path.startswith("file:"):
            path = os.path.abspath(os.path.expanduser(path))
        self.path = path.rstrip("/") if path else None

    @property
    def display(self) -> str:
        if self.path:
            return f"{redact(self.path)} (folder of Delta tables)"
        return f"{self.schema} (catalog schema)"

    def name(self, table: str) -> str:
        if self.path:
            return f"{self.path}/{table}"
        return ".".join(f"`{part}`" for part in [*self.schema.split("."), table])

    def sql_name(self, table: str) -> str:
        if self.path:
            return "delta.`{}`".format(self.name(table).replace("`", "``"))
        return self.name(table)

    def prepare(self) -> None:
        if self.schema:
            quoted = ".".join(f"`{part}`" for part in self.schema.split("."))
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")

    def exists(self, table: str) -> bool:
        from delta.tables import DeltaTable

        if self.path:
            return DeltaTable.isDeltaTable(self.spark, self.name(table))
        return self.spark.catalog.tableExists(self.name(table).replace("`", ""))

    def delta(self, table: str):
        from delta.tables import DeltaTable

        if self.path:
            return DeltaTable.forPath(self.spark, self.name(table))
        return DeltaTable.forName(self.spark, self.name(table))

    def read(self, table: str):
        if self.path:
            return self.spark.read.format("delta").load(self.name(table))
        return self.spark.read.table(self.name(table))

    def create(self, table: str, schema) -> None:
        from delta.tables import DeltaTable

        for attempt in range(3):
            builder = DeltaTable.createIfNotExists(self.spark)
            builder = builder.location(self.name(table)) if self.path else builder.tableName(self.name(table))
            try:
                builder.addColumns(schema).execute()
                return
            except Exception as error:  # two syncs creating the table at once
                if attempt == 2 or not _is_conflict(error):
                    raise
                time.sleep(0.5)

    def write(self, df, table: str, mode: str) -> None:
        writer = df.write.format("delta").mode(mode)
        if self.path:
            writer.save(self.name(table))
        else:
            writer.saveAsTable(self.name(table))

    # Table properties and history: metadata-only commits, no Spark job.

    def properties(self, table: str) -> dict[str, str]:
        # SHOW TBLPROPERTIES reads the table's metadata only (DESCRIBE DETAIL also counts its
        # files, which costs a Spark job after every commit).
        return {row["key"]: row["value"] for row in self.spark.sql(f"SHOW TBLPROPERTIES {self.sql_name(table)}").collect()}

    def set_property(self, table: str, key: str, value: str) -> None:
        self.spark.sql(f"ALTER TABLE {self.sql_name(table)} SET TBLPROPERTIES ({_sql_string(key)} = {_sql_string(value)})")

    def unset_property(self, table: str, key: str) -> None:
        self.spark.sql(f"ALTER TABLE {self.sql_name(table)} UNSET TBLPROPERTIES IF EXISTS ({_sql_string(key)})")

    def history(self, table: str, limit: int | None):
        return self.delta(table).history(limit).select("version", "operation", "operationParameters").collect()


def _is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a Delta commit conflict (another writer committed first)."""
    try:
        from delta.exceptions import (
            ConcurrentAppendException,
            ConcurrentDeleteDeleteException,
            ConcurrentDeleteReadException,
            ConcurrentTransactionException,
            ConcurrentWriteException,
            DeltaConcurrentModificationException,
            MetadataChangedException,
            ProtocolChangedException,
        )

        if isinstance(error, (
            ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
            ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
            MetadataChangedException, ProtocolChangedException,
        )):
            return True
    except ImportError:  # pragma: no cover
        pass
    text = str(error)
    return any(marker in text for marker in (
        "DELTA_CONCURRENT", "ConcurrentAppend", "ConcurrentDelete", "ConcurrentTransaction",
        "ConcurrentWrite", "ProtocolChanged", "MetadataChanged", "DELTA_PROTOCOL_CHANGED",
        "DELTA_METADATA_CHANGED", "FileAlreadyExistsException",
    ))


def _sql_string(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# ------------------------------------------------------------------------------------------------
# The lock: one table property per claimant on `_sync_lock`; the first claim in the log wins
# ------------------------------------------------------------------------------------------------

LOCK_TABLE = "_sync_lock"
LOCK_PREFIX = "pyspark_experiments.sync.lock."


def _holder() -> dict:
    pid = os.getpid()
    return {
        "holder": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": _process_start(pid),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _holder_alive(holder: dict, timeout_minutes: float) -> bool:
    """Whether the sync that holds a lock may still be running."""
    if holder.get("failed"):
        return False  # it gave the lock up when it failed
    if holder.get("host") == socket.gethostname():
        try:
            pid = int(holder.get("pid", 0))
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError, TypeError):
            return True
        started = holder.get("pid_start")
        return started is None or started == _process_start(pid)
    try:
        since = datetime.fromisoformat(holder["since"])
    except (KeyError, TypeError, ValueError):
        return False
    return datetime.now(UTC) - since < timedelta(minutes=timeout_minutes)


def _locked_message(holder: dict, target: str, timeout: float) -> str:
    return (
        f"another sync holds {target} since {holder.get('since', '?')} (host {holder.get('host', '?')}, "
        f"pid {holder.get('pid', '?')}); try again when it has finished. A lock whose process is "
        f"gone (same host) or older than {timeout:g} minutes (other hosts) is taken over."
    )


class _Lock:
    """Mutual exclusion between syncs of one target, with Delta's log as the arbiter.

    Each claimant sets its own table property ``pyspark_experiments.sync.lock.<id>`` on the
    ``_sync_lock`` table (a metadata-only commit, no Spark job) and then looks at the claims
    present: the one whose claim comes first in the table's log holds the lock; the others
    withdraw theirs and stop. A claim whose process is gone (or that was given up after a
    failure) is removed by the next claimant, which then redoes the dead sync's work.
    """

    def __init__(self, target: _Target, me: dict, timeout_minutes: float) -> None:
        self.target = target
        self.me = me
        self.key = LOCK_PREFIX + me["holder"]
        self.timeout = timeout_minutes
        self.taken_over: list[dict] = []

    def _claims(self) -> dict[str, dict]:
        claims = {}
        for key, value in self.target.properties(LOCK_TABLE).items():
            if key.startswith(LOCK_PREFIX):
                try:
                    claims[key] = json.loads(value)
                except ValueError:
                    claims[key] = {}
        return claims

    def acquire(self) -> None:
        for key, holder in self._claims().items():
            if _holder_alive(holder, self.timeout):
                raise SyncLockedError(_locked_message(holder, self.target.display, self.timeout))
            log.warning(
                "taking over the lock of a sync that %s (host %s, pid %s, since %s)",
                "failed" if holder.get("failed") else "is gone",
                holder.get("host"), holder.get("pid"), holder.get("since"),
            )
            try:
                self.target.unset_property(LOCK_TABLE, key)
            except Exception as error:
                if _is_conflict(error):
                    raise SyncLockedError(
                        f"another sync is taking over {self.target.display} at the same moment; "
                        f"this one stops without changing anything"
                    ) from None
                raise
            self.taken_over.append(holder)
        try:
            self.target.set_property(LOCK_TABLE, self.key, json.dumps(self.me, sort_keys=True))
        except Exception as error:
            if _is_conflict(error):  # another claim was committed at the same moment
                raise SyncLockedError(
                    f"another sync claimed {self.target.display} at the same moment; this one "
                    f"stops without changing anything"
                ) from None
            raise
        claims = self._claims()
        order = self._claim_versions(set(claims))
        first = min(claims, key=lambda k: (order.get(k, float("inf")), k))
        if first != self.key:
            self.target.unset_property(LOCK_TABLE, self.key)
            raise SyncLockedError(
                f"another sync claimed {self.target.display} at the same moment (host "
                f"{claims[first].get('host', '?')}, pid {claims[first].get('pid', '?')}); this one "
                f"stops without changing anything"
            )

    def _claim_versions(self, keys: set[str]) -> dict[str, int]:
        """The log version of the latest SET of each claim key."""
        found: dict[str, int] = {}
        for limit in (20, 500, None):
            for row in self.target.history(LOCK_TABLE, limit):
                if row["operation"] != "SET TBLPROPERTIES":
                    continue
                try:
                    changed = json.loads((row["operationParameters"] or {}).get("properties") or "{}")
                except ValueError:
                    continue
                for key in changed:
                    if key in keys and key not in found:
                        found[key] = int(row["version"])
            if set(found) >= keys:
                break
        return found

    def held(self) -> bool:
        value = self.target.properties(LOCK_TABLE).get(self.key)
        return value is not None and not json.loads(value).get("failed")

    def release(self) -> None:
        self.target.unset_property(LOCK_TABLE, self.key)

    def give_up(self) -> None:
        """After a failure: mark the claim as failed, so that the next sync takes it over at once
        and merges everything (this one may have committed some tables)."""
        try:
            failed = dict(self.me, failed=datetime.now(UTC).isoformat(timespec="seconds"))
            if self.key in self.target.properties(LOCK_TABLE):
                self.target.set_property(LOCK_TABLE, self.key, json.dumps(failed, sort_keys=True))
        except Exception as error:  # a dead holder's claim is taken over anyway
            log.warning("could not mark the lock as given up: %s", redact(str(error))[:300])


# ------------------------------------------------------------------------------------------------
# State: an append-only Delta log of fingerprints, positions and metadata
# ------------------------------------------------------------------------------------------------


def _state_schema():
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    return StructType([
        StructField("kind", StringType(), False),  # run | series | meta
        StructField("run_id", StringType(), True),
        StructField("key", StringType(), True),
        StructField("experiment_id", StringType(), True),
        StructField("value", StringType(), True),  # run: fingerprint (null: removed); meta: JSON
        StructField("position", LongType(), True),  # series: position (null: removed)
        StructField("sync_id", LongType(), False),
    ])


@dataclass
class _State:
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # run_id -> (experiment, fingerprint)
    series: dict[tuple[str, str], int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    stored_rows: int = 0

    @property
    def empty(self) -> bool:
        return not self.meta.get("sync")

    @property
    def live_rows(self) -> int:
        return len(self.runs) + len(self.series) + len(self.meta)

    @classmethod
    def from_arrow(cls, arrow) -> _State:
        state = cls(stored_rows=arrow.num_rows)
        columns = [arrow.column(name).to_pylist() for name in
                   ("kind", "run_id", "key", "experiment_id", "value", "position", "sync_id")]
        for kind, run_id, key, experiment_id, value, position, _ in sorted(zip(*columns), key=lambda r: r[6]):
            if kind == "run":
                if value is None:
                    state.runs.pop(run_id, None)
                else:
                    state.runs[run_id] = (experiment_id, value)
            elif kind == "series":
                if position is None:
                    state.series.pop((run_id, key), None)
                else:
                    state.series[(run_id, key)] = int(position)
            elif kind == "meta":
                state.meta[key] = json.loads(value)
        return state


# ------------------------------------------------------------------------------------------------
# Fault injection (tests) and progress
# ------------------------------------------------------------------------------------------------


def _fault(phase: str) -> None:
    """SIGKILL this process at ``phase`` when :data:`KILL_ENV` names it (crash tests)."""
    wanted = [p.strip() for p in os.environ.get(KILL_ENV, "").split(",") if p.strip()]
    if phase in wanted:
        log.warning("%s=%s: killing this process (SIGKILL) at %s", KILL_ENV, phase, phase)
        for handler in logging.getLogger("pyspark_experiments").handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _fault_during(phase: str, spark) -> None:
    """SIGKILL this process while a Spark job of ``phase`` runs, when :data:`KILL_ENV` names
    ``during:<phase>``."""
    wanted = [p.strip() for p in os.environ.get(KILL_ENV, "").split(",") if p.strip()]
    if f"during:{phase}" not in wanted:
        return
    tracker = spark.sparkContext.statusTracker()

    def watch() -> None:
        while True:
            for job in tracker.getActiveJobsIds():
                info = tracker.getJobInfo(job)
                for stage in (info.stageIds if info else []):
                    stage_info = tracker.getStageInfo(stage)
                    if stage_info is not None and stage_info.numActiveTasks > 0:
                        log.warning("%s=during:%s: killing this process (SIGKILL) in a running job", KILL_ENV, phase)
                        os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True, name=f"kill-during-{phase}").start()


class _Progress:
    """A one-line progress display on a terminal; log lines (with elapsed time) otherwise."""

    def __init__(self, enabled: bool, steps: int = 7) -> None:
        self.enabled = enabled
        self.steps = steps
        self.step_number = 0
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        self.step_number += 1
        elapsed = time.monotonic() - self.started
        log.info("[%d/%d] +%.1fs %s", self.step_number, self.steps, elapsed, text)
        if self.enabled:
            line = f"sync [{min(self.step_number, self.steps)}/{self.steps}] {elapsed:6.1f}s  {text}"
            sys.stderr.write("\r\033[K" + line[:200])
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ------------------------------------------------------------------------------------------------
# The sync
# ------------------------------------------------------------------------------------------------


def sync(
    tracking_uri: str | None = None,
    target_path: str | None = None,
    *,
    target_schema: str | None = None,
    experiments: Sequence[str] | str | None = None,
    full: bool | None = None,
    reconcile_purged: bool | None = None,
    optimize: bool | None = None,
    read_mode: str | None = None,
    lock_timeout_minutes: float | None = None,
    spark=None,
    config: SyncConfig | None = None,
    progress: bool | None = None,
) -> SyncResult:
    """Bring the Delta tables at the target in step with a tracking store; returns a summary.

    The first run copies everything; later runs read and write only what changed (see the
    module documentation). ``full=True`` re-reads everything and merges it (the tables end the
    same; use it after editing the target by hand). ``reconcile_purged=True`` also deletes the
    runs that are no longer in the store (``mlflow gc``) from every table; without it they stay.
    ``optimize=True`` compacts the tables' small files (Delta ``OPTIMIZE``) after the sync: each
    sync appends a few files, so run it now and then (say, nightly). Keyword arguments override
    ``config``. ``spark`` defaults to the active session, or a new
    :func:`pyspark_experiments.session`.

    Raises :class:`SyncLockedError` if another sync holds the target, :class:`ConfigError` for
    invalid settings, and the store's or Delta's error otherwise; in every case the target stays
    consistent and the next run completes the work.

    Example::

        >>> from pyspark_experiments import session
        >>> from pyspark_experiments.sync import sync
        >>> spark = session(master="local[2]")
        >>> result = sync("sqlite:///mlflow.db", "/tmp/mlflow-delta", spark=spark)
        >>> result.tables["runs"].inserted >= 0
        True
        >>> sync("sqlite:///mlflow.db", "/tmp/mlflow-delta", spark=spark).mode
        'incremental'
    """
    cfg = (config or SyncConfig()).override(
        tracking_uri=tracking_uri,
        target_path=target_path,
        target_schema=target_schema,
        experiments=experiments,
        full=full,
        reconcile_purged=reconcile_purged,
        optimize=optimize,
        read_mode=read_mode,
        lock_timeout_minutes=lock_timeout_minutes,
        progress=progress,
    ).validate()
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            from .session import session

            spark = session(app_name="pyspark-experiments-sync", master=cfg.master, config=cfg.spark_conf)
    from . import register

    register(spark)
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    with _small_table_settings(spark):
        steps = 7 + bool(cfg.reconcile_purged) + bool(cfg.optimize)
        return _Sync(spark, cfg, _Progress(bool(show), steps=steps)).run()


_SNAPSHOT_PARTITIONS = "spark.databricks.delta.snapshotPartitions"


@contextlib.contextmanager
def _small_table_settings(spark):
    """While the sync runs, Delta rebuilds the snapshots of small tables (its state, the lock)
    with as many tasks as the session has cores instead of Delta's default 50, unless the
    session sets ``spark.databricks.delta.snapshotPartitions`` itself (measured: a read after a
    commit took 10 s with 50 tasks, 3 s with 2, on 2 cores)."""
    if spark.conf.get(_SNAPSHOT_PARTITIONS, None) is not None:
        yield
        return
    cores = max(2, min(50, spark.sparkContext.defaultParallelism))
    spark.conf.set(_SNAPSHOT_PARTITIONS, str(cores))
    try:
        yield
    finally:
        spark.conf.unset(_SNAPSHOT_PARTITIONS)


@dataclass
class _Plan:
    """What one sync reads and how it writes it."""

    full: bool
    experiment_ids: tuple[str, ...]
    fingerprints: dict[str, tuple[str, str]]
    positions: dict[tuple[str, str], int]
    changed: dict[str, set[str]]  # table -> runs to re-read
    new_runs: set[str]  # runs the target has never seen: their rows can be appended
    ranges: dict[tuple[str, str], tuple[int, int]]
    append_metrics: bool
    metrics_exact: bool


class _Sync:
    def __init__(self, spark, cfg: SyncConfig, progress: _Progress) -> None:
        from .stores import open_store

        self.spark = spark
        self.cfg = cfg
        self.progress = progress
        self.uri: TrackingUri = resolve_tracking_uri(cfg.tracking_uri)
        self.store = open_store(self.uri)
        self.target = _Target(spark, cfg.target_path, cfg.target_schema)
        self.me = _holder()
        self.lock = _Lock(self.target, self.me, cfg.lock_timeout_minutes)
        self.created: set[str] = set()  # tables this sync created (empty)
        self.recovering = False  # the previous sync died or failed: merge everything
        self.rows: dict[str, int] = {}
        self.versions: dict[str, int] = {}
        self.experiment_ids: tuple[str, ...] = ()
        self.result = SyncResult(
            store=self.uri.display, target=self.target.display, mode="full",
            started_at=datetime.now(UTC).replace(microsecond=0),
        )

    # -- orchestration -------------------------------------------------------------------------

    def run(self) -> SyncResult:
        from concurrent.futures import ThreadPoolExecutor

        started = time.monotonic()
        log.info("sync: store %s -> target %s", self.uri.display, self.target.display)
        self.progress.step("taking the target's lock, reading the sync state, scanning the store")
        self.target.prepare()
        for table, schema in ((LOCK_TABLE, _lock_schema()), (STATE_TABLE, _state_schema())):
            if not self.target.exists(table):
                self.target.create(table, schema)
        # Three independent waits at once: the lock (Delta metadata commits), the state (a
        # Delta read) and the store scan (file sizes or one SQL query per table).
        scan_error = None
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sync-start") as pool:
            locking = pool.submit(self.lock.acquire)
            reading = pool.submit(self._read_state)
            try:
                scan = self._scan()
            except BaseException as error:  # noqa: BLE001 - re-raised below, after the lock
                scan_error = error
        if locking.exception() is not None:
            raise locking.exception()
        try:
            if scan_error is not None or reading.exception() is not None:
                raise scan_error or reading.exception()
            state, version = reading.result()
            if self._latest_version(STATE_TABLE) != version:  # a sync finished before this one got the lock
                state, version = self._read_state()
            self.state_read_version = version
            _fault("after-lock")
            last = state.meta.get("sync", {})
            # A claim taken over from a sync that had not saved its state: redo its work with
            # MERGE, since it may have committed some tables.
            self.recovering = any(h.get("holder") != last.get("holder") for h in self.lock.taken_over)
            if self.recovering:
                log.warning("the previous sync did not finish: this one merges everything it reads")
            self._sync(state, scan)
            self.progress.step("releasing the lock")
            self.lock.release()
        except BaseException:
            self.lock.give_up()
            raise
        finally:
            self.progress.done()
        self.result.duration_s = round(time.monotonic() - started, 2)
        log.info("sync #%d done in %.1f s", self.result.sync_id, self.result.duration_s)
        return self.result

    def _read_state(self) -> tuple[_State, int]:
        version = self._latest_version(STATE_TABLE)
        arrow = self.spark.sql(f"SELECT * FROM {self.target.sql_name(STATE_TABLE)} VERSION AS OF {version}").toArrow()
        return _State.from_arrow(arrow), version

    def _latest_version(self, table: str) -> int:
        return int(self.target.delta(table).history(1).select("version").collect()[0]["version"])

    def _sync(self, state: _State, scan: dict) -> None:
        cfg = self.cfg
        previous = state.meta.get("sync", {})
        if previous.get("store") and previous["store"] != self.uri.display:
            log.warning("the target was last synced from %s; now syncing %s into it", previous["store"], self.uri.display)
        self.result.sync_id = int(previous.get("sync_id", 0)) + 1
        self.rows = dict(state.meta.get("rows", {}))
        self.versions = dict(state.meta.get("versions", {}))
        self._average_series = int(self.rows.get(tables.METRICS, 0) / len(state.series)) if state.series else 0

        plan = self._plan(state, scan)
        _fault("after-scan")
        for table in COMMIT_ORDER:
            if (plan.full or table not in self.versions) and not self.target.exists(table):
                self.target.create(table, tables.spark_schema(table))
                self.created.add(table)
                self.rows[table], self.versions[table] = 0, self._latest_version(table)

        self.progress.step("experiments")
        self._sync_experiments(state, plan, scan["experiments"])

        # The tables are independent: their reads, writes and commits overlap. (A reader of the
        # target may see a run's new params a moment before its row, or the other way round.)
        per_run = (tables.PARAMS, tables.TAGS, tables.INPUTS, tables.RUNS)
        self.progress.step(
            ", ".join(f"{t}: {len(plan.changed[t]):,} runs" for t in per_run) + f", metrics: {len(plan.ranges):,} series"
        )
        self._parallel([(lambda t=t: self._sync_per_run(t, plan)) for t in per_run] + [lambda: self._sync_metrics(plan)])

        purged: set[str] = set()
        if cfg.reconcile_purged:
            self.progress.step("reconciling runs purged from the store")
            purged = self._reconcile_purged(plan.fingerprints)
        self.progress.step("saving the sync state")
        _fault("before-state")
        self._save_state(state, plan, purged)
        _fault("after-state")
        if cfg.optimize:
            self.progress.step("compacting small files (OPTIMIZE)")
            for table in (*COMMIT_ORDER, STATE_TABLE):
                self.spark.sql(f"OPTIMIZE {self.target.sql_name(table)}").collect()

    def _parallel(self, tasks) -> None:
        """Run independent table commits at once: their Spark jobs and commits overlap."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="sync") as pool:
            futures = [pool.submit(task) for task in tasks]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]

    @property
    def _all_experiments(self) -> bool:
        return not self.cfg.experiments

    # -- planning: what changed ------------------------------------------------------------------

    def _scan(self) -> dict:
        """What the store holds now, cheaply: experiment rows, run fingerprints, series positions."""
        import pyarrow as pa

        from .stores.base import Selection
        from .uri import resolve_experiments

        cfg = self.cfg
        experiment_ids = resolve_experiments(self.store, cfg.experiments, "ALL", tables.RUNS, environ={})
        self.experiment_ids = experiment_ids
        selection = Selection(tables.METRICS, experiment_ids, view_type="ALL", mode=cfg.read_mode)
        # Positions first: whatever is read later is at least as new as they are.
        positions = self._metric_positions(selection)
        fingerprints = self._run_fingerprints(dataclasses.replace(selection, table=tables.RUNS))
        # A handful of rows: read on the driver, through the store backend.
        selection = dataclasses.replace(selection, table=tables.EXPERIMENTS)
        batches = [b for p in self.store.plan(selection) for b in self.store.read(p)] if experiment_ids else []
        experiments = pa.Table.from_batches(batches, schema=tables.arrow_schema(tables.EXPERIMENTS))
        return {"experiment_ids": experiment_ids, "positions": positions, "fingerprints": fingerprints,
                "experiments": experiments}

    def _plan(self, state: _State, scan: dict) -> _Plan:
        cfg = self.cfg
        full = cfg.full or state.empty
        self.result.mode = "full" if full else "incremental"
        experiment_ids, positions, fingerprints = scan["experiment_ids"], scan["positions"], scan["fingerprints"]
        self.positions_kind = self._positions_kind()

        same_store_kind = state.meta.get("fingerprints") == type(self.store).__name__
        old_runs = state.runs if same_store_kind and not full else {}
        old_series = state.series if state.meta.get("positions") == self.positions_kind and not full else {}
        known = set(state.runs) if same_store_kind else set()

        changed: dict[str, set[str]] = {part: set() for part in FINGERPRINT_PARTS}
        for run_id, (_, value) in fingerprints.items():
            old = old_runs.get(run_id, (None, None))[1]
            if old == value:
                continue
            new_parts, old_parts = fingerprint_parts(value), fingerprint_parts(old)
            for part in FINGERPRINT_PARTS:
                if not new_parts or not old_parts or new_parts[part] != old_parts[part]:
                    changed[part].add(run_id)
        ranges: dict[tuple[str, str], tuple[int, int]] = {}
        shrunk = False
        for pair, position in positions.items():
            before = old_series.get(pair, 0)
            if position != before:
                if position < before:
                    log.warning("metric series %r of run %s shrank (position %d -> %d): re-reading it",
                                pair[1], pair[0], before, position)
                    shrunk, before = True, 0
                ranges[pair] = (before, position)
        # A run's row holds its params, tags and latest metrics, not its inputs.
        runs_changed = changed["run"] | changed["params"] | changed["tags"] | {r for r, _ in ranges}
        touched = runs_changed | changed["inputs"]
        # Reads bounded by the positions scanned above return exactly the points that are not
        # in the table yet when the previous sync completed with exact positions: those are
        # appended. Otherwise (first sync, --full, recovery, too many series to list) merged.
        exact = bool(getattr(self.store, "exact_metric_positions", False))
        bounded = len(ranges) <= _MAX_LISTED_SERIES
        plan = _Plan(
            full=full,
            experiment_ids=experiment_ids,
            fingerprints=fingerprints,
            positions=positions,
            changed={
                tables.PARAMS: changed["params"], tables.TAGS: changed["tags"],
                tables.INPUTS: changed["inputs"], tables.RUNS: runs_changed,
            },
            new_runs=set(fingerprints) - known,
            ranges=ranges,
            append_metrics=exact and bounded and not full and not shrunk and not self.recovering
            and bool(state.meta.get("metrics_exact")),
            metrics_exact=exact and bounded,
        )
        self.result.experiments = len(experiment_ids)
        self.result.runs = len(fingerprints)
        self.result.new_runs = len(touched & plan.new_runs)
        self.result.changed_runs = len(touched - plan.new_runs)
        self.result.series_read = len(ranges)
        log.info(
            "%s sync: %d experiments, %d runs (%d new, %d changed), %d metric series with new points",
            self.result.mode, len(experiment_ids), len(fingerprints), self.result.new_runs,
            self.result.changed_runs, len(ranges),
        )
        return plan

    def _positions_kind(self) -> str:
        exact = getattr(self.store, "exact_metric_positions", False)
        return f"{type(self.store).__name__}:{self.uri.scheme}:{'exact' if exact else 'count'}"

    def _metric_positions(self, selection) -> dict[tuple[str, str], int]:
        if not selection.experiment_ids:
            return {}
        try:
            return self.store.metric_positions(selection)
        except NotImplementedError:
            # A store without positions: point counts per series, through Spark.
            log.info("%s reports no metric positions: counting points per series", type(self.store).__name__)
            counts = self._reader(tables.METRICS).groupBy("run_id", "key").count().collect()
            return {(r["run_id"], r["key"]): int(r["count"]) for r in counts}

    def _run_fingerprints(self, selection) -> dict[str, tuple[str, str]]:
        if not selection.experiment_ids:
            return {}
        try:
            return self.store.run_fingerprints(selection)
        except NotImplementedError:
            from pyspark.sql import functions as F

            log.info("%s reports no run fingerprints: hashing the runs and inputs tables", type(self.store).__name__)
            columns = [c for c in tables.spark_schema(tables.RUNS).fieldNames() if c != "metrics"]
            runs = self._reader(tables.RUNS).select(
                "run_id", "experiment_id", F.sha2(F.to_json(F.struct(*columns)), 256).alias("h"))
            inputs = self._reader(tables.INPUTS).groupBy("run_id").agg(
                F.sha2(F.to_json(F.sort_array(F.collect_list(F.to_json(F.struct("*"))))), 256).alias("i"))
            rows = runs.join(inputs, "run_id", "left").collect()
            # One digest for the run's row (params and tags included), one for its inputs.
            return {
                r["run_id"]: (r["experiment_id"], fingerprint(
                    {"run": r["h"], "params": r["h"], "tags": r["h"], "inputs": str(r["i"])}))
                for r in rows
            }

    # -- reading ---------------------------------------------------------------------------------

    def _reader(self, table: str, run_ids=None, ranges=None):
        """The store's ``table`` through the ``experiments`` data source, read on the executors,
        narrowed to ``run_ids`` and, for metrics, to ``ranges``."""
        from pyspark.sql import functions as F

        reader = (
            self.spark.read.format("experiments")
            .option("trackingUri", self.uri.location)
            .option("table", table)
            .option("viewType", "ALL")
            .option("mode", self.cfg.read_mode)
        )
        if ranges is not None:
            listed: dict[str, dict[str, list[int]]] = {}
            for (run_id, key), (after, upto) in ranges.items():
                listed.setdefault(run_id, {})[key] = [after, upto]
            reader = reader.option("metricRanges", json.dumps(listed, separators=(",", ":")))
        semi = None
        if run_ids is not None and ranges is None:
            if len(run_ids) <= _MAX_LISTED_RUNS:
                reader = reader.option("runIds", ",".join(sorted(run_ids)))
            else:
                semi = self.spark.createDataFrame([(r,) for r in sorted(run_ids)], "run_id string")
        df = reader.load(",".join(self.experiment_ids))
        if semi is not None:
            df = df.join(F.broadcast(semi), "run_id", "left_semi")
        return df

    def _driver_read(self, table: str, run_ids=None, ranges=None):
        """A small read on the driver, through the store backend the data source uses: a Spark
        job per table would cost more than the read. Returns (DataFrame, rows)."""
        import pyarrow as pa

        from .stores.base import Selection

        selection = Selection(
            table, self.experiment_ids, view_type="ALL", mode=self.cfg.read_mode,
            run_ids=None if run_ids is None else tuple(sorted(run_ids)),
            metric_ranges=None if ranges is None else tuple(
                (run_id, key, after, upto) for (run_id, key), (after, upto) in sorted(ranges.items())
            ),
        )
        batches = [batch for partition in self.store.plan(selection) for batch in self.store.read(partition)]
        arrow = pa.Table.from_batches(batches, schema=tables.arrow_schema(table))
        return self._arrow_frame(arrow, table), arrow.num_rows

    def _arrow_frame(self, arrow, table: str):
        if arrow.num_rows == 0:  # pyspark 4.2 cannot convert an Arrow table without chunks
            return self.spark.createDataFrame([], schema=tables.spark_schema(table))
        # One file per table and sync, not one per core.
        return self.spark.createDataFrame(arrow, schema=tables.spark_schema(table)).coalesce(1)

    def _estimated_points(self, ranges: dict) -> int:
        """About how many points ``ranges`` hold (only chooses between driver and executors)."""
        if type(self.store).__name__ == "FileStore":  # positions are bytes, ~32 per point
            return sum(max(0, upto - after) // 32 + 1 for after, upto in ranges.values())
        # SQL positions are rowids (or counts): a range spans other series' rows too; cap each
        # range at the average series length of the last sync.
        average = self._average_series or 1_000
        return sum(min(max(0, upto - after), average) for after, upto in ranges.values())

    # -- writing ---------------------------------------------------------------------------------

    def _commit_info(self, table: str) -> tuple[int, dict, int | None]:
        """The table's latest version, and the metrics and read version of its latest commit
        that changed data (an OPTIMIZE, e.g. Delta's auto compaction, may follow a write)."""
        rows = self.target.delta(table).history(3).select(
            "version", "operation", "operationMetrics", "readVersion").collect()
        data = next((r for r in rows if r["operation"] != "OPTIMIZE"), rows[0])
        read = data["readVersion"]
        return int(rows[0]["version"]), dict(data["operationMetrics"] or {}), None if read is None else int(read)

    def _known_rows(self, table: str) -> int:
        """Rows in ``table`` as the state knows them (counted when it does not)."""
        if table not in self.rows:
            self.rows[table] = self.target.read(table).count()
        return int(self.rows[table])

    def _finish_write(self, table: str, *, inserted: int | None = None, updated: int = 0, deleted: int = 0,
                      rows_after: int | None = None) -> None:
        """Book a commit just made to ``table``: its version and row counts, from one look at
        the table's history (the commit's read version tells whether anybody else wrote)."""
        version, metrics, read_version = self._commit_info(table)
        if inserted is None:
            inserted = int(metrics.get("numOutputRows", 0))
        if rows_after is None:
            if table in self.rows and read_version is not None and self.versions.get(table) == read_version:
                rows_after = int(self.rows[table]) + inserted - deleted
            else:
                log.info("%s: written outside the sync since its last run: counting its rows", table)
                rows_after = self.target.read(table).count()
        result = self.result.tables.setdefault(table, TableResult(table))
        result.inserted += inserted
        result.updated += updated
        result.deleted += deleted
        result.version = version
        result.commits += 1
        self.versions[table] = version
        self.rows[table] = rows_after
        result.unchanged = max(0, rows_after - result.inserted - result.updated)

    def _untouched(self, table: str) -> None:
        result = self.result.tables.setdefault(table, TableResult(table))
        if table not in self.rows:
            self.rows[table] = self.target.read(table).count()
            self.versions[table] = self._latest_version(table)
        result.unchanged = max(0, self.rows[table] - result.inserted - result.updated)

    def _append(self, table: str, source) -> None:
        _fault(f"before-write:{table}")
        _fault_during(table, self.spark)
        self.target.write(source, table, "append")
        self._finish_write(table)
        _fault(f"after-write:{table}")

    def _merge(self, table: str, source, *, insert_only: bool, runs=None, delete_stale: bool = False) -> None:
        """MERGE ``source`` into ``table`` on its natural keys (null- and NaN-safe).

        ``runs``: the runs the source covers; with ``delete_stale``, the target's rows of those
        runs that the source lacks are deleted. An empty table is simply appended to.
        """
        from pyspark.sql import functions as F

        if self._known_rows(table) == 0:
            self._append(table, source)
            return
        _fault(f"before-write:{table}")
        _fault_during(table, self.spark)
        keys = tables.NATURAL_KEYS[table]
        on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        if runs is not None and len(runs) <= _MAX_LISTED_RUNS:
            # Lets Delta skip the files of other runs (min/max statistics on run_id).
            on += " AND t.run_id IN ({})".format(", ".join(_sql_string(r) for r in sorted(runs)))
        merge = self.target.delta(table).alias("t").merge(source.alias("s"), on)
        if not insert_only:
            differs = " OR ".join(
                f"NOT (to_json(t.`{f.name}`) <=> to_json(s.`{f.name}`))" if f.dataType.typeName() == "map"
                else f"NOT (t.`{f.name}` <=> s.`{f.name}`)"
                for f in tables.spark_schema(table).fields if f.name not in keys
            )
            merge = merge.whenMatchedUpdateAll(condition=differs)
        merge = merge.whenNotMatchedInsertAll()
        if delete_stale and runs:
            merge = merge.whenNotMatchedBySourceDelete(condition=F.col("t.run_id").isin(sorted(runs)))
        metrics = merge.execute().collect()[0].asDict()
        self._finish_write(
            table,
            inserted=int(metrics.get("num_inserted_rows", 0)),
            updated=int(metrics.get("num_updated_rows", 0)),
            deleted=int(metrics.get("num_deleted_rows", 0)),
        )
        _fault(f"after-write:{table}")

    def _sync_experiments(self, state: _State, plan: _Plan, arrow) -> None:
        """A handful of rows, read on the driver during the scan, compared with the digests the
        state keeps per experiment; the table is rewritten in one commit when any changed."""
        import pyarrow as pa
        import pyarrow.compute as pc

        schema = tables.arrow_schema(tables.EXPERIMENTS)
        wanted = {
            r["experiment_id"]: hashlib.sha256(json.dumps(_plain(r), sort_keys=True, default=str).encode()).hexdigest()
            for r in arrow.to_pylist()
        }
        known = {} if plan.full or self.recovering else dict(state.meta.get("experiments", {}))
        rows_before = self._known_rows(tables.EXPERIMENTS)
        if rows_before and not known:  # no digests to compare with: compare with the table
            known = {
                r["experiment_id"]: hashlib.sha256(json.dumps(_plain(r), sort_keys=True, default=str).encode()).hexdigest()
                for r in self.target.read(tables.EXPERIMENTS).toArrow().select(schema.names).to_pylist()
            }
        gone = set(known) - set(wanted)
        reconcile = self.cfg.reconcile_purged and self._all_experiments
        inserted = len(set(wanted) - set(known))
        updated = sum(1 for e in wanted if e in known and wanted[e] != known[e])
        deleted = len(gone) if reconcile else 0
        # Experiments that left the store (or the selection) stay, unless purged ones are
        # reconciled; their digests stay in the state with them.
        self.experiment_digests = dict(wanted, **{e: known[e] for e in gone if not reconcile})
        if not inserted and not updated and not deleted:
            self._untouched(tables.EXPERIMENTS)
            return
        if gone and not reconcile:
            target = self.target.read(tables.EXPERIMENTS).toArrow().select(schema.names)
            kept = target.filter(pc.is_in(target.column("experiment_id"), value_set=pa.array(sorted(gone))))
            arrow = pa.concat_tables([arrow, kept.cast(schema)])
        _fault(f"before-write:{tables.EXPERIMENTS}")
        self.target.write(self._arrow_frame(arrow, tables.EXPERIMENTS), tables.EXPERIMENTS, "overwrite")
        self._finish_write(tables.EXPERIMENTS, inserted=inserted, updated=updated, deleted=deleted,
                           rows_after=len(arrow))
        _fault(f"after-write:{tables.EXPERIMENTS}")

    def _sync_per_run(self, table: str, plan: _Plan) -> None:
        run_ids = plan.changed[table]
        if not run_ids:
            self._untouched(table)
            return
        # Rows of runs the target has never seen are appended, unless the previous sync did not
        # finish (it may have written some): then, as for changed runs, merged.
        append = run_ids <= plan.new_runs and not plan.full and not self.recovering
        delete_stale = table in (tables.TAGS, tables.INPUTS)  # MLflow never deletes params
        if len(run_ids) <= _DRIVER_READ_RUNS:
            source, count = self._driver_read(table, run_ids=run_ids)
            if count == 0 and (append or not delete_stale):
                self._untouched(table)
                return
        else:
            source = self._reader(table, run_ids=run_ids)
        if append:
            self._append(table, source)
        else:
            self._merge(table, source, insert_only=False, runs=run_ids, delete_stale=delete_stale)

    def _sync_metrics(self, plan: _Plan) -> None:
        ranges = plan.ranges
        if not ranges:
            self._untouched(tables.METRICS)
            return
        bounded = len(ranges) <= _MAX_LISTED_SERIES
        if bounded and self._estimated_points(ranges) <= _DRIVER_READ_POINTS:
            source, count = self._driver_read(tables.METRICS, ranges=ranges)
            if count == 0:
                self._untouched(tables.METRICS)
                return
        elif bounded:
            source = self._reader(tables.METRICS, ranges=ranges)
        else:
            # Too many series to list them: the whole histories of their runs, merged.
            source = self._reader(tables.METRICS, run_ids={run_id for run_id, _ in ranges})
        if plan.append_metrics:
            self._append(tables.METRICS, source)
        else:
            self._merge(tables.METRICS, source, insert_only=True, runs={run_id for run_id, _ in ranges})

    def _reconcile_purged(self, present: dict) -> set[str]:
        """Delete the rows of runs that are in the tables but no longer in the store."""
        found: dict[str, str] = {}
        for table in (tables.RUNS, tables.PARAMS, tables.TAGS, tables.INPUTS, tables.METRICS):
            for row in self.target.read(table).select("run_id", "experiment_id").distinct().collect():
                found.setdefault(row["run_id"], row["experiment_id"])
        experiments = set(self.experiment_ids)
        purged = {
            run_id for run_id, experiment_id in found.items()
            if run_id not in present and (self._all_experiments or experiment_id in experiments)
        }
        self.result.purged_runs = len(purged)
        if not purged:
            return purged
        log.info("reconciling %d run(s) purged from the store: deleting their rows", len(purged))
        listed = ", ".join(_sql_string(r) for r in sorted(purged))
        for table in COMMIT_ORDER:
            if table == tables.EXPERIMENTS:
                continue
            before = self._latest_version(table)
            _fault(f"before-purge:{table}")
            self.spark.sql(f"DELETE FROM {self.target.sql_name(table)} WHERE run_id IN ({listed})").collect()
            version, operation, _ = self._commit_info(table)
            if version != before:
                self._finish_write(table, inserted=0, deleted=int(operation.get("numDeletedRows", 0)))
        return purged

    # -- state -----------------------------------------------------------------------------------

    def _save_state(self, state: _State, plan: _Plan, purged: set[str]) -> None:
        import pyarrow as pa

        if not self.lock.held():
            raise SyncLockedError(
                f"the lock on {self.target.display} was taken over while this sync ran; the data "
                f"it wrote is kept, its state is not saved (the next sync redoes the work)"
            )
        sync_id = self.result.sync_id
        meta = {
            "sync": {
                "sync_id": sync_id,
                "holder": self.me["holder"],
                "mode": self.result.mode,
                "started_at": self.result.started_at.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "store": self.uri.display,
                "experiments": list(self.cfg.experiments or []),
            },
            "rows": self.rows,
            "versions": self.versions,
            "experiments": self.experiment_digests,
            "fingerprints": type(self.store).__name__,
            "positions": self.positions_kind,
            # whether the saved positions are exactly what the metrics table holds
            "metrics_exact": plan.metrics_exact,
        }
        # Runs that left the store (purged, or out of the selected experiments) keep their
        # entries until a reconcile deletes their rows.
        runs = {r: v for r, v in state.runs.items() if r not in purged}
        runs.update(plan.fingerprints)
        series = {p: v for p, v in state.series.items() if p[0] not in purged and p[0] not in plan.fingerprints}
        series.update(plan.positions)
        live = len(runs) + len(series) + len(meta) + 1
        # An append per sync; rewritten in one file now and then (Delta reads many small files slowly).
        appends = int(state.meta.get("appends", 0)) + 1
        compact = plan.full or appends > 50 or state.stored_rows > 2 * state.live_rows + 10_000
        meta["appends"] = 0 if compact else appends
        columns: dict[str, list] = {n: [] for n in _state_schema().fieldNames()}

        def add(kind, run_id=None, key=None, experiment_id=None, value=None, position=None):
            for name, item in zip(columns, (kind, run_id, key, experiment_id, value, position, sync_id)):
                columns[name].append(item)

        for run_id, (experiment_id, value) in sorted(runs.items()):
            if compact or state.runs.get(run_id) != (experiment_id, value):
                add("run", run_id=run_id, experiment_id=experiment_id, value=value)
        for (run_id, key), position in sorted(series.items()):
            if compact or state.series.get((run_id, key)) != position:
                add("series", run_id=run_id, key=key, position=position)
        if not compact:
            for run_id in sorted(set(state.runs) - set(runs)):
                add("run", run_id=run_id)  # removed
            for run_id, key in sorted(set(state.series) - set(series)):
                add("series", run_id=run_id, key=key)  # removed
        for name, value in meta.items():
            add("meta", key=name, value=json.dumps(value, sort_keys=True))
        schema = pa.schema([
            pa.field(f.name, pa.int64() if f.dataType.typeName() == "long" else pa.string(), nullable=f.nullable)
            for f in _state_schema().fields
        ])
        df = self.spark.createDataFrame(pa.Table.from_pydict(columns, schema=schema), schema=_state_schema())
        self.target.write(df.coalesce(1), STATE_TABLE, "overwrite" if compact else "append")
        # This sync holds the lock: nobody else writes the state, so this commit is the next one.
        self.result.state_version = self.state_read_version + 1
        log.info("state saved (%s, %d rows, %d live)", "rewritten" if compact else "appended",
                 len(columns["kind"]), live)


def _lock_schema():
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType([StructField("note", StringType(), True)])


def _plain(value):
    """Rows as JSON-ready data for digests and comparisons (NaN marked, datetimes as ISO)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyspark-experiments sync",
        description="Incrementally copy an MLflow tracking store into Delta tables (experiments, "
        "runs, metrics, params, tags, inputs). Flags override the config file.",
        epilog=f"Exit codes: {EXIT_OK} success, {EXIT_FAILED} sync failed, {EXIT_USAGE} invalid "
        f"configuration, {EXIT_LOCKED} another sync holds the target.",
    )
    parser.add_argument("--config", "-c", help="TOML config file (see conf/sync.toml)")
    parser.add_argument("--tracking-uri", help="tracking store (default: MLFLOW_TRACKING_URI, then MLflow's default)")
    parser.add_argument("--experiments", help="experiment ids or names, comma separated (default: all)")
    parser.add_argument("--target-path", help="folder of Delta tables")
    parser.add_argument("--target-schema", help="catalog schema for the tables (saveAsTable)")
    parser.add_argument("--full", action="store_const", const=True, default=None,
                        help="re-read everything and merge it (the tables end the same)")
    parser.add_argument("--reconcile-purged", action="store_const", const=True, default=None,
                        help="delete runs no longer in the store (mlflow gc) from every table")
    parser.add_argument("--optimize", action="store_const", const=True, default=None,
                        help="compact the tables' small files (Delta OPTIMIZE) after the sync")
    parser.add_argument("--read-mode", choices=READ_MODES, help="malformed records: fail (default) or skip and report")
    parser.add_argument("--lock-timeout-minutes", type=float, help="take over another host's lock after this long")
    parser.add_argument("--master", help="Spark master (default: local[*])")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting (repeatable)")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                       help="show a progress line (default: when stderr is a terminal)")
    group.add_argument("--no-progress", dest="progress", action="store_const", const=False)
    parser.add_argument("--json", dest="json_path", metavar="FILE", help="also write the result as JSON to FILE")
    return parser


def config_from_args(argv: Sequence[str]) -> tuple[SyncConfig, argparse.Namespace]:
    """Parse command-line arguments: the config file first, then flags over it.

    Example::

        >>> cfg, _ = config_from_args(["--target-path", "/tmp/d", "--full"])
        >>> (cfg.target_path, cfg.full)
        ('/tmp/d', True)
    """
    args = _parser().parse_args(list(argv))
    cfg = SyncConfig.from_toml(args.config) if args.config else SyncConfig()
    conf = dict(cfg.spark_conf)
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf {item!r}: expected KEY=VALUE")
        conf[key.strip()] = value.strip()
    cfg = cfg.override(
        tracking_uri=args.tracking_uri,
        experiments=args.experiments,
        target_path=args.target_path,
        target_schema=args.target_schema,
        full=args.full,
        reconcile_purged=args.reconcile_purged,
        optimize=args.optimize,
        read_mode=args.read_mode,
        lock_timeout_minutes=args.lock_timeout_minutes,
        master=args.master,
        spark_conf=conf,
        log_level=args.log_level,
        progress=args.progress,
    )
    return cfg.validate(), args


def _setup_logging(level: str, progress: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    # With a progress line on a terminal, only warnings and errors interrupt it.
    handler.setLevel(logging.WARNING if progress else getattr(logging, level))
    root = logging.getLogger("pyspark_experiments")
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level))
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """``pyspark-experiments sync``: run one sync; returns the exit code (0 only on success).

    Prints the summary on stdout; logs (UTC timestamps) go to stderr, with a progress line when
    stderr is a terminal.

    Example::

        $ pyspark-experiments sync --config conf/sync.toml --full
        >>> main(["--tracking-uri", "sqlite:///mlflow.db", "--target-path", "/tmp/delta"])
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg, args = config_from_args(argv)
    except ConfigError as error:
        print(f"pyspark-experiments sync: {redact(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return int(exit_.code or 0)
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    _setup_logging(cfg.log_level, bool(show))
    started = time.monotonic()
    spark = None
    try:
        from .session import session

        spark = session(app_name="pyspark-experiments-sync", master=cfg.master, config=cfg.spark_conf)
        spark.sparkContext.setLogLevel(cfg.spark_log_level)
        result = sync(spark=spark, config=cfg, progress=bool(show))
    except SyncLockedError as error:
        log.error("%s", redact(str(error)))
        print(f"pyspark-experiments sync: NOT RUN after {time.monotonic() - started:.1f} s: {redact(str(error))}")
        return EXIT_LOCKED
    except KeyboardInterrupt:
        log.error("interrupted; the next sync completes the work")
        return 130
    except Exception as error:
        log.error("sync failed: %s", redact(_short_error(error)))
        log.debug("traceback", exc_info=True)
        print(f"pyspark-experiments sync: FAILED after {time.monotonic() - started:.1f} s: "
              f"{redact(_short_error(error))}\n(the target stays consistent; the next run completes the work)")
        return EXIT_FAILED
    finally:
        if spark is not None:
            try:
                spark.stop()
            except Exception:  # pragma: no cover
                pass
    print(result.summary())
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump(result.to_dict(), handle, indent=2, default=str)
    return EXIT_OK


def _short_error(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    # Spark errors carry a JVM stack trace: keep the message.
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("at ")]
    return "\n".join(lines[:12])


if __name__ == "__main__":
    sys.exit(main())
