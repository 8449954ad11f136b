"""One self-contained HTML report of the runs: plots as inline SVG, no scripts, opens offline.

Needs matplotlib (``pip install 'pyspark-experiments[report]'``) to draw the plots.

Example::

    >>> from pyspark_experiments.report import tables_from_store, write_report
    >>> write_report(out_dir="/tmp/report", **tables_from_store(spark, "sqlite:///mlflow.db"))
    '/tmp/report/report.html'
"""

from .build import REPORT_FILE, build_report, choose_period, default_mode, tables_from_delta, tables_from_store, write_report

__all__ = ["REPORT_FILE", "build_report", "choose_period", "default_mode", "tables_from_delta", "tables_from_store", "write_report"]
