"""Plots draw user-supplied names as given: no mathtext, legends that keep names starting with ``_``."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from pyspark_experiments.report import plots

NAMES = ("broken $\\frac{1}{$ name", "_private", "$x$")
DAY = dt.date(2024, 1, 1)


def texts(svg: str, group: str = "") -> list[str]:
    """The text of every ``<text>`` of ``svg`` (inside the groups whose id ends with ``group``)."""
    root = ET.fromstring(svg)
    scopes = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("id", "").endswith(group)] if group else [root]
    return ["".join(t.itertext()) for scope in scopes for t in scope.iter("{http://www.w3.org/2000/svg}text")]


def test_trend_draws_names_literally_in_title_label_and_legend():
    svg = plots.trend_svg(f"{NAMES[2]}: best", {name: [(DAY, 1.0, 1.0)] for name in NAMES}, ylabel=NAMES[0], period="day")
    legend = texts(svg, "legend_1")
    assert legend == [f"{name}: best per day" if i % 2 == 0 else f"{name}: best so far"
                      for name in NAMES for i in range(2)]
    assert f"{NAMES[2]}: best" in texts(svg) and NAMES[0] in texts(svg)


def test_stacked_bars_list_every_user_in_the_legend():
    svg = plots.stacked_bars_svg(NAMES[0], [DAY], {name: [1] for name in NAMES}, ylabel="runs", period="day")
    assert texts(svg, "legend_1") == ["user", *NAMES]
    assert NAMES[0] in texts(svg)


def test_health_and_quota_tick_labels_are_literal():
    health = plots.health_svg("health", list(NAMES), {"FINISHED": [1, 2, 3], "FAILED": [0, 1, 0]})
    assert [t for t in texts(health) if t in NAMES] == list(NAMES)
    assert texts(health, "legend_1") == ["status", "finished", "failed"]
    quota = plots.quota_svg("quota", list(NAMES), [0.5, 0.9, 1.2], ["ok", "near", "over"], margin=0.8)
    assert [t for t in texts(quota) if t in NAMES] == list(NAMES)
    assert texts(quota, "legend_1") == ["limit (100%)", "margin (80%)"]


def test_no_data_title_is_literal():
    assert NAMES[0] in texts(plots.no_data_svg(NAMES[0]))
