"""The target lock: one writer at a time on a Delta target, with Delta's log as the arbiter.

Every job that writes a target (the sync, the cleanup command and the analytics job) takes
:class:`TargetLock` first; :func:`locked` is the way a job holds it around its work. A claim is a table property
``pyspark_experiments.sync.lock.<holder id>`` on the target's ``_sync_lock`` table (a
metadata-only commit, no Spark job), whose value is JSON: ``holder``, ``host``, ``pid``,
``pid_start``, ``since``, and ``job`` (``"sync"``, ...; claims written by 0.1.0 have no
``job`` and are a sync's). The table name and the property prefix are those of 0.1.0, so
targets written by it keep working.

The rules are pure functions, tested without Spark: :func:`holder_alive` (may the holder
still be running?) and :func:`first_claim` (of several claims, the one whose latest SET comes
first in the table's log holds the lock).

Example::

    >>> lock = TargetLock(target, job="sync", timeout_minutes=360)            # doctest: +SKIP
    >>> lock.acquire(); ...; lock.release()                                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from ..errors import TargetLockedError
from ..redact import hide
from .target import DeltaTarget, is_conflict

log = logging.getLogger(__name__)

#: The lock's Delta table in the target (the name 0.1.0 used).
LOCK_TABLE = "_sync_lock"
#: The prefix of claim properties (the one 0.1.0 used).
LOCK_PREFIX = "pyspark_experiments.sync.lock."


def lock_schema():
    """The lock table's (unused) column: claims live in its properties."""
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType([StructField("note", StringType(), True)])


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a pid
    reused by another process; ``None`` where unknown.

    Example::

        >>> process_start(os.getpid()) is not None
        True
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def new_holder(job: str) -> dict:
    """A claim's content for this process.

    Example::

        >>> sorted(new_holder("sync"))
        ['holder', 'host', 'job', 'pid', 'pid_start', 'since']
    """
    pid = os.getpid()
    return {
        "holder": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "job": job,
        "pid": pid,
        "pid_start": process_start(pid),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def holder_alive(holder: Mapping, timeout_minutes: float, *, host: str | None = None,
                 now: datetime | None = None) -> bool:
    """Whether the job that holds a claim may still be running.

    - a claim marked ``failed`` was given up: not alive;
    - same host: alive while its pid runs and is the same process (``pid_start``); a pid we may
      not signal counts as alive;
    - another host: alive until ``timeout_minutes`` after ``since``; a claim without a
      readable ``since`` is not alive.

    Example::

        >>> holder_alive({"host": "elsewhere", "since": "2000-01-01T00:00:00+00:00"}, 60)
        False
        >>> holder_alive({"host": socket.gethostname(), "pid": os.getpid(), "pid_start": None}, 60)
        True
    """
    if holder.get("failed"):
        return False
    if holder.get("host") == (host or socket.gethostname()):
        try:
            pid = int(holder.get("pid", 0))
            if pid <= 0:
                return False
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError, TypeError):
            return True
        started = holder.get("pid_start")
        return started is None or started == process_start(pid)
    try:
        since = datetime.fromisoformat(holder["since"])
    except (KeyError, TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return (now or datetime.now(UTC)) - since < timedelta(minutes=timeout_minutes)


def claim_versions(history: Iterable[Mapping], keys: set[str]) -> dict[str, int]:
    """From the lock table's history (newest first), the version of each claim's latest SET.

    Example::

        >>> rows = [{"version": 3, "operation": "SET TBLPROPERTIES", "operationParameters": {"properties": '{"b": "x"}'}},
        ...         {"version": 2, "operation": "SET TBLPROPERTIES", "operationParameters": {"properties": '{"a": "x"}'}}]
        >>> claim_versions(rows, {"a", "b"})
        {'b': 3, 'a': 2}
    """
    found: dict[str, int] = {}
    for row in history:
        if row["operation"] != "SET TBLPROPERTIES":
            continue
        try:
            changed = json.loads((row["operationParameters"] or {}).get("properties") or "{}")
        except ValueError:
            continue
        for key in changed:
            if key in keys and key not in found:
                found[key] = int(row["version"])
    return found


def first_claim(keys: Iterable[str], versions: Mapping[str, int]) -> str:
    """The claim that holds the lock: the earliest in the log; a claim whose version is unknown
    comes last; ties (impossible in one log) by key.

    Example::

        >>> first_claim(["p.b", "p.a"], {"p.a": 5, "p.b": 4})
        'p.b'
    """
    return min(keys, key=lambda k: (versions.get(k, float("inf")), k))


def locked_message(holder: Mapping, target: str, timeout: float) -> str:
    """What a job that finds the target locked says.

    Example::

        >>> locked_message({"job": "cleanup", "host": "h", "pid": 1, "since": "s"}, "/d", 60)[:30]
        'another cleanup holds /d since'
    """
    return (
        f"another {holder.get('job') or 'sync'} holds {target} since {holder.get('since', '?')} "
        f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}); try again when it has finished. "
        f"A lock whose process is gone (same host) or older than {timeout:g} minutes (other hosts) is taken over."
    )


