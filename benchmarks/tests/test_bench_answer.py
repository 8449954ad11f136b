"""The time-to-answer benchmark: its summary, and one real round on the demo store."""

from __future__ import annotations

import pytest

from benchmarks import bench_answer


def test_summary_reports_goals_and_the_delta_ratio():
    lines = bench_answer.summarize(
        {"report (store)": [40.0, 20.0], "analytics (store)": [31.0], "sync": [50.0], "report (Delta)": [30.0]}
    )
    assert lines[0].startswith("report (store)     best   20.0 s  median   30.0 s  of 2  (goal: at most 30 s, met)")
    assert "NOT met" in lines[1]  # analytics 31 s
    assert "goal" not in lines[2]  # the sync has no goal of its own
    assert lines[-1] == "report from Delta / from the store (best): 1.50 (goal: at most 1.00, NOT met)"


def test_a_failing_command_shows_its_output(tmp_path):
    with pytest.raises(RuntimeError, match="report exited 2") as caught:
        bench_answer.run_command(["report", "--tracking-uri", f"sqlite:///{tmp_path}/missing.db", "--out", str(tmp_path)])
    assert "missing.db" in str(caught.value)


@pytest.mark.slow
def test_one_round_on_the_demo_store(capsys):
    assert bench_answer.main(["--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for answer in ("report (store)", "analytics (store)", "sync", "report (Delta)"):
        assert f"\n{answer} " in out
    assert "report from Delta / from the store (best): " in out
