"""Build the HTML report from the tables: analytics in Spark, small results to the driver, plots.

Only aggregated results reach the driver, each bounded: periods x shown series for the plots,
``leaderboard_size`` runs per shown experiment, the ``quota_rows`` most used quotas and the
first ``cleanup_rows`` cleanup candidates (with their total count).
"""

from __future__ import annotations

import datetime as dt
import os

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .. import analytics
from ..analytics.common import PERIODS, check_choice, check_positive_int, require_columns, require_metrics, utc_period
from ..analytics.leaderboard import default_mode
from . import html, plots

STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")
DEFAULT_CLEANUP = ({"statuses": ["FAILED", "KILLED"], "older_than": 30},)
REPORT_FILE = "report.html"


def choose_period(first: dt.date | None, last: dt.date | None) -> str:
    """``day`` for spans up to 62 days, ``week`` up to two years, else ``month``.

    Example::

        >>> choose_period(dt.date(2024, 1, 1), dt.date(2024, 3, 1))
        'week'
    """
    if first is None or last is None:
        return "day"
    span = (last - first).days
    return "day" if span <= 62 else "week" if span <= 731 else "month"


def tables_from_store(spark, tracking_uri: str | None = None, experiments: str = "") -> dict[str, DataFrame]:
    """The ``runs``, ``metrics`` and ``experiments`` tables of a store, as the source reads them.

    Example::

        >>> build_report(**tables_from_store(spark, "sqlite:///mlflow.db"))
    """
    def read(table: str) -> DataFrame:
        reader = spark.read.format("experiments").option("table", table)
        if tracking_uri:
            reader = reader.option("trackingUri", tracking_uri)
        return reader.load(experiments)

    return {"runs": read("runs"), "metrics": read("metrics"), "experiments": read("experiments")}


def tables_from_delta(spark, path: str) -> dict[str, DataFrame]:
    """The synced Delta tables ``<path>/runs``, ``<path>/metrics``, ``<path>/experiments``.

    Example::

        >>> write_report(**tables_from_delta(spark, "/data/mlflow-delta"), out_dir="/tmp/report")
    """
    return {name: spark.read.format("delta").load(os.path.join(path, name)) for name in ("runs", "metrics", "experiments")}


def _names(experiments: DataFrame | None) -> dict[str, str]:
    if experiments is None:
        return {}
    # One row per experiment: small.
    return {row.experiment_id: row.name for row in experiments.select("experiment_id", "name").collect()}


def _label(names: dict[str, str], experiment_id: str) -> str:
    name = names.get(experiment_id)
    return f"{name} ({experiment_id})" if name else f"experiment {experiment_id}"


def _default_metrics(runs: DataFrame, count: int = 1) -> list[str]:
    keys = (
        runs.select(F.explode(F.map_keys("metrics")).alias("key"))
        .groupBy("key").count().orderBy(F.desc("count"), "key").limit(count).collect()
    )
    return [row.key for row in keys]


def _top_experiments(runs: DataFrame, limit: int) -> list[str]:
    rows = runs.groupBy("experiment_id").count().orderBy(F.desc("count"), "experiment_id").limit(limit).collect()
    return [row.experiment_id for row in rows]


