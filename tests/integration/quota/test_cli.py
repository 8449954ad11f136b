"""``pyspark-experiments quota`` on a SQLite store written by real mlflow (two small
experiments, the nested runs with a deleted one, a run with a longer history): tight limits
given by flags or the config file make levels trigger, and the exit code and the JSON say so;
its counts equal what mlflow's own client reports for the same store."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

from pyspark_experiments.jobs import EXIT_OK, EXIT_QUOTA_NEAR, EXIT_QUOTA_OVER  # noqa: E402
from pyspark_experiments.quota import cli  # noqa: E402
from support.nested_runs import NESTED_EXPERIMENT, log_nested_runs  # noqa: E402
from support.small import write_small_stores  # noqa: E402

#: Points of the metric ``loss`` of the run ``long`` (experiment alpha).
LONG_STEPS = 7


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """``(uri, {run name: run id})``: alpha and beta (3 runs each), the nested runs, and ``long``."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("quota-store")
    uri = write_small_stores(root, kinds=("sqlite",))["sqlite"]
    runs = log_nested_runs(uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.get_experiment_by_name("alpha").experiment_id, run_name="long")
    for step in range(LONG_STEPS):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    client.set_experiment_tag(client.get_experiment_by_name("beta").experiment_id, "team", "vision")
    client.set_terminated(run.info.run_id)
    return uri, {**runs, "long": run.info.run_id}


def _quota(uri, *flags, capsys) -> tuple[int, dict]:
    code = cli.main(["--tracking-uri", uri, "--json", "--no-progress", *flags])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _used(document) -> dict:
    return {(r["scope"], r["quota"], r["experiment_name"], r["run_name"]): (r["used"], r["level"]) for r in document["usage"]}


def test_tight_limits_exit_4_and_the_json_names_each_quota_over(spark, store, capsys):
    uri, ids = store
    code, doc = _quota(uri, "--runs-per-experiment", "10", "--params-per-run", "2", "--metric-steps-per-run", "5",
                       "--tags-per-experiment", "1", "--margin", "0.5", "--top", "2", capsys=capsys)
    assert code == EXIT_QUOTA_OVER == doc["exit_code"] and doc["status"] == "over"
    used = _used(doc)
    # 12 runs logged in the nested experiment, the deleted one included: over 10
    assert used[("experiment", "runs_per_experiment", NESTED_EXPERIMENT, None)] == (12, "over")
    assert used[("experiment", "runs_per_experiment", "alpha", None)] == (4, "ok")  # 4 of 10, below half
    assert used[("experiment", "tags_per_experiment", "beta", None)] == (1, "near")  # at the limit: near
    assert used[("run", "params_per_run", NESTED_EXPERIMENT, "grid-search")] == (2, "near")
    assert used[("run", "metric_steps_per_run", "alpha", "long")] == (LONG_STEPS, "over")
    assert {r["run_id"] for r in doc["usage"] if r["run_name"] == "long"} == {ids["long"]}
    # every experiment listed, at most 2 runs per run quota
    assert {r["experiment_name"] for r in doc["usage"] if r["scope"] == "experiment"} == {"Default", "alpha", "beta",
                                                                                          NESTED_EXPERIMENT}
    for quota in ("params_per_run", "tags_per_run", "metric_steps_per_run"):
        assert len([r for r in doc["usage"] if r["quota"] == quota]) == 2
    assert doc["runs"] == 3 + 3 + 12 + 1 and doc["experiments"] == 4
    assert doc["limits"] == {"params_per_run": 2, "tags_per_run": 1600, "metric_steps_per_run": 5,
                             "runs_per_experiment": 10, "tags_per_experiment": 1}
    # the counts hold every row, listed or not
    for level in ("over", "near"):
        assert doc["counts"][level] == len([r for r in doc["usage"] if r["level"] == level]) + doc["not_listed"][level]
    assert doc["counts"]["over"] == 2 and doc["not_listed"]["near"] >= 1  # 1 param is near a limit of 2 at margin 0.5
    percents = [r["percent"] for r in doc["usage"]]
    assert percents == sorted(percents, reverse=True)


