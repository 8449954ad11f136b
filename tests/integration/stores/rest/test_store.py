"""Reading a real ``mlflow server`` over REST equals reading its backend store directly.

The servers (tests/support/mlflow_server.py) run on loopback over SQLite, and the reference
content is logged through them with the real mlflow client. Every table and view type read over
REST must equal the direct read of the server's SQLite file. The same holds behind a
Databricks-shaped proxy (Bearer token, page limits, 429s) and behind a proxy injecting real
faults, or the read fails with a clear error within its time bound. No credential may appear in
any output: logs, errors, plans.
"""

from __future__ import annotations

import base64
import logging
import time

import pyarrow as pa
import pytest

from pyspark_experiments.errors import (
    MalformedRecordError,
    StoreConnectionError,
    StoreNotFoundError,
)
from support.mlflow_server import ADMIN_PASSWORD, ADMIN_USER, auth_server, mlflow_server  # noqa: F401
from support.proxies import DatabricksProxy, Proxy, every

TABLES = ("experiments", "runs", "params", "tags", "inputs", "metrics")
VIEWS = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
       "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "DATABRICKS_HOST", "DATABRICKS_TOKEN",
       "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")
LOGGERS = ("pyspark_experiments", "urllib3", "requests")
# Fast retries for the fault tests: the policy is the same, the waits are shorter.
FAST = {"backoffFactor": "0.05", "backoffJitter": "0.05"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.mlflow/credentials or ~/.databrickscfg of the machine


def read_table(options: dict, path: str | None = None) -> pa.Table:
    """Plan and read every partition as the executors would, without Spark."""
    from pyspark_experiments.datasource import ReadRequest, plan_read
    from pyspark_experiments.stores import open_store

    options = {**options, **({"path": path} if path else {})}
    _, partitions = plan_read(options, environ={})
    request = ReadRequest.from_options(options, environ={})
    schema = None
    batches = []
    for partition in partitions:
        # executors open their own store from the pickled request: the partition carries the connection
        import pickle

        store = open_store(request.uri, dict(request.store_options))
        for batch in store.read(pickle.loads(pickle.dumps(partition))):
            schema = batch.schema
            batches.append(batch)
    return pa.Table.from_batches(batches, schema=schema) if batches else None


def rows(table: pa.Table | None) -> list[str]:
    """Order-free, NaN-safe rows: each row's repr, sorted (maps are sorted lists of pairs already)."""
    if table is None:
        return []
    return sorted(repr(sorted(row.items())) for row in table.to_pylist())


def assert_same(rest_options: dict, direct_uri: str, table: str, view: str = "ALL", path: str | None = None, **extra):
    rest = rows(read_table({**rest_options, "table": table, "viewType": view, **extra}, path))
    direct = rows(read_table({"trackingUri": direct_uri, "table": table, "viewType": view, **extra}, path))
    assert rest == direct, f"{table}/{view}: {len(rest)} rows over REST, {len(direct)} read directly"
    return rest


# ------------------------------------------------------------------------------------------------
# every table, every view type


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("table", TABLES)
def test_every_table_and_view_equals_direct_read(mlflow_server, table, view):  # noqa: F811
    url, backend = mlflow_server
    found = assert_same({"trackingUri": url}, backend, table, view)
    if view != "DELETED_ONLY" or table in ("runs", "params", "tags", "metrics", "experiments"):
        assert found, f"the reference store holds {table} rows for {view}"


@pytest.mark.parametrize("extra, path", [
    ({"runIds": "PLACEHOLDER"}, None),
    ({"metricKeys": "loss,val/acc"}, None),
    ({"startTimeAfter": "2024-01-10T00:00:00Z"}, None),
    ({}, "ref-beta"),
])
@pytest.mark.parametrize("table", ("runs", "metrics", "params", "inputs"))
def test_narrowing_options_equal_direct_read_and_narrow_requests(mlflow_server, table, extra, path):  # noqa: F811
    from mlflow.tracking import MlflowClient

    url, backend = mlflow_server
    if extra.get("runIds") == "PLACEHOLDER":
        client = MlflowClient(url)
        runs = {r.info.run_name: r.info.run_id for r in client.search_runs([e.experiment_id for e in client.search_experiments()])}
        extra = {"runIds": ",".join([runs["a-01"], runs["a-special"], runs["b-parent"]])}
    with Proxy(url) as proxy:
        assert_same({"trackingUri": proxy.url}, backend, table, "ALL", path, **extra)
        searches = [body.decode() for _, body in proxy.requests_to("runs/search")]
        histories = [p for p, _ in proxy.requests_to("metrics/get-history")]
    assert "bulk-interval" not in " ".join(p for _, _, p, _, _ in proxy.log)
    if "runIds" in extra:
        assert searches and all("attributes.run_id IN" in s for s in searches)
    if "startTimeAfter" in extra:
        assert searches and all("attributes.start_time >= 1704844800000" in s for s in searches)
    if path:
        assert searches and all('"experiment_ids": ["2"]' in s for s in searches)
    if "metricKeys" in extra and table == "metrics":
        assert histories and all("metric_key=loss" in p or "metric_key=val%2Facc" in p for p in histories)


def test_runs_table_costs_no_more_requests_than_search_runs(mlflow_server):  # noqa: F811
    import mlflow

    url, backend = mlflow_server
    with Proxy(url) as proxy:
        read_table({"trackingUri": proxy.url, "table": "runs"}, "ref-alpha,ref-beta")
        ours = len(proxy.log)
    with Proxy(url) as proxy:
        mlflow.set_tracking_uri(proxy.url)
        try:
            mlflow.search_runs(experiment_names=["ref-alpha", "ref-beta"])
        finally:
            mlflow.set_tracking_uri(None)
        theirs = len(proxy.log)
    assert ours <= theirs, f"runs table: {ours} requests, mlflow.search_runs: {theirs}"


# ------------------------------------------------------------------------------------------------
# basic auth


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.slow
def test_basic_auth_right_wrong_and_missing_permission(auth_server, monkeypatch, caplog):  # noqa: F811
    import requests

    from pyspark_experiments.stores.rest.client import RestClient
    from pyspark_experiments.stores.rest.settings import Connection, Credential

    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    url, backend = auth_server
    # right credentials, from the environment as MLflow reads them
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN_USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    for table in ("runs", "metrics", "experiments"):
        assert_same({"trackingUri": url}, backend, table)
    # wrong password: a clear 401 naming where the credential came from, never its value
    wrong = "wr0ng-Passw0rd-xyz"
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", wrong)
    started = time.monotonic()
    with pytest.raises(StoreConnectionError) as refused:
        read_table({"trackingUri": url, "table": "runs"})
    assert time.monotonic() - started < 10, "a 401 is not retried"
    message = str(refused.value)
    assert "HTTP 401" in message and "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD" in message
    # a user with permission on ref-alpha only
    admin = _basic(ADMIN_USER, ADMIN_PASSWORD)
    api = f"{url}/api/2.0/mlflow"
    user, password = "viewer", "v1ewer-Passw0rd-abc"
    assert requests.post(f"{api}/users/create", json={"username": user, "password": password}, headers=admin).ok
    ids = {e["name"]: e["experiment_id"] for e in requests.post(
        f"{api}/experiments/search", json={"max_results": 100, "view_type": "ALL"}, headers=admin).json()["experiments"]}
    granted = requests.post(f"{url}/api/3.0/mlflow/users/permissions/grant", headers=admin, json={
        "username": user, "resource_type": "experiment", "resource_id": ids["ref-alpha"], "permission": "READ"})
    assert granted.ok, granted.text
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    as_viewer = {"trackingUri": url, "username": user, "password": password}
    assert_same(as_viewer, backend, "runs", "ALL", "ref-alpha")
    assert_same(as_viewer, backend, "metrics", "ALL", "ref-alpha")
    experiments = read_table({**as_viewer, "table": "experiments"}).column("name").to_pylist()
    assert experiments == ["ref-alpha"], "the server lists only the experiments the user may read"
    with pytest.raises((ValueError, LookupError)) as hidden:  # ExperimentNotFoundError once resolution moves
        read_table({**as_viewer, "table": "runs"}, "ref-beta")
    assert "ref-beta" in str(hidden.value)
    # runs/search leaves the hidden experiment's runs out; asking for one of them by id is a
    # clear 403 naming the credential's source
    hidden_run = requests.post(f"{api}/runs/search", headers=admin, json={"experiment_ids": [ids["ref-beta"]],
                                                                          "max_results": 1}).json()["runs"][0]
    client = RestClient(Connection(url, Credential("basic", "options 'username'/'password'", user, password)))
    assert client.call("POST", "runs/search", body={"experiment_ids": [ids["ref-beta"]], "max_results": 10}).get("runs", []) == []
    with pytest.raises(StoreConnectionError) as denied:
        client.call("GET", "metrics/get-history", params={"run_id": hidden_run["info"]["run_id"], "metric_key": "loss"})
    assert "HTTP 403" in str(denied.value) and "options 'username'/'password'" in str(denied.value)
    for secret in (ADMIN_PASSWORD, wrong, password):
        for text in (message, str(hidden.value), str(denied.value), caplog.text):
            assert secret not in text


# ------------------------------------------------------------------------------------------------
# Databricks


DATABRICKS_TOKEN = "dapi-t0ken-for-tests-0123456789"


@pytest.mark.parametrize("source", ["environment", pytest.param("databrickscfg", marks=pytest.mark.slow)])
def test_databricks_reads_equal_direct_read(mlflow_server, monkeypatch, tmp_path, caplog, source):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    url, backend = mlflow_server
    with DatabricksProxy(url, DATABRICKS_TOKEN, throttle_every=4, retry_after="1") as proxy:
        if source == "environment":
            monkeypatch.setenv("DATABRICKS_HOST", proxy.url)
            monkeypatch.setenv("DATABRICKS_TOKEN", DATABRICKS_TOKEN)
            uri = "databricks"
        else:
            home = tmp_path / "home"
            home.mkdir(exist_ok=True)
            (home / ".databrickscfg").write_text(
                f"[DEFAULT]\nhost = https://wrong.example.com\ntoken = not-this-one\n\n"
                f"[tests]\nhost = {proxy.url}\ntoken = {DATABRICKS_TOKEN}\n"
            )
            uri = "databricks://tests"
        for table in TABLES:
            assert_same({"trackingUri": uri}, backend, table, "ALL")
        throttled = proxy.count(outcome="refused 429")
        pages = [body for _, body in proxy.requests_to("experiments/search")]
        assert proxy.count("ajax-api") == 0 and proxy.count("metrics/get-history?") > 0, "one request per series on Databricks"
    assert throttled > 0, "the proxy throttled some requests, and the reads still equal the direct read"
    assert pages and all(b'"max_results": 3000' in body for body in pages)
    assert DATABRICKS_TOKEN not in caplog.text


def test_databricks_wrong_token_and_not_a_workspace(mlflow_server, monkeypatch):  # noqa: F811
    url, _ = mlflow_server
    with DatabricksProxy(url, DATABRICKS_TOKEN, throttle_every=0) as proxy:
        monkeypatch.setenv("DATABRICKS_HOST", proxy.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-wrong-token-999")
        with pytest.raises(StoreConnectionError) as refused:
            read_table({"trackingUri": "databricks", "table": "experiments"})
        assert "HTTP 401" in str(refused.value) and "DATABRICKS_TOKEN" in str(refused.value)
        assert "dapi-wrong-token-999" not in str(refused.value)
        monkeypatch.setenv("DATABRICKS_HOST", proxy.url + "/not-here")
        monkeypatch.setenv("DATABRICKS_TOKEN", DATABRICKS_TOKEN)
        with pytest.raises(StoreNotFoundError) as missing:
            read_table({"trackingUri": "databricks", "table": "experiments"})
    assert "MLflow tracking server" in str(missing.value) and "/not-here/api/2.0/mlflow/experiments/search" in str(missing.value)


# ------------------------------------------------------------------------------------------------
# metric histories: many runs per request (get-history-bulk), else one request per series


def _series_count(backend: str) -> int:
    table = read_table({"trackingUri": backend, "table": "metrics", "viewType": "ALL"})
    return len(set(zip(table.column("run_id").to_pylist(), table.column("key").to_pylist())))


@pytest.mark.parametrize("points_per_answer", [25_000, 7])
def test_histories_of_many_runs_per_request_equal_direct_read(mlflow_server, monkeypatch, points_per_answer):  # noqa: F811
    """With the server's limit of 25,000 points per answer, and with 7, so that answers are cut:
    the runs an answer completes are kept, the rest asked again, a run filling an answer alone is
    read with get-history pages."""
    from pyspark_experiments.stores.rest import history

    monkeypatch.setattr(history, "BULK_POINTS", points_per_answer)
    url, backend = mlflow_server
    with Proxy(url) as proxy:
        assert_same({"trackingUri": proxy.url}, backend, "metrics", "ALL")
        bulk, single = proxy.count("/ajax-api/2.0/mlflow/metrics/get-history-bulk?"), proxy.count("metrics/get-history?")
    assert "bulk-interval" not in " ".join(p for _, _, p, _, _ in proxy.log)
    series = _series_count(backend)
    if points_per_answer == 25_000:
        assert single == 0 and 0 < bulk < series / 2, (bulk, single, series)
    else:
        assert single > 0 and bulk > 0, (bulk, single, series)


@pytest.mark.parametrize("how", ["bulkMetricHistory=false", "a server without the endpoint"])
def test_histories_one_request_per_series_without_bulk(mlflow_server, how):  # noqa: F811
    url, backend = mlflow_server
    options = {"bulkMetricHistory": "false"} if how.startswith("bulk") else {}
    missing = every(1, ("status", 404, [("Content-Type", "text/html")], b"<h1>Not Found</h1>"), "/ajax-api/")
    with Proxy(url, None if options else missing) as proxy:
        assert_same({"trackingUri": proxy.url, **options}, backend, "metrics", "ALL")
        single = proxy.count("metrics/get-history?")
        bulk = proxy.count("get-history-bulk")
    assert single == _series_count(backend), (single, how)
    if options:
        assert bulk == 0
    else:
        assert bulk >= 1, "each partition asks the server once, then reads one series at a time"


# ------------------------------------------------------------------------------------------------
# real faults


SERVER_ERROR = ("status", 503, [("Content-Type", "text/plain")], b"upstream unavailable")
THROTTLED = ("status", 429, [("Retry-After", "1")], b"")


@pytest.mark.parametrize("name, plan, options", [
    ("503 on every 2nd request", lambda: every(2, SERVER_ERROR), {}),
    ("429 with Retry-After on every 2nd", lambda: every(2, THROTTLED), {}),
    ("dropped connection on every 2nd", lambda: every(2, "drop"), {}),
    ("a stalled answer", lambda: every(2, ("stall", 4), limit=1), {"requestTimeout": "1.5"}),
    ("truncated body on every 2nd", lambda: every(2, "truncate"), {}),
    ("a trickled answer", lambda: every(2, ("trickle", 1.0), limit=1), {"requestTimeout": "2"}),
])
@pytest.mark.parametrize("table", ("runs", "metrics", "inputs"))
def test_transient_faults_still_read_exactly(mlflow_server, caplog, table, name, plan, options):  # noqa: F811
    caplog.set_level(logging.INFO)
    url, backend = mlflow_server
    with Proxy(url, plan()) as proxy:
        assert_same({"trackingUri": proxy.url, **FAST, **options}, backend, table, "ALL")
        faults = sum(1 for *_, outcome in proxy.log if outcome.startswith("fault"))
    assert faults > 0, f"{name}: the proxy injected faults"


@pytest.mark.parametrize("name, plan, options, error, words, bound", [
    ("invalid JSON", lambda: every(1, "invalid-json", "runs/search"), {}, MalformedRecordError, "not valid JSON", 10),
    ("503 forever", lambda: every(1, SERVER_ERROR), {"maxRetries": "2"}, StoreConnectionError, "gave up after 3 attempt", 15),
    ("stalled forever", lambda: every(1, ("stall", 30), "runs/search"), {"requestTimeout": "1", "maxRetryTime": "4"},
     StoreConnectionError, "time bound of 4 s", 12),
    ("429 beyond the time bound", lambda: every(1, ("status", 429, [("Retry-After", "2")], b""), "runs/search"),
     {"maxRetryTime": "3"}, StoreConnectionError, "HTTP 429", 12),
    ("not a tracking server", lambda: every(1, ("status", 404, [("Content-Type", "text/html")], b"<h1>nope</h1>")), {},
     StoreNotFoundError, "MLflow tracking server?", 10),
])
def test_lasting_faults_fail_clearly_within_bound(mlflow_server, name, plan, options, error, words, bound):  # noqa: F811
    url, _ = mlflow_server
    with Proxy(url, plan()) as proxy:
        started = time.monotonic()
        with pytest.raises(error) as failed:
            read_table({"trackingUri": proxy.url, "table": "runs", **FAST, **options}, "ref-alpha" if "404" not in name else None)
        elapsed = time.monotonic() - started
    assert words in str(failed.value), str(failed.value)
    assert proxy.url in str(failed.value)
    assert elapsed < bound, f"{name}: failed after {elapsed:.1f} s"


def test_a_trickling_server_fails_the_read_naming_the_url(mlflow_server):  # noqa: F811
    """The real server's answers to runs/search sent one byte every 2 s: requests' own timeout
    bounds each socket read only, so the read hung; requestTimeout now bounds each attempt whole."""
    import threading

    url, _ = mlflow_server
    outcome = {}
    with Proxy(url, every(1, ("trickle", 2.0), "runs/search")) as proxy:
        options = {"trackingUri": proxy.url, "table": "runs", "requestTimeout": "3", "maxRetryTime": "10", **FAST}

        def read():
            try:
                outcome["table"] = read_table(options, "ref-alpha")
            except Exception as error:
                outcome["error"] = error

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(300)  # a guard against the hang, not a measure of speed
        assert not reader.is_alive(), "the read of a trickling server did not end"
        trickled = proxy.count("runs/search", "fault trickle")
    error = outcome.get("error")
    assert isinstance(error, StoreConnectionError), repr(outcome)
    assert f"{proxy.url}/api/2.0/mlflow/runs/search" in str(error) and "no complete answer within" in str(error)
    assert "'maxRetryTime'" in str(error)
    assert trickled >= 2, "the read retried within maxRetryTime"


@pytest.mark.parametrize("source", ["environment", "databrickscfg"])
def test_a_databricks_host_copied_from_the_browser_reads(mlflow_server, monkeypatch, tmp_path, source):  # noqa: F811
    """https://<workspace>/?o=<id>#job/1 as the host: read as the workspace's own URL."""
    url, backend = mlflow_server
    with DatabricksProxy(url, DATABRICKS_TOKEN, throttle_every=0) as proxy:
        browser = f"{proxy.url}/?o=1234567890123456#job/1/run/2"
        if source == "environment":
            monkeypatch.setenv("DATABRICKS_HOST", browser)
            monkeypatch.setenv("DATABRICKS_TOKEN", DATABRICKS_TOKEN)
        else:
            home = tmp_path / "home"
            home.mkdir(exist_ok=True)
            (home / ".databrickscfg").write_text(f"[DEFAULT]\nhost = {browser}\ntoken = {DATABRICKS_TOKEN}\n")
        assert_same({"trackingUri": "databricks"}, backend, "experiments", "ALL")
        assert_same({"trackingUri": "databricks"}, backend, "runs", "ALL", "ref-alpha")
        refused = proxy.count(outcome="refused 404")
        searched = [path for path, _ in proxy.requests_to("/api/2.0/mlflow/")]
    assert refused == 0 and searched and all(p.startswith("/api/2.0/mlflow/") for p in searched)


# ------------------------------------------------------------------------------------------------
# through Spark


@pytest.mark.parametrize("table", TABLES)
def test_spark_read_over_rest_equals_direct(spark, mlflow_server, table):  # noqa: F811
    url, backend = mlflow_server

    def collect(uri):
        df = spark.read.format("experiments").option("trackingUri", uri).option("table", table).option("viewType", "ALL").load()
        return sorted(repr(sorted(r.asDict(recursive=True).items(), key=lambda kv: kv[0])) for r in df.collect())

    rest, direct = collect(url), collect(backend)
    assert rest == direct and rest


@pytest.mark.slow
def test_spark_credentials_never_shown(spark, auth_server, caplog, capsys):  # noqa: F811
    # our loggers and the HTTP stack's, at their most verbose (py4j's own debug log echoes every
    # command sent to the JVM, options included: it is Spark's channel, not an output of ours)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    url, backend = auth_server
    reader = (spark.read.format("experiments").option("trackingUri", url).option("table", "runs")
              .option("username", ADMIN_USER).option("password", ADMIN_PASSWORD))
    df = reader.load("ref-alpha")
    df.explain(mode="extended")
    df.explain(mode="formatted")
    explained = capsys.readouterr().out
    assert "experiments" in explained.lower()
    plans = [explained, df._jdf.queryExecution().toString()]
    direct = spark.read.format("experiments").option("trackingUri", backend).load("ref-alpha")
    assert sorted(r.run_id for r in df.collect()) == sorted(r.run_id for r in direct.collect())
    wrong = "wr0ng-Spark-Passw0rd"
    failing = (spark.read.format("experiments").option("trackingUri", url).option("username", ADMIN_USER)
               .option("password", wrong).load())
    with pytest.raises(Exception) as refused:
        failing.collect()
    assert "HTTP 401" in str(refused.value)
    for text in plans + [caplog.text, str(refused.value), repr(df)]:
        assert ADMIN_PASSWORD not in text and wrong not in text
