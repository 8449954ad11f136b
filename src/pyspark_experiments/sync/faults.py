"""The sync's crash hook (tests only): where :data:`KILL_ENV` names a phase, the process
SIGKILLs itself there, so that tests can check that a killed sync, run again, ends the same.

Example::

    >>> import os
    >>> os.environ.pop(KILL_ENV, None) and None
    >>> fault("before-state")          # not asked for: nothing happens
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger("pyspark_experiments.sync")

#: Test hook: a comma-separated list of phases at which the process SIGKILLs itself, e.g.
#: ``after-write:params``, ``before-state`` or ``during:metrics`` (while that table's write runs).
KILL_ENV = "PYSPARK_EXPERIMENTS_SYNC_KILL_AT"


def wanted_faults() -> list[str]:
    """The phases :data:`KILL_ENV` names.

    Example::

        >>> os.environ[KILL_ENV] = "after-lock, during:metrics"
        >>> wanted_faults()
        ['after-lock', 'during:metrics']
        >>> del os.environ[KILL_ENV]
    """
    return [p.strip() for p in os.environ.get(KILL_ENV, "").split(",") if p.strip()]


def kill(phase: str) -> None:
    """Log ``phase``, flush the package's log handlers and SIGKILL this process.

    Example::

        >>> kill("before-state")        # doctest: +SKIP
    """
    log.warning("%s=%s: killing this process (SIGKILL)", KILL_ENV, phase)
    for handler in logging.getLogger("pyspark_experiments").handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def fault(phase: str) -> None:
    """SIGKILL this process at ``phase`` when :data:`KILL_ENV` names it (crash tests).

    Example::

        >>> fault("after-write:params")  # KILL_ENV does not name it: returns
    """
    if phase in wanted_faults():
        kill(phase)


def fault_during(phase: str, target) -> None:
    """SIGKILL this process while the write of table ``phase`` runs, when :data:`KILL_ENV` names
    ``during:<phase>``: as soon as a new data file appears in the table's folder (written by
    the Spark job, before or as Delta commits it). No SparkContext: works over Spark Connect.
    Folder targets on a local file system only (a test hook); ``target`` is a
    :class:`~pyspark_experiments.jobs.target.DeltaTarget`.

    Example::

        >>> fault_during("metrics", target)   # doctest: +SKIP
    """
    if f"during:{phase}" not in wanted_faults():
        return
    if not target.path or "://" in target.path:
        log.warning("%s=during:%s: only for a local folder target; ignored", KILL_ENV, phase)
        return
    folder = target.name(phase)

    def files() -> set[str]:
        found = set()
        for root, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "_delta_log"]
            found.update(os.path.join(root, n) for n in names if n.endswith(".parquet"))
        return found

    before = files()

    def watch() -> None:
        while True:
            if files() - before:
                kill(f"during:{phase}")
            time.sleep(0.005)

    threading.Thread(target=watch, daemon=True, name=f"kill-during-{phase}").start()
