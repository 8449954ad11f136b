"""How every command (``sync``, ``analytics``, ``report``, ``cleanup``) runs, so that they all
behave the same:

- exit codes (:data:`EXIT_OK` 0, :data:`EXIT_FAILED` 1, :data:`EXIT_CONFIG` 2,
  :data:`EXIT_LOCKED` 75, :data:`EXIT_INTERRUPTED` 130) and ONE mapping from the error classes
  of :mod:`pyspark_experiments.errors` to them (:func:`exit_code_for`);
- the FAILED / NOT RUN summary lines (:func:`outcome_line`), through
  :func:`~pyspark_experiments.jobs.hiding.hide`;
- THE Spark session of a command (:func:`job_session`, :func:`command_session`), built by
  :func:`pyspark_experiments.session.session`;
- :func:`run_job`, which a command's ``main()`` calls.

Example::

    >>> from pyspark_experiments.errors import TargetLockedError
    >>> exit_code_for(TargetLockedError("another sync holds /d"))
    75
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, ExperimentNotFoundError, StoreNotFoundError, TargetLockedError
from ..redact import hide
from ..session import session
from .failures import innermost_error
from .hiding import short_error
from .output import setup_logging

EXIT_OK = 0
EXIT_FAILED = 1
#: Invalid configuration: a flag, a config file, a setting.
EXIT_CONFIG = 2
#: The quota command: a quota at or above the margin of its limit, none over it.
EXIT_QUOTA_NEAR = 3
#: The quota command: a quota over its limit.
EXIT_QUOTA_OVER = 4
#: Another job holds the target (EX_TEMPFAIL: a scheduler may retry later).
EXIT_LOCKED = 75
#: Interrupted (Ctrl-C, SIGINT): 128 + 2, as shells report it.
EXIT_INTERRUPTED = 130

#: THE mapping from error classes to exit codes, most specific first; anything else is 1.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (TargetLockedError, EXIT_LOCKED),
    (ConfigurationError, EXIT_CONFIG),
    (StoreNotFoundError, EXIT_CONFIG),  # the tracking URI names no store
    (ExperimentNotFoundError, EXIT_CONFIG),  # an experiment the settings name is not in the store
)

#: The exit codes as a command's ``--help`` lists them.
EXIT_CODES_HELP = (f"Exit codes: {EXIT_OK} success, {EXIT_FAILED} failed, {EXIT_CONFIG} invalid configuration, "
                   f"{EXIT_LOCKED} another job holds the target, {EXIT_INTERRUPTED} interrupted.")


def exit_code_for(error: BaseException) -> int:
    """The exit code for a job that ended with ``error`` (see :data:`EXIT_CODES`).

    Example::

        >>> from pyspark_experiments.errors import ConfigurationError
        >>> exit_code_for(ConfigurationError("x")), exit_code_for(RuntimeError("y"))
        (2, 1)
    """
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILED


@dataclass
class JobSettings:
    """What a command's ``parse`` gives :func:`run_job`: its config, its parsed flags, and the
    logging choices taken from the config.

    Example::

        >>> from pyspark_experiments.jobs.config import CommandConfig
        >>> JobSettings(CommandConfig(), argparse.Namespace()).log_level
        'INFO'
    """

    cfg: Any
    args: argparse.Namespace

    @property
    def log_level(self) -> str:
        return self.cfg.log_level

    @property
    def progress(self) -> bool | None:
        return self.cfg.progress

    @property
    def debug(self) -> bool:
        """Whether a failure shows its full traceback (``--debug`` or ``--log-level DEBUG``)."""
        return bool(getattr(self.args, "debug", False)) or str(self.log_level).upper() == "DEBUG"


def outcome_line(command: str, error: BaseException, elapsed_s: float) -> str:
    """The summary line of a job that did not succeed: ``NOT RUN`` when it changed nothing
    (locked, bad configuration, interrupted before it began), ``FAILED`` otherwise.

    Example::

        >>> from pyspark_experiments.errors import TargetLockedError
        >>> outcome_line("sync", TargetLockedError("another sync holds /d"), 1.0)
        'pyspark-experiments sync: NOT RUN after 1.0 s: another sync holds /d'
    """
    code = exit_code_for(error)
    if code == EXIT_INTERRUPTED:
        return f"pyspark-experiments {command}: INTERRUPTED after {elapsed_s:.1f} s; the next run completes the work"
    status = "NOT RUN" if code in (EXIT_LOCKED, EXIT_CONFIG) else "FAILED"
    skipped = getattr(error, "skipped_records", 0)  # PERMISSIVE skips before the failure
    skips = f" with {skipped:,} skipped records" if status == "FAILED" and skipped else ""
    line = f"pyspark-experiments {command}: {status} after {elapsed_s:.1f} s{skips}: {short_error(error)}"
    if status == "FAILED":
        line += "\n(the target stays consistent; the next run completes the work)"
    return line


def job_session(command: str, master: str | None = None, conf: Mapping[str, str] | None = None,
                log_level: str = "ERROR"):
    """A new (or the running) SparkSession for a command, from
    :func:`pyspark_experiments.session.session`: Delta configured, the source registered,
    Spark's own log level set by configuration (``spark.log.level``; no SparkContext call).

    Example::

        >>> spark = job_session("sync", master="local[2]")                     # doctest: +SKIP
    """
    settings = {"spark.log.level": log_level.upper(), **dict(conf or {})}
    return session(app_name=f"pyspark-experiments-{command}", master=master, config=settings)


@contextlib.contextmanager
def command_session(command: str, cfg: Any):
    """The SparkSession a command runs in: the active one if there is one (left running), else
    a new one from ``cfg``'s ``master``, ``spark_conf`` and ``spark_log_level``
    (:func:`job_session`), stopped when the block ends. Only a session this helper created is
    stopped.

    Example::

        >>> with command_session("analytics", cfg) as spark:                   # doctest: +SKIP
        ...     run_analytics(spark, cfg)
    """
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    owned = spark is None
    if owned:
        spark = job_session(command, master=cfg.master, conf=cfg.spark_conf, log_level=cfg.spark_log_level)
    try:
        yield spark
    finally:
        if owned:
            try:
                spark.stop()
            except Exception:  # pragma: no cover - stopping a session that already failed
                pass


def run_job(command: str, argv: Sequence[str], parse: Callable[[list[str]], Any],
            run: Callable[[Any, bool], Any]) -> int:
    """Run a command the way every job runs; returns its exit code.

    ``parse(argv)`` builds the job's settings (raising ``ConfigurationError`` or argparse's
    ``SystemExit``); they must have ``log_level`` and ``progress`` (``None``: when stderr is a
    terminal). ``run(settings, show_progress)`` does the work and returns a result with
    ``summary()``, printed on stdout, and may carry its own ``exit_code`` (the quota command's
    :data:`EXIT_QUOTA_NEAR` / :data:`EXIT_QUOTA_OVER`; else 0). Errors are logged and summed up on stdout as a FAILED /
    NOT RUN line, mapped to an exit code by :func:`exit_code_for`; an error of ours that Spark
    wrapped is reported as itself (:func:`~pyspark_experiments.jobs.failures.innermost_error`),
    its full traceback logged only when ``settings.debug`` is true. Everything printed is
    hidden through :func:`hide`.

    Example::

        >>> run_job("sync", ["--no-such-flag"], parse, run)                    # doctest: +SKIP
        2
    """
    argv = list(argv)
    started = time.monotonic()
    try:
        settings = parse(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return int(exit_.code or 0) if isinstance(exit_.code, int) or exit_.code is None else EXIT_CONFIG
    except ConfigurationError as error:
        print(f"pyspark-experiments {command}: {short_error(error)}", file=sys.stderr)
        return EXIT_CONFIG
    show = settings.progress if settings.progress is not None else sys.stderr.isatty()
    setup_logging(settings.log_level, bool(show))
    job_log = logging.getLogger(f"pyspark_experiments.{command}")
    try:
        result = run(settings, bool(show))
    except BaseException as error:  # noqa: BLE001 - every outcome becomes an exit code
        if isinstance(error, SystemExit):
            raise
        raised, error = error, innermost_error(error)
        code = exit_code_for(error)
        if code == EXIT_FAILED:
            job_log.error("%s failed: %s", command, short_error(error))
        elif code == EXIT_INTERRUPTED:
            job_log.error("interrupted; the next run completes the work")
        else:
            job_log.error("%s", short_error(error))
        if getattr(settings, "debug", False) and code != EXIT_INTERRUPTED:
            job_log.error("traceback (--debug)", exc_info=raised)
        print(outcome_line(command, error, time.monotonic() - started), flush=True)
        return code
    print(hide(result.summary()), flush=True)
    return int(getattr(result, "exit_code", EXIT_OK))
