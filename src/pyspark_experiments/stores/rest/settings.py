"""What a REST read is configured with: its options, retry policy and resolved connection.

Nothing here imports an HTTP library, so the data source can validate options without the
``rest`` extra. A :class:`Connection` is resolved once, on the driver (see
:func:`.auth.resolve_connection`), and travels to the executors inside each partition: the
executors' environment (and home folder) may differ from the driver's, and Spark's Python
workers only inherit the environment the session started with.

Example::

    >>> policy = RetryPolicy.from_options({}, environ={})
    >>> policy.max_retries, policy.backoff_factor, policy.timeout
    (7, 2.0, 120.0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ...errors import ConfigurationError

# Options of a REST read, as users write them. Spark redacts the values of options whose
# names match `spark.redaction.regex` ((?i)secret|password|token|access[.]?key by default):
# `token`, `password` and `clientSecret` do.
CREDENTIAL_OPTIONS = ("username", "password", "token", "databricksHost", "clientId", "clientSecret")
TLS_OPTIONS = ("insecureTls", "serverCertPath", "clientCertPath")
RETRY_OPTIONS = ("maxRetries", "backoffFactor", "backoffJitter", "requestTimeout", "maxRetryTime")
REST_OPTIONS = CREDENTIAL_OPTIONS + TLS_OPTIONS + RETRY_OPTIONS + ("maxConcurrentRequests", "bulkMetricHistory")
#: Options whose values are secrets (never shown, whatever Spark's redaction is set to).
SECRET_OPTIONS = ("password", "token", "clientSecret")

#: Statuses retried with backoff, as MLflow's client retries them.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# MLflow's defaults for MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR, _BACKOFF_JITTER, _TIMEOUT.
_MLFLOW_DEFAULTS = {"maxRetries": 7, "backoffFactor": 2.0, "backoffJitter": 1.0, "requestTimeout": 120.0}
_MLFLOW_ENV = {
    "maxRetries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "backoffFactor": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "backoffJitter": "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
    "requestTimeout": "MLFLOW_HTTP_REQUEST_TIMEOUT",
}
#: Longest single wait between two attempts (urllib3's default backoff maximum).
MAX_BACKOFF = 120.0
DEFAULT_MAX_CONCURRENT_REQUESTS = 8


def option(options: dict, name: str, environ: dict | None = None, env: str | None = None) -> str | None:
    """An option's value (case-insensitive name), else the environment variable ``env``.

    Example::

        >>> option({"maxretries": "3"}, "maxRetries")
        '3'
    """
    lowered = {str(k).lower(): v for k, v in dict(options or {}).items()}
    value = lowered.get(name.lower())
    if value is not None and str(value).strip() != "":
        return str(value).strip()
    if env is not None:
        value = (os.environ if environ is None else environ).get(env)
        if value is not None and str(value).strip() != "":
            return str(value).strip()
    return None


#: How a boolean REST option or variable may be written (any case), as MLflow reads its boolean variables.
BOOLEAN_WORDS = {"true": True, "1": True, "false": False, "0": False}


def boolean_option(options: dict, name: str, default: bool, environ: dict | None = None, env: str | None = None) -> bool:
    """A boolean option (``true``/``false``/``1``/``0``, any case), else the variable ``env``,
    else ``default``. Anything else is a :class:`ConfigurationError` naming the option or the
    variable and the accepted values.

    Example::

        >>> boolean_option({"insecureTls": "TRUE"}, "insecureTls", False)
        True
        >>> boolean_option({}, "insecureTls", False, {"MLFLOW_TRACKING_INSECURE_TLS": "definitely"},
        ...                "MLFLOW_TRACKING_INSECURE_TLS")
        Traceback (most recent call last):
        pyspark_experiments.errors.ConfigurationError: environment variable 'MLFLOW_TRACKING_INSECURE_TLS': expected \
