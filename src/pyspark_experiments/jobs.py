"""The job layer: what every scheduled command (``sync``; later ``analytics``, ``report``,
``cleanup``) shares, so that they all behave the same.

- exit codes (:data:`EXIT_OK` 0, :data:`EXIT_FAILED` 1, :data:`EXIT_CONFIG` 2,
  :data:`EXIT_LOCKED` 75, :data:`EXIT_INTERRUPTED` 130) and ONE mapping from the error classes
  of :mod:`pyspark_experiments.errors` to them (:func:`exit_code_for`);
- TOML config loading against a declared layout (:class:`Key`, :func:`load_config`): unknown
  sections or keys, wrong types, a missing file, a folder, invalid TOML are
  :class:`~pyspark_experiments.errors.ConfigurationError` naming the key and the file;
- logging to stderr with UTC timestamps (:func:`setup_logging`), a progress display
  (:class:`Progress`: one line on a terminal, log lines otherwise), the FAILED / NOT RUN summary
  lines (:func:`outcome_line`), all through :func:`~pyspark_experiments.uri.redact`;
- :func:`run_job`, which a command's ``main()`` calls.

Example::

    >>> from pyspark_experiments.errors import TargetLockedError
    >>> exit_code_for(TargetLockedError("another sync holds /d"))
    75
"""

from __future__ import annotations

import logging
import os
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, TargetLockedError
from .uri import redact

log = logging.getLogger("pyspark_experiments.jobs")

EXIT_OK = 0
EXIT_FAILED = 1
#: Invalid configuration: a flag, a config file, a setting.
EXIT_CONFIG = 2
#: Another job holds the target (EX_TEMPFAIL: a scheduler may retry later).
EXIT_LOCKED = 75
#: Interrupted (Ctrl-C, SIGINT): 128 + 2, as shells report it.
EXIT_INTERRUPTED = 130

#: THE mapping from error classes to exit codes, most specific first; anything else is 1.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (TargetLockedError, EXIT_LOCKED),
    (ConfigurationError, EXIT_CONFIG),
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Extra strings to hide in everything a job prints (say, a password the job was given that
# redact's patterns would not recognise in a driver's message).
_SECRETS: set[str] = set()


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


def add_secret(value: str | None) -> None:
    """Hide ``value`` (and its percent-encoded form) in everything jobs print from now on.

    Example::

        >>> add_secret("Hunter/Two22")
        >>> hide("password Hunter/Two22 rejected")
        'password *** rejected'
    """
    from urllib.parse import quote

    if value and len(value) >= 3:
        _SECRETS.update({value, quote(value, safe="")})


def hide(text: object) -> str:
    """``text`` with credentials hidden: :func:`redact`, then every :func:`add_secret` value.

    Example::

        >>> hide("postgresql://bob:pw@db/mlflow")
        'postgresql://bob:***@db/mlflow'
    """
    text = redact(str(text))
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def short_error(error: BaseException) -> str:
    """An error's message for a log line: no JVM stack trace, at most 12 lines, hidden secrets.

    Example::

        >>> short_error(RuntimeError("boom\\n\\tat org.apache.spark.X"))
        'boom'
    """
    text = str(error).strip() or type(error).__name__
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("at ")]
    return hide("\n".join(lines[:12]))


