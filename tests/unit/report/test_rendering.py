"""Pure helpers of analytics and the report, no Spark: quota levels, periods, HTML, SVG plots."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from pyspark_experiments.analytics import QuotaLimits, check_margin, usage_level
from pyspark_experiments.analytics.common import to_micros, to_timedelta
from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.report import choose_period, default_mode, html, plots


@pytest.mark.parametrize(
    "used, limit, margin, level",
    [(1601, 1600, 0.8, "over"), (1600, 1600, 0.8, "near"), (1280, 1600, 0.8, "near"), (1279, 1600, 0.8, "ok"),
     (0, 1, 0.8, "ok"), (1, 1, 1.0, "near"), (2, 1, 1.0, "over"), (9, 10, 0.95, "ok")],
)
def test_usage_level(used, limit, margin, level):
    assert usage_level(used, limit, margin) == level


@pytest.mark.parametrize("margin", [0, -0.1, 1.01, "0.8", True, None])
def test_bad_margin_is_named(margin):
    with pytest.raises(ConfigurationError, match="quota margin"):
        check_margin(margin)


def test_quota_limits_default_to_databricks_and_reject_bad_values():
    limits = QuotaLimits()
    assert (limits.params_per_run, limits.tags_per_run, limits.metric_steps_per_run) == (1_600, 1_600, 1_000_000)
    assert (limits.runs_per_experiment, limits.tags_per_experiment) == (500_000, 1_000)
    for bad in (0, -5, 2.5, "10", True):
        with pytest.raises(ConfigurationError, match="runs_per_experiment"):
            QuotaLimits(runs_per_experiment=bad)


def test_times():
    assert to_micros(dt.datetime(1970, 1, 1, 0, 0, 1, 5)) == 1_000_005
    assert to_micros(dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == 1_704_067_200_000_000
    assert to_timedelta(1.5, "older_than", "f") == dt.timedelta(days=1.5)
    with pytest.raises(ConfigurationError, match="older_than=-1 is negative"):
        to_timedelta(-1, "older_than", "f")
    with pytest.raises(ConfigurationError, match="older_than='30d'"):
        to_timedelta("30d", "older_than", "f")


@pytest.mark.parametrize("metric, mode", [("loss", "min"), ("val/loss", "min"), ("RMSE", "min"), ("error_rate", "min"),
                                          ("accuracy", "max"), ("test_r2", "max"), ("f1", "max"), ("train_time_s", "min")])
def test_default_mode(metric, mode):
    assert default_mode(metric) == mode


def test_choose_period():
    day = dt.date(2024, 1, 1)
    assert choose_period(None, None) == "day"
    assert choose_period(day, day + dt.timedelta(days=62)) == "day"
    assert choose_period(day, day + dt.timedelta(days=63)) == "week"
    assert choose_period(day, day + dt.timedelta(days=800)) == "month"


def test_html_escapes_and_formats():
    text = html.table(["run <name>", "loss"], [["<script>alert(1)</script>", 0.123456], ["b", float("nan")]], numeric=[1])
    assert "<script>" not in text and "&lt;script&gt;" in text and "run &lt;name&gt;" in text
    assert '<td class="num">0.1235</td>' in text and "NaN" in text
    assert html.table(["a"], [], empty="nothing here") == '<p class="nodata">nothing here</p>'
    assert html.format_value(dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC)) == "2024-01-02 03:04"
    page = html.page("T & <b>", "<p>body</p>", generated=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    assert page.startswith("<!DOCTYPE html>") and "<title>T &amp; &lt;b&gt;</title>" in page
    assert not re.search(r"<(script|link|img|iframe)\b", page)


def _is_inline_svg(svg: str) -> bool:
    return svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "<?xml" not in svg and 'viewBox="' in svg


def test_plots_draw_data_as_inline_svg():
    days = [dt.date(2024, 1, d) for d in (1, 2, 5)]
    svgs = {
        "trend": plots.trend_svg("loss over time", {"exp A": [(d, 1.0 / i, 1.0 / i) for i, d in enumerate(days, 1)]},
                                 ylabel="loss (as logged)", period="day"),
        "bars": plots.stacked_bars_svg("Runs per user", days, {"alice": [1, 0, 2], "bob": [0, 3, 1]}, ylabel="runs", period="day"),
        "health": plots.health_svg("Health", ["exp A"], {"FINISHED": [5], "FAILED": [1], "KILLED": [0]}),
        "quota": plots.quota_svg("Quota", ["run x: params", "exp: runs"], [1.2, 0.85], ["over", "near"], margin=0.8),
    }
    for name, svg in svgs.items():
        assert _is_inline_svg(svg), name
        assert "no data" not in svg, name
        assert len(re.findall(r"<path\b", svg)) > 5, name
    assert "loss over time" in svgs["trend"] and "loss (as logged)" in svgs["trend"] and "run start, UTC (day)" in svgs["trend"]
    assert "alice" in svgs["bars"] and "bob" in svgs["bars"]
    assert "120.0%" in svgs["quota"] and "margin (80%)" in svgs["quota"]
    # Element ids differ between figures, so that one page can hold them all.
    ids = [set(re.findall(r'id="([^"]+)"', svg)) for svg in svgs.values()]
    assert not set.intersection(*ids[:2]) and not ids[0] & ids[3]
    for svg, own in zip(svgs.values(), ids):
        referenced = set(re.findall(r"url\(#([^)]+)\)", svg)) | set(re.findall(r'href="#([^"]+)"', svg))
        assert referenced and referenced <= own  # clip paths and glyph references still resolve


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plots.trend_svg("T", {}, ylabel="y", period="day"),
        lambda: plots.trend_svg("T", {"a": []}, ylabel="y", period="day"),
        lambda: plots.stacked_bars_svg("T", [], {}, ylabel="y", period="month"),
        lambda: plots.stacked_bars_svg("T", [dt.date(2024, 1, 1)], {"a": [0]}, ylabel="y", period="month"),
        lambda: plots.health_svg("T", [], {}),
        lambda: plots.quota_svg("T", [], [], [], margin=0.8),
    ],
)
def test_empty_data_says_no_data(draw):
    svg = draw()
    assert _is_inline_svg(svg) and "no data" in svg and ">T<" in svg.replace("\n", "")
