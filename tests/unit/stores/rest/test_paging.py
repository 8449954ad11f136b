"""Paging against real misbehaving servers on loopback: a server whose page token changes on
every page while the records stay the same is stopped with an error naming the endpoint, on
every paged endpoint; ``total_count`` caps the pages; well-behaved paging reads every record."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from pyspark_experiments.errors import MalformedRecordError
from pyspark_experiments.stores.base import Selection
from pyspark_experiments.stores.rest.client import RestClient
from pyspark_experiments.stores.rest.settings import Connection, RetryPolicy
from pyspark_experiments.stores.rest.store import RestStore
from pyspark_experiments.uri import resolve_tracking_uri
from support.proxies import MisbehavingServer


def run(i: int, experiment: str = "1") -> dict:
    return {"info": {"run_id": f"r{i:031d}", "experiment_id": experiment, "status": "FINISHED", "start_time": 1000 + i,
                     "lifecycle_stage": "active", "artifact_uri": f"/tmp/a/{i}"},
            "data": {"metrics": [{"key": "loss", "value": 0.5, "step": 3, "timestamp": 5}]}}


# (method, endpoint, list name, a page of records)
ENDPOINTS = [
    ("POST", "runs/search", "runs", [run(1), run(2)]),
    ("POST", "experiments/search", "experiments", [{"experiment_id": "1", "name": "a"}, {"experiment_id": "2", "name": "b"}]),
    ("GET", "metrics/get-history", "metrics", [{"key": "loss", "value": 0.5, "step": s, "timestamp": 5} for s in range(3)]),
    ("GET", "registered-models/search", "registered_models", [{"name": "m1"}, {"name": "m2"}]),
    ("GET", "model-versions/search", "model_versions", [{"name": "m1", "version": "1"}, {"name": "m1", "version": "2"}]),
    ("POST", "logged-models/search", "models", [{"info": {"model_id": "m-1"}}, {"info": {"model_id": "m-2"}}]),
]


def client_for(url: str) -> RestClient:
    return RestClient(Connection(url, retry=RetryPolicy(max_retries=0, timeout=10, max_retry_time=30)))


def endless(items: str, page: list):
    """Answers the same records with a new page token every time, as the faulty server did."""
    return lambda n, method, path, body: (200, {}, {items: page, "next_page_token": f"token-{n}"})


@pytest.mark.parametrize("method, endpoint, items, page", ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_a_token_that_changes_while_the_records_do_not_is_stopped(method, endpoint, items, page):
    with MisbehavingServer(endless(items, page)) as server:
        client = client_for(server.url)
        pages = []
        with pytest.raises(MalformedRecordError) as error:
            for found in client.pages(method, endpoint, items, params={"max_results": 2} if method == "GET" else None,
                                      body={"max_results": 2} if method == "POST" else None):
                pages.append(found)
        sent = server.count()
    assert f"{method} {server.url}/api/2.0/mlflow/{endpoint}" in str(error.value)
    assert "pages without end" in str(error.value)
    assert sent == 3 and len(pages) == 3  # the first page, then two that bring nothing new


def test_pages_that_shift_by_one_record_go_on_until_nothing_is_new():
    """Records keep coming in new page orders: paging stops only when no page brings any."""
    records = [run(i) for i in range(5)]

    def respond(n, method, path, body):
        start = min(n - 1, 3)  # pages [0, 1], [1, 2], [2, 3], [3, 4], [3, 4], ...
        return 200, {}, {"runs": records[start:start + 2], "next_page_token": f"t{n}"}

    with MisbehavingServer(respond) as server:
        with pytest.raises(MalformedRecordError, match="2 pages in a row brought no runs"):
            list(client_for(server.url).pages("POST", "runs/search", "runs", body={"max_results": 2}))
        assert server.count() == 6


def test_total_count_caps_the_pages():
    def respond(n, method, path, body):  # new records for ever, but the server says it holds 5
        return 200, {}, {"runs": [run(2 * n), run(2 * n + 1)], "next_page_token": f"t{n}", "total_count": 5}

    with MisbehavingServer(respond) as server:
        pages = list(client_for(server.url).pages("POST", "runs/search", "runs", body={"max_results": 2}))
        assert server.count() == 3
    assert sum(len(p) for p in pages) == 6


def test_honest_paging_reads_every_record_and_lets_one_empty_page_pass():
    script = {1: ([run(0), run(1)], "a"), 2: ([], "b"), 3: ([run(2)], None)}

    def respond(n, method, path, body):
        records, token = script[n]
        answer = {"runs": records}
        if token:
            answer["next_page_token"] = token
        return 200, {}, answer

    with MisbehavingServer(respond) as server:
        pages = list(client_for(server.url).pages("POST", "runs/search", "runs", body={"max_results": 2}))
        tokens = [json.loads(body).get("page_token") for _, _, body in server.log]
    assert [len(p) for p in pages] == [2, 0, 1] and tokens == [None, "a", "b"]


def test_a_run_listing_that_never_ends_fails_the_read_naming_runs_search():
    """Through the store: planning lists the experiment, the executor's runs/search loops."""
    def respond(n, method, path, body):
        if "experiments/search" in path:
            return 200, {}, {"experiments": [{"experiment_id": "1", "name": "a", "lifecycle_stage": "active"}]}
        return endless("runs", [run(1), run(2)])(n, method, path, body)

    with MisbehavingServer(respond) as server:
        store = RestStore(resolve_tracking_uri(server.url, environ={}), {"maxRetries": "0"})
        ids = tuple(e.experiment_id for e in store.list_experiments())
        partitions = store.plan(Selection("runs", ids, "ALL"))
        with pytest.raises(MalformedRecordError, match="runs/search: 2 pages in a row brought no runs"):
            [batch for partition in partitions for batch in store.read(partition)]
        searches = server.count("runs/search")
    assert searches == 3


def test_metric_history_pages_that_repeat_are_stopped_through_the_store():
    def respond(n, method, path, body):
        if "experiments/search" in path:
            return 200, {}, {"experiments": [{"experiment_id": "1", "name": "a", "lifecycle_stage": "active"}]}
        if "runs/search" in path:
            return 200, {}, {"runs": [run(1)]}
        assert parse_qs(urlsplit(path).query)["metric_key"] == ["loss"]
        return endless("metrics", [{"key": "loss", "value": 0.5, "step": 3, "timestamp": 5}])(n, method, path, body)

    with MisbehavingServer(respond) as server:
        store = RestStore(resolve_tracking_uri(server.url, environ={}), {"maxRetries": "0", "bulkMetricHistory": "false"})
        partitions = store.plan(Selection("metrics", ("1",), "ALL"))
        with pytest.raises(MalformedRecordError, match="metrics/get-history: 2 pages in a row"):
            [batch for partition in partitions for batch in store.read(partition)]
        assert server.count("metrics/get-history") == 3
