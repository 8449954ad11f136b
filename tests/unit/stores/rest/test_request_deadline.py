"""Each attempt of a REST call has a deadline for the whole answer, against real trickling servers.

A server that sends one byte every few seconds answers every socket read within any read
timeout, so only a bound on the whole answer ends such a call. Each test runs the call in a
thread and checks that it returned, with a clear error naming the URL; the join's bound is a
guard against a hang, not a measure of speed.
"""

from __future__ import annotations

import threading

import pytest

from pyspark_experiments.errors import StoreConnectionError
from pyspark_experiments.stores import open_store
from pyspark_experiments.stores.rest.client import RestClient
from pyspark_experiments.stores.rest.settings import Connection, Credential, RetryPolicy
from pyspark_experiments.uri import resolve_tracking_uri
from support.proxies import MisbehavingServer

TOKEN = "t0ken-never-shown-456"
EXPERIMENTS = {"experiments": [{"experiment_id": "0", "name": "Default", "lifecycle_stage": "active"}]}
HANG_GUARD_S = 180


def outcome_of(call) -> BaseException | object:
    """What ``call()`` returned or raised, run in a thread; fails the test if it never returns."""
    result = {}

    def run():
        try:
            result["value"] = call()
        except BaseException as error:  # handed to the test
            result["value"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the call is still running: nothing bounds the whole answer"
    return result["value"]


def quick_client(url: str) -> RestClient:
    policy = RetryPolicy(max_retries=1, backoff_factor=0.05, backoff_jitter=0.0, timeout=1.0, max_retry_time=30)
    return RestClient(Connection(url, Credential("bearer", "MLFLOW_TRACKING_TOKEN", secret=TOKEN), retry=policy))


@pytest.mark.parametrize("trickle_headers", [False, True], ids=["body", "status-line-and-headers"])
def test_a_trickled_answer_fails_at_the_attempts_deadline(trickle_headers):
    with MisbehavingServer(lambda *_: (200, {}, EXPERIMENTS), trickle=0.3, trickle_headers=trickle_headers) as server:
        client = quick_client(server.url)
        error = outcome_of(lambda: client.call("POST", "experiments/search", body={"max_results": 10}))
        attempts = server.count("experiments/search")
    assert isinstance(error, StoreConnectionError), repr(error)
    message = str(error)
    assert f"POST {server.url}/api/2.0/mlflow/experiments/search" in message
    assert "gave up after 2 attempt(s)" in message and "no complete answer within 1 s" in message
    assert "'requestTimeout'" in message and TOKEN not in message
    assert attempts == 2


def test_a_trickling_tracking_server_fails_the_read_within_its_options():
    """The reported case: one byte every 2 s, requestTimeout=3, maxRetryTime=10."""
    with MisbehavingServer(lambda *_: (200, {}, EXPERIMENTS), trickle=2.0) as server:
        store = open_store(resolve_tracking_uri(server.url, environ={}),
                           {"requestTimeout": "3", "maxRetryTime": "10", "maxRetries": "1", "backoffFactor": "0.1",
                            "backoffJitter": "0"})
        error = outcome_of(store.list_experiments)
        attempts = server.count()
    assert isinstance(error, StoreConnectionError), repr(error)
    assert f"{server.url}/api/2.0/mlflow/experiments/search" in str(error)
    assert "no complete answer within 3 s" in str(error)
    assert attempts == 2


def test_a_deadline_cuts_only_its_own_attempt():
    """One client, several threads: the trickled call fails, the prompt ones around it, on the
    same pool of kept-alive connections, are read whole."""
    from concurrent.futures import ThreadPoolExecutor

    def respond(n, method, path, body):
        return 200, {}, {**EXPERIMENTS, "path": path}

    with MisbehavingServer(respond, trickle=lambda path: 0.5 if "slow" in path else None) as server:
        client = quick_client(server.url)
        with ThreadPoolExecutor(4) as pool:
            slow = pool.submit(outcome_of, lambda: client.call("GET", "slow"))
            prompt = list(pool.map(lambda i: client.call("GET", f"prompt-{i}")["path"], range(40)))
        error = slow.result()
    assert prompt == [f"/api/2.0/mlflow/prompt-{i}" for i in range(40)]
    assert isinstance(error, StoreConnectionError) and "no complete answer within 1 s" in str(error)
