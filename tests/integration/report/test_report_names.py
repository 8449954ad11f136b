"""A report of a store whose experiment and user names hold ``$``, mathtext and a leading ``_``:
every name is drawn as given, and the legends list every user."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from pyspark_experiments.report import build_report, tables_from_store

NAMES = ("broken $\\frac{1}{$ name", "_private", "$x$")
BASE_MS = 1_704_067_200_000
SVG = "{http://www.w3.org/2000/svg}"


def figures(page: str) -> dict[str, ET.Element]:
    """Each plot of the page: its figure id and its parsed SVG."""
    found = re.finditer(r'<figure class="plot" id="([^"]+)">(<svg.*?</svg>)\s*</figure>', page, re.S)
    return {m.group(1): ET.fromstring(m.group(2)) for m in found}


def texts(svg: ET.Element, group: str = "") -> list[str]:
    scopes = [g for g in svg.iter(f"{SVG}g") if g.get("id", "").endswith(group)] if group else [svg]
    return ["".join(t.itertext()) for scope in scopes for t in scope.iter(f"{SVG}text")]


def test_report_draws_names_literally(spark, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'names.db'}"
    client = MlflowClient(uri)
    for index, name in enumerate(NAMES):
        experiment = client.create_experiment(name)
        for user_index, user in enumerate(NAMES):
            start = BASE_MS + (index * 3 + user_index) * 86_400_000
            run = client.create_run(experiment, start_time=start, tags={"mlflow.user": user}, run_name=f"{user}-{index}")
            client.log_metric(run.info.run_id, "loss", 1.0 / (1 + user_index), timestamp=start, step=0)
            client.set_terminated(run.info.run_id, "FINISHED", end_time=start + 60_000)

    page = build_report(**tables_from_store(spark, uri), plot_metrics=["loss"], max_series=8)
    plots = figures(page)
    assert set(plots) == {"trend-0", "runs-per-user", "runs-per-month", "run-health", "quota-usage"}
    labels = [f"{name} ({i + 1})" for i, name in enumerate(NAMES)]
    # the users' legend lists every user, "_private" too
    assert sorted(texts(plots["runs-per-user"], "legend_1")[1:]) == sorted(NAMES)
    # the trend legend: two entries per experiment
    trend_legend = texts(plots["trend-0"], "legend_1")
    assert sorted(trend_legend) == sorted(f"{label}: best {what}" for label in labels for what in ("per day", "so far"))
    # experiments on the health plot's axis and in the quota labels, as given
    assert sorted(t for t in texts(plots["run-health"]) if t in labels) == sorted(labels)
    quota = " ".join(texts(plots["quota-usage"]))
    assert all(label in quota for label in labels)
    # the tables name them too (HTML-escaped, nothing else changed)
    for name in NAMES:
        assert name.replace("&", "&amp;").replace("<", "&lt;") in page.split("<h2>Leaderboards</h2>", 1)[1]