def build_report(
    runs: DataFrame,
    *,
    metrics: DataFrame | None = None,
    experiments: DataFrame | None = None,
    plot_metrics: list[str] | str | None = None,
    modes: dict[str, str] | None = None,
    period: str = "auto",
    limits: analytics.QuotaLimits | None = None,
    margin: float = 0.8,
    cleanup: list[dict] | tuple[dict, ...] | None = None,
    leaderboard_size: int = 10,
    max_series: int = 8,
    quota_rows: int = 15,
    cleanup_rows: int = 50,
    title: str = "MLflow runs report",
    now: dt.datetime | None = None,
) -> str:
    """The whole report as one self-contained HTML page (inline SVG plots, no scripts, no links).

    - ``plot_metrics``: metric keys to plot (trend and leaderboard); default: the key most runs have.
    - ``modes``: ``{metric: "max" | "min"}``; a metric not listed gets :func:`default_mode`.
    - ``period``: ``day``, ``week``, ``month`` or ``auto`` (from the span of start times,
      :func:`choose_period`); total runs are always plotted per month.
    - ``limits``, ``margin``: quota limits (default Databricks') and the warning margin.
    - ``cleanup``: criteria sets, each the keyword arguments of
      :func:`~pyspark_experiments.analytics.cleanup_candidates` (default: FAILED or KILLED runs
      started more than 30 days ago); a run matching several sets is listed once.
    - ``max_series``: the most experiments (trend, health, leaderboard) and users (runs per user,
      the rest summed as "others") drawn.

    Example::

        >>> html_text = build_report(runs, metrics=metrics, experiments=experiments,
        ...                          plot_metrics=["val_loss"], modes={"val_loss": "min"})
    """
    function = "build_report"
    require_columns(runs, ("run_id", "experiment_id", "metrics", "start_time", "user_id", "status"), "runs", function)
    for name, value in (("leaderboard_size", leaderboard_size), ("max_series", max_series), ("quota_rows", quota_rows),
                        ("cleanup_rows", cleanup_rows)):
        check_positive_int(value, name, function)
    limits = limits or analytics.QuotaLimits()
    margin = analytics.check_margin(margin)
    # The report queries the runs table about twenty times: read the store once. Metric
    # history, possibly large, is aggregated once (quota usage) and is not cached.
    cache_here = not runs.is_cached
    if cache_here:
        runs.cache()
    try:
        return _build(runs, metrics, experiments, plot_metrics, modes, period, limits, margin, cleanup, leaderboard_size,
                      max_series, quota_rows, cleanup_rows, title, now)
    finally:
        if cache_here:
            runs.unpersist()


def _build(runs, metrics, experiments, plot_metrics, modes, period, limits, margin, cleanup, leaderboard_size, max_series,
           quota_rows, cleanup_rows, title, now) -> str:
    function = "build_report"
    names = _names(experiments)
    if isinstance(plot_metrics, str):
        plot_metrics = [plot_metrics]
    require_metrics(runs, plot_metrics, f"{function}(): plot_metrics:")
    plot_metrics = list(plot_metrics) if plot_metrics else _default_metrics(runs)
    modes = {
        key: check_choice(value, ("max", "min"), f"modes[{key!r}]", function) for key, value in (modes or {}).items()
    }
    span = runs.agg(F.min(utc_period(F.col("start_time"), "day")).alias("first"),
                    F.max(utc_period(F.col("start_time"), "day")).alias("last")).first()
    period = choose_period(span.first, span.last) if str(period).lower() == "auto" else \
        check_choice(period, PERIODS, "period", function)
    shown_experiments = _top_experiments(runs, max_series)

    sections = [_summary(runs, names)]
    sections.append("<h2>Metric trend</h2>")
    sections.append(f'<p class="note">Each run counts with its latest value of the metric; periods are UTC {period}s of the run start. '
                    "Markers: the best value of the runs started in the period; line: the best so far.</p>")
    if not plot_metrics:
        sections.append(html.plot("trend", plots.no_data_svg("Metric trend: no run logged a metric")))
    for index, metric in enumerate(plot_metrics):
        mode = modes.get(metric) or default_mode(metric)
        sections.append(_trend(runs, metric, mode, period, shown_experiments, names, f"trend-{index}"))
    sections.append(_activity(runs, period, max_series))
    sections.append(_health(runs, shown_experiments, names))
    sections.append("<h2>Leaderboards</h2>")
    if not plot_metrics:
        sections.append('<p class="nodata">no data</p>')
    for metric in plot_metrics:
        sections.append(_leaderboard(runs, metric, modes.get(metric) or default_mode(metric), leaderboard_size, shown_experiments, names))
    sections.append(_quota(runs, metrics, experiments, limits, margin, quota_rows, names))
    sections.append(_cleanup(runs, DEFAULT_CLEANUP if cleanup is None else cleanup, now, cleanup_rows, names))
    return html.page(title, "\n".join(sections))


