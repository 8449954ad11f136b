"""The HTML page around the plots: one self-contained file, no scripts, no external resources."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence

CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; margin: 0; color: #222; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 1.6em; margin: 8px 0 4px; }
h2 { font-size: 1.2em; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta, p.note { color: #555; font-size: 0.9em; margin: 4px 0; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 12px 0; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 16px; min-width: 110px; }
.card b { display: block; font-size: 1.5em; }
figure.plot { background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 10px 0; padding: 6px; }
figure.plot svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; background: #fff; font-size: 0.86em; width: 100%; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.nodata { color: #666; font-style: italic; }
"""


def escape(value) -> str:
    """HTML-escaped text of ``value`` (``None`` as an empty string).

    Example::

        >>> escape("<b>")
        '&lt;b&gt;'
    """
    return "" if value is None else html.escape(str(value), quote=True)


def format_value(value) -> str:
    """A cell's text: floats to 4 significant digits, times in UTC, ``None`` as empty.

    Example::

        >>> format_value(0.123456), format_value(float("nan")), format_value(12)
        ('0.1235', 'NaN', '12')
    """
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence], *, empty: str = "no data", numeric: Sequence[int] = ()) -> str:
    """An HTML table; ``numeric`` column indexes are right-aligned; no rows gives ``empty``.

    Example::

        >>> table(["run", "loss"], [["a", 0.5]], numeric=[1])
        '<table>...'
    """
    if not rows:
        return f'<p class="nodata">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            css = ' class="num"' if index in numeric else ""
            cells.append(f"<td{css}>{escape(format_value(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def plot(plot_id: str, svg: str) -> str:
    """A figure wrapping one inline SVG plot.

    Example::

        >>> plot("runs-per-month", "<svg></svg>")
        '<figure class="plot" id="runs-per-month"><svg></svg></figure>'
    """
    return f'<figure class="plot" id="{escape(plot_id)}">{svg}</figure>'


def page(title: str, body: str, *, generated: dt.datetime | None = None) -> str:
    """The whole HTML document.

    Example::

        >>> page("Report", "<p>hi</p>").startswith("<!DOCTYPE html>")
        True
    """
    stamp = (generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{escape(title)}</h1>\n<p class=\"meta\">Generated {escape(stamp)} by pyspark-experiments.</p>\n"
        f"{body}\n</main>\n</body>\n</html>\n"
    )
