"""HTTP for the REST store: one JSON call with retries, backoff, throttling and clear errors.

Kept apart from the store, as MLflow keeps ``rest_utils`` apart from its REST store. Built on
``requests`` (the ``rest`` extra); the retry loop is ours rather than urllib3's ``Retry`` so that
one policy covers what urllib3 cannot retry once headers have arrived (a connection dropped in
the middle of a body, a truncated body) and so that every request has a bounded total time.

- Retried with exponential backoff and jitter: connection errors, timeouts, broken or truncated
  bodies, and statuses 408, 429, 500, 502, 503, 504. ``Retry-After`` (seconds or an HTTP date)
  is honoured. A 429 also holds back every other request of the same client until its
  ``Retry-After`` has passed, and does not use up ``maxRetries``: throttling slows a read down.
- Every attempt ends ``requestTimeout`` seconds after it starts (at most what is left of
  ``maxRetryTime``), headers and body included, however slowly the server sends them: a server
  trickling its answer byte by byte fails the attempt as a timeout (:mod:`.transport`).
- Paging stops on a server that would page without end (:meth:`RestClient.pages`).
- Not retried, with a clear error: 401/403 (naming where the credential came from, never its
  value), 404 (naming the URL: is this an MLflow tracking server?), other 4xx with the
  server's error code and message, TLS failures, and answers that are not a JSON object.

Example::

    >>> from pyspark_experiments.stores.rest.settings import Connection
    >>> client = RestClient(Connection("http://127.0.0.1:5000"))
    >>> client.call("POST", "experiments/search", body={"max_results": 10})["experiments"][0]["name"]
    'Default'
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Iterator

from ...errors import (
    MalformedRecordError,
    MissingDependencyError,
    StoreConnectionError,
    StoreNotFoundError,
)
from ...redact import hide, remember, remember_login
from .settings import RETRY_STATUSES, Connection

log = logging.getLogger("pyspark_experiments.rest")

REST_EXTRA = "pip install 'pyspark-experiments[rest]'"


def _requests():
    try:
        import requests
    except ImportError:
        raise MissingDependencyError(f"reading a tracking server over REST needs requests: {REST_EXTRA}") from None
    return requests


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds from now (``None`` when absent or unreadable).

    Example::

        >>> retry_after_seconds("3")
        3.0
        >>> retry_after_seconds(None) is None
        True
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - time.time())


class _Retryable(Exception):
    """One failed attempt that may be retried: what happened, and how long the server asked to wait."""

    def __init__(self, reason: str, wait: float | None = None, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        self.throttled = throttled


class RestClient:
    """Calls one MLflow REST API (``<base>/api/2.0/mlflow/<endpoint>``); safe to share between threads.

    ``sleep``, ``clock`` and ``jitter`` can be replaced (tests of the retry policy).

    Example::

        >>> client = RestClient(connection)
        >>> client.call("GET", "runs/get", params={"run_id": "3f2a..."})["run"]["info"]["status"]
        'FINISHED'
    """

    def __init__(self, connection: Connection, sleep=time.sleep, clock=time.monotonic, jitter=random.random) -> None:
        self.connection = connection
        credential = connection.credential
        if credential.kind == "bearer":
            remember(credential.secret)
        else:  # a login; OAuth machine-to-machine sends its client id and secret as one, and both are secret
            remember_login(credential.username, credential.secret)
            if credential.kind == "oauth-m2m":
                remember(credential.username)
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._lock = threading.Lock()
        self._not_before = 0.0
        self._session = None
        self._oauth = None
        #: Requests sent (attempts, including retries), for reports and benchmarks.
        self.requests_sent = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"RestClient({self.connection!r})"

    # -- connection --------------------------------------------------------------------------------

    def _get_session(self):
        with self._lock:
            if self._session is None:
                _requests()
                from .transport import new_session

                self._session = new_session(self.connection.max_concurrent_requests, self.connection.verify,
                                            self.connection.client_cert)
            return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _auth_headers(self) -> dict[str, str]:
        credential = self.connection.credential
        if credential.kind == "basic":
            raw = f"{credential.username}:{credential.secret}".encode()
            return {"Authorization": "Basic " + base64.standard_b64encode(raw).decode("ascii")}
        if credential.kind == "bearer":
            return {"Authorization": f"Bearer {credential.secret}"}
        if credential.kind == "oauth-m2m":
            with self._lock:
                if self._oauth is None:
                    try:
                        from databricks.sdk.core import Config
                    except ImportError:
                        raise MissingDependencyError(
                            "Databricks OAuth machine-to-machine credentials need databricks-sdk: "
                            "pip install 'pyspark-experiments[databricks]'"
                        ) from None
                    try:
                        # databricks-sdk's own bounds (300 s of retries) give way to the read's
                        policy = self.connection.retry
                        self._oauth = Config(host=self.connection.base_url, client_id=credential.username,
                                             client_secret=credential.secret, auth_type="oauth-m2m",
                                             http_timeout_seconds=max(1, int(policy.timeout)),
                                             retry_timeout_seconds=max(1, int(policy.max_retry_time)))
                    except Exception as error:
                        raise self._oauth_error(error) from None
            try:  # the token request: its errors carry what the token endpoint answered
                return dict(self._oauth.authenticate())
            except Exception as error:
                raise self._oauth_error(error) from None
        return {}

    def _oauth_error(self, error: Exception) -> StoreConnectionError:
        return StoreConnectionError(
            f"Databricks OAuth with the client credentials from {self.connection.credential.source} failed: "
            f"{self.scrub(str(error))}"
        )

    def scrub(self, text: str) -> str:
        """``text`` with the credential hidden in every form a server may echo it in (plain,
        URL-encoded, base64, the base64 of a Basic ``Authorization`` header): the registry
        (:mod:`pyspark_experiments.redact`) learnt it when this client was made.

        Example::

            >>> client.scrub("token dapi123 rejected")  # with token 'dapi123'
            'token *** rejected'
        """
        return hide(text)

    # -- calls -------------------------------------------------------------------------------------

    def url(self, endpoint: str, api: str = "mlflow") -> str:
        """The URL of ``endpoint`` of ``api``: ``mlflow`` (``<base>/api/2.0/mlflow/``),
        ``mlflow-v3`` (``<base>/api/3.0/mlflow/``, MLflow 3's traces), ``mlflow-artifacts``
        (``<base>/api/2.0/mlflow-artifacts/``) or ``mlflow-ajax`` (``<base>/ajax-api/2.0/mlflow/``,
        the endpoints MLflow's UI uses)."""
        if api == "mlflow":
            return f"{self.connection.api_root}/{endpoint.lstrip('/')}"
        prefix = {"mlflow-ajax": "ajax-api/2.0/mlflow", "mlflow-v3": "api/3.0/mlflow"}.get(api, f"api/2.0/{api}")
        return f"{self.connection.base_url.rstrip('/')}/{prefix}/{endpoint.lstrip('/')}"

    def call(self, method: str, endpoint: str, params: dict | None = None, body: dict | None = None,
             api: str = "mlflow", raw: bool = False):
        """One API call, retried as the policy says; the answer's JSON object (``raw``: its bytes).

        Raises :class:`StoreConnectionError` (refused, unreachable, retries used up),
        :class:`StoreNotFoundError` (404) or :class:`MalformedRecordError` (not JSON).
        """
        policy = self.connection.retry
        url = self.url(endpoint, api)
        shown = f"{method} {url}"
        started = self._clock()
        deadline = started + policy.max_retry_time
        failures = 0
        throttles = 0
        attempts = 0
        while True:
            self._wait_for_gate(deadline)
            attempts += 1
            try:
                return self._attempt(method, url, shown, params, body, min(policy.timeout, max(0.001, deadline - self._clock())), raw)
            except _Retryable as problem:
                if problem.throttled:
                    throttles += 1
                else:
                    failures += 1
                elapsed = self._clock() - started
                if failures > policy.max_retries:
                    raise StoreConnectionError(
                        f"{shown}: gave up after {attempts} attempt(s) in {elapsed:.1f} s ({policy.max_retries} "
                        f"retries allowed, option 'maxRetries'); last error: {problem.reason}"
                    ) from None
                wait = policy.backoff(throttles if problem.throttled else failures) + policy.backoff_jitter * self._jitter()
                if problem.wait is not None:
                    # the server says when: a throttled client waits just that long, others at least that
                    wait = problem.wait if problem.throttled else max(problem.wait, wait)
                if self._clock() + wait > deadline:
                    raise StoreConnectionError(
                        f"{shown}: gave up after {attempts} attempt(s) in {elapsed:.1f} s: the next attempt would "
                        f"pass the time bound of {policy.max_retry_time:g} s (option 'maxRetryTime'); last error: "
                        f"{problem.reason}"
                    ) from None
                with self._lock:
                    self.retries += 1
                    if problem.throttled:
                        self._not_before = max(self._not_before, self._clock() + wait)
                log.info("%s: %s; retrying in %.1f s", shown, problem.reason, wait)
                if not problem.throttled:
                    self._sleep(wait)

    def _wait_for_gate(self, deadline: float) -> None:
        with self._lock:
            not_before = self._not_before
        pause = not_before - self._clock()
        if pause > 0:
            self._sleep(min(pause, max(0.0, deadline - self._clock())))

    def _attempt(self, method: str, url: str, shown: str, params, body, timeout: float, raw: bool = False):
        requests = _requests()
        session = self._get_session()
        headers = {"Accept": "application/json", **self._auth_headers()}
        with self._lock:
            self.requests_sent += 1
        from .transport import AttemptDeadline

        if timeout < self.connection.retry.timeout:
            within = f"{timeout:.1f} s (what was left of option 'maxRetryTime')"
        else:
            within = f"{timeout:g} s (option 'requestTimeout')"
        late = f"no complete answer within {within}: each attempt is bounded whole, body included"
        with AttemptDeadline(timeout) as deadline:
            try:
                response = session.request(method, url, params=params, json=body, headers=headers, stream=True,
                                           timeout=(min(timeout, 30.0), timeout), allow_redirects=False)
                try:
                    content = response.content  # the whole body: a truncated one raises here
                finally:
                    response.close()
            except requests.exceptions.SSLError as error:
                if deadline.expired:
                    raise _Retryable(late) from None
                raise StoreConnectionError(f"{shown}: TLS failed: {self.scrub(str(error))} (see MLFLOW_TRACKING_SERVER_CERT_PATH, "
                                           f"MLFLOW_TRACKING_INSECURE_TLS)") from None
            except requests.exceptions.Timeout:
                raise _Retryable(late if deadline.expired else f"no answer within {within}") from None
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as error:
                if deadline.expired:
                    raise _Retryable(late) from None
                raise _Retryable(f"connection failed or broke off ({type(error).__name__}: {self._first_line(error)})") from None
        status = response.status_code
        if status == 200:
            return content if raw else self._json(shown, response, content)
        if status == 503 and b"--no-serve-artifacts" in content:
            raise StoreConnectionError(
                f"{shown}: HTTP 503: the tracking server runs with --no-serve-artifacts, so its artifacts API "
                f"(/api/2.0/mlflow-artifacts/) is off; restart it with --serve-artifacts (the default), or read "
                f"the artifacts where they are stored"
            )
        if status in RETRY_STATUSES:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise _Retryable(f"HTTP {status} {response.reason or ''}".strip(), wait, throttled=status == 429)
        detail = self._error_detail(content)
        credential = self.connection.credential
        if status in (401, 403):
            what = "rejected the credential" if status == 401 else "denied access with the credential"
            used = (f"{credential.kind} auth from {credential.source}" if credential.kind != "none"
                    else "no credential (set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN, "
                         "or options 'username'/'password' or 'token')")
            raise StoreConnectionError(f"{shown}: HTTP {status}: the server {what}: {used}{detail}")
        if status == 404:
            if detail:
                raise StoreNotFoundError(f"{shown}: HTTP 404{detail}")
            raise StoreNotFoundError(
                f"{shown}: HTTP 404 Not Found: is {self.connection.base_url} an MLflow tracking server? "
                f"Expected MLflow's REST API under {self.connection.api_root}/"
            )
        if 300 <= status < 400:
            raise StoreConnectionError(
                f"{shown}: HTTP {status} redirect to {self.scrub(response.headers.get('Location', '?'))}: "
                f"use the final URL as the tracking URI"
            )
        raise StoreConnectionError(f"{shown}: HTTP {status} {response.reason or ''}{detail}".rstrip())

    def _error_detail(self, content: bytes) -> str:
        try:
            error = json.loads(content)
        except (ValueError, RecursionError):
            return ""
        if not isinstance(error, dict) or not (error.get("error_code") or error.get("message")):
            return ""
        # hidden first, then cut: cut first, a credential across the cut would keep its first part
        return f" ({error.get('error_code', 'error')}: {self.scrub(str(error.get('message', '')))[:500]})"

    def _first_line(self, error: BaseException) -> str:
        """The first line of ``error``'s text, hidden, then cut to 300 characters."""
        text = self.scrub(str(error))
        return text.splitlines()[0][:300] if text.strip() else type(error).__name__

    def _json(self, shown: str, response, content: bytes) -> dict:
        try:
            answer = json.loads(content)
        except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than Python's stack
            raise MalformedRecordError(
                f"{shown}: the answer is not valid JSON ({len(content)} bytes, {error}); is "
                f"{self.connection.base_url} an MLflow tracking server?"
            ) from None
        if not isinstance(answer, dict):
            raise MalformedRecordError(f"{shown}: expected a JSON object, got {type(answer).__name__}")
        return answer

    def pages(self, method: str, endpoint: str, items: str, params: dict | None = None, body: dict | None = None,
              page_size_field: str = "max_results") -> Iterator[list[dict]]:
        """Every page of a paged endpoint (``page_token`` / ``next_page_token``): ``answer[items]`` per page.

        A server that would page without end is stopped with a :class:`MalformedRecordError`
        naming the endpoint: a page token seen before, or :data:`IDLE_PAGES` pages in a row that
        name a next page while bringing nothing new (no record, or every record already seen, by
        its id where :data:`RECORD_IDS` names one, else the same page as an earlier one). Where an answer says how many records
        there are (``total_count``), paging stops once that many have come.

        Example::

            >>> sum(len(page) for page in client.pages("POST", "experiments/search", "experiments",
            ...                                        body={"max_results": 1000}))
            3
        """
        shown = f"{method} {self.url(endpoint)}"
        token = None
        tokens: set[str] = set()
        progress = _Progress(RECORD_IDS.get(items))
        requests_sent = idle = 0
        while True:
            if token is not None:
                if params is not None:
                    params = {**params, "page_token": token}
                else:
                    body = {**(body or {}), "page_token": token}
            answer = self.call(method, endpoint, params=params, body=body)
            requests_sent += 1
            page = answer.get(items, [])
            if not isinstance(page, list):
                raise MalformedRecordError(f"{shown}: expected a list in {items!r}, got {type(page).__name__}")
            fresh = progress.add(page)
            yield page
            token = answer.get("next_page_token") or None
            if token is None:
                return
            if not isinstance(token, str):
                raise MalformedRecordError(f"{shown}: expected a string in 'next_page_token', got {type(token).__name__}")
            total = answer.get("total_count")
            if isinstance(total, int) and not isinstance(total, bool) and progress.count >= total:
                log.info("%s: %d of the %d %s the server holds have come; not asking for more pages",
                         shown, progress.count, total, items)
                return
            if token in tokens:
                raise MalformedRecordError(f"{shown}: the server returned the same page token twice")
            tokens.add(token)
            idle = 0 if fresh else idle + 1
            if idle >= IDLE_PAGES:
                raise MalformedRecordError(
                    f"{shown}: {idle} pages in a row brought no {items} not seen on earlier pages yet name a next "
                    f"page: the server pages without end; stopped after {requests_sent} requests"
                )


#: Pages in a row that may bring nothing new before paging stops (one is let pass: a server may
#: answer an empty page before its last).
IDLE_PAGES = 2

#: Where each paged list's records keep their id (paths into the record, one per part of the
#: id); lists not named here (metric points) are compared page by page.
RECORD_IDS = {
    "runs": (("info", "run_id"),),
    "experiments": (("experiment_id",),),
    "models": (("info", "model_id"),),
    "registered_models": (("name",),),
    "model_versions": (("name",), ("version",)),
}


class _Progress:
    """What the pages of one listing have brought: record ids (or page digests) seen, and how many."""

    def __init__(self, id_paths: tuple[tuple[str, ...], ...] | None) -> None:
        self.id_paths = id_paths
        self.seen: set = set()
        self.count = 0

    def _id(self, record) -> tuple | bytes:
        parts = []
        for path in self.id_paths:
            value = record
            for name in path:
                value = value.get(name) if isinstance(value, dict) else None
            if value is None or isinstance(value, (dict, list)):
                return _digest([record])  # no usable id: the record itself
            parts.append(str(value))
        return tuple(parts)

    def add(self, page: list) -> bool:
        """Take in one page; whether it brought anything not seen before."""
        before = len(self.seen)
        if self.id_paths is None:
            self.count += len(page)
            if page:
                self.seen.add(_digest(page))
        else:
            self.seen.update(self._id(record) for record in page)
            self.count = len(self.seen)
        return len(self.seen) > before


def _digest(records: list) -> bytes:
    text = json.dumps(records, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()

