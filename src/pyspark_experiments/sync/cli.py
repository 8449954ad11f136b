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
from .config import READ_MODES, SyncConfig
from .runner import sync


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyspark-experiments sync",
        description="Incrementally copy an MLflow tracking store into Delta tables (experiments, "
        "runs, metrics, params, tags, inputs). Flags override the config file.",
        epilog=f"Exit codes: {EXIT_OK} success, {EXIT_FAILED} sync failed, {EXIT_CONFIG} invalid "
        f"configuration, {EXIT_LOCKED} another job holds the target, {jobs.EXIT_INTERRUPTED} interrupted.",
    )
    parser.add_argument("--config", "-c", help="TOML config file (see conf/sync.toml)")
    parser.add_argument("--tracking-uri", help="tracking store (default: MLFLOW_TRACKING_URI, then MLflow's default)")
    parser.add_argument("--experiments", help="experiment ids or names, comma separated (default: all)")
    parser.add_argument("--target-path", help="folder of Delta tables")
    parser.add_argument("--target-schema", help="catalog schema for the tables (saveAsTable)")
    parser.add_argument("--full", action="store_const", const=True, default=None,
                        help="re-read everything and merge it (the tables end the same)")
    parser.add_argument("--reconcile-purged", action="store_const", const=True, default=None,
                        help="delete runs no longer in the store (mlflow gc) from every table")
    parser.add_argument("--optimize", action="store_const", const=True, default=None,
                        help="compact the tables' small files (Delta OPTIMIZE) after the sync")
    parser.add_argument("--read-mode", choices=READ_MODES, help="malformed records: fail (default) or skip and report")
    parser.add_argument("--lock-timeout-minutes", type=float, help="take over another host's lock after this long")
    parser.add_argument("--master", help="Spark master (default: local[*])")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting (repeatable)")
    parser.add_argument("--log-level", choices=jobs.LOG_LEVELS)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                       help="show a progress line (default: when stderr is a terminal)")
    group.add_argument("--no-progress", dest="progress", action="store_const", const=False)
    parser.add_argument("--json", dest="json_path", metavar="FILE", help="also write the result as JSON to FILE")
    return parser


def config_from_args(argv: Sequence[str]) -> tuple[SyncConfig, argparse.Namespace]:
    """Parse command-line arguments: the config file first, then flags over it.

    Example::

        >>> cfg, _ = config_from_args(["--target-path", "/tmp/d", "--full"])
        >>> (cfg.target_path, cfg.full)
        ('/tmp/d', True)
    """
    args = _parser().parse_args(list(argv))
    cfg = SyncConfig.from_toml(args.config) if args.config else SyncConfig()
    conf = dict(cfg.spark_conf)
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--conf {item!r}: expected KEY=VALUE")
        conf[key.strip()] = value.strip()
    cfg = cfg.override(
        tracking_uri=args.tracking_uri,
        experiments=args.experiments,
        target_path=args.target_path,
        target_schema=args.target_schema,
        full=args.full,
        reconcile_purged=args.reconcile_purged,
        optimize=args.optimize,
        read_mode=args.read_mode,
        lock_timeout_minutes=args.lock_timeout_minutes,
        master=args.master,
        spark_conf=conf,
        log_level=args.log_level,
        progress=args.progress,
    )
    return cfg.validate(), args


class _Settings:
    def __init__(self, cfg: SyncConfig, args: argparse.Namespace) -> None:
        self.cfg, self.args = cfg, args
        self.log_level, self.progress = cfg.log_level, cfg.progress


def _parse(argv: list[str]) -> _Settings:
    from .runner import _password_of

    for i, item in enumerate(argv):  # hide the password before anything can print it
        if item == "--tracking-uri" and i + 1 < len(argv):
            jobs.add_secret(_password_of(argv[i + 1]))
        elif item.startswith("--tracking-uri="):
            jobs.add_secret(_password_of(item.partition("=")[2]))
    return _Settings(*config_from_args(argv))


def _run(settings: _Settings, show: bool):
    cfg = settings.cfg
    spark = jobs.job_session("sync", master=cfg.master, conf=cfg.spark_conf, log_level=cfg.spark_log_level)
    try:
        result = sync(spark=spark, config=cfg, progress=show)
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
