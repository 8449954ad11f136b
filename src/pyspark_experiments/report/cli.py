"""``pyspark-experiments report``: one self-contained HTML page of a store or synced tables, a
thin wrapper over :func:`pyspark_experiments.report.write_report`.

Example::

    $ pyspark-experiments report --tracking-uri sqlite:///mlflow.db --out /tmp/report
    $ pyspark-experiments report --target-path /data/mlflow-delta --metrics val_loss --out /tmp/report
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import functions as F

from ..analytics.cli import command_parser, metrics_config
from ..analytics.inputs import read_tables, source_display
from ..jobs.flags import hide_tracking_uri_flag
from ..jobs.output import Progress
from ..jobs.run import JobSettings, command_session, run_job
from .build import write_report
from .config import ReportConfig


@dataclass
class ReportResult:
    """The page written.

    Example::

        >>> ReportResult("/r/report.html", "a store", 1.0).summary()
        'pyspark-experiments report: OK in 1.0 s: a store -> /r/report.html'
    """

    path: str
    source: str
    elapsed_s: float

    def summary(self) -> str:
        return f"pyspark-experiments report: OK in {self.elapsed_s:.1f} s: {self.source} -> {self.path}"


def _parser():
    p = command_parser("pyspark-experiments report",
                       "Write one self-contained HTML report (report.html: plots as inline SVG, opens offline) of a "
                       "tracking store (--tracking-uri) or of synced Delta tables (--target-path / --target-schema).")
    p.add_argument("--out", "-o", help="folder for report.html")
    p.add_argument("--title", help="the page's title")
    return p


def _parse(argv: list[str]) -> JobSettings:
    hide_tracking_uri_flag(argv)
    args = _parser().parse_args(argv)
    return JobSettings(metrics_config(ReportConfig, args, out=args.out, title=args.title).validate(), args)


def _run(settings: JobSettings, show: bool) -> ReportResult:
    cfg = settings.cfg
    started = time.monotonic()
    progress = Progress("report", show, steps=2)
    reading = cfg.read_from()
    with command_session("report", cfg) as spark:
        progress.step("reading the tables and building the report")
        # The report shows the runs of the store as MLflow shows them: deleted runs left out.
        tables = read_tables(spark, cfg, source=reading, view_type="ACTIVE_ONLY")
        if reading == "target":
            tables["runs"] = tables["runs"].where(F.coalesce(F.col("lifecycle_stage"), F.lit("active")) != "deleted")
        path = write_report(out_dir=cfg.out, plot_metrics=list(cfg.metrics or ()) or None, modes=cfg.modes(),
                            period=cfg.period or "auto", limits=cfg.limits(), margin=cfg.margin,
                            leaderboard_size=cfg.leaderboard_size, title=cfg.title, **tables)
        progress.step("written")
        progress.done()
    return ReportResult(path, source_display(cfg, reading), time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """``pyspark-experiments report``: write the report; returns the exit code (0, 1, 2).

    Example::

        >>> main(["--tracking-uri", "sqlite:///mlflow.db", "--out", "/tmp/report"])  # doctest: +SKIP
        0
    """
    return run_job("report", list(sys.argv[1:] if argv is None else argv), _parse, _run)


if __name__ == "__main__":
    sys.exit(main())
