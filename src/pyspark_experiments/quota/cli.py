"""``pyspark-experiments quota``: every experiment's and the heaviest runs' usage of the
tracking quotas, as a table or (``--json``) one JSON document; exit code 0 when every quota is
within the margin, 3 when one is near its limit, 4 when one is over it.

Example::

    $ pyspark-experiments quota --tracking-uri sqlite:///mlflow.db
    $ pyspark-experiments quota --config conf/analytics.toml --json || alert "quota"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..analytics.config import LIMIT_NAMES, QUOTA_KEYS
from ..analytics.quota import QuotaLimits
from ..jobs.flags import add_job_flags, hide_tracking_uri_flag, job_flag_values
from ..jobs.run import EXIT_CODES_HELP, EXIT_QUOTA_NEAR, EXIT_QUOTA_OVER, JobSettings, command_session, run_job
from ..redact import remember_uri
from .config import DEFAULT_TOP, QuotaConfig

#: The quota command's own exit codes, as its ``--help`` lists them.
QUOTA_CODES_HELP = (f"The quota's own: {EXIT_QUOTA_NEAR} a quota near its limit (at the margin or above), none over; "
                    f"{EXIT_QUOTA_OVER} a quota over its limit.")


def flag(key: str) -> str:
    """The flag of a ``[quota]`` key.

    Example::

        >>> flag("metric_steps_per_run")
        '--metric-steps-per-run'
    """
    return "--" + key.replace("_", "-")


def parser() -> argparse.ArgumentParser:
    """The command's parser: the shared job flags, ``--source``, one flag per ``[quota]`` key
    (:data:`~pyspark_experiments.analytics.config.QUOTA_KEYS`), ``--top`` and ``--json``.

    Example::

        >>> parser().parse_args(["--runs-per-experiment", "10", "--json"]).runs_per_experiment
        10
    """
    p = argparse.ArgumentParser(
        prog="pyspark-experiments quota",
        description="Every experiment's and the heaviest runs' usage of the tracking quotas (Databricks' limits unless "
        "set) in a store (--tracking-uri) or synced Delta tables (--target-path / --target-schema), deleted runs "
        "included. Flags override the config file.",
        epilog=f"{EXIT_CODES_HELP} {QUOTA_CODES_HELP}",
    )
    add_job_flags(p, "conf/analytics.toml", "the synced Delta tables")
    p.add_argument("--source", choices=("target", "store"),
                   help="read the synced tables (default with a target) or the store (default when --tracking-uri is given)")
    defaults = QuotaLimits()
    for key in LIMIT_NAMES:
        p.add_argument(flag(key), type=int, metavar="N",
                       help=f"limit ([quota] {key}): {QUOTA_KEYS[key].expected} (default {getattr(defaults, key):,})")
    p.add_argument("--margin", type=float,
                   help=f"[quota] margin: {QUOTA_KEYS['margin'].expected}; usage at margin x limit or above is near (default 0.8)")
    p.add_argument("--top", type=int, metavar="N", help=f"list the N heaviest runs of each run quota (default {DEFAULT_TOP})")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    return p


def config_from_args(args: argparse.Namespace) -> QuotaConfig:
    """The config file (if any) with the flags over it, checked; the store's password is hidden
    from then on.

    Example::

        >>> config_from_args(parser().parse_args(["--tracking-uri", "sqlite:///m.db", "--margin", "0.5"])).margin
        0.5
    """
    cfg = QuotaConfig.from_toml(args.config) if args.config else QuotaConfig()
    cfg = cfg.override(**job_flag_values(args, cfg.spark_conf), source=args.source, margin=args.margin, top=args.top,
                       **{key: getattr(args, key) for key in LIMIT_NAMES})
    remember_uri(cfg.tracking_uri)
    return cfg.validate()


def _parse(argv: list[str]) -> JobSettings:
    hide_tracking_uri_flag(argv)
    args = parser().parse_args(argv)
    return JobSettings(config_from_args(args), args)


def _run(settings: JobSettings, show: bool):
    from .usage import run_quota

    with command_session("quota", settings.cfg) as spark:
        return run_quota(spark, settings.cfg, as_json=settings.args.json, progress=show)


def main(argv: Sequence[str] | None = None) -> int:
    """``pyspark-experiments quota``: returns the exit code: 0 every quota within the margin,
    3 one near its limit, 4 one over it; 1 failed, 2 invalid configuration, 130 interrupted.

    Example::

        >>> main(["--tracking-uri", "sqlite:///mlflow.db", "--json"])            # doctest: +SKIP
        4
    """
    return run_job("quota", list(sys.argv[1:] if argv is None else argv), _parse, _run)


if __name__ == "__main__":
    sys.exit(main())
