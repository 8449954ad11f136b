"""The cleanup's records: rows of :data:`RECORD_COLUMNS`, in the target's ``cleanup_log`` Delta
table, or, with no target, in a JSON-lines file. Each run a cleanup deletes is recorded twice:
an ``intent`` row before it is deleted (durable first: a cleanup killed mid-delete leaves every
deleted run recorded), then a ``delete`` row once it is (or ``not-deleted``); ``restore`` rows
when a batch is restored. A run deleted because it is nested under a selected one says so in
its ``reason`` (``nested under selected run <id>``): the batch holds the family, restored with it.

Example::

    >>> new_batch_id(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))[:17]
    '20260102T030405Z-'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import getpass
import json
import os
import socket
import uuid

from ..errors import ConfigurationError, TargetLockedError
from ..jobs.config import CommandConfig

RECORD_TABLE = "cleanup_log"
DEFAULT_RECORD_FILE = "pyspark-experiments-cleanup.jsonl"
#: The columns of a record (Delta table or JSON line).
#: The actions a record holds: before a deletion, its outcome, a restore.
INTENT, DELETE, NOT_DELETED, RESTORE = "intent", "delete", "not-deleted", "restore"
RECORD_COLUMNS = ("batch_id", "action", "run_id", "experiment_id", "run_name", "status", "reason", "at", "by", "tracking_uri")


def record_schema():
    """The Spark schema of :data:`RECORD_TABLE`: every column a string but ``at``, a timestamp.

    Example::

        >>> record_schema()["at"].dataType.simpleString()                    # doctest: +SKIP
        'timestamp'
    """
    from pyspark.sql.types import StringType, StructField, StructType, TimestampType

    return StructType([StructField(name, TimestampType() if name == "at" else StringType(), True) for name in RECORD_COLUMNS])


def new_batch_id(now: dt.datetime | None = None) -> str:
    """A batch id: UTC time and a random suffix.

    Example::

        >>> len(new_batch_id())
        23
    """
    return f"{(now or dt.datetime.now(dt.UTC)):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def who() -> str:
    """``user@host`` of this process.

    Example::

        >>> "@" in who()
        True
    """
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


class Records:
    """Where deletions are recorded: the target's ``cleanup_log`` Delta table or a JSON-lines
    file (``record_file``, default :data:`DEFAULT_RECORD_FILE`).

    Example::

        >>> Records(None, CommandConfig(), "/tmp/cleanup.jsonl").display
        '/tmp/cleanup.jsonl'
    """

    def __init__(self, spark, cfg: CommandConfig, record_file: str | None = None) -> None:
        self.spark = spark
        self.target = cfg.target(spark) if cfg.has_target else None
        self.file = None if self.target else os.path.abspath(record_file or DEFAULT_RECORD_FILE)

    @property
    def display(self) -> str:
        return f"{self.target.sql_name(RECORD_TABLE)}" if self.target else self.file

    def append(self, rows: list[dict]) -> None:
        """Add ``rows`` (dicts with :data:`RECORD_COLUMNS`) to the records, in one commit or one
        flushed write.

        Example::

            >>> records.append([{"batch_id": "b", "action": "delete", ...}])    # doctest: +SKIP
        """
        if not rows:
            return
        if self.target:
            self.target.ensure(RECORD_TABLE, record_schema())
            frame = self.spark.createDataFrame([tuple(row[c] for c in RECORD_COLUMNS) for row in rows], record_schema())
            self.target.write(frame, RECORD_TABLE, "append")
            return
        folder = os.path.dirname(self.file)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(self.file, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({**row, "at": row["at"].isoformat()}, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    @contextlib.contextmanager
    def held(self):
        """Without a target, hold an OS lock (``flock``) on ``<record file>.lock`` around a
        block, so that two cleanups recording into one file never run at once: the second
        raises :class:`TargetLockedError` (exit 75). With a target, the target's lock does it.

        Example::

            >>> with Records(None, CommandConfig(), "/tmp/cleanup.jsonl").held():
            ...     pass
        """
        if self.target:
            yield self
            return
        path = self.file + ".lock"
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise TargetLockedError(f"another cleanup is recording into {self.file} (it holds {path}); "
                                        f"try again when it has finished") from None
            try:
                yield self
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def read(self) -> list[dict]:
        """Every record, as dicts; a line that is not JSON is a :class:`ConfigurationError`
        naming the file and the line.

        Example::

            >>> [r["run_id"] for r in records.read() if r["batch_id"] == batch]  # doctest: +SKIP
        """
        if self.target:
            if not self.target.exists(RECORD_TABLE):
                return []
            return [row.asDict() for row in self.target.read(RECORD_TABLE).collect()]
        if not os.path.exists(self.file):
            return []
        rows = []
        with open(self.file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except ValueError as error:
                    raise ConfigurationError(f"{self.file}, line {number}: not a JSON record ({error})") from None
        return rows
