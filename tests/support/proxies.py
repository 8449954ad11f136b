"""HTTP proxies on loopback in front of a real ``mlflow server``: faults and a Databricks shape.

- :class:`Proxy` forwards every request to the upstream server and logs it; a ``plan``
  (``plan(n, method, path, body) -> fault or None``, ``n`` counting requests from 1) injects
  real faults: ``("status", code, headers, body)``, ``"drop"`` (close the connection without an
  answer), ``("stall", seconds)`` (answer nothing for that long, then forward),
  ``"truncate"`` (announce the whole body, send half of it, close), ``("trickle", seconds)``
  (send the answer's body one byte every that many seconds), ``"invalid-json"``.
- :class:`MisbehavingServer` is no proxy: a server of its own answering every request with
  ``respond(n, method, path, body) -> (status, headers, data)``, optionally trickled one byte
  every ``trickle`` seconds (the body, or with ``trickle_headers`` the whole answer).
- :class:`DatabricksProxy` answers only under ``/api/2.0/mlflow/`` with
  ``Authorization: Bearer <token>``, refuses ``experiments/search`` pages over 3,000 as
  Databricks does, and answers every ``throttle_every``-th request with 429 and ``Retry-After``.

Example::

    >>> with Proxy("http://127.0.0.1:5000", plan=lambda n, *_: "drop" if n % 3 == 0 else None) as proxy:
    ...     requests.get(proxy.url + "/health").text
    'OK'
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["DatabricksProxy", "MisbehavingServer", "Proxy", "every"]


def every(k: int, fault, path_contains: str | None = None, limit: int | None = None):
    """A plan: ``fault`` on every ``k``-th request (whose path holds ``path_contains``), at most ``limit`` times."""
    state = {"seen": 0, "done": 0}
    lock = threading.Lock()

    def plan(n, method, path, body):
        if path_contains is not None and path_contains not in path:
            return None
        with lock:
            state["seen"] += 1
            if state["seen"] % k == 0 and (limit is None or state["done"] < limit):
                state["done"] += 1
                return fault
        return None

    return plan


class Proxy:
    """A forwarding proxy on a free loopback port, with an optional fault ``plan``."""

    def __init__(self, upstream: str, plan=None) -> None:
        self.upstream = urlsplit(upstream)
        self.plan = plan
        self.log: list[tuple[float, str, str, bytes, str]] = []  # (time, method, path, body, outcome)
        self._lock = threading.Lock()
        self._count = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, path_contains: str = "", outcome: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, _, p, _, o in self.log if path_contains in p and (outcome is None or o == outcome))

    def requests_to(self, path_contains: str) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(p, b) for _, _, p, b, o in self.log if path_contains in p]

    # -- hooks -------------------------------------------------------------------------------------

    def check(self, handler, method: str, path: str, body: bytes):
        """A response to give instead of forwarding (subclasses), or ``None``."""
        return None

    def _next(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    def _record(self, method, path, body, outcome) -> None:
        with self._lock:
            self.log.append((time.monotonic(), method, path, body, outcome))

    def forward(self, method: str, path: str, headers, body: bytes) -> tuple[int, str, list, bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "authorization")}
            forwarded["Host"] = self.upstream.netloc
            connection.request(method, path, body=body or None, headers=forwarded)
            response = connection.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date")]
            return response.status, response.reason, kept, data
        finally:
            connection.close()

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, headers, body: bytes, reason: str | None = None) -> None:
                self.send_response(status, reason)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                method = self.command
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path
                n = proxy._next()
                answer = proxy.check(self, method, path, body)
                if answer is not None:
                    status, headers, data = answer
                    proxy._record(method, path, body, f"refused {status}")
                    self._send(status, headers, data)
                    return
                fault = proxy.plan(n, method, path, body) if proxy.plan else None
                kind = fault if isinstance(fault, str) else (fault[0] if fault else None)
                if kind == "status":
                    _, code, headers, data = fault
                    proxy._record(method, path, body, f"fault {code}")
                    self._send(code, headers, data)
                    return
                if kind == "drop":
                    proxy._record(method, path, body, "fault drop")
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind == "stall":
                    proxy._record(method, path, body, "fault stall")
                    time.sleep(fault[1])
                status, reason, headers, data = proxy.forward(method, path, self.headers, body)
                if kind == "truncate" and len(data) > 2:
                    proxy._record(method, path, body, "fault truncate")
                    self.send_response(status, reason)
                    for key, value in headers:
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind == "trickle":
                    proxy._record(method, path, body, "fault trickle")
                    self.send_response(status, reason)
                    for key, value in headers:
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.close_connection = True
                    try:
                        for i in range(len(data)):
                            time.sleep(fault[1])
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                    except OSError:  # the client gave up
                        pass
                    return
                if kind == "invalid-json" and status == 200:
                    proxy._record(method, path, body, "fault invalid-json")
                    self._send(200, [("Content-Type", "application/json")], b'{"runs": [{"info": {"run_id": "x"},, }')
                    return
                proxy._record(method, path, body, "forwarded" if kind != "stall" else "fault stall")
                self._send(status, headers, data, reason)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

        return Handler


class DatabricksProxy(Proxy):
    """A Databricks-shaped front: Bearer token, ``/api/2.0/mlflow/`` only, page limits, 429s."""

    EXPERIMENTS_PAGE_LIMIT = 3_000

    def __init__(self, upstream: str, token: str, throttle_every: int = 4, retry_after: str = "1") -> None:
        super().__init__(upstream)
        self.token = token
        self.throttle_every = throttle_every
        self.retry_after = retry_after
        self.authorized = 0
        self.bulk_deletions = 0  # databricks/runs/delete-runs requests served

    @staticmethod
    def _error(status: int, code: str, message: str):
        return status, [("Content-Type", "application/json")], json.dumps({"error_code": code, "message": message}).encode()

    def check(self, handler, method: str, path: str, body: bytes):
        if not path.startswith("/api/2.0/mlflow/"):
            return 404, [("Content-Type", "text/html")], b"<html><body>Not Found</body></html>"
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
        with self._lock:
            self.authorized += 1
            throttled = self.throttle_every and self.authorized % self.throttle_every == 0
        if throttled:
            status, headers, data = self._error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests; retry later.")
            return status, headers + [("Retry-After", self.retry_after)], data
        if method == "POST" and path.startswith("/api/2.0/mlflow/databricks/runs/delete-runs"):
            return self._delete_runs(json.loads(body or b"{}"))
        if path.startswith("/api/2.0/mlflow/experiments/search"):
            size = None
            if method == "POST" and body:
                size = json.loads(body).get("max_results")
            else:
                size = parse_qs(urlsplit(path).query).get("max_results", [None])[0]
            if size is not None and int(size) > self.EXPERIMENTS_PAGE_LIMIT:
                return self._error(400, "INVALID_PARAMETER_VALUE",
                                   f"max_results must be at most {self.EXPERIMENTS_PAGE_LIMIT}, got {size}")
        return None

    def _upstream(self, path: str, request: dict) -> dict:
        status, _, _, data = self.forward("POST", path, {"Content-Type": "application/json"}, json.dumps(request).encode())
        if status != 200:
            raise RuntimeError(f"upstream {path}: HTTP {status}: {data[:300]!r}")
        return json.loads(data or b"{}")

    def _delete_runs(self, request: dict):
        """Databricks' bulk ``databricks/runs/delete-runs`` (open-source MLflow has no such
        endpoint), done on the upstream server with its own API: the active runs of
        ``experiment_id`` started at or before ``max_timestamp_millis``, oldest first, at most
        ``max_runs``, each deleted with ``runs/delete``. Answers ``{"runs_deleted": n}``."""
        self.bulk_deletions += 1
        found = self._upstream("/api/2.0/mlflow/runs/search", {
            "experiment_ids": [str(request["experiment_id"])], "run_view_type": "ACTIVE_ONLY",
            "filter": f"attributes.start_time <= {int(request['max_timestamp_millis'])}",
            "order_by": ["attributes.start_time ASC"], "max_results": int(request.get("max_runs", 10_000)),
        })
        runs = [run["info"]["run_id"] for run in found.get("runs", [])]
        for run_id in runs:
            self._upstream("/api/2.0/mlflow/runs/delete", {"run_id": run_id})
        return 200, [("Content-Type", "application/json")], json.dumps({"runs_deleted": len(runs)}).encode()


class MisbehavingServer:
    """A loopback HTTP server that answers as ``respond`` says, at the pace ``trickle`` says.

    ``respond(n, method, path, body)`` (``n`` counts requests from 1) returns ``(status,
    headers, data)``: ``data`` bytes, or any other value sent as JSON. With ``trickle`` (seconds
    per byte, or a function of the request's path giving that or ``None``) the body goes out one
    byte at a time, the status line and headers too with
    ``trickle_headers``; a ``Content-Length`` header larger than ``data`` sends ``data`` and
    closes the connection (a truncated answer); a trickle stops when the client hangs up or the
    server closes. ``log`` holds ``(method, path, body)`` of every request, ``headers`` its headers
    (``respond`` may echo them: ``server.headers[n - 1]``).

    Example::

        >>> with MisbehavingServer(lambda n, *_: (200, {}, {"n": n})) as server:
        ...     requests.get(server.url + "/x").json()
        {'n': 1}
    """

    def __init__(self, respond, trickle=None, trickle_headers: bool = False) -> None:
        self.respond = respond
        self.trickle = trickle
        self.trickle_headers = trickle_headers
        self.log: list[tuple[str, str, bytes]] = []
        self.headers: list[dict] = []  # each request's headers, as received
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def count(self, path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for _, path, _ in self.log if path_contains in path)

    def _handler_class(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _slowly(self, data: bytes, pace: float) -> None:
                for i in range(len(data)):
                    if owner._closing.wait(pace):
                        return
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner._lock:
                    owner.log.append((self.command, self.path, body))
                    owner.headers.append(dict(self.headers))
                    n = len(owner.log)
                status, headers, data = owner.respond(n, self.command, self.path, body)
                if not isinstance(data, bytes):
                    data = json.dumps(data).encode()
                    headers = {"Content-Type": "application/json", **dict(headers)}
                head = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}".encode()]
                headers = dict(headers)
                declared = int(headers.pop("Content-Length", len(data)))  # more than sent: a truncated answer
                head += [f"{k}: {v}".encode() for k, v in headers.items()]
                head += [f"Content-Length: {declared}".encode(), b"", b""]
                head = b"\r\n".join(head)
                pace = owner.trickle(self.path) if callable(owner.trickle) else owner.trickle
                try:
                    if pace is None:
                        self.wfile.write(head + data)
                    elif owner.trickle_headers:
                        self._slowly(head + data, pace)
                    else:
                        self.wfile.write(head)
                        self.wfile.flush()
                        self._slowly(data, pace)
                    if declared > len(data):
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:  # the client hung up
                    self.close_connection = True

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

        return Handler
