"""``pyspark-experiments report --metrics`` with a metric that no run logged, run as a command:
exit 2 naming it and the closest logged names, no page written."""

from __future__ import annotations

import pytest

from pyspark_experiments.jobs import EXIT_CONFIG
from support.commands import run_command
from support.small import write_small_stores

# Each test runs a command in a new process (its own Spark): the slow tier, as the jobs' other
# end-to-end runs.
pytestmark = pytest.mark.slow

def test_a_metric_no_run_logged_exits_2_with_the_closest_names(tmp_path):
    uri = write_small_stores(tmp_path, kinds=("sqlite",))["sqlite"]  # every run logs "loss"
    done = run_command("report", "--tracking-uri", uri, "--out", str(tmp_path / "report"), "--metrics", "losss")
    assert done.returncode == EXIT_CONFIG, done.stdout + done.stderr
    for stream in (done.stdout, done.stderr):
        assert "'losss': no run logged it; did you mean 'loss'?" in stream
    assert "NOT RUN" in done.stdout and not (tmp_path / "report" / "report.html").exists()