def write_report(runs: DataFrame, out_dir: str, **options) -> str:
    """Write :func:`build_report`'s page to ``<out_dir>/report.html`` (folders made); returns the path.

    Example::

        >>> write_report(runs, "/tmp/report", metrics=metrics, experiments=experiments)
        '/tmp/report/report.html'
    """
    text = build_report(runs, **options)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, REPORT_FILE)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
    return path


def _summary(runs: DataFrame, names: dict[str, str]) -> str:
    total = analytics.total_runs(runs).first()
    statuses = {row.status: row.runs for row in analytics.run_totals(runs, "status").collect()}
    cards = [("runs", total.runs), ("users", total.users), ("experiments", total.experiments)]
    cards += [(status.lower(), statuses.get(status, 0)) for status in ("FINISHED", "FAILED", "KILLED", "RUNNING")]
    body = "".join(f'<div class="card"><b>{html.escape(value)}</b>{html.escape(label)}</div>' for label, value in cards)
    return f'<h2>Overview</h2><div class="cards">{body}</div>'


def _trend(runs, metric, mode, period, shown, names, plot_id) -> str:
    rows = analytics.metric_trend(runs, metric, period=period, mode=mode).where(F.col("experiment_id").isin(shown)).collect()
    series: dict[str, list] = {}
    for row in rows:
        series.setdefault(_label(names, row.experiment_id), []).append((row.period_start, row.best, row.best_so_far))
    better = "higher" if mode == "max" else "lower"
    title = f"{metric}: best per {period} and best so far ({better} is better)"
    return html.plot(plot_id, plots.trend_svg(title, series, ylabel=f"{metric} (as logged)", period=period))


def _activity(runs, period, max_series) -> str:
    top = [row.user_id for row in analytics.run_totals(runs, "user").limit(max_series).collect()]
    grouped = runs.withColumn("user_id", F.when(F.col("user_id").isin(top), F.col("user_id")).otherwise(F.lit("(others)")))
    per_user = analytics.runs_per_user(grouped, period=period).collect()
    periods = sorted({row.period_start for row in per_user})
    index = {p: i for i, p in enumerate(periods)}
    order = [u for u in top if u is not None] + ["(others)"]
    series = {user: [0] * len(periods) for user in order}
    for row in per_user:
        series.setdefault(row.user_id, [0] * len(periods))[index[row.period_start]] = row.runs
    series = {user: values for user, values in series.items() if any(values)}
    monthly = analytics.runs_over_time(runs, period="month").collect()
    parts = ["<h2>Activity</h2>"]
    parts.append(html.plot("runs-per-user", plots.stacked_bars_svg(
        f"Runs started per user and {period}", periods, series, ylabel="runs started", period=period)))
    parts.append(html.plot("runs-per-month", plots.stacked_bars_svg(
        "Total runs started per month (all users)", [r.period_start for r in monthly], {"all users": [r.runs for r in monthly]},
        ylabel="runs started", period="month")))
    return "\n".join(parts)


def _health(runs, shown, names) -> str:
    rows = analytics.run_health(runs).where(F.col("experiment_id").isin(shown)).collect()
    rows.sort(key=lambda r: shown.index(r.experiment_id))
    labels = [_label(names, r.experiment_id) for r in rows]
    counts = {status: [getattr(r, status.lower()) for r in rows] for status in STATUSES}
    table = html.table(
        ["experiment", "runs", "success ratio", "failure rate", "kill rate", "running", "duration p50 (s)", "duration p90 (s)",
         "duration p99 (s)"],
        [[label, r.runs, r.success_ratio, r.failure_rate, r.kill_rate, r.running, r.duration_p50, r.duration_p90, r.duration_p99]
         for label, r in zip(labels, rows)],
        numeric=range(1, 9),
    )
    return "\n".join([
        "<h2>Run health</h2>",
        html.plot("run-health", plots.health_svg("Runs per experiment by status", labels, counts)),
        '<p class="note">Success ratio: FINISHED among ended runs (FINISHED, FAILED, KILLED); durations of ended runs.</p>',
        table,
    ])


