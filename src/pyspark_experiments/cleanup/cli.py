"""``pyspark-experiments cleanup``: select runs to clean up and list them (dry run, the
default); with ``--yes`` soft-delete them through MLflow's API and record every deletion;
``--restore BATCH`` undoes a batch (see :mod:`.job`).

Example::

    $ pyspark-experiments cleanup --tracking-uri sqlite:///mlflow.db --statuses FAILED,KILLED --older-than-days 30
    $ pyspark-experiments cleanup --config conf/analytics.toml --yes
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ConfigurationError
from ..jobs.config import as_list
from ..jobs.flags import add_job_flags, hide_tracking_uri_flag, job_flag_values, key_values
from ..jobs.run import EXIT_CODES_HELP, JobSettings, command_session, run_job
from ..redact import remember_uri
from .config import CleanupConfig, no_condition_error
from .records import DEFAULT_RECORD_FILE


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyspark-experiments cleanup",
        description="Select runs to clean up and list them (dry run, the default); with --yes soft-delete them "
        "through MLflow's API and record every deletion; --restore BATCH undoes a batch.",
        epilog=EXIT_CODES_HELP,
    )
    add_job_flags(p, "conf/analytics.toml", "the synced Delta tables")
    p.add_argument("--experiment-ids", help="condition: runs of these experiment ids, comma separated")
    p.add_argument("--statuses", help="condition: runs with these statuses, e.g. FAILED,KILLED")
    p.add_argument("--older-than-days", type=float, help="condition: started more than this many days ago")
    p.add_argument("--users", help="condition: runs of these users, comma separated")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="condition: a tag value (repeatable)")
    p.add_argument("--where", help="condition: SQL on the runs columns, e.g. \"metrics['loss'] > 1\"")
    p.add_argument("--keep-newest", type=int, help="condition: beyond the newest N runs of their experiment")
    p.add_argument("--keep-children", action="store_true", default=None,
                   help="leave the runs nested under a selected run (default: they are selected with it)")
    p.add_argument("--yes", action="store_true", help="delete the selected runs (default: list them only)")
    p.add_argument("--restore", metavar="BATCH", help="restore the runs a batch deleted")
    p.add_argument("--plan-file", metavar="PATH",
                   help="dry run: save the selected runs and their selection to PATH; with --yes: delete exactly "
                        "the runs PATH lists (those that no longer match, or changed, are skipped)")
    p.add_argument("--record-file", help=f"JSON-lines record when there is no target (default ./{DEFAULT_RECORD_FILE})")
    p.add_argument("--lock-timeout-minutes", type=float, help="take over another host's lock after this long")
    return p


def config_from_args(args: argparse.Namespace) -> CleanupConfig:
    """The config file (if any) with the flags over it, checked.

    Example::

        >>> cfg = config_from_args(_parser().parse_args(["--statuses", "failed", "--tag", "stage=debug"]))
        >>> cfg.criteria()
        {'statuses': ['FAILED'], 'tags': {'stage': 'debug'}}
    """
    for flag, value in (("--experiment-ids", args.experiment_ids), ("--statuses", args.statuses), ("--users", args.users),
                        ("--where", args.where)):
        if value is not None and as_list(value) is None:
            raise ConfigurationError(f"{flag} {value!r} is empty: expected at least one value (leave the flag out for "
                                     f"no condition)")
    cfg = CleanupConfig.from_toml(args.config) if args.config else CleanupConfig()
    cfg = cfg.override(
        **job_flag_values(args, cfg.spark_conf),
        cleanup_experiments=args.experiment_ids, statuses=args.statuses, older_than_days=args.older_than_days,
        users=args.users, tags=key_values(args.tag, "--tag", strip_values=False) or None, where=args.where,
        keep_newest=args.keep_newest, keep_children=args.keep_children, record_file=args.record_file,
        lock_timeout_minutes=args.lock_timeout_minutes,
    )
    remember_uri(cfg.tracking_uri)
    return cfg.validate()


def _parse(argv: list[str]) -> JobSettings:
    hide_tracking_uri_flag(argv)
    args = _parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.yes and args.restore:
        raise ConfigurationError("--yes and --restore: give one")
    if args.plan_file is not None and (args.restore or not args.plan_file.strip()):
        raise ConfigurationError("--plan-file: expected a file path, with a dry run (to write it) or --yes (to carry it out)")
    if not args.restore and not (args.yes and args.plan_file) and not cfg.has_condition():
        raise no_condition_error()  # before any Spark session; --yes with a plan takes the plan's
    return JobSettings(cfg, args)


def _run(settings: JobSettings, show: bool):
    from .job import run_cleanup

    with command_session("cleanup", settings.cfg) as spark:
        return run_cleanup(spark, settings.cfg, yes=settings.args.yes, restore=settings.args.restore,
                           plan_file=settings.args.plan_file)


def main(argv: Sequence[str] | None = None) -> int:
    """``pyspark-experiments cleanup``: returns the exit code (0, 1, 2, 75 when another job
    holds the target, 130).

    Example::

        >>> main(["--tracking-uri", "sqlite:///mlflow.db", "--statuses", "FAILED"])   # doctest: +SKIP
        0
    """
    return run_job("cleanup", list(sys.argv[1:] if argv is None else argv), _parse, _run)


if __name__ == "__main__":
    sys.exit(main())
