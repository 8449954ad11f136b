"""HTTP sessions whose requests end at a deadline, however slowly the server answers.

``requests``' timeout bounds each socket operation, not an answer: a server that trickles one
byte every 2 s keeps a read with a 3 s timeout alive for as long as it likes. Here every
attempt runs inside an :class:`AttemptDeadline`: the connection it sends on (this module's
urllib3 connection classes) is handed to the deadline on the attempt's thread, and when the
deadline passes a timer shuts that connection's socket down, which wakes the blocked read at
once (status line, headers or body alike). The client then reports the attempt as timed out.

Example::

    >>> session = new_session(pool_size=8, verify=True)
    >>> with AttemptDeadline(3.0) as deadline:                                  # doctest: +SKIP
    ...     session.get("http://127.0.0.1:5000/health", timeout=3.0).text
    'OK'
    >>> deadline.expired                                                        # doctest: +SKIP
    False
"""

from __future__ import annotations

import socket
import threading

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class AttemptDeadline:
    """The time one attempt may take, headers and body included; a context manager.

    While it is entered, connections used on this thread are watched; once ``seconds`` have
    passed, the watched connection's socket is shut down and :attr:`expired` is true.

    Example::

        >>> with AttemptDeadline(0.01) as deadline:
        ...     __import__("time").sleep(0.2)
        >>> deadline.expired
        True
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._done = False
        self._connection = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> AttemptDeadline:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            self._connection = None
        _current.deadline = None

    def watch(self, connection) -> None:
        """Watch ``connection`` (called by the connection when the attempt connects or sends)."""
        with self._lock:
            if self.expired:
                raise TimeoutError(f"the attempt's {self.seconds:g} s had passed before it was sent")
            self._connection = connection
            connection.watched_by = self

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            connection = self._connection
            # a connection handed back to the pool and taken by another attempt is not ours to cut
            if connection is None or getattr(connection, "watched_by", None) is not self:
                return
            sock = getattr(connection, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _watch(connection) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)


class _Watched:
    watched_by = None

    def connect(self) -> None:
        _watch(self)
        super().connect()

    def request(self, *args, **kwargs):
        _watch(self)
        return super().request(*args, **kwargs)


class WatchedHTTPConnection(_Watched, HTTPConnection):
    """An urllib3 HTTP connection that the current :class:`AttemptDeadline` watches."""


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    """An urllib3 HTTPS connection that the current :class:`AttemptDeadline` watches."""


class _Pool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections an :class:`AttemptDeadline` can cut."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}


def new_session(pool_size: int, verify: bool | str, client_cert: str | None = None) -> requests.Session:
    """A ``requests`` session for one client: ``pool_size`` connections kept per host, no
    retries of urllib3's own (the client retries), TLS as given, and nothing taken from the
    environment behind the caller's back (no ``~/.netrc`` credentials, no proxy variables).

    Example::

        >>> new_session(4, verify=False).trust_env
        False
    """
    session = requests.Session()
    adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    if client_cert:
        session.cert = client_cert
    session.trust_env = False
    return session