# ------------------------------------------------------------------------------------------------
# Config files
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One key of a config layout: the setting it fills, the TOML types it accepts, and what a
    user should be told is expected.

    Example::

        >>> Key("full", (bool,), "true or false").check(True, "f.toml", "sync", "full")
        True
    """

    field: str
    types: tuple[type, ...]
    expected: str
    choices: tuple[Any, ...] | None = None

    def check(self, value: Any, source: str, section: str, key: str) -> Any:
        ok = isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)
        if ok and isinstance(value, list):
            ok = all(isinstance(item, (str, int)) and not isinstance(item, bool) for item in value)
        if ok and isinstance(value, dict):
            ok = all(isinstance(v, (str, int, float, bool)) for v in value.values())
        if ok and self.choices is not None:
            ok = (value.upper() if isinstance(value, str) else value) in self.choices
        if not ok:
            raise ConfigurationError(
                f"{source}: [{section}] {key} = {_shown(value)}: expected {self.expected}"
            )
        return value


def _shown(value: Any) -> str:
    text = repr(value)
    return hide(text if len(text) <= 60 else text[:57] + "...")


#: A config layout: ``{section: {key: Key}}``.
Layout = Mapping[str, Mapping[str, Key]]


def read_toml(path: str) -> dict:
    """Read a TOML file; a missing file, a folder, an unreadable file or invalid TOML is a
    :class:`ConfigurationError` naming the file.

    Example::

        >>> read_toml("conf")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: config file 'conf' is a folder, not a TOML file
    """
    shown = hide(path)
    if os.path.isdir(path):
        raise ConfigurationError(f"config file {shown!r} is a folder, not a TOML file")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"config file {shown!r} not found") from None
    except IsADirectoryError:
        raise ConfigurationError(f"config file {shown!r} is a folder, not a TOML file") from None
    except PermissionError:
        raise ConfigurationError(f"config file {shown!r} cannot be read (permission denied)") from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(f"config file {shown!r}: not UTF-8 text ({error.reason})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"config file {shown!r}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigurationError(f"config file {shown!r} cannot be read: {error.strerror or error}") from None


def parse_config(data: Mapping, layout: Layout, source: str = "config") -> dict[str, Any]:
    """Check ``data`` (a parsed TOML document) against ``layout``; returns ``{field: value}``.

    Example::

        >>> layout = {"target": {"path": Key("target_path", (str,), "a folder")}}
        >>> parse_config({"target": {"path": "/d"}}, layout, "f.toml")
        {'target_path': '/d'}
        >>> parse_config({"target": {"folder": "/d"}}, layout, "f.toml")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: f.toml: unknown key 'folder' in [target]; expected one of path
    """
    values: dict[str, Any] = {}
    sections = ", ".join(f"[{s}]" for s in layout)
    for section, content in data.items():
        if section not in layout:
            if not isinstance(content, dict):
                raise ConfigurationError(f"{source}: key {section!r} outside a section; expected sections {sections}")
            raise ConfigurationError(f"{source}: unknown section [{section}]; expected {sections}")
        if not isinstance(content, dict):
            raise ConfigurationError(f"{source}: [{section}] must be a table of keys, got {_shown(content)}")
        for key, value in content.items():
            if key not in layout[section]:
                raise ConfigurationError(
                    f"{source}: unknown key {key!r} in [{section}]; expected one of {', '.join(layout[section])}"
                )
            spec = layout[section][key]
            values[spec.field] = spec.check(value, source, section, key)
    return values


def load_config(path: str, layout: Layout) -> dict[str, Any]:
    """Read the TOML file at ``path`` and check it against ``layout`` (:func:`parse_config`).

    Example::

        >>> load_config("conf/sync.toml", SYNC_LAYOUT)["target_path"]          # doctest: +SKIP
        'mlflow-delta'
    """
    return parse_config(read_toml(path), layout, source=hide(path))


# ------------------------------------------------------------------------------------------------
# Logging, progress, summaries
# ------------------------------------------------------------------------------------------------


class _HidingFormatter(logging.Formatter):
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
    formatter = _HidingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
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
    """The SparkSession for a command run from the command line, Spark's own log level set by
    configuration (``spark.log.level``; no SparkContext call).

    Example::

        >>> spark = job_session("sync", master="local[2]")                     # doctest: +SKIP
    """
    from .session import session

    settings = {"spark.log.level": log_level.upper(), **dict(conf or {})}
    return session(app_name=f"pyspark-experiments-{command}", master=master, config=settings)


def run_job(command: str, argv: Sequence[str], parse: Callable[[list[str]], Any],
            run: Callable[[Any, bool], Any]) -> int:
    """Run a command the way every job runs; returns its exit code.

    ``parse(argv)`` builds the job's settings (raising ``ConfigurationError`` or argparse's
    ``SystemExit``); they must have ``log_level`` and ``progress`` (``None``: when stderr is a
    terminal). ``run(settings, show_progress)`` does the work and returns a result with
    ``summary()``, printed on stdout. Errors are logged and summed up on stdout as a FAILED /
    NOT RUN line, mapped to an exit code by :func:`exit_code_for`; everything printed is hidden
    through :func:`hide`.

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
        code = exit_code_for(error)
        if code == EXIT_FAILED:
            job_log.error("%s failed: %s", command, short_error(error))
            job_log.debug("traceback", exc_info=True)
        elif code == EXIT_INTERRUPTED:
            job_log.error("interrupted; the next run completes the work")
        else:
            job_log.error("%s", short_error(error))
        print(outcome_line(command, error, time.monotonic() - started), flush=True)
        return code
    print(hide(result.summary()), flush=True)
    return EXIT_OK