def _mlflow_counts(uri: str) -> tuple[dict, int, int]:
    """{(scope, quota, experiment id, run id): count} as mlflow's client reports them."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=uri)
    counts, runs_seen = {}, 0
    experiments = client.search_experiments(view_type=ViewType.ALL)
    for experiment in experiments:
        counts[("experiment", "tags_per_experiment", experiment.experiment_id, None)] = len(experiment.tags)
        runs, token = [], None
        while True:  # small pages: the paging is exercised
            page = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=3, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                break
        if runs:
            counts[("experiment", "runs_per_experiment", experiment.experiment_id, None)] = len(runs)
        runs_seen += len(runs)
        for listed in runs:
            run = client.get_run(listed.info.run_id)
            key = (experiment.experiment_id, run.info.run_id)
            counts[("run", "params_per_run", *key)] = len(run.data.params)
            counts[("run", "tags_per_run", *key)] = len(run.data.tags)
            steps = sum(len(client.get_metric_history(run.info.run_id, metric)) for metric in run.data.metrics)
            if steps:
                counts[("run", "metric_steps_per_run", *key)] = steps
    return counts, runs_seen, len(experiments)


def test_the_counts_equal_mlflows(spark, store, capsys):
    uri, _ = store
    code, doc = _quota(uri, "--top", "1000", capsys=capsys)
    assert code == EXIT_OK and doc["status"] == "ok"
    expected, runs, experiments = _mlflow_counts(uri)
    got = {(r["scope"], r["quota"], r["experiment_id"], r["run_id"]): r["used"] for r in doc["usage"]}
    assert got == expected
    assert (doc["runs"], doc["experiments"]) == (runs, experiments) == (19, 4)
    assert sum(doc["counts"].values()) == len(expected)
    assert any(v > 1 for k, v in expected.items() if k[1] == "metric_steps_per_run")  # a history, not one point


@pytest.mark.slow
def test_limits_from_the_config_near_only_exit_3_with_a_table(spark, store, tmp_path, capsys):
    uri, _ = store
    conf = tmp_path / "analytics.toml"
    conf.write_text(f'[store]\ntracking_uri = "{uri}"\n[quota]\nruns_per_experiment = 13\nmargin = 0.9\n')
    assert cli.main(["--config", str(conf), "--no-progress", "--top", "1"]) == EXIT_QUOTA_NEAR
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pyspark-experiments quota: NEAR") and "0 over, 1 near a limit (margin 90%)" in lines[0]
    assert lines[1].split() == ["experiment", "quota", "used", "limit", "percent", "level", "run"]
    assert lines[2].split() == [NESTED_EXPERIMENT, "runs_per_experiment", "12", "13", "92.3%", "near"]
    assert lines[-1] == "exit code 3: a quota near its limit (at 90% of it or more), none over"
    # the same file with a generous flag: nothing near, exit 0
    assert cli.main(["--config", str(conf), "--no-progress", "--runs-per-experiment", "100"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[-1] == "exit code 0: every quota below 90% of its limit"


@pytest.mark.slow
def test_the_synced_tables_give_the_stores_usage(spark, store, tmp_path, capsys):
    from pyspark_experiments.sync import sync

    uri, _ = store
    target = str(tmp_path / "delta")
    sync(uri, target, spark=spark)
    flags = ("--runs-per-experiment", "10", "--top", "1000")
    code, from_store = _quota(uri, *flags, capsys=capsys)
    assert cli.main(["--target-path", target, "--json", "--no-progress", *flags]) == code == EXIT_QUOTA_OVER
    from_target = json.loads(capsys.readouterr().out)
    assert from_target["read_from"] == "target" and from_store["read_from"] == "store"
    assert from_target["usage"] == from_store["usage"] and from_target["counts"] == from_store["counts"]
