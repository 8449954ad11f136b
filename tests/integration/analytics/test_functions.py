"""pyspark_experiments.analytics checked against pandas on what mlflow itself answers.

For the SQLite and the file reference stores (tests/support/stores.py: several users and
experiments, FAILED, KILLED and RUNNING runs, NaN and ±inf metrics, a 1,800-point history),
each function's result is compared with an independent computation: pandas over the runs of
``mlflow.search_runs`` (run info, latest metrics, params, tags) and over
``MlflowClient.get_metric_history`` for every run and key. Both read the same store through
mlflow's own code; the analytics read it through the ``experiments`` source.
"""

from __future__ import annotations

import datetime as dt
import math
import os

import pandas as pd
import pytest
from pyspark.sql import functions as F

from pyspark_experiments import analytics
from pyspark_experiments.analytics import QuotaLimits
from pyspark_experiments.errors import ConfigurationError
from support.compare import assert_rows, collect, period_of, same
from support.nested_runs import NESTED_EXPERIMENT, PARENTS, nested_sqlite_store  # noqa: F401  (the session fixture)

STORES = ("sqlite", "file")
#: A fixed "now" for the age-based functions: later than every explicit time in the stores.
NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def nan_none(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


# ---- the independent side: mlflow + pandas ----


@pytest.fixture(scope="module", params=STORES)
def uri(request, sqlite_store, file_store):
    return {"sqlite": sqlite_store, "file": file_store}[request.param]


@pytest.fixture(scope="module")
def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module")
def active_experiment_ids(client):
    from mlflow.entities import ViewType

    return [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]


@pytest.fixture(scope="module")
def expected_runs(uri, active_experiment_ids) -> pd.DataFrame:
    """One row per active run of the active experiments, from ``mlflow.search_runs``."""
    import mlflow
    from mlflow.entities import ViewType

    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.search_runs(experiment_ids=active_experiment_ids, run_view_type=ViewType.ACTIVE_ONLY, output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    rows = []
    for run in found:
        info = run.info
        rows.append({
            "run_id": info.run_id, "experiment_id": info.experiment_id, "run_name": info.run_name, "user_id": info.user_id,
            "status": info.status, "start_ms": info.start_time, "end_ms": info.end_time,
            "metrics": dict(run.data.metrics), "params": dict(run.data.params), "tags": dict(run.data.tags),
        })
    frame = pd.DataFrame(rows)
    frame["day"] = [dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date() if ms is not None else None for ms in frame["start_ms"]]
    assert len(frame) > 15 and frame["status"].isin(["FAILED"]).any() and frame["status"].isin(["KILLED"]).any()
    assert frame["user_id"].nunique() >= 3 and frame["experiment_id"].nunique() >= 2
    return frame


@pytest.fixture(scope="module")
def expected_history(client, expected_runs) -> pd.DataFrame:
    """Every metric point of every run (exact duplicates once), from ``get_metric_history``."""
    rows = []
    for run in expected_runs.itertuples():
        for key in run.metrics:
            for m in client.get_metric_history(run.run_id, key):
                rows.append({"experiment_id": run.experiment_id, "run_id": run.run_id, "key": key, "value": m.value,
                             "step": m.step, "timestamp": m.timestamp})
    frame = pd.DataFrame(rows)
    # The metrics table lists an exact duplicate point once (DESIGN); NaN equals NaN here.
    return frame.drop_duplicates(ignore_index=True)


# ---- our side: the source's DataFrames ----


@pytest.fixture(scope="module")
def tables(spark, uri):
    def read(table):
        return spark.read.format("experiments").option("trackingUri", uri).option("table", table).load()

    runs = read("runs").cache()
    yield {"runs": runs, "metrics": read("metrics"), "experiments": read("experiments")}
    runs.unpersist()


# ---- tests ----


@pytest.mark.parametrize(
    "metric, period, mode, by_experiment",
    [("loss", "day", "min", True), ("val/acc", "week", "max", False), ("loss", "month", "max", True)],
)
def test_metric_trend(tables, expected_runs, metric, period, mode, by_experiment):
    result = collect(analytics.metric_trend(tables["runs"], metric, period=period, mode=mode, by_experiment=by_experiment))

    frame = expected_runs.assign(value=[nan_none(m.get(metric)) for m in expected_runs["metrics"]])
    frame = frame[frame["value"].notna() & frame["day"].notna()].copy()
    frame["period_start"] = [period_of(d, period) for d in frame["day"]]
    keys = ["experiment_id"] if by_experiment else []
    grouped = frame.groupby(keys + ["period_start"])["value"].agg(runs="count", best=mode, mean="mean").reset_index()
    grouped = grouped.sort_values(keys + ["period_start"], ignore_index=True)
    running = grouped.groupby(keys)["best"] if keys else grouped["best"]
    grouped["best_so_far"] = running.cummin() if mode == "min" else running.cummax()
    expected = grouped.to_dict("records")
    assert expected, "the reference stores must hold values of the metric"
    assert_rows(result, expected, f"metric_trend({metric}, {period}, {mode})")


def test_runs_per_user_and_over_time(tables, expected_runs):
    frame = expected_runs[expected_runs["day"].notna()].copy()
    frame["period_start"] = [period_of(d, "week") for d in frame["day"]]
    per_user = frame.groupby(["user_id", "period_start"]).size().rename("runs").reset_index()
    per_user["cumulative_runs"] = per_user.groupby("user_id")["runs"].cumsum()
    assert_rows(collect(analytics.runs_per_user(tables["runs"], period="week")), per_user.to_dict("records"), "runs_per_user")

    frame["period_start"] = [period_of(d, "month") for d in frame["day"]]
    monthly = frame.groupby("period_start").agg(runs=("run_id", "count"), users=("user_id", "nunique")).reset_index()
    monthly["cumulative_runs"] = monthly["runs"].cumsum()
    assert_rows(collect(analytics.runs_over_time(tables["runs"], period="month")), monthly.to_dict("records"), "runs_over_time")


@pytest.mark.parametrize("by, column", [("user", "user_id"), ("experiment", "experiment_id"), ("status", "status")])
def test_run_totals(tables, expected_runs, by, column):
    counts = expected_runs.groupby(column).size().rename("runs").reset_index()
    counts = counts.sort_values(["runs", column], ascending=[False, True], ignore_index=True)
    assert_rows(collect(analytics.run_totals(tables["runs"], by=by)), counts.to_dict("records"), f"run_totals({by})")


def test_total_runs(tables, expected_runs):
    expected = [{"runs": len(expected_runs), "users": expected_runs["user_id"].nunique(),
                 "experiments": expected_runs["experiment_id"].nunique()}]
    assert_rows(collect(analytics.total_runs(tables["runs"])), expected, "total_runs")


@pytest.mark.parametrize("by_experiment", [True, False])
def test_run_health(tables, expected_runs, by_experiment):
    result = collect(analytics.run_health(tables["runs"], by_experiment=by_experiment))
    frame = expected_runs.copy()
    ended = frame["status"].isin(["FINISHED", "FAILED", "KILLED"])
    frame["duration"] = [(e - s) / 1000 if ok and s is not None and e is not None else None
                         for ok, s, e in zip(ended, frame["start_ms"], frame["end_ms"])]
    groups = frame.groupby("experiment_id") if by_experiment else [(None, frame)]
    expected = []
    for experiment_id, group in groups:
        statuses = group["status"]
        n_ended = int(statuses.isin(["FINISHED", "FAILED", "KILLED"]).sum())
        durations = group["duration"].dropna().astype(float)
        row = {"runs": len(group)} | {s.lower(): int((statuses == s).sum()) for s in ("RUNNING", "SCHEDULED", "FINISHED", "FAILED",
                                                                                       "KILLED")}
        row |= {
            "ended": n_ended,
            "success_ratio": row["finished"] / n_ended if n_ended else None,
            "failure_rate": row["failed"] / n_ended if n_ended else None,
            "kill_rate": row["killed"] / n_ended if n_ended else None,
            "duration_mean": durations.mean() if len(durations) else None,
            "duration_p50": durations.quantile(0.5) if len(durations) else None,
            "duration_p90": durations.quantile(0.9) if len(durations) else None,
            "duration_p99": durations.quantile(0.99) if len(durations) else None,
        }
        if by_experiment:
            row["experiment_id"] = experiment_id
        expected.append(row)
    assert_rows(result, expected, "run_health")
    assert any(r["failed"] for r in result) and any(r["killed"] for r in result)


def test_stuck_runs(tables, expected_runs):
    threshold = dt.timedelta(days=45)
    now_ms = NOW.timestamp() * 1000
    frame = expected_runs[(expected_runs["status"] == "RUNNING") & expected_runs["start_ms"].notna()].copy()
    frame["running_hours"] = (now_ms - frame["start_ms"]) / 3_600_000
    frame = frame[frame["running_hours"] > threshold.total_seconds() / 3600]
    frame = frame.sort_values(["running_hours", "run_id"], ascending=[False, True])
    result = collect(analytics.stuck_runs(tables["runs"], older_than=threshold, now=NOW).drop("start_time"))
    expected = frame[["experiment_id", "run_id", "run_name", "user_id", "running_hours"]].to_dict("records")
    assert expected, "a-running started more than 45 days before NOW"
    assert_rows(result, expected, "stuck_runs")
    # A threshold longer than any run's age lists nothing.
    assert analytics.stuck_runs(tables["runs"], older_than=10_000, now=NOW).count() == 0


@pytest.mark.parametrize("metric, mode", [("loss", "min"), ("val/acc", "max")])
def test_leaderboard(tables, expected_runs, metric, mode):
    n = 3
    result = collect(analytics.leaderboard(tables["runs"], metric, n=n, mode=mode).drop("start_time"))
    frame = expected_runs.assign(value=[nan_none(m.get(metric)) for m in expected_runs["metrics"]])
    frame = frame[frame["value"].notna()]
    frame = frame.sort_values(["experiment_id", "value", "start_ms", "run_id"], ascending=[True, mode == "min", True, True])
    frame = frame.groupby("experiment_id").head(n).copy()
    frame["rank"] = frame.groupby("experiment_id").cumcount() + 1
    # The parent: mlflow's parent tag, and that run's name among the same (active) runs.
    names = dict(zip(expected_runs["run_id"], expected_runs["run_name"]))
    frame["parent_run_id"] = [tags.get("mlflow.parentRunId") for tags in frame["tags"]]
    frame["parent_run_name"] = [names.get(parent) for parent in frame["parent_run_id"]]
    expected = frame[["experiment_id", "rank", "run_id", "run_name", "parent_run_id", "parent_run_name", "user_id", "status",
                      "value", "params"]].to_dict("records")
    assert_rows(result, expected, f"leaderboard({metric})")
    if metric == "loss":  # b-child-1, a nested run, ranks in ref-beta
        assert [r["parent_run_name"] for r in result if r["run_name"] == "b-child-1"] == ["b-parent"]

    only = collect(analytics.leaderboard(tables["runs"], metric, experiment_ids=[expected[0]["experiment_id"]], n=1, mode=mode))
    assert [r["run_id"] for r in only] == [expected[0]["run_id"]]


def test_leaderboard_names_each_runs_parent(spark, nested_sqlite_store):  # noqa: F811
    uri, ids = nested_sqlite_store
    runs = spark.read.format("experiments").option("trackingUri", uri).load(NESTED_EXPERIMENT)
    result = collect(analytics.leaderboard(runs, "mean_test_score", n=10))
    # grid-3 is deleted: not in the (ACTIVE_ONLY) runs, so not ranked.
    assert [r["run_name"] for r in result] == ["grid-2", "grid-1", "grid-0", "trial-b-fold", "trial-a"]
    assert result[0]["experiment_id"] == runs.first()["experiment_id"]
    for row in result:
        assert row["parent_run_name"] == PARENTS[row["run_name"]]
        assert row["parent_run_id"] == ids[PARENTS[row["run_name"]]]
    assert list(result[0])[:7] == ["experiment_id", "rank", "run_id", "run_name", "parent_run_id", "parent_run_name", "user_id"]
    # A parent missing from the runs given: its id stays, its name is null.
    without = collect(analytics.leaderboard(runs.where(F.col("run_name") != "grid-search"), "mean_test_score", n=10))
    assert {(r["run_name"], r["parent_run_id"] == ids[PARENTS[r["run_name"]]], r["parent_run_name"]) for r in without
            if r["run_name"].startswith("grid")} == {("grid-0", True, None), ("grid-1", True, None), ("grid-2", True, None)}
    # Runs without the column (a table synced before it existed): the columns are left out.
    older = collect(analytics.leaderboard(runs.drop("parent_run_id"), "mean_test_score", n=10))
    assert [r["run_name"] for r in older] == [r["run_name"] for r in result]
    assert "parent_run_id" not in older[0] and "parent_run_name" not in older[0]


def test_param_effect(tables, expected_runs):
    frame = expected_runs.assign(value=[nan_none(m.get("loss")) for m in expected_runs["metrics"]],
                                 param_value=[p.get("lr") for p in expected_runs["params"]])
    frame = frame[frame["value"].notna()]
    grouped = frame.groupby(["experiment_id", "param_value"], dropna=False)["value"]
    expected = grouped.agg(runs="count", mean="mean", stddev="std", min="min", median="median", max="max").reset_index()
    expected = expected.sort_values(["experiment_id", "param_value"], na_position="last", ignore_index=True)
    expected = [{k: nan_none(v) if k in ("stddev", "param_value") else v for k, v in row.items()} for row in expected.to_dict("records")]
    assert any(r["param_value"] is None for r in expected) and any(r["runs"] > 1 for r in expected)
    assert_rows(collect(analytics.param_effect(tables["runs"], "lr", "loss")), expected, "param_effect")


def test_metric_history_summary(tables, expected_runs, expected_history):
    result = collect(
        analytics.metric_history_summary(tables["metrics"], percentiles=(0.5, 0.9))
        .withColumn("last_timestamp", F.unix_millis("last_timestamp"))
        .withColumn("first_timestamp", F.unix_millis("first_timestamp"))
    )
    latest = {(r.run_id, k): v for r in expected_runs.itertuples() for k, v in r.metrics.items()}
    expected = []
    for (experiment_id, run_id, key), points in expected_history.groupby(["experiment_id", "run_id", "key"], sort=True):
        numbers = points["value"].dropna()
        ordered = points.sort_values(["step", "timestamp", "value"], na_position="last")
        last = ordered.iloc[-1]
        finite = numbers.abs().max() < 1e300 if len(numbers) else True
        row = {
            "experiment_id": experiment_id, "run_id": run_id, "key": key,
            "count": len(points), "nan_count": int(points["value"].isna().sum()),
            "min": numbers.min() if len(numbers) else None, "max": numbers.max() if len(numbers) else None,
            "mean": numbers.mean() if len(numbers) else None,
            # numpy and Spark interpolate differently across infinities: compare finite series only
            "p50": numbers.quantile(0.5) if finite and len(numbers) else None,
            "p90": numbers.quantile(0.9) if finite and len(numbers) else None,
            "last": float(last["value"]), "last_step": int(last["step"]), "last_timestamp": int(last["timestamp"]),
            "first_timestamp": int(points["timestamp"].min()),
        }
        # mlflow's own latest value of the key (search_runs) is the same point.
        assert same(row["last"], latest[(run_id, key)]), (run_id, key)
        expected.append(row)
    assert len(result) == len(expected)
    for got, want in zip(result, expected):
        if want["p50"] is None:  # an infinite series: percentiles not compared (see above)
            got["p50"] = got["p90"] = None
    assert_rows(result, expected, "metric_history_summary")
    assert any(r["nan_count"] for r in expected) and max(r["count"] for r in expected) >= 1500


LIMITS = QuotaLimits(params_per_run=3, tags_per_run=6, metric_steps_per_run=1_000, runs_per_experiment=10, tags_per_experiment=2)


def test_quota_usage_lists_what_crosses_small_limits(tables, client, expected_runs, expected_history):
    margin = 0.8
    result = collect(analytics.quota_usage(tables["runs"], metrics=tables["metrics"], experiments=tables["experiments"],
                                           limits=LIMITS, margin=margin))
    rows = []
    steps = expected_history.groupby("run_id").size()
    for run in expected_runs.itertuples():
        rows.append(("run", "params_per_run", run.experiment_id, run.run_id, len(run.params)))
        rows.append(("run", "tags_per_run", run.experiment_id, run.run_id, len(run.tags)))
        if run.run_id in steps.index:
            rows.append(("run", "metric_steps_per_run", run.experiment_id, run.run_id, int(steps[run.run_id])))
    for experiment_id, count in expected_runs.groupby("experiment_id").size().items():
        rows.append(("experiment", "runs_per_experiment", experiment_id, None, int(count)))
    from mlflow.entities import ViewType

    for experiment in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        rows.append(("experiment", "tags_per_experiment", experiment.experiment_id, None, len(experiment.tags)))
    expected = []
    for scope, quota, experiment_id, run_id, used in rows:
        limit = getattr(LIMITS, quota)
        level = "over" if used > limit else "near" if used >= margin * limit else "ok"
        if level != "ok":
            expected.append({"scope": scope, "quota": quota, "experiment_id": experiment_id, "run_id": run_id, "used": used,
                             "limit": limit, "usage": used / limit, "level": level})
    expected.sort(key=lambda r: (-r["usage"], r["quota"], r["experiment_id"], r["run_id"] or ""))
    assert_rows(result, expected, "quota_usage")
    crossed = {r["quota"] for r in result if r["level"] == "over"}
    assert crossed == {"params_per_run", "tags_per_run", "metric_steps_per_run", "runs_per_experiment", "tags_per_experiment"}
    assert any(r["level"] == "near" for r in result)
    # Every row, flagged or not, with the default (Databricks') limits: nothing is near them.
    everything = analytics.quota_usage(tables["runs"], metrics=tables["metrics"], experiments=tables["experiments"], only_flagged=False)
    assert everything.count() == len(rows)
    assert everything.where("level != 'ok'").count() == 0


def test_cleanup_candidates(tables, expected_runs):
    runs = tables["runs"]
    age_days = (NOW.timestamp() * 1000 - expected_runs["start_ms"]) / 86_400_000
    frame = expected_runs.assign(age_days=age_days)

    def ids(df):
        return [r["run_id"] for r in collect(df.select("run_id"))]

    def expected_ids(selected):
        return list(selected.sort_values(["experiment_id", "start_ms", "run_id"])["run_id"])

    failed_or_killed = analytics.cleanup_candidates(runs, statuses=["FAILED", "KILLED"], older_than=30, now=NOW)
    want = frame[frame["status"].isin(["FAILED", "KILLED"]) & (frame["age_days"] > 30)]
    assert len(want) == 2
    assert ids(failed_or_killed) == expected_ids(want)
    reasons = {r["run_id"]: r["reason"] for r in collect(failed_or_killed)}
    assert all("started more than 30 days ago" in reason for reason in reasons.values())
    assert analytics.cleanup_candidates(runs, statuses=["FAILED", "KILLED"], older_than=3650, now=NOW).count() == 0

    # The oldest runs of each experiment beyond the newest 5.
    ranked = frame.sort_values(["start_ms", "run_id"], ascending=False)
    beyond = ranked[ranked.groupby("experiment_id").cumcount() >= 5]
    assert ids(analytics.cleanup_candidates(runs, keep_newest=5, now=NOW)) == expected_ids(beyond)

    # User, tag, metric conditions and experiments together.
    alpha = frame["experiment_id"].value_counts().idxmax()
    loss = [nan_none(m.get("loss")) for m in frame["metrics"]]
    high_loss = pd.Series([v is not None and v > 0.15 for v in loss], index=frame.index)
    want = frame[(frame["user_id"] == "alice") & (frame["experiment_id"] == alpha) & high_loss]
    got = analytics.cleanup_candidates(runs, users="alice", experiment_ids=alpha, where="metrics['loss'] > 0.15", now=NOW)
    assert len(want) >= 2 and ids(got) == expected_ids(want)
    want = frame[pd.Series([t.get("stage") == "baseline" for t in frame["tags"]], index=frame.index)]
    assert len(want) == 3
    assert ids(analytics.cleanup_candidates(runs, tags={"stage": "baseline"}, now=NOW)) == expected_ids(want)


def test_bad_arguments_are_named(tables):
    runs = tables["runs"]
    with pytest.raises(ConfigurationError, match="no condition given"):
        analytics.cleanup_candidates(runs)
    with pytest.raises(ConfigurationError, match="period='hour'"):
        analytics.metric_trend(runs, "loss", period="hour")
    with pytest.raises(ConfigurationError, match="lacks the column"):
        analytics.run_health(tables["metrics"])
    with pytest.raises(ConfigurationError, match="n=0"):
        analytics.leaderboard(runs, "loss", n=0)
    with pytest.raises(ConfigurationError, match="margin"):
        analytics.quota_usage(runs, margin=1.5)


@pytest.mark.parametrize("call", [
    lambda t, m: analytics.metric_trend(t["runs"], m),
    lambda t, m: analytics.leaderboard(t["runs"], m),
    lambda t, m: analytics.param_effect(t["runs"], "alpha", m),
    lambda t, m: analytics.metric_history_summary(t["metrics"], keys=["loss", m]),
], ids=["metric_trend", "leaderboard", "param_effect", "metric_history_summary"])
def test_a_metric_no_run_logged_is_refused_with_the_closest_logged_names(tables, call):
    with pytest.raises(ValueError) as error:  # a ConfigurationError, not an empty table
        call(tables, "val/ac")
    message = str(error.value)
    assert isinstance(error.value, ConfigurationError)
    assert "'val/ac'" in message and "no run logged it; did you mean 'val/acc'" in message
    with pytest.raises(ConfigurationError, match="none of the .* logged is close to it"):
        call(tables, "throughput_qps")


@pytest.fixture(scope="module", autouse=True)
def _no_experiment_env():
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        assert not os.environ.get(name), f"{name} is set; unset it to run these tests"


def test_metric_history_summary_approximate_percentiles(tables, expected_history):
    approx = collect(analytics.metric_history_summary(tables["metrics"], keys="loss", percentiles=(0.5, 0.9), exact=False))
    long_series = [r for r in approx if r["count"] >= 1500]
    assert len(long_series) == 1
    points = expected_history[(expected_history["run_id"] == long_series[0]["run_id"]) & (expected_history["key"] == "loss")]
    values = points["value"].dropna()
    for fraction, column in ((0.5, "p50"), (0.9, "p90")):
        got = long_series[0][column]
        # percentile_approx returns a value of the series within its rank error of the exact one
        assert got in set(values)
        assert values.quantile(fraction - 0.01) <= got <= values.quantile(fraction + 0.01)
