"""``pyspark-experiments analytics``: the analytics tables as a scheduled job.

Example::

    $ pyspark-experiments analytics --config conf/analytics.toml
    $ pyspark-experiments analytics --target-path /data/mlflow-delta --metrics loss,accuracy
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..jobs.flags import add_job_flags, hide_tracking_uri_flag, job_flag_values
from ..jobs.run import EXIT_CODES_HELP, JobSettings, command_session, run_job
from ..redact import remember_uri
from .config import AnalyticsConfig, MetricsConfig

#: The flags of the settings the analytics job and the report share (:class:`MetricsConfig`).
METRIC_FLAGS = ("metrics", "lower_is_better", "higher_is_better", "period")


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The parser of the analytics job or the report: the shared job flags, and the metric
    flags (:data:`METRIC_FLAGS`).

    Example::

        >>> command_parser("pyspark-experiments report", "x").parse_args(["--period", "week"]).period
        'week'
    """
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=EXIT_CODES_HELP)
    add_job_flags(p, "conf/analytics.toml", "the synced Delta tables")
    p.add_argument("--metrics", help="metric keys to plot / rank by, comma separated (default: the key most runs logged)")
    p.add_argument("--lower-is-better", help="metric keys where lower is better, comma separated")
    p.add_argument("--higher-is-better", help="metric keys where higher is better, comma separated "
                   "(unlisted metrics: lower is better when the name says loss, error, rmse...)")
    p.add_argument("--period", choices=("day", "week", "month", "auto"), help="time buckets of the trends")
    return p


def metrics_config(config_class: type[MetricsConfig], args: argparse.Namespace, **extra) -> MetricsConfig:
    """A :class:`MetricsConfig` (``config_class``) from the config file (if any) with the
    flags and ``extra`` settings over it; the store's password is hidden from then on.

    Example::

        >>> args = command_parser("x", "x").parse_args(["--target-path", "/d", "--metrics", "a,b"])
        >>> metrics_config(AnalyticsConfig, args).metrics
        ('a', 'b')
    """
    cfg = config_class.from_toml(args.config) if args.config else config_class()
    flags = job_flag_values(args, cfg.spark_conf)
    flags.update({name: getattr(args, name) for name in METRIC_FLAGS})
    cfg = cfg.override(**flags, **extra)
    remember_uri(cfg.tracking_uri)
    return cfg


def _parser() -> argparse.ArgumentParser:
    p = command_parser("pyspark-experiments analytics",
                       "Compute run analytics (trends, activity, health, leaderboards, metric history, quota usage) from "
                       "the synced Delta tables, or a store with --tracking-uri, and overwrite them as analytics_* Delta "
                       "tables in the target. Flags override the config file.")
    p.add_argument("--source", choices=("target", "store"),
                   help="read the synced tables (default) or the store (default when --tracking-uri is given)")
    p.add_argument("--lock-timeout-minutes", type=float, help="take over another host's lock after this long")
    return p


def _parse(argv: list[str]) -> JobSettings:
    hide_tracking_uri_flag(argv)
    args = _parser().parse_args(argv)
    cfg = metrics_config(AnalyticsConfig, args, source=args.source, lock_timeout_minutes=args.lock_timeout_minutes)
    return JobSettings(cfg.validate(), args)


def _run(settings: JobSettings, show: bool):
    from .job import run_analytics

    with command_session("analytics", settings.cfg) as spark:
        return run_analytics(spark, settings.cfg, progress=show)


def main(argv: Sequence[str] | None = None) -> int:
    """``pyspark-experiments analytics``: one analytics run; returns the exit code.

    Exit codes as the sync's: 0 success, 1 failed, 2 invalid configuration, 75 another job
    holds the target, 130 interrupted.

    Example::

        >>> main(["--target-path", "/tmp/delta"])                               # doctest: +SKIP
        0
    """
    return run_job("analytics", list(sys.argv[1:] if argv is None else argv), _parse, _run)


if __name__ == "__main__":
    sys.exit(main())
