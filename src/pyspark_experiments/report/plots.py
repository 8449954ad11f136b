"""Plots as inline SVG, drawn with matplotlib's SVG backend from small, already aggregated data.

No Spark here: every function takes plain Python values (lists, dicts, dates) and returns an
``<svg>`` element as text, ready to paste into an HTML page. Empty data gives a figure that
says "no data" (with its title), never an empty string or an error. matplotlib is imported
only when a plot is drawn (optional extra ``report``), through :func:`figure` without pyplot,
so no global state or GUI backend is touched.

Every string is drawn as given, character for character: names come from users (experiment,
user, run and metric names), and matplotlib would read ``$...$`` in them as mathtext (failing
on ``$\\frac{1}{$``) and leave a legend entry starting with ``_`` out. :func:`to_svg`, which
draws every plot, turns mathtext off for all the figure's text, and :func:`legend`, which draws
every legend, names its entries explicitly so that none is left out.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence

from ..errors import MissingDependencyError

WIDTH_IN = 10.0
HEIGHT_IN = 3.8
STATUS_COLORS = {
    "FINISHED": "#2ca02c", "FAILED": "#d62728", "KILLED": "#ff7f0e", "RUNNING": "#1f77b4", "SCHEDULED": "#9467bd",
}
LEVEL_COLORS = {"over": "#d62728", "near": "#ff7f0e", "ok": "#2ca02c"}
BAR_DAYS = {"day": 0.8, "week": 5.5, "month": 24.0}
_counter = 0


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "the HTML report draws its plots with matplotlib, which is not installed: pip install 'pyspark-experiments[report]'"
        ) from None
    return Figure


def figure(height: float = HEIGHT_IN, width: float = WIDTH_IN):
    """A new matplotlib ``Figure`` (not registered with pyplot).

    Example::

        >>> fig = figure(); ax = fig.subplots()
    """
    Figure = _matplotlib()
    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), text kept as text.

    Each call prefixes the figure's element ids with its own number, so several figures on one
    page never share an id.

    Example::

        >>> svg = to_svg(fig); svg.startswith("<svg")
        True
    """
    import matplotlib
    from matplotlib.text import Text

    global _counter
    _counter += 1
    # Text as given (no mathtext): the texts drawn so far here, those made while drawing (tick
    # labels) through the rc setting.
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    buffer = io.StringIO()
    settings = {"svg.fonttype": "none", "svg.hashsalt": f"pe-{_counter}", "text.parse_math": False}
    with matplotlib.rc_context(settings):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    svg = text[text.find("<svg"):]
    # matplotlib numbers its ids per figure (figure_1, axes_1...): prefix them, and every
    # reference to them, so that several figures on one page never share an id.
    prefix = f"f{_counter}-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{prefix}{m.group(1)})", svg)
    svg = re.sub(r'((?:xlink:)?href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', svg)
    # Let the page size the plot: keep the aspect ratio (viewBox), drop the fixed size in pt.
    sized = r'<svg([^>]*?) width="[^"]*" height="[^"]*"'
    return re.sub(sized, r'<svg\1 class="plot-svg" preserveAspectRatio="xMidYMid meet"', svg, count=1)


def legend(ax, entries: Sequence[tuple[object, str]], **options) -> None:
    """Draw the legend of ``ax`` from ``(artist, label)`` pairs, every label shown as given.

    matplotlib leaves artists whose label starts with ``_`` out of a legend it gathers itself;
    a legend given its entries keeps them (a user named ``_ci`` is listed).

    Example::

        >>> fig = figure(); ax = fig.subplots()
        >>> line, = ax.plot([1, 2], [3, 4])
        >>> legend(ax, [(line, "_ci")])
        >>> [t.get_text() for t in ax.get_legend().get_texts()]
        ['_ci']
    """
    if entries:
        ax.legend([artist for artist, _ in entries], [str(label) for _, label in entries], **options)


def no_data_svg(title: str, message: str = "no data", height: float = 2.0) -> str:
    """A titled figure that says ``message`` instead of a plot.

    Example::

        >>> "no data" in no_data_svg("Runs per month")
        True
    """
    fig = figure(height=height)
    ax = fig.subplots()
    ax.set_title(title, loc="left", fontweight="bold")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, color="#666666", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#cccccc")
    return to_svg(fig)


def _date_axis(ax, period: str) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(f"run start, UTC ({period})")


def _pad_dates(ax, dates: Sequence[dt.date], period: str, bar_width_days: float = 0.0) -> None:
    # A margin each side: a single day or month is a point or a bar, not the whole axis.
    pad = dt.timedelta(days={"day": 3, "week": 14, "month": 45}.get(period, 3))
    ax.set_xlim(min(dates) - pad, max(dates) + dt.timedelta(days=bar_width_days) + pad)