def _leaderboard(runs, metric, mode, size, shown, names) -> str:
    rows = analytics.leaderboard(runs, metric, experiment_ids=shown, n=size, mode=mode).collect()
    better = "highest" if mode == "max" else "lowest"
    body = html.table(
        ["experiment", "rank", "run", "user", "status", "started (UTC)", metric, "params"],
        [[_label(names, r.experiment_id), r.rank, r.run_name or r.run_id, r.user_id, r.status, r.start_time, r.value,
          html.format_value(dict(list(sorted((r.params or {}).items()))[:8]))[:200]] for r in rows],
        numeric=[1, 6],
    )
    return f"<h3>Top {size} runs by {html.escape(metric)} ({better} first)</h3>{body}"


def _quota(runs, metrics, experiments, limits, margin, quota_rows, names) -> str:
    usage = analytics.quota_usage(runs, metrics=metrics, experiments=experiments, limits=limits, margin=margin, only_flagged=False)
    counts = {row.level: row["count"] for row in usage.groupBy("level").count().collect()}
    top = (
        usage.where(F.col("used") > 0)  # nothing logged yet is no usage to draw
        .join(runs.select("run_id", "run_name"), "run_id", "left")
        .orderBy(F.desc("usage"), "quota", "experiment_id", F.asc_nulls_first("run_id")).limit(quota_rows).collect()
    )
    labels = []
    for row in top:
        owner = _label(names, row.experiment_id)
        if row.scope == "run":
            owner += f" / run {row.run_name or row.run_id}"
        labels.append(f"{owner}: {row.quota.replace('_', ' ')} ({row.used:,} of {row.limit:,})")
    svg = plots.quota_svg(f"Quota usage, closest to a limit first (top {quota_rows})", labels, [r.usage for r in top],
                          [r.level for r in top], margin=margin)
    note = (f'<p class="note">{counts.get("over", 0)} over a limit, {counts.get("near", 0)} within {100 * margin:g}% of one. '
            f"Limits: {limits.params_per_run:,} params, {limits.tags_per_run:,} tags and {limits.metric_steps_per_run:,} metric "
            f"steps per run; {limits.runs_per_experiment:,} runs and {limits.tags_per_experiment:,} tags per experiment.</p>")
    return "\n".join(["<h2>Quota usage</h2>", note, html.plot("quota-usage", svg)])


def _cleanup(runs, criteria, now, cleanup_rows, names) -> str:
    if now is None:
        now = dt.datetime.now(dt.UTC)
    parts = [analytics.cleanup_candidates(runs, **{"now": now, **dict(c)}) for c in criteria]
    title = "<h2>Cleanup candidates</h2>"
    if not parts:
        return title + '<p class="nodata">no cleanup criteria given</p>'
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    candidates = union.groupBy("experiment_id", "run_id", "run_name", "user_id", "status", "start_time", "age_days").agg(
        F.concat_ws(" | ", F.array_sort(F.collect_set("reason"))).alias("reason"))
    total = candidates.count()
    rows = candidates.orderBy("experiment_id", "start_time", "run_id").limit(cleanup_rows).collect()
    described = " or ".join(
        "(" + ", ".join(f"{k}={v!r}" for k, v in dict(c).items()) + ")" for c in criteria) or "none"
    note = (f'<p class="note">{total} run(s) selected by {html.escape(described)} as of {html.escape(html.format_value(now))} UTC'
            f"{f'; the first {cleanup_rows} shown' if total > cleanup_rows else ''}. Nothing is deleted by this report.</p>")
    body = html.table(
        ["experiment", "run", "user", "status", "started (UTC)", "age (days)", "reason"],
        [[_label(names, r.experiment_id), r.run_name or r.run_id, r.user_id, r.status, r.start_time, r.age_days, r.reason] for r in rows],
        empty="no cleanup candidates", numeric=[5],
    )
    return title + note + body


__all__ = ["build_report", "choose_period", "default_mode", "tables_from_delta", "tables_from_store", "write_report"]
