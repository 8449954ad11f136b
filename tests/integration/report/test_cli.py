"""``pyspark-experiments report``: the command writes the page from a store and from synced
tables. build_report's page itself is opened in headless chromium by test_report.py; here the
command's page is checked by structure: self-contained, every section, the chosen metrics and
directions, the same plots from both sources."""

from __future__ import annotations

import re

import pytest

from pyspark_experiments.jobs import EXIT_CONFIG, EXIT_OK
from pyspark_experiments.report import cli as report_cli
from pyspark_experiments.sync import sync

pytestmark = pytest.mark.slow  # the report command from a store and from synced tables

SECTIONS = ["Overview", "Metric trend", "Activity", "Run health", "Leaderboards", "Quota usage", "Cleanup candidates"]


def structure(text: str) -> dict:
    assert text.startswith("<!DOCTYPE html>")
    lowered = text.lower()
    assert "<script" not in lowered and "<link" not in lowered and "<img" not in lowered  # nothing to fetch: opens offline
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', lowered)
    return {"sections": re.findall(r"<h2>([^<]+)</h2>", text), "svgs": text.count("<svg"), "nodata": text.count("no data")}


def test_report_from_a_store_and_from_synced_tables(spark, sqlite_store, tmp_path, capsys):
    flags = ["--metrics", "loss,val/acc", "--higher-is-better", "val/acc", "--no-progress"]
    out_store = tmp_path / "from-store"
    assert report_cli.main(["--tracking-uri", sqlite_store, "--out", str(out_store)] + flags) == EXIT_OK
    assert f"-> {out_store / 'report.html'}" in capsys.readouterr().out
    page = (out_store / "report.html").read_text()
    from_store = structure(page)
    assert from_store["sections"] == SECTIONS
    assert "loss: best per" in page and "(lower is better)" in page and "val/acc: best per" in page and "(higher is better)" in page
    assert from_store["svgs"] == 6  # two metric trends, runs per user, total runs, health, quota

    target = str(tmp_path / "delta")
    sync(sqlite_store, target, spark=spark)
    out_delta = tmp_path / "from-delta"
    assert report_cli.main(["--target-path", target, "--out", str(out_delta)] + flags) == EXIT_OK
    assert "(folder of Delta tables)" in capsys.readouterr().out
    from_delta = structure((out_delta / "report.html").read_text())
    assert from_delta == from_store


def test_report_needs_an_output_folder(capsys):
    assert report_cli.main(["--tracking-uri", "sqlite:///x.db"]) == EXIT_CONFIG
    assert "--out" in capsys.readouterr().err