class TargetLock:
    """Mutual exclusion between the jobs that write one target.

    Each claimant sets its own claim property on ``_sync_lock`` and then looks at the claims
    present: the one whose claim comes first in the table's log holds the lock; the others
    withdraw theirs and raise :class:`TargetLockedError`. A claim whose process is gone (or
    that was given up after a failure) is removed by the next claimant and recorded in
    :attr:`taken_over`: that job redoes the dead one's work.

    Example::

        >>> lock = TargetLock(DeltaTarget.at_path(spark, "/data/mlflow"), job="sync")   # doctest: +SKIP
        >>> lock.acquire()                                                    # doctest: +SKIP
        >>> lock.release()                                                    # doctest: +SKIP
    """

    def __init__(self, target: DeltaTarget, job: str = "sync", timeout_minutes: float = 360.0,
                 holder: dict | None = None) -> None:
        self.target = target
        self.me = holder or new_holder(job)
        self.job = job
        self.key = LOCK_PREFIX + self.me["holder"]
        self.timeout = timeout_minutes
        self.taken_over: list[dict] = []

    def ensure_table(self, attempts: int = 10) -> None:
        """Create the lock table if it is missing (two creators at once end with one table),
        then wait until it can be read: while another job creates it, its log folder exists
        before its first commit, and Delta's ``CREATE TABLE IF NOT EXISTS`` then does nothing
        (the table "exists") while reading it fails (``DELTA_MISSING_DELTA_TABLE``). If it never
        becomes readable: :class:`TargetLockedError` (another job is creating it; exit 75).

        Example::

            >>> TargetLock(DeltaTarget.at_path(spark, "/data/mlflow")).ensure_table()   # doctest: +SKIP
        """
        self.target.ensure(LOCK_TABLE, lock_schema())
        for attempt in range(attempts):
            try:
                if self.target.exists(LOCK_TABLE):
                    return
            except Exception as error:  # a log folder without its first commit reads in other ways too
                log.debug("lock table not readable yet: %s", hide(str(error))[:200])
            time.sleep(0.2 * (attempt + 1))
        raise TargetLockedError(
            f"another job is creating the lock table {LOCK_TABLE} of {self.target.display} (its Delta log has no "
            f"commit yet); try again when it has finished (if no job is running, remove the folder {LOCK_TABLE})"
        )

    def claims(self) -> dict[str, dict]:
        """The claims present: ``{property key: holder}``."""
        claims = {}
        for key, value in self.target.properties(LOCK_TABLE).items():
            if key.startswith(LOCK_PREFIX):
                try:
                    claims[key] = json.loads(value)
                except ValueError:
                    claims[key] = {}
        return claims

    def _locked(self, text: str) -> TargetLockedError:
        return TargetLockedError(f"another {self.job} (or another job) {text} {self.target.display} at the same moment; "
                                 f"this one stops without changing anything")

    def acquire(self) -> None:
        """Take the lock, or raise :class:`TargetLockedError` naming the holder."""
        for key, holder in self.claims().items():
            if holder_alive(holder, self.timeout):
                raise TargetLockedError(locked_message(holder, self.target.display, self.timeout))
            log.warning(
                "taking over the lock of a %s that %s (host %s, pid %s, since %s)",
                holder.get("job") or "sync", "failed" if holder.get("failed") else "is gone",
                holder.get("host"), holder.get("pid"), holder.get("since"),
            )
            try:
                self.target.unset_property(LOCK_TABLE, key)
            except Exception as error:
                if is_conflict(error):
                    raise self._locked("is taking over") from None
                raise
            self.taken_over.append(holder)
        try:
            self.target.set_property(LOCK_TABLE, self.key, json.dumps(self.me, sort_keys=True))
        except Exception as error:
            if is_conflict(error):  # another claim was committed at the same moment
                raise self._locked("claimed") from None
            raise
        claims = self.claims()
        if set(claims) == {self.key}:
            # Delta commits one after the other and each claim carries the properties before
            # it: a claim that sees no other was committed first (a later one sees it).
            return
        versions: dict[str, int] = {}
        for limit in (20, 500, None):
            versions = claim_versions(self.target.history(LOCK_TABLE, limit), set(claims))
            if set(versions) >= set(claims):
                break
        first = first_claim(claims, versions)
        if first != self.key:
            self.target.unset_property(LOCK_TABLE, self.key)
            holder = claims[first]
            raise TargetLockedError(
                f"another {holder.get('job') or 'sync'} claimed {self.target.display} at the same moment "
                f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}); this one stops without changing anything"
            )

    @contextlib.contextmanager
    def releasing(self):
        """For the work done under an acquired lock: release it when the block ends, give it up
        (:meth:`give_up`) when the block fails.

        Example::

            >>> lock.acquire()                                                # doctest: +SKIP
            >>> with lock.releasing():                                        # doctest: +SKIP
            ...     write_tables()
        """
        try:
            yield self
        except BaseException:
            self.give_up()
            raise
        self.release()

    def held(self) -> bool:
        """Whether this job's claim is still there and not given up."""
        value = self.target.properties(LOCK_TABLE).get(self.key)
        return value is not None and not json.loads(value).get("failed")

    def release(self) -> None:
        """Withdraw this job's claim."""
        self.target.unset_property(LOCK_TABLE, self.key)

    def give_up(self) -> None:
        """After a failure: mark the claim as failed, so that the next job takes it over at once
        (and, for the sync, merges everything: this one may have committed some tables)."""
        try:
            failed = dict(self.me, failed=datetime.now(UTC).isoformat(timespec="seconds"))
            if self.key in self.target.properties(LOCK_TABLE):
                self.target.set_property(LOCK_TABLE, self.key, json.dumps(failed, sort_keys=True))
        except Exception as error:  # a dead holder's claim is taken over anyway
            log.warning("could not mark the lock as given up: %s", hide(str(error))[:300])


@contextlib.contextmanager
def locked(target: DeltaTarget, job: str, timeout_minutes: float = 360.0):
    """Hold ``target``'s lock around a block of work: prepare the target, create the lock table
    if it is missing, acquire (or raise :class:`TargetLockedError` naming the holder), then
    release when the block ends, or give the claim up when it fails. Yields the lock.

    Example::

        >>> with locked(DeltaTarget.at_path(spark, "/data/mlflow"), job="cleanup") as lock:   # doctest: +SKIP
        ...     write_records()
    """
    target.prepare()
    lock = TargetLock(target, job=job, timeout_minutes=timeout_minutes)
    lock.ensure_table()
    lock.acquire()
    with lock.releasing():
        yield lock