def _finish(ax, title: str, ylabel: str) -> None:
    ax.set_title(title, loc="left", fontweight="bold")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", color="#e5e5e5")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def trend_svg(title: str, series: dict[str, Sequence[tuple[dt.date, float, float]]], *, ylabel: str, period: str) -> str:
    """Per series: the best value of each period (markers) and the best so far (a step line).

    ``series`` maps a label (an experiment) to ``(period_start, best, best_so_far)`` tuples.

    Example::

        >>> trend_svg("loss", {"exp 1": [(dt.date(2024, 1, 1), 0.5, 0.5)]}, ylabel="loss", period="day")
    """
    series = {label: sorted(points) for label, points in series.items() if points}
    if not series:
        return no_data_svg(title)
    fig = figure()
    ax = fig.subplots()
    entries = []
    for index, (label, points) in enumerate(series.items()):
        color = f"C{index % 10}"
        dates = [p[0] for p in points]
        best, = ax.plot(dates, [p[1] for p in points], "o", color=color, alpha=0.55, markersize=4)
        so_far, = ax.step(dates, [p[2] for p in points], where="post", color=color, linewidth=2)
        entries += [(best, f"{label}: best per {period}"), (so_far, f"{label}: best so far")]
    _pad_dates(ax, [p[0] for points in series.values() for p in points], period)
    _date_axis(ax, period)
    _finish(ax, title, ylabel)
    legend(ax, entries, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return to_svg(fig)


def stacked_bars_svg(title: str, periods: Sequence[dt.date], series: dict[str, Sequence[float]], *, ylabel: str, period: str) -> str:
    """Bars per period, stacked by series (e.g. runs per user per week); one series is plain bars.

    Example::

        >>> stacked_bars_svg("Runs", [dt.date(2024, 1, 1)], {"alice": [3]}, ylabel="runs", period="month")
    """
    if not periods or not series or not any(any(values) for values in series.values()):
        return no_data_svg(title)
    fig = figure()
    ax = fig.subplots()
    bottom = [0.0] * len(periods)
    width = BAR_DAYS.get(period, 0.8)
    entries = []
    for index, (label, values) in enumerate(series.items()):
        bars = ax.bar(periods, values, width=width, bottom=bottom, color=f"C{index % 10}", align="edge")
        entries.append((bars, label))
        bottom = [b + v for b, v in zip(bottom, values)]
    _pad_dates(ax, periods, period, width)
    _date_axis(ax, period)
    _finish(ax, title, ylabel)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if len(series) > 1:
        legend(ax, entries, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="user")
    return to_svg(fig)


def health_svg(title: str, labels: Sequence[str], counts: dict[str, Sequence[int]]) -> str:
    """Horizontal bars per experiment, stacked by run status (FINISHED, FAILED, ...).

    Example::

        >>> health_svg("Run health", ["exp"], {"FINISHED": [8], "FAILED": [1]})
    """
    if not labels:
        return no_data_svg(title)
    fig = figure(height=max(2.2, 0.9 + 0.42 * len(labels)))
    ax = fig.subplots()
    left = [0] * len(labels)
    positions = list(range(len(labels)))
    entries = []
    for status, values in counts.items():
        if not any(values):
            continue
        bars = ax.barh(positions, values, left=left, color=STATUS_COLORS.get(status, "#7f7f7f"), height=0.6)
        entries.append((bars, status.lower()))
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(positions, [_short(label, 40) for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel("runs")
    ax.xaxis.get_major_locator().set_params(integer=True)
    _finish(ax, title, "experiment")
    ax.grid(True, axis="x", color="#e5e5e5")
    ax.grid(False, axis="y")
    legend(ax, entries, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="status")
    return to_svg(fig)


def quota_svg(title: str, labels: Sequence[str], usage: Sequence[float], levels: Sequence[str], *, margin: float) -> str:
    """Horizontal bars of quota usage in percent of the limit, with the margin and the limit marked.

    Example::

        >>> quota_svg("Quota", ["run a: params"], [0.9], ["near"], margin=0.8)
    """
    if not labels:
        return no_data_svg(title)
    fig = figure(height=max(2.2, 1.0 + 0.36 * len(labels)))
    ax = fig.subplots()
    percent = [100.0 * u for u in usage]
    positions = list(range(len(labels)))
    ax.barh(positions, percent, color=[LEVEL_COLORS.get(level, "#7f7f7f") for level in levels], height=0.6)
    for position, value in zip(positions, percent):
        ax.text(value, position, f" {value:.1f}%", va="center", fontsize=8)
    limit = ax.axvline(100, color="#d62728", linestyle="-", linewidth=1.2)
    warning = ax.axvline(100 * margin, color="#ff7f0e", linestyle="--", linewidth=1.2)
    ax.set_yticks(positions, [_short(label, 90) for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel("usage, % of the limit")
    ax.set_xlim(0, max(110.0, max(percent) * 1.12))
    _finish(ax, title, "")
    ax.grid(True, axis="x", color="#e5e5e5")
    ax.grid(False, axis="y")
    legend(ax, [(limit, "limit (100%)"), (warning, f"margin ({100 * margin:g}%)")], fontsize=8, loc="lower right")
    return to_svg(fig)


def _short(text: str, length: int) -> str:
    text = str(text)
    return text if len(text) <= length else text[: length - 1] + "…"
