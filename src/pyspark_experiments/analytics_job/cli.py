"""``pyspark-experiments analytics``: the analytics tables as a scheduled job.

Example::

    $ pyspark-experiments analytics --config conf/analytics.toml
    $ pyspark-experiments analytics --target-path /data/mlflow-delta --metrics loss,accuracy
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .. import jobs
from . import _cli


def _parser():
    p = _cli.parser("pyspark-experiments analytics",
                    "Compute run analytics (trends, activity, health, leaderboards, metric history, quota usage) from the "
                    "synced Delta tables, or a store with --tracking-uri, and overwrite them as analytics_* Delta tables in "
                    "the target. Flags override the config file.")
    _cli.add_metric_flags(p)
    p.add_argument("--source", choices=("target", "store"),
                   help="read the synced tables (default) or the store (default when --tracking-uri is given)")
    p.add_argument("--lock-timeout-minutes", type=float, help="take over another host's lock after this long")
    return p


def _parse(argv: list[str]) -> jobs.JobSettings:
    jobs.hide_tracking_uri_flag(argv)
    args = _parser().parse_args(argv)
    cfg = _cli.config(args, source=args.source, lock_timeout_minutes=args.lock_timeout_minutes)
    return jobs.JobSettings(cfg.validate(need_target=True), args)


def _run(settings: jobs.JobSettings, show: bool):
    from .job import run_analytics

    with _cli.session("analytics", settings.cfg) as spark:
        return run_analytics(spark, settings.cfg, progress=show)


def main(argv: Sequence[str] | None = None) -> int:
    """``pyspark-experiments analytics``: one analytics run; returns the exit code.

    Exit codes as the sync's: 0 success, 1 failed, 2 invalid configuration, 75 another job
    holds the target, 130 interrupted.

    Example::

        >>> main(["--target-path", "/tmp/delta"])                               # doctest: +SKIP
        0
    """
    return jobs.run_job("analytics", list(sys.argv[1:] if argv is None else argv), _parse, _run)


if __name__ == "__main__":
    sys.exit(main())
