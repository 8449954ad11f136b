"""The REST client's retry policy, paging and errors, against a scripted HTTP server on loopback.

The server answers each request with the next scripted response; the client's sleep and
clock are replaced so that waits are recorded instead of slept.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pyspark_experiments.errors import MalformedRecordError, StoreConnectionError, StoreNotFoundError
from pyspark_experiments.stores.rest.client import RestClient, retry_after_seconds
from pyspark_experiments.stores.rest.settings import Connection, Credential, RetryPolicy

TOKEN = "t0ken-never-shown-123"


class Scripted:
    """A loopback server answering with scripted ``(status, headers, body)``; records requests."""

    def __init__(self, script):
        self.script = list(script)
        self.seen: list[tuple[str, str, dict, bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.seen.append((self.command, self.path, dict(self.headers), body))
                status, headers, data = owner.script.pop(0) if owner.script else (500, {}, b"script exhausted")
                data = data if isinstance(data, bytes) else json.dumps(data).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(*script):
        server = Scripted(script)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds):
        self.waits.append(round(seconds, 3))
        self.now += seconds

    def clock(self):
        return self.now


def client_for(server, policy=None, credential=None, fake=None):
    fake = fake or FakeTime()
    connection = Connection(server.url, credential or Credential("bearer", "MLFLOW_TRACKING_TOKEN", secret=TOKEN),
                            retry=policy or RetryPolicy(max_retries=3, backoff_factor=1.0, backoff_jitter=1.0, timeout=5,
                                                        max_retry_time=1000))
    return RestClient(connection, sleep=fake.sleep, clock=fake.clock, jitter=lambda: 0.5), fake


def test_policy_defaults_follow_mlflow_and_its_variables():
    assert RetryPolicy.from_options({}, environ={}) .max_retries == 7
    policy = RetryPolicy.from_options({}, environ={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0.5",
                                                  "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"})
    assert (policy.max_retries, policy.backoff_factor, policy.backoff_jitter, policy.timeout) == (2, 0.5, 0.0, 10.0)
    # the bound: backoffs (0.5 + 1.0) plus three timeouts
    assert policy.max_retry_time == pytest.approx(31.5)
    policy = RetryPolicy.from_options({"maxRetries": "1", "maxRetryTime": "9"}, environ={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5"})
    assert (policy.max_retries, policy.max_retry_time) == (1, 9.0)
    assert RetryPolicy(backoff_factor=2.0).backoff(10) == 120.0  # capped
    with pytest.raises(ValueError, match="'maxRetries'"):
        RetryPolicy.from_options({"maxRetries": "-1"}, environ={})
    with pytest.raises(ValueError, match="MLFLOW_HTTP_REQUEST_TIMEOUT"):
        RetryPolicy.from_options({}, environ={"MLFLOW_HTTP_REQUEST_TIMEOUT": "soon"})


def test_retry_after_forms():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("garbage") is None


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_retryable_statuses_back_off_exponentially(scripted, status):
    server = scripted((status, {}, b"x"), (status, {}, b"x"), (200, {}, {"ok": 1}))
    client, fake = client_for(server)
    assert client.call("GET", "thing") == {"ok": 1}
    assert fake.waits == [1.5, 2.5]  # 1 * 2**0 + 0.5 jitter, 1 * 2**1 + 0.5
    assert client.requests_sent == 3


def test_retry_after_is_honoured_and_429_does_not_use_up_retries(scripted):
    script = [(429, {"Retry-After": "4"}, b"")] * 5 + [(503, {"Retry-After": "6"}, b""), (200, {}, {"ok": 1})]
    server = scripted(*script)
    client, fake = client_for(server, RetryPolicy(max_retries=1, backoff_factor=1.0, backoff_jitter=0.0, timeout=5, max_retry_time=1000))
    assert client.call("POST", "runs/search", body={}) == {"ok": 1}
    assert fake.waits[:5] == [4.0] * 5
    assert fake.waits[5] == 6.0  # Retry-After is longer than the backoff


def test_retries_and_time_bound_give_up_with_clear_errors(scripted):
    server = scripted(*[(503, {}, b"")] * 5)
    client, _ = client_for(server, RetryPolicy(max_retries=2, backoff_factor=1.0, backoff_jitter=0.0, timeout=5, max_retry_time=1000))
    with pytest.raises(StoreConnectionError, match=r"gave up after 3 attempt\(s\).*'maxRetries'.*HTTP 503"):
        client.call("GET", "metrics/get-history", params={"run_id": "r"})
    server = scripted(*[(429, {"Retry-After": "30"}, b"")] * 5)
    client, _ = client_for(server, RetryPolicy(max_retries=9, backoff_factor=1.0, backoff_jitter=0.0, timeout=5, max_retry_time=50))
    with pytest.raises(StoreConnectionError, match="time bound of 50 s"):
        client.call("GET", "x")
    assert len(server.seen) == 2  # 0 s, 30 s; a third attempt at 60 s would pass the bound


def test_connection_refused_is_retried_then_reported():
    connection = Connection("http://127.0.0.1:9", retry=RetryPolicy(max_retries=1, backoff_factor=0.0, backoff_jitter=0.0,
                                                                  timeout=1, max_retry_time=10))
    fake = FakeTime()
    with pytest.raises(StoreConnectionError, match="connection failed"):
        RestClient(connection, sleep=fake.sleep, clock=fake.clock).call("GET", "x")


def test_401_403_404_are_not_retried_and_name_the_source_not_the_secret(scripted):
    server = scripted((401, {}, b""), (403, {}, {"error_code": "PERMISSION_DENIED", "message": f"no access for {TOKEN}"}),
                      (404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"),
                      (404, {}, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run 'r' not found"}))
    client, fake = client_for(server)
    with pytest.raises(StoreConnectionError) as e401:
        client.call("GET", "a")
    with pytest.raises(StoreConnectionError) as e403:
        client.call("GET", "b")
    with pytest.raises(StoreNotFoundError) as e404:
        client.call("GET", "c")
    with pytest.raises(StoreNotFoundError, match="RESOURCE_DOES_NOT_EXIST: Run 'r' not found"):
        client.call("GET", "d")
    assert fake.waits == []
    assert "HTTP 401" in str(e401.value) and "bearer auth from MLFLOW_TRACKING_TOKEN" in str(e401.value)
    assert "PERMISSION_DENIED" in str(e403.value)
    assert "is this" not in str(e404.value) and "an MLflow tracking server?" in str(e404.value)
    assert f"{server.url}/api/2.0/mlflow/c" in str(e404.value)
    for error in (e401, e403, e404):
        assert TOKEN not in str(error.value)
    assert server.seen[0][2]["Authorization"] == f"Bearer {TOKEN}"


def test_invalid_json_fails_at_once(scripted):
    server = scripted((200, {}, b'{"runs": [1, 2'), (200, {}, b"[1]"))
    client, fake = client_for(server)
    with pytest.raises(MalformedRecordError, match="not valid JSON"):
        client.call("GET", "a")
    with pytest.raises(MalformedRecordError, match="expected a JSON object"):
        client.call("GET", "b")
    assert fake.waits == []


def test_paging_follows_tokens_and_refuses_loops(scripted):
    server = scripted((200, {}, {"metrics": [{"step": 0}], "next_page_token": "p2"}),
                      (200, {}, {"metrics": [{"step": 1}], "next_page_token": "p3"}),
                      (200, {}, {"metrics": [{"step": 2}]}))
    client, _ = client_for(server)
    pages = list(client.pages("GET", "metrics/get-history", "metrics", params={"run_id": "r", "max_results": 1}))
    assert [p[0]["step"] for p in pages] == [0, 1, 2]
    assert "page_token" not in server.seen[0][1] and "page_token=p2" in server.seen[1][1] and "page_token=p3" in server.seen[2][1]
    server = scripted((200, {}, {"runs": [], "next_page_token": "a"}), (200, {}, {"runs": [], "next_page_token": "a"}))
    client, _ = client_for(server)
    with pytest.raises(MalformedRecordError, match="same page token twice"):
        list(client.pages("POST", "runs/search", "runs", body={"max_results": 10}))
    assert json.loads(server.seen[1][3])["page_token"] == "a"


def test_basic_auth_header_and_scrubbing(scripted):
    server = scripted((200, {}, {}))
    client, _ = client_for(server, credential=Credential("basic", "options", "bob", "pa55word"))
    client.call("GET", "x")
    import base64

    assert server.seen[0][2]["Authorization"] == "Basic " + base64.b64encode(b"bob:pa55word").decode()
    assert client.scrub("failed with pa55word at http://bob:pa55word@h/") == "failed with *** at http://bob:***@h/"


def test_oauth_token_request_errors_hide_the_client_secret(scripted):
    """databricks-sdk's error for a refused token request holds the token endpoint's answer,
    which may echo the client credentials (here: the secret, and the Basic login in base64)."""
    pytest.importorskip("databricks.sdk")
    import base64

    secret = "cl1ent-s3cret-x"
    login = base64.b64encode(f"cid:{secret}".encode()).decode()
    echo = {"error": "invalid_client", "error_description": f"client secret {secret} ({login}) is wrong"}
    server = scripted((200, {}, {"oidc_endpoint": "{url}/oidc", "workspace_id": "1"}), (404, {}, b""),
                      (401, {}, echo))
    server.script[0] = (200, {}, {"oidc_endpoint": f"{server.url}/oidc", "workspace_id": "1"})
    server.script[1] = (200, {}, {"authorization_endpoint": f"{server.url}/oidc/v1/authorize",
                                  "token_endpoint": f"{server.url}/oidc/v1/token"})
    client, _ = client_for(server, credential=Credential("oauth-m2m", "options 'clientId'/'clientSecret'", "cid", secret))
    with pytest.raises(StoreConnectionError, match="Databricks OAuth with the client credentials from options") as failed:
        client.call("GET", "experiments/search")
    assert secret not in str(failed.value) and login not in str(failed.value)


def test_a_long_error_message_is_cut_after_the_credential_is_hidden(scripted):
    """Cut first, a token echoed across the cut would keep its first characters."""
    message = "x" * 480 + f" token {TOKEN} rejected"  # the cut at 500 falls inside the token
    server = scripted((400, {}, {"error_code": "BAD_REQUEST", "message": message}))
    client, _ = client_for(server)
    with pytest.raises(StoreConnectionError) as refused:
        client.call("GET", "x")
    assert TOKEN[:8] not in str(refused.value) and "x" * 480 in str(refused.value)


def test_oauth_gives_up_within_the_reads_retry_bound():
    """A workspace that takes the connection and never answers: databricks-sdk would wait 60 s
    per request for 300 s of retries; the read's ``requestTimeout`` and ``maxRetryTime`` bound it
    instead (here 1 s and 2 s)."""
    pytest.importorskip("databricks.sdk")
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections complete in the backlog; nothing is ever read or answered
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        policy = RetryPolicy(max_retries=1, backoff_factor=0.1, backoff_jitter=0.0, timeout=1, max_retry_time=2)
        connection = Connection(url, Credential("oauth-m2m", "options 'clientId'/'clientSecret'", "cid", "s3cret-x"), retry=policy)
        with pytest.raises(StoreConnectionError, match="Databricks OAuth with the client credentials from options"):
            RestClient(connection).call("GET", "experiments/search")
    finally:
        silent.close()