true or false (or 1 or 0), got 'definitely'
    """
    text, shown = option(options, name), f"option {name!r}"
    if text is None and env is not None:
        text, shown = option({}, name, environ, env), f"environment variable {env!r}"
    if text is None:
        return default
    value = BOOLEAN_WORDS.get(text.lower())
    if value is None:
        raise ConfigurationError(f"{shown}: expected true or false (or 1 or 0), got {text!r}")
    return value


def _number(name: str, text: str, kind, minimum: float, source: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigurationError(
            f"{source} {name!r}: expected a {'whole' if kind is int else ''} number >= {minimum:g}, got {text!r}".replace("  ", " ")
        )
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """How one request is retried: attempts, backoff, per-attempt timeout, total time bound.

    ``timeout`` (option ``requestTimeout``) bounds each attempt as a whole, from sending the
    request to the last byte of the answer, not only each read of the socket as ``requests``'
    timeout does; ``max_retry_time`` bounds the request with all its attempts and waits.

    Attempt ``n`` (from 1) that fails with a retryable error waits
    ``min(MAX_BACKOFF, backoff_factor * 2 ** (n - 1)) + uniform(0, backoff_jitter)`` seconds,
    or what ``Retry-After`` asks, whichever is longer. ``429 Too Many Requests`` does not use up
    ``max_retries``: it slows the read down, bounded only by ``max_retry_time``.

    Example::

        >>> RetryPolicy(max_retries=3, backoff_factor=1.0, backoff_jitter=0.0).backoff(2)
        2.0
    """

    max_retries: int = 7
    backoff_factor: float = 2.0
    backoff_jitter: float = 1.0
    timeout: float = 120.0
    max_retry_time: float = 600.0

    @classmethod
    def from_options(cls, options: dict, environ: dict | None = None) -> RetryPolicy:
        """Options, else MLflow's ``MLFLOW_HTTP_REQUEST_*`` variables, else MLflow's defaults.

        ``maxRetryTime`` (seconds, the bound on one request with all its retries) defaults to
        the backoff schedule plus ``max_retries + 1`` timeouts, at most one hour.

        Example::

            >>> RetryPolicy.from_options({"maxRetries": "2", "requestTimeout": "5"}, environ={}).max_retry_time
            23.0
        """
        values: dict = {}
        for name, default in _MLFLOW_DEFAULTS.items():
            text = option(options, name)
            source = "option"
            if text is None:
                text = option({}, name, environ, _MLFLOW_ENV[name])
                source = "environment variable" if text is not None else source
            shown = name if source == "option" else _MLFLOW_ENV[name]
            kind = int if name == "maxRetries" else float
            minimum = 0.001 if name == "requestTimeout" else 0
            values[name] = default if text is None else _number(shown, text, kind, minimum, source)
        policy = cls(values["maxRetries"], values["backoffFactor"], values["backoffJitter"], values["requestTimeout"])
        text = option(options, "maxRetryTime")
        if text is not None:
            bound = _number("maxRetryTime", text, float, 0.001, "option")
        else:
            bound = min(3600.0, sum(policy.backoff(n) + policy.backoff_jitter for n in range(1, policy.max_retries + 1))
                        + (policy.max_retries + 1) * policy.timeout)
        return cls(policy.max_retries, policy.backoff_factor, policy.backoff_jitter, policy.timeout, float(bound))

    def backoff(self, attempt: int) -> float:
        """The exponential part of the wait after failed attempt ``attempt`` (from 1), no jitter."""
        return float(min(MAX_BACKOFF, self.backoff_factor * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Credential:
    """How requests authenticate, and where that came from (never shown: the secret values).

    ``kind`` is ``none``, ``basic`` (``username``/``secret`` = password), ``bearer`` (``secret``
    = token) or ``oauth-m2m`` (``username`` = client id, ``secret`` = client secret, through
    databricks-sdk). ``source`` names where it came from, e.g.
    ``"MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"``.

    Example::

        >>> Credential("bearer", "option 'token'", secret="dapi-123")
        Credential(kind='bearer', source="option 'token'")
    """

    kind: str = "none"
    source: str = "none"
    username: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r}, source={self.source!r})"

    def __str__(self) -> str:
        return repr(self)


@dataclass(frozen=True)
class Connection:
    """Everything an executor needs to talk to the server; resolved on the driver, picklable.

    ``base_url`` never holds user info; ``api_root`` is ``base_url`` + ``/api/2.0/mlflow``.
    ``verify`` is ``True``, ``False`` (``MLFLOW_TRACKING_INSECURE_TLS``) or a CA bundle path.

    Example::

        >>> Connection("http://127.0.0.1:5000", Credential())
        Connection('http://127.0.0.1:5000', auth=none from none)
    """

    base_url: str
    credential: Credential = field(default_factory=Credential, repr=False)
    databricks: bool = False
    verify: bool | str = True
    client_cert: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    #: whether metric histories may be read many runs at a time (``get-history-bulk``, open source only)
    bulk_history: bool = True

    def __repr__(self) -> str:
        return f"Connection({self.base_url!r}, auth={self.credential.kind} from {self.credential.source})"

    def __str__(self) -> str:
        return repr(self)

    @property
    def api_root(self) -> str:
        return f"{self.base_url.rstrip('/')}/api/2.0/mlflow"

    @property
    def experiments_page_size(self) -> int:
        """``experiments/search``'s largest page: 50,000 on open-source servers, 3,000 on Databricks."""
        return 3_000 if self.databricks else 50_000


RUNS_PAGE_SIZE = 50_000  # runs/search's largest page (open source and Databricks)
HISTORY_PAGE_SIZE = 25_000  # metrics/get-history's page (Databricks' maximum)
