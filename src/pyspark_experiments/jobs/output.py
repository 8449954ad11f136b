"""What a job shows while it runs: logs on stderr with UTC timestamps (:func:`setup_logging`)
and a progress display (:class:`Progress`: one line on a terminal, log lines otherwise), all
through :func:`~pyspark_experiments.jobs.hiding.hide`.

Example::

    >>> progress = Progress("sync", enabled=False, steps=2)
    >>> progress.step("reading"); progress.step_number
    1
"""

from __future__ import annotations

import logging
import sys
import time

from ..errors import ConfigurationError
from ..redact import hide

log = logging.getLogger("pyspark_experiments.jobs")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class HidingFormatter(logging.Formatter):
    """A log formatter that hides credentials (:func:`hide`) in every line.

    Example::

        >>> HidingFormatter("%(message)s").format(logging.makeLogRecord({"msg": "mysql://u:pw@h/db"}))
        'mysql://u:***@h/db'
    """

    def format(self, record: logging.LogRecord) -> str:
        return hide(super().format(record))


def setup_logging(level: str = "INFO", progress: bool = False) -> logging.Handler:
    """Send the package's logs to stderr: UTC timestamps, credentials hidden. With a progress
    line on a terminal, only warnings and errors interrupt it. Returns the handler.

    Example::

        >>> handler = setup_logging("INFO")
        >>> handler.formatter.formatTime(logging.makeLogRecord({"created": 0}), handler.formatter.datefmt)
        '1970-01-01T00:00:00Z'
    """
    level = level.upper()
    if level not in LOG_LEVELS:
        raise ConfigurationError(f"log level {level!r}: expected one of {', '.join(LOG_LEVELS)}")
    handler = logging.StreamHandler(sys.stderr)
    formatter = HidingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.setLevel(logging.WARNING if progress else getattr(logging, level))
    root = logging.getLogger("pyspark_experiments")
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level))
    root.propagate = False
    return handler


class Progress:
    """A job's progress: one rewritten line on a terminal (``enabled``), and an INFO log line
    per step with the elapsed time in every case.

    Example::

        >>> progress = Progress("sync", enabled=False, steps=3)
        >>> progress.step("reading")
        >>> progress.step_number
        1
    """

    def __init__(self, label: str, enabled: bool = False, steps: int = 1, stream=None,
                 logger: logging.Logger | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.steps = max(1, steps)
        self.step_number = 0
        self.started = time.monotonic()
        self.stream = stream or sys.stderr
        self.log = logger or log

    def step(self, text: str) -> None:
        self.step_number += 1
        elapsed = time.monotonic() - self.started
        self.log.info("[%d/%d] +%.1fs %s", self.step_number, self.steps, elapsed, text)
        if self.enabled:
            line = hide(f"{self.label} [{min(self.step_number, self.steps)}/{self.steps}] {elapsed:6.1f}s  {text}")
            self.stream.write("\r\033[K" + line[:200])
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
