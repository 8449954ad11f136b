"""Command-line flags every command shares: the config file, store, target, Spark and logging
flags (:func:`add_job_flags`), THE ``KEY=VALUE`` parser (:func:`key_values`: ``--conf``,
``--tag``, ``--rest-option``), and reading a flag's values out of raw arguments before argparse
runs (:func:`flag_values`), so that a password is hidden even from a usage error.

Example::

    >>> key_values(["spark.x=1", " spark.y = 2 "], "--conf")
    {'spark.x': '1', 'spark.y': '2'}
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError
from ..redact import hide, remember_uri
from .output import LOG_LEVELS


def key_values(items: Sequence[str] | None, flag: str, *, name: str = "KEY", strip_values: bool = True) -> dict[str, str]:
    """``KEY=VALUE`` flag values as ``{key: value}``: keys stripped, values stripped unless
    ``strip_values`` is false, a later key winning. An item without ``=`` or without a key is a
    :class:`ConfigurationError` naming the flag (and the key, never the value: it may be a
    secret).

    Example::

        >>> key_values(["stage= debug"], "--tag", strip_values=False)
        {'stage': ' debug'}
        >>> key_values(["=x"], "--rest-option", name="NAME")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: --rest-option (no name): expected NAME=VALUE
    """
    found: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            what = repr(hide(key.strip())) if key.strip() else f"(no {name.lower()})"
            raise ConfigurationError(f"{flag} {what}: expected {name}=VALUE")
        found[key.strip()] = value.strip() if strip_values else value
    return found


def flag_values(argv: Sequence[str], flag: str) -> list[str]:
    """The values given to ``flag`` in raw arguments (``--flag value`` or ``--flag=value``).

    Example::

        >>> flag_values(["--tag", "a=1", "--tag=b=2", "--x"], "--tag")
        ['a=1', 'b=2']
    """
    found = []
    for i, item in enumerate(argv):
        if item == flag and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif item.startswith(flag + "="):
            found.append(item.partition("=")[2])
    return found


def hide_tracking_uri_flag(argv: Sequence[str]) -> None:
    """Register the password of a ``--tracking-uri`` flag in ``argv`` with the credential registry
    before anything, even a usage error, can print it.

    Example::

        >>> hide_tracking_uri_flag(["--tracking-uri", "postgresql://me:Tiger-77@db/mlflow"])
        >>> hide("login failed for Tiger-77")
        'login failed for ***'
    """
    for value in flag_values(argv, "--tracking-uri"):
        remember_uri(value)


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
    parser.add_argument("--debug", action="store_true",
                        help="on failure, also show the full traceback (Spark's and the Python workers')")
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
    return dict(
        tracking_uri=args.tracking_uri, experiments=args.experiments, target_path=args.target_path,
        target_schema=args.target_schema, master=args.master,
        spark_conf={**spark_conf, **key_values(args.conf, "--conf")}, log_level=args.log_level,
        progress=args.progress,
    )
