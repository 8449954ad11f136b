"""``pyspark-experiments sync``: one sync as a scheduled job, on the job layer
(:func:`pyspark_experiments.jobs.run.run_job`).

Example::

    $ pyspark-experiments sync --config conf/sync.toml --full
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..jobs.flags import add_job_flags, flag_values, hide_tracking_uri_flag, job_flag_values, key_values
from ..jobs.run import EXIT_CODES_HELP, JobSettings, command_session, run_job
from ..redact import hide, remember
from ..stores.rest.settings import SECRET_OPTIONS
from .config import DEFAULT_TABLES, READ_MODES, SyncConfig
from .plan import OPTIONAL_TABLES
from .runner import run_sync


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyspark-experiments sync",
        description="Incrementally copy an MLflow tracking store into Delta tables (experiments, "
        "runs, metrics, params, tags, inputs; and, see --tables, models, registered_models, model_versions, "
        "artifacts, traces, spans, assessments). Flags override the config file.",
        epilog=EXIT_CODES_HELP,
    )
    add_job_flags(parser, "conf/sync.toml", "the Delta tables")
    parser.add_argument("--full", action="store_const", const=True, default=None,
                        help="re-read everything and merge it (the tables end the same)")
    parser.add_argument("--reconcile-purged", action="store_const", const=True, default=None,
                        help="delete runs no longer in the store (mlflow gc) from every table")
    parser.add_argument("--optimize", action="store_const", const=True, default=None,
                        help="compact the tables' small files (Delta OPTIMIZE) after the sync")
    parser.add_argument("--tables", metavar="LIST",
                        help=f"the optional tables to keep besides the six run tables, comma-separated, of "
                        f"{', '.join(OPTIONAL_TABLES)}; 'none' for none (default: {','.join(DEFAULT_TABLES)})")
    parser.add_argument("--relist-artifacts", action="store_const", const=True, default=None,
                        help="re-list every run's artifacts (by default only runs re-read for another change are: "
                        "an artifact logged into an otherwise unchanged run is seen by this or --full)")
    parser.add_argument("--read-mode", choices=READ_MODES, help="malformed records: fail (default) or skip and report")
    parser.add_argument("--lock-timeout-minutes", type=float, help="take over another host's lock after this long")
    parser.add_argument("--rest-option", dest="rest_options", action="append", metavar="NAME=VALUE",
                        help="an option of a tracking server read (http(s)://, databricks), as the data source "
                        "takes it, e.g. maxConcurrentRequests=4 or maxRetries=10; repeatable (prefer the "
                        "environment for credentials)")
    parser.add_argument("--json", dest="json_path", metavar="FILE", help="also write the result as JSON to FILE")
    return parser


def _hide_rest_secrets(argv: Sequence[str]) -> None:
    """Register the secret values of ``--rest-option`` flags before anything can print them."""
    secret_names = {name.lower() for name in SECRET_OPTIONS}
    for flag in flag_values(argv, "--rest-option"):
        name, _, value = flag.partition("=")
        if name.strip().lower() in secret_names:
            remember(value.strip())


def config_from_args(argv: Sequence[str]) -> tuple[SyncConfig, argparse.Namespace]:
    """Parse command-line arguments: the config file first, then flags over it.

    Example::

        >>> cfg, _ = config_from_args(["--target-path", "/tmp/d", "--full"])
        >>> (cfg.target_path, cfg.full)
        ('/tmp/d', True)
    """
    args = _parser().parse_args(list(argv))
    cfg = SyncConfig.from_toml(args.config) if args.config else SyncConfig()
    cfg = cfg.override(
        **job_flag_values(args, cfg.spark_conf),
        full=args.full,
        reconcile_purged=args.reconcile_purged,
        optimize=args.optimize,
        tables=args.tables,
        relist_artifacts=args.relist_artifacts,
        read_mode=args.read_mode,
        lock_timeout_minutes=args.lock_timeout_minutes,
        rest_options=key_values(args.rest_options, "--rest-option", name="NAME") or None,
    )
    return cfg.validate(), args


def _parse(argv: list[str]) -> JobSettings:
    hide_tracking_uri_flag(argv)
    _hide_rest_secrets(argv)
    return JobSettings(*config_from_args(argv))


def _run(settings: JobSettings, show: bool):
    with command_session("sync", settings.cfg) as spark:
        result = run_sync(spark, settings.cfg, show)
    if settings.args.json_path:
        with open(settings.args.json_path, "w", encoding="utf-8") as handle:
            handle.write(hide(json.dumps(result.to_dict(), indent=2, default=str)))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``pyspark-experiments sync``: run one sync; returns the exit code (0 only on success).

    Prints the summary on stdout (or a FAILED / NOT RUN line); logs (UTC timestamps) go to
    stderr, with a progress line when stderr is a terminal. Exit codes: 0 success, 1 failed,
    2 invalid configuration, 75 another job holds the target, 130 interrupted.

    Example::

        >>> main(["--tracking-uri", "sqlite:///mlflow.db", "--target-path", "/tmp/delta"])  # doctest: +SKIP
        0
    """
    return run_job("sync", list(sys.argv[1:] if argv is None else argv), _parse, _run)


if __name__ == "__main__":
    sys.exit(main())
