"""The quota command's result: the exit code of each level (distinct from every other exit
code), what is left out of the listing, the JSON document's stable keys, the aligned table, and
``run_job`` returning the result's code with credentials hidden."""

from __future__ import annotations

import argparse
import json

import pytest

from pyspark_experiments.analytics import QuotaLimits
from pyspark_experiments.jobs import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_QUOTA_NEAR,
    EXIT_QUOTA_OVER,
    JobSettings,
    run_job,
)
from pyspark_experiments.jobs.config import CommandConfig
from pyspark_experiments.quota.result import ROW_KEYS, QuotaResult, usage_row
from pyspark_experiments.redact import remember_uri

LIMITS = QuotaLimits(params_per_run=4, runs_per_experiment=10)


def _rows():
    return [
        usage_row("run", "params_per_run", "1", "alpha", "r" * 32, "first", 2, 4, "ok"),
        usage_row("experiment", "runs_per_experiment", "1", "alpha", None, None, 12, 10, "over"),
        usage_row("run", "params_per_run", "2", "a much longer experiment name", "s" * 32, None, 4, 4, "near"),
        usage_row("experiment", "tags_per_experiment", "2", None, None, None, 0, 1000, "ok"),
    ]


def _result(counts, rows=None, **kwargs):
    return QuotaResult("sqlite:///m.db", "store", LIMITS, 0.8, 10, _rows() if rows is None else rows, counts,
                       runs=3, experiments=2, **kwargs)


@pytest.mark.parametrize(("counts", "status", "code"), [
    ({"ok": 5}, "ok", EXIT_OK),
    ({}, "ok", EXIT_OK),
    ({"ok": 4, "near": 1}, "near", EXIT_QUOTA_NEAR),
    ({"ok": 3, "near": 1, "over": 1}, "over", EXIT_QUOTA_OVER),
    ({"over": 1}, "over", EXIT_QUOTA_OVER),
])
def test_the_most_urgent_level_gives_the_exit_code(counts, status, code):
    result = _result(counts)
    assert (result.status, result.exit_code) == (status, code)
    assert result.document()["exit_code"] == code and result.document()["status"] == status


def test_the_quota_codes_are_distinct_from_every_other_exit_code():
    others = {EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_LOCKED, EXIT_INTERRUPTED}
    assert EXIT_QUOTA_NEAR != EXIT_QUOTA_OVER and not {EXIT_QUOTA_NEAR, EXIT_QUOTA_OVER} & others


def test_rows_beyond_the_listing_still_count():
    # 3 runs over and 2 near in all; the listing holds 1 over (an experiment) and 1 near
    result = _result({"over": 3, "near": 2, "ok": 9})
    assert result.not_listed() == {"over": 2, "near": 1}
    table = result.table()
    assert "not listed: 2 over and 1 near a limit (raise --top" in table
    assert table.splitlines()[-1] == "exit code 4: a quota over its limit"


def test_the_json_document_has_stable_keys_and_rows_most_used_first():
    empty = _result({}, rows=[]).document()
    full = json.loads(_result({"over": 1, "near": 1, "ok": 2}, as_json=True).summary())
    assert set(empty) == set(full)
    assert set(full["counts"]) == {"over", "near", "ok"} and set(full["not_listed"]) == {"over", "near"}
    assert all(tuple(sorted(row)) == tuple(sorted(ROW_KEYS)) for row in full["usage"])
    assert [row["percent"] for row in full["usage"]] == [120.0, 100.0, 50.0, 0.0]
    assert full["limits"]["params_per_run"] == 4 and full["limits"]["tags_per_run"] == 1600
    assert (full["runs"], full["experiments"], full["top"], full["margin"]) == (3, 2, 10, 0.8)


def test_the_table_is_aligned_and_sorted_by_percent():
    lines = _result({"over": 1, "near": 1, "ok": 2}).table().splitlines()
    header, body = lines[1], lines[2:6]
    assert header.split() == ["experiment", "quota", "used", "limit", "percent", "level", "run"]
    assert [line.split("%")[0].split()[-1] for line in body] == ["120.0", "100.0", "50.0", "0.0"]
    # text columns start under their header, numbers end under it
    for line in body:
        assert line[header.index("quota"):].startswith(("params_per_run", "runs_per_experiment", "tags_per_experiment"))
        assert line[header.index("level"):].split()[0] in ("over", "near", "ok")
        assert line.index("%") + 1 == header.index("percent") + len("percent")
    assert body[1].startswith("a much longer experiment name  params_per_run")
    assert body[3].split()[0] == "2"  # an experiment without a name: its id


def test_run_job_returns_the_results_code_and_hides_credentials(capsys):
    secret_uri = "postgresql://quota:Pl3nty-Secret@db/mlflow"
    remember_uri(secret_uri)

    def run(settings, show):
        return QuotaResult(secret_uri, "store", LIMITS, 0.8, 10, _rows(), {"over": 1, "near": 1, "ok": 2}, runs=3,
                           experiments=2, as_json=True)

    code = run_job("quota", [], lambda argv: JobSettings(CommandConfig(progress=False), argparse.Namespace()), run)
    out = capsys.readouterr().out
    assert code == EXIT_QUOTA_OVER
    assert "Pl3nty-Secret" not in out and json.loads(out)["source"] == "postgresql://quota:***@db/mlflow"
