"""``pyspark-experiments analytics``: sync the reference store, run the job on the target, and
check each analytics_* table equals the analytics function called on the synced tables; exit
codes for a bad config (2, naming key and file) and a locked target (75)."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from pyspark_experiments import analytics
from pyspark_experiments.analytics import QuotaLimits, cli
from pyspark_experiments.analytics.job import PREFIX
from pyspark_experiments.jobs import EXIT_CONFIG, EXIT_LOCKED, EXIT_OK
from pyspark_experiments.sync import sync
from support.compare import sorted_rows

pytestmark = pytest.mark.slow  # every analytics table written and re-read through the job


def rows(df, drop=()) -> list[tuple]:
    return sorted_rows(df.drop(*drop), digits=9)


@pytest.fixture(scope="module")
def synced(spark, sqlite_store, tmp_path_factory):
    target = str(tmp_path_factory.mktemp("analytics-target") / "delta")
    sync(sqlite_store, target, spark=spark)
    return target


def test_job_writes_each_table_as_the_function_computes_it(spark, synced, tmp_path, capsys):
    conf = tmp_path / "analytics.toml"
    conf.write_text(f"""
[target]
path = "{synced}"
[analytics]
metrics = ["loss", "val/acc"]
higher_is_better = ["val/acc"]
period = "month"
leaderboard_size = 3
exact_history_percentiles = true
[quota]
params_per_run = 3
tags_per_run = 6
runs_per_experiment = 10
tags_per_experiment = 2
margin = 0.5
""")
    assert cli.main(["--config", str(conf), "--no-progress"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "pyspark-experiments analytics: OK" in out and "10 tables" in out

    read = {name: spark.read.format("delta").load(f"{synced}/{name}") for name in ("runs", "metrics", "experiments")}
    runs = read["runs"].where(F.col("lifecycle_stage") != "deleted")

    def trend_or_board(build):
        frames = [build(m, mode).withColumn("metric", F.lit(m)).withColumn("mode", F.lit(mode))
                  for m, mode in (("loss", "min"), ("val/acc", "max"))]
        return frames[0].unionByName(frames[1])

    limits = QuotaLimits(params_per_run=3, tags_per_run=6, runs_per_experiment=10, tags_per_experiment=2)
    totals = [analytics.run_totals(runs, by=by).select(F.lit(by).alias("by"), F.col(col).alias("key"), "runs")
              for by, col in (("user", "user_id"), ("experiment", "experiment_id"), ("status", "status"))]
    expected = {
        "metric_trend": trend_or_board(lambda m, mode: analytics.metric_trend(runs, m, period="month", mode=mode)),
        "runs_per_user": analytics.runs_per_user(runs, period="month"),
        "runs_over_time": analytics.runs_over_time(runs, period="month"),
        "run_totals": totals[0].unionByName(totals[1]).unionByName(totals[2]),
        "total_runs": analytics.total_runs(runs),
        "run_health": analytics.run_health(runs),
        "stuck_runs": analytics.stuck_runs(runs, older_than=dt.timedelta(hours=24)),
        "leaderboard": trend_or_board(lambda m, mode: analytics.leaderboard(runs, m, n=3, mode=mode)),
        "metric_history": analytics.metric_history_summary(read["metrics"].join(runs.select("run_id"), "run_id", "left_semi")),
        "quota_usage": analytics.quota_usage(read["runs"], metrics=read["metrics"], experiments=read["experiments"],
                                             limits=limits, margin=0.5, only_flagged=False),
    }
    for name, want in expected.items():
        got = spark.read.format("delta").load(f"{synced}/{PREFIX}{name}")
        assert got.columns == want.columns, name
        drop = ("running_hours",) if name == "stuck_runs" else ()  # measured against "now"
        expected_rows = rows(want, drop)
        assert rows(got, drop) == expected_rows, name
        if name not in ("stuck_runs",):
            assert expected_rows, f"{name} is empty: the check would prove nothing"
    # the quota table is the whole usage table: rows over the small limits, and the rows within them
    levels = {row.level for row in spark.read.format("delta").load(f"{synced}/{PREFIX}quota_usage").select("level").collect()}
    assert levels == {"over", "near", "ok"}

    # a second run overwrites (same rows, not twice as many)
    assert cli.main(["--config", str(conf), "--no-progress"]) == EXIT_OK
    again = spark.read.format("delta").load(f"{synced}/{PREFIX}run_totals")
    assert rows(again) == rows(expected["run_totals"])


def test_bad_config_exits_2_naming_key_and_file(tmp_path, capsys):
    conf = tmp_path / "bad.toml"
    conf.write_text('[target]\npath = "/tmp/x"\n[analytics]\nleaderboard_size = "ten"\n')
    assert cli.main(["--config", str(conf)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert str(conf) in err and "[analytics] leaderboard_size" in err and "positive integer" in err
    conf.write_text('[analytics]\nperiods = "week"\n')
    assert cli.main(["--config", str(conf)]) == EXIT_CONFIG
    assert "unknown key 'periods' in [analytics]" in capsys.readouterr().err
    assert cli.main(["--no-progress"]) == EXIT_CONFIG  # no target to write to
    assert "no target" in capsys.readouterr().err


def test_locked_target_exits_75_and_writes_nothing(spark, synced, capsys):
    from pyspark_experiments.jobs.lock import TargetLock
    from pyspark_experiments.jobs.target import DeltaTarget

    target = DeltaTarget.at_path(spark, synced)
    lock = TargetLock(target, job="cleanup")
    lock.ensure_table()
    lock.acquire()
    try:
        before = {name: target.latest_version(name) for name in ("runs", f"{PREFIX}total_runs") if target.exists(name)}
        assert cli.main(["--target-path", synced, "--no-progress"]) == EXIT_LOCKED
    finally:
        lock.release()
    out = capsys.readouterr().out
    assert "NOT RUN" in out and "another cleanup holds" in out
    assert {name: target.latest_version(name) for name in before} == before
