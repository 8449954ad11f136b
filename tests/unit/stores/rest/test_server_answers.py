"""What a tracking server may answer besides MLflow's JSON, against real servers on loopback:
HTML, truncated or absurdly nested bodies, page tokens of the wrong type, malformed listings,
and error messages that echo the request's headers back. Each is a clear error naming the URL
(or retried where it may pass), and no credential comes back in any form."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from pyspark_experiments.errors import MalformedRecordError, StoreConnectionError
from pyspark_experiments.stores.rest.client import RestClient
from pyspark_experiments.stores.rest.settings import Connection, Credential, RetryPolicy
from pyspark_experiments.stores.rest.store import RestStore
from pyspark_experiments.uri import resolve_tracking_uri
from support.proxies import MisbehavingServer

USER, PASSWORD, TOKEN = "bob", "pa55/word+x=y", "dapi-t0ken/with+chars="


def client_for(url: str, credential: Credential | None = None, retries: int = 0) -> RestClient:
    return RestClient(Connection(url, credential or Credential(),
                                 retry=RetryPolicy(max_retries=retries, backoff_factor=0.01, backoff_jitter=0.0,
                                                   timeout=10, max_retry_time=30)))


@pytest.mark.parametrize("credential", [
    Credential("basic", "options 'username'/'password'", USER, PASSWORD),
    Credential("bearer", "option 'token'", secret=TOKEN),
], ids=["basic", "bearer"])
def test_an_error_echoing_the_request_headers_shows_no_credential(credential):
    pair = f"{USER}:{PASSWORD}" if credential.kind == "basic" else TOKEN
    standard, urlsafe = base64.b64encode(pair.encode()).decode(), base64.urlsafe_b64encode(pair.encode()).decode()
    header = f"Basic {standard}" if credential.kind == "basic" else f"Bearer {TOKEN}"
    also = (f"forwarded as {standard} and {urlsafe}; "
            f"query ?password={quote(PASSWORD, safe='')}&token={quote(TOKEN, safe='')}")
    servers = []

    def respond(n, method, path, body):  # the request's own headers, echoed back
        return 400, {}, {"error_code": "BAD_REQUEST", "message": f"bad request, headers: {servers[0].headers[n - 1]}; {also}"}

    with MisbehavingServer(respond) as server:
        servers.append(server)
        with pytest.raises(StoreConnectionError) as error:
            client_for(server.url, credential).call("GET", "runs/get", params={"run_id": "r"})
        assert server.headers[0]["Authorization"] == header
    message = str(error.value)
    assert "'Authorization': " in message
    assert "HTTP 400" in message and "BAD_REQUEST" in message and f"{server.url}/api/2.0/mlflow/runs/get" in message
    secret = credential.secret
    for form in (secret, quote(secret, safe=""), standard, urlsafe, standard.rstrip("=")):
        assert form not in message, form


def test_html_an_empty_body_and_deep_nesting_are_not_json():
    answers = iter([(200, {"Content-Type": "text/html"}, b"<html><body>Sign in</body></html>"),
                    (200, {}, b""),
                    (200, {}, b"[" * 100_000)])
    with MisbehavingServer(lambda *_: next(answers)) as server:
        client = client_for(server.url)
        for _ in range(3):
            with pytest.raises(MalformedRecordError) as error:
                client.call("GET", "experiments/search")
            assert "not valid JSON" in str(error.value) and f"is {server.url} an MLflow tracking server?" in str(error.value)


def test_a_truncated_answer_is_retried_then_reported():
    answers = iter([(200, {"Content-Length": "400"}, b'{"experiments": [{"experiment_id": "0"'),
                    (200, {}, {"experiments": []})])
    with MisbehavingServer(lambda *_: next(answers)) as server:
        assert client_for(server.url, retries=1).call("POST", "experiments/search", body={}) == {"experiments": []}
    with MisbehavingServer(lambda *_: (200, {"Content-Length": "400"}, b'{"experiments": [')) as server:
        with pytest.raises(StoreConnectionError) as error:
            client_for(server.url, retries=1).call("POST", "experiments/search", body={})
        assert server.count() == 2
    assert "gave up after 2 attempt(s)" in str(error.value) and "broke off" in str(error.value)
    assert f"{server.url}/api/2.0/mlflow/experiments/search" in str(error.value)


@pytest.mark.parametrize("token", [{"offset": 2}, 17, ["a"]], ids=["object", "number", "list"])
def test_a_page_token_that_is_not_a_string_is_malformed(token):
    answer = {"runs": [{"info": {"run_id": "r1"}}], "next_page_token": token}
    with MisbehavingServer(lambda *_: (200, {}, answer)) as server:
        with pytest.raises(MalformedRecordError, match="expected a string in 'next_page_token'") as error:
            list(client_for(server.url).pages("POST", "runs/search", "runs", body={}))
    assert f"{server.url}/api/2.0/mlflow/runs/search" in str(error.value)


def test_a_malformed_experiment_listing_names_the_endpoint():
    with MisbehavingServer(lambda *_: (200, {}, {"experiments": [{"name": "no id"}]})) as server:
        store = RestStore(resolve_tracking_uri(server.url, environ={}), {"maxRetries": "0"})
        with pytest.raises(MalformedRecordError) as error:
            store.list_experiments()
    assert f"POST {server.url}/api/2.0/mlflow/experiments/search" in str(error.value)
    assert "expected an experiment with 'experiment_id'" in str(error.value)


def test_an_artifact_listing_that_ignores_its_path_is_stopped():
    """A server answering the same folder listing whatever path it is asked for: a tree without
    end, one request per level, unless three nested folders listed alike stop it."""
    from pyspark_experiments.stores.base import Selection

    run = {"info": {"run_id": "0" * 32, "experiment_id": "1", "status": "FINISHED", "lifecycle_stage": "active",
                    "start_time": 1, "artifact_uri": "mlflow-artifacts:/1/" + "0" * 32 + "/artifacts"}}

    def respond(n, method, path, body):
        if "experiments/search" in path:
            return 200, {}, {"experiments": [{"experiment_id": "1", "name": "a", "lifecycle_stage": "active"}]}
        if "runs/search" in path:
            return 200, {}, {"runs": [run]}
        return 200, {}, {"files": [{"path": "d", "is_dir": True}, {"path": "a.txt", "is_dir": False, "file_size": "3"}]}

    with MisbehavingServer(respond) as server:
        store = RestStore(resolve_tracking_uri(server.url, environ={}), {"maxRetries": "0"})
        partitions = store.plan(Selection("artifacts", ("1",), "ALL"))
        with pytest.raises(MalformedRecordError) as error:
            [batch for partition in partitions for batch in store.read(partition)]
        listings = server.count("/api/2.0/mlflow-artifacts/artifacts")
    assert listings == 3
    assert "does not seem to honour 'path'" in str(error.value) and f"{server.url}/api/2.0/mlflow-artifacts/artifacts" in str(error.value)
    assert "run " + "0" * 32 in str(error.value)
