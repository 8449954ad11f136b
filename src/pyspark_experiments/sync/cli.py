"""``pyspark-experiments sync``: one sync as a scheduled job, on the job layer
(:func:`pyspark_experiments.jobs.run_job`).

Example::

    $ pyspark-experiments sync --config conf/sync.toml --full
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .. import jobs
from ..errors import ConfigurationError
from ..jobs import EXIT_CONFIG, EXIT_FAILED, EXIT_LOCKED, EXIT_OK
from ..stores.rest.settings import SECRET_OPTIONS
from .config import DEFAULT_TABLES, READ_MODES, SyncConfig
from .plan import OPTIONAL_TABLES
from .runner import run_sync


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyspark-experiments sync",
        description="Incrementally copy an MLflow tracking store into Delta tables (experiments, "
        "runs, metrics, params, tags, inputs; and, see --tables, models, registered_models, model_versions, "
        "artifacts). Flags override the config file.",
        epilog=f"Exit codes: {EXIT_OK} success, {EXIT_FAILED} sync failed, {EXIT_CONFIG} invalid "
        f"configuration, {EXIT_LOCKED} another job holds the target, {jobs.EXIT_INTERRUPTED} interrupted.",
    )
    jobs.add_job_flags(parser, "conf/sync.toml", "the Delta tables")
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


def _rest_flags(flags: Sequence[str] | None) -> dict | None:
    if not flags:
        return None
    found = {}
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"--rest-option {name.strip() or flag!r}: expected NAME=VALUE")
        found[name.strip()] = value.strip()
    return found


def _hide_rest_secrets(argv: Sequence[str]) -> None:
    """Register the secret values of ``--rest-option`` flags before anything can print them."""
    for i, item in enumerate(argv):
        flag = argv[i + 1] if item == "--rest-option" and i + 1 < len(argv) else (
            item.split("=", 1)[1] if item.startswith("--rest-option=") else None)
        if flag:
            name, _, value = flag.partition("=")
            if name.strip().lower() in {s.lower() for s in SECRET_OPTIONS}:
                jobs.add_secret(value.strip())


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
        **jobs.job_flag_values(args, cfg.spark_conf),
        full=args.full,
        reconcile_purged=args.reconcile_purged,
        optimize=args.optimize,
        tables=args.tables,
        relist_artifacts=args.relist_artifacts,
        read_mode=args.read_mode,
        lock_timeout_minutes=args.lock_timeout_minutes,
        rest_options=_rest_flags(args.rest_options),
    )
    return cfg.validate(), args


def _parse(argv: list[str]) -> jobs.JobSettings:
    jobs.hide_tracking_uri_flag(argv)
    _hide_rest_secrets(argv)
    return jobs.JobSettings(*config_from_args(argv))


def _run(settings: jobs.JobSettings, show: bool):
    cfg = settings.cfg
    spark = jobs.job_session("sync", master=cfg.master, conf=cfg.spark_conf, log_level=cfg.spark_log_level)
    try:
        result = run_sync(spark, cfg, show)
    finally:
        try:
            spark.stop()
        except Exception:  # pragma: no cover
            pass
    if settings.args.json_path:
        with open(settings.args.json_path, "w", encoding="utf-8") as handle:
            handle.write(jobs.hide(json.dumps(result.to_dict(), indent=2, default=str)))
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
    return jobs.run_job("sync", list(sys.argv[1:] if argv is None else argv), _parse, _run)


if __name__ == "__main__":
    sys.exit(main())
