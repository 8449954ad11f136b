"""The HTML report, opened in a real headless browser (Debian's chromium) with the network off.

For the reference store, an empty store and a store with one run: the page loads from a file
with no console errors and no request other than the page itself, every plot is present, is
an inline SVG that drew something (shapes in the SVG, and non-white pixels in the screenshot
where the plot is), and a full-page screenshot is saved under the test's tmp dir (the reference
store's also as docs/images/report.png when missing, or with PE_UPDATE_DOC_IMAGES=1).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from pyspark_experiments.analytics import QuotaLimits
from pyspark_experiments.report import REPORT_FILE, build_report, tables_from_store, write_report
from support.browser import Chromium, chromium_binary, save_screenshot, update_doc_image
from support.paths import REPO

ROOT = REPO
NOW = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
BASE_PLOTS = ["runs-per-user", "runs-per-month", "run-health", "quota-usage"]

PLOTS_SCRIPT = """({
  plots: Array.from(document.querySelectorAll('figure.plot')).map(f => {
    const svg = f.querySelector('svg');
    const r = f.getBoundingClientRect();
    const shapes = svg ? Array.from(svg.querySelectorAll('path, rect, line, polyline, use'))
        .filter(e => { const b = e.getBoundingClientRect(); return b.width > 0 || b.height > 0; }).length : 0;
    return {id: f.id, svg: !!svg, x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
            shapes: shapes, text: svg ? svg.textContent : ''};
  }),
  sections: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
  tables: Array.from(document.querySelectorAll('table')).map(t => t.innerText),
  notes: Array.from(document.querySelectorAll('p.note, p.nodata')).map(p => p.textContent),
  scripts: document.querySelectorAll('script, link, img, iframe').length,
  width: document.documentElement.scrollWidth
})"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium_binary()  # a clear failure, before any Spark work, when chromium is missing
    with Chromium(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


def painted_fraction(png: bytes, plot: dict) -> float:
    """The fraction of the plot's pixels in the screenshot that are not white."""
    from matplotlib import image

    pixels = image.imread(io.BytesIO(png), format="png")
    top, left = int(plot["y"]), int(plot["x"])
    crop = pixels[top:top + int(plot["height"]), left:left + int(plot["width"]), :3]
    assert crop.size, plot["id"]
    return float((crop.min(axis=2) < 0.9).mean())


def open_report(browser, path: str, tmp_path: Path, name: str):
    page = browser.open(path, script=PLOTS_SCRIPT)
    shot = save_screenshot(page, tmp_path / f"{name}.png")
    assert not page.errors, f"the page logged errors: {page.errors}"
    own = Path(path).resolve().as_uri()
    assert [url for url in page.requests if url != own] == [], f"the page requested more than itself: {page.requests}"
    info = page.value
    assert info["scripts"] == 0  # no scripts, stylesheets, images or frames to fetch: plots are inline SVG
    assert info["width"] <= 1366, "the page is wider than a laptop screen"
    for plot in info["plots"]:
        assert plot["svg"] and plot["width"] > 600 and plot["height"] > 100, plot
        assert plot["shapes"] > 0, f"plot {plot['id']} drew nothing"
        assert painted_fraction(page.screenshot, plot) > 0.002, f"plot {plot['id']} has no visible pixels"
    return page, info, shot


def test_report_of_the_reference_store(spark, sqlite_store, browser, tmp_path):
    tables = tables_from_store(spark, sqlite_store)
    limits = QuotaLimits(params_per_run=3, tags_per_run=6, metric_steps_per_run=1_000, runs_per_experiment=10, tags_per_experiment=2)
    path = write_report(out_dir=str(tmp_path / "out"), plot_metrics=["loss", "val/acc"], modes={"val/acc": "max"}, limits=limits,
                        now=NOW, title="Reference store", **tables)
    assert path == str(tmp_path / "out" / REPORT_FILE)
    page, info, shot = open_report(browser, path, tmp_path, "report")
    update_doc_image(shot, ROOT / "docs" / "images" / "report.png")

    assert [p["id"] for p in info["plots"]] == ["trend-0", "trend-1"] + BASE_PLOTS
    assert not any("no data" in p["text"] for p in info["plots"])
    assert info["sections"] == ["Overview", "Metric trend", "Activity", "Run health", "Leaderboards", "Quota usage",
                                "Cleanup candidates"]
    by_id = {p["id"]: p for p in info["plots"]}
    assert "loss: best per month and best so far (lower is better)" in by_id["trend-0"]["text"]
    assert "val/acc: best per month and best so far (higher is better)" in by_id["trend-1"]["text"]
    assert "run start, UTC (month)" in by_id["runs-per-user"]["text"] and "runs started" in by_id["runs-per-user"]["text"]
    for user in ("alice", "bob", "carol"):
        assert user in by_id["runs-per-user"]["text"]
    assert "usage, % of the limit" in by_id["quota-usage"]["text"]
    assert "ref-alpha (1): runs per experiment (14 of 10)" in by_id["quota-usage"]["text"].replace("\n", " ")
    leaderboard, cleanup = info["tables"][1], info["tables"][-1]
    assert leaderboard.splitlines()[1].split("\t")[:3] == ["ref-alpha (1)", "1", "a-long"]
    assert [line.split("\t")[1] for line in cleanup.splitlines()[1:]] == ["a-failed", "a-killed"]


@pytest.mark.slow
def test_report_of_an_empty_store(spark, browser, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    MlflowClient(uri).search_experiments()  # creates the schema and the Default experiment
    path = write_report(out_dir=str(tmp_path / "out"), **tables_from_store(spark, uri))
    page, info, _ = open_report(browser, path, tmp_path, "empty")
    assert [p["id"] for p in info["plots"]] == ["trend"] + BASE_PLOTS
    assert all("no data" in p["text"] for p in info["plots"])
    assert "no cleanup candidates" in info["notes"] or any("0 run(s)" in n for n in info["notes"])


@pytest.mark.slow
def test_report_of_a_store_with_one_run(spark, browser, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'one.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("solo")
    run = client.create_run(experiment, start_time=1_717_200_000_000, tags={"mlflow.user": "dana"}, run_name="only-run")
    for step in range(3):
        client.log_metric(run.info.run_id, "accuracy", 0.7 + 0.1 * step, timestamp=1_717_200_000_000 + step, step=step)
    client.log_param(run.info.run_id, "depth", "4")
    client.set_terminated(run.info.run_id, "FINISHED", end_time=1_717_200_090_000)

    text = build_report(**tables_from_store(spark, uri))  # default metric and direction
    path = tmp_path / "one.html"
    path.write_text(text, encoding="utf-8")
    page, info, _ = open_report(browser, str(path), tmp_path, "one-run")
    assert [p["id"] for p in info["plots"]] == ["trend-0"] + BASE_PLOTS
    by_id = {p["id"]: p for p in info["plots"]}
    assert "accuracy: best per day and best so far (higher is better)" in by_id["trend-0"]["text"]
    for plot_id in ("trend-0", "runs-per-user", "runs-per-month", "run-health", "quota-usage"):
        assert "no data" not in by_id[plot_id]["text"], plot_id
    assert "only-run" in info["tables"][1]  # the leaderboard
