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

import argparse
import logging
import os
import re
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, TargetLockedError
from .session import worker_python_error
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


_STRING = (str,)

#: The TOML sections every job shares; :func:`job_layout` adds a command's own keys to them.
SHARED_LAYOUT: dict[str, dict[str, Key]] = {
    "store": {
        "tracking_uri": Key("tracking_uri", _STRING, "a tracking URI (string)"),
        "experiments": Key("experiments", (list, str), "a list of experiment ids or names"),
    },
    "target": {
        "path": Key("target_path", _STRING, "a folder of Delta tables (string)"),
        "schema": Key("target_schema", _STRING, "a catalog schema (string)"),
    },
    "spark": {
        "master": Key("master", _STRING, "a Spark master URL (string)"),
        "conf": Key("spark_conf", (dict,), "a table of Spark settings"),
        "log_level": Key("spark_log_level", _STRING, "a Spark log level (string)"),
    },
    "logging": {
        "level": Key("log_level", _STRING, "DEBUG, INFO, WARNING or ERROR", LOG_LEVELS),
        "progress": Key("progress", (bool, str), '"auto", true or false', ("AUTO", True, False)),
    },
}


def job_layout(**sections: Mapping[str, Key]) -> dict[str, dict[str, Key]]:
    """A command's TOML layout: :data:`SHARED_LAYOUT` with the command's own keys and sections
    added (keys given for a shared section join it).

    Example::

        >>> layout = job_layout(store={"read_mode": Key("read_mode", (str,), "a mode")})
        >>> sorted(layout["store"]), list(layout)
        (['experiments', 'read_mode', 'tracking_uri'], ['store', 'target', 'spark', 'logging'])
    """
    layout = {name: dict(keys) for name, keys in SHARED_LAYOUT.items()}
    for name, keys in sections.items():
        layout.setdefault(name, {}).update(keys)
    return layout


# ------------------------------------------------------------------------------------------------
# Command-line flags
# ------------------------------------------------------------------------------------------------


def add_job_flags(parser: argparse.ArgumentParser, config_example: str, target_help: str) -> None:
    """Add the flags every job takes (config file, store, target, Spark, logging) to ``parser``;
    each overrides the config file's setting of the same name.

    Example::

        >>> p = argparse.ArgumentParser(prog="sync")
        >>> add_job_flags(p, "conf/sync.toml", "the Delta tables")
        >>> p.parse_args(["--target-path", "/d", "--no-progress"]).progress
        False
    """
    parser.add_argument("--config", "-c", help=f"TOML config file (see {config_example})")
    parser.add_argument("--tracking-uri", help="tracking store (default: MLFLOW_TRACKING_URI, then MLflow's default)")
    parser.add_argument("--experiments", help="experiment ids or names, comma separated (default: all)")
    parser.add_argument("--target-path", help=f"folder of {target_help}")
    parser.add_argument("--target-schema", help=f"catalog schema of {target_help}")
    parser.add_argument("--master", help="Spark master (default: local[*])")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting (repeatable)")
    parser.add_argument("--log-level", choices=LOG_LEVELS)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                       help="show a progress line (default: when stderr is a terminal)")
    group.add_argument("--no-progress", dest="progress", action="store_const", const=False)


def job_flag_values(args: argparse.Namespace, spark_conf: Mapping[str, str]) -> dict[str, Any]:
    """The settings :func:`add_job_flags`' flags give (``None`` where a flag is absent), with
    ``--conf KEY=VALUE`` items laid over ``spark_conf`` (the config file's).

    Example::

        >>> p = argparse.ArgumentParser(); add_job_flags(p, "c.toml", "the tables")
        >>> job_flag_values(p.parse_args(["--conf", "spark.x=1"]), {"spark.y": "2"})["spark_conf"]
        {'spark.y': '2', 'spark.x': '1'}
    """
    conf = dict(spark_conf)
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--conf {item!r}: expected KEY=VALUE")
        conf[key.strip()] = value.strip()
    return dict(
        tracking_uri=args.tracking_uri, experiments=args.experiments, target_path=args.target_path,
        target_schema=args.target_schema, master=args.master, spark_conf=conf, log_level=args.log_level,
        progress=args.progress,
    )


def password_in(location: str) -> str | None:
    """The password in a URI or libpq keyword string, to hide it even where
    :func:`~pyspark_experiments.uri.redact`'s patterns would miss it (say, in a driver's message).

    Example::

        >>> password_in("postgresql://me:s3cret@db/mlflow"), password_in("host=db password='a b'")
        ('s3cret', 'a b')
    """
    match = re.search(r"(?i)\bpassword\s*=\s*('[^']*'|\S+)", location)
    if match:
        return match.group(1).strip("'")
    _, sep, rest = location.partition("://")
    if sep:
        userinfo = rest.rpartition("@")[0]
        if userinfo:
            return userinfo.partition(":")[2] or None
    return None


def hide_tracking_uri_flag(argv: Sequence[str]) -> None:
    """Register the password of a ``--tracking-uri`` flag in ``argv`` (:func:`add_secret`)
    before anything, even a usage error, can print it.

    Example::

        >>> hide_tracking_uri_flag(["--tracking-uri", "postgresql://me:Tiger-77@db/mlflow"])
        >>> hide("login failed for Tiger-77")
        'login failed for ***'
    """
    for i, item in enumerate(argv):
        if item == "--tracking-uri" and i + 1 < len(argv):
            add_secret(password_in(argv[i + 1]))
        elif item.startswith("--tracking-uri="):
            add_secret(password_in(item.partition("=")[2]))


@dataclass
class JobSettings:
    """What a command's ``parse`` gives :func:`run_job`: its config, its parsed flags, and the
    logging choices taken from the config.

    Example::

        >>> JobSettings(cfg, args).log_level                                   # doctest: +SKIP
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
    through :func:`hide`. Spark's Python workers failing to import this package is told as
    such (:func:`~pyspark_experiments.session.worker_python_error`).

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
        error = worker_python_error(error) or error  # a worker without this package: say which
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
