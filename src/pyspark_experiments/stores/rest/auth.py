"""Where a REST read's credentials come from, by MLflow's and Databricks' rules.

Tracking servers (``http://``, ``https://``), as MLflow's ``get_default_host_creds``:

1. options ``username`` + ``password`` (Basic) or ``token`` (Bearer): when any credential
   option is given, only options are used;
2. ``MLFLOW_TRACKING_USERNAME`` + ``MLFLOW_TRACKING_PASSWORD``, each from the environment else
   ``~/.mlflow/credentials`` (section ``[mlflow]``): Basic, winning when both are set;
3. ``MLFLOW_TRACKING_TOKEN``: Bearer;
4. user info in the URL (``http://user:pass@host``): Basic; else no credential.

TLS: ``MLFLOW_TRACKING_INSECURE_TLS`` / option ``insecureTls``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``
/ ``serverCertPath`` (not both), ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` / ``clientCertPath``.

Databricks (``databricks``, ``databricks://<profile>``): options ``databricksHost`` with
``token`` or ``clientId`` + ``clientSecret``; else, for ``databricks`` without a profile,
``DATABRICKS_HOST`` + ``DATABRICKS_TOKEN`` (or ``DATABRICKS_CLIENT_ID`` +
``DATABRICKS_CLIENT_SECRET``, OAuth machine-to-machine); else the profile of
``~/.databrickscfg`` (``DATABRICKS_CONFIG_FILE`` to move it) named by the URI, else by
``DATABRICKS_CONFIG_PROFILE``, else ``DEFAULT``. OAuth needs the ``databricks`` extra.

Example::

    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> connection = resolve_connection(resolve_tracking_uri("http://127.0.0.1:5000"), {},
    ...                                 environ={"MLFLOW_TRACKING_TOKEN": "t0ken"})
    >>> connection.credential
    Credential(kind='bearer', source='MLFLOW_TRACKING_TOKEN')
"""

from __future__ import annotations

import configparser
import logging
import os
from urllib.parse import unquote, urlsplit, urlunsplit

from ...errors import ConfigurationError, MissingDependencyError
from ...redact import hide
from .settings import (
    CREDENTIAL_OPTIONS,
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    Connection,
    Credential,
    RetryPolicy,
    boolean_option,
    option,
)

log = logging.getLogger("pyspark_experiments.rest")

DATABRICKS_EXTRA = "pip install 'pyspark-experiments[databricks]'"


def resolve_connection(uri, options: dict | None = None, environ: dict | None = None) -> Connection:
    """The connection (URL, credential, TLS, retry policy) a REST read of ``uri`` uses.

    Example::

        >>> from pyspark_experiments.uri import resolve_tracking_uri
        >>> resolve_connection(resolve_tracking_uri("https://u:pw@mlflow.example.com/"), {}, environ={})
        Connection('https://mlflow.example.com', auth=basic from user info in the tracking URI)
    """
    options = dict(options or {})
    environ = os.environ if environ is None else environ
    retry = RetryPolicy.from_options(options, environ)
    concurrency = option(options, "maxConcurrentRequests")
    if concurrency is None:
        max_concurrent = DEFAULT_MAX_CONCURRENT_REQUESTS
    else:
        try:
            max_concurrent = int(concurrency)
        except ValueError:
            max_concurrent = 0
        if max_concurrent <= 0:
            raise ConfigurationError(f"option 'maxConcurrentRequests': expected a positive integer, got {concurrency!r}")
    verify, client_cert = _tls(options, environ)
    if uri.scheme == "databricks":
        base_url, credential = _databricks(uri, options, environ)
        databricks = True
    else:
        base_url, credential = _tracking_server(uri, options, environ)
        databricks = False
    check_sendable(credential)
    bulk = boolean_option(options, "bulkMetricHistory", True)
    return Connection(base_url, credential, databricks, verify, client_cert, retry, max_concurrent,
                      bulk_history=bulk and not databricks)


def check_sendable(credential: Credential) -> None:
    """Refuse a token, or OAuth client credentials, that HTTP cannot carry (a header is Latin-1
    text on one line, and so is a Basic login as ``requests`` sends it), naming where they came
    from and never their value: sent, they would fail inside the HTTP stack with an error that
    holds them.

    Example::

        >>> check_sendable(Credential("bearer", "DATABRICKS_TOKEN", secret="dapi-12€"))
        Traceback (most recent call last):
        pyspark_experiments.errors.ConfigurationError: the token from DATABRICKS_TOKEN cannot be sent over HTTP: \
character 8 of 8 is not Latin-1; it is ASCII where issued: is it the token, whole and alone?
    """
    if credential.kind == "bearer":
        values = (("token", credential.secret),)
    elif credential.kind == "oauth-m2m":
        values = (("client id", credential.username), ("client secret", credential.secret))
    else:
        return
    for what, value in values:
        bad = next((i for i, c in enumerate(value or "") if c in "\r\n" or ord(c) > 0xFF), None)
        if bad is not None:
            why = "is a line break" if value[bad] in "\r\n" else "is not Latin-1"
            raise ConfigurationError(
                f"the {what} from {credential.source} cannot be sent over HTTP: character {bad + 1} of "
                f"{len(value)} {why}; it is ASCII where issued: is it the {what}, whole and alone?"
            )


def _tls(options: dict, environ) -> tuple[bool | str, str | None]:
    insecure = boolean_option(options, "insecureTls", False, environ, "MLFLOW_TRACKING_INSECURE_TLS")
    server_cert = option(options, "serverCertPath", environ, "MLFLOW_TRACKING_SERVER_CERT_PATH")
    client_cert = option(options, "clientCertPath", environ, "MLFLOW_TRACKING_CLIENT_CERT_PATH")
    if insecure and server_cert:
        raise ConfigurationError(
            "insecure TLS (option 'insecureTls' / MLFLOW_TRACKING_INSECURE_TLS) and a server certificate "
            "(option 'serverCertPath' / MLFLOW_TRACKING_SERVER_CERT_PATH) cannot both be set, as in MLflow"
        )
    for name, path in (("serverCertPath", server_cert), ("clientCertPath", client_cert)):
        if path and not os.path.isfile(path):
            raise ConfigurationError(f"option {name!r} (or its MLFLOW_TRACKING_* variable): no file at {path!r}")
    return (False if insecure else (server_cert or True)), client_cert


def _home(environ) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def _given_options(options: dict) -> set[str]:
    return {name for name in CREDENTIAL_OPTIONS if option(options, name) is not None}


def _tracking_server(uri, options: dict, environ) -> tuple[str, Credential]:
    parts = urlsplit(uri.location)
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    base_url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    given = _given_options(options)
    databricks_only = given & {"databricksHost", "clientId", "clientSecret"}
    if databricks_only:
        raise ConfigurationError(
            f"option(s) {', '.join(sorted(databricks_only))} apply to 'databricks' tracking URIs only, "
            f"not to {uri.display!r}; use 'username' + 'password' or 'token'"
        )
    if given:
        username, password, token = (option(options, n) for n in ("username", "password", "token"))
        if username and password:
            return base_url, Credential("basic", "options 'username'/'password'", username, password)
        if token:
            return base_url, Credential("bearer", "option 'token'", secret=token)
        raise ConfigurationError("options 'username' and 'password' must be given together (or use option 'token')")
    file_user, file_password = _mlflow_credentials_file(environ)
    username = environ.get("MLFLOW_TRACKING_USERNAME") or file_user
    password = environ.get("MLFLOW_TRACKING_PASSWORD") or file_password
    if username and password:
        sources = [
            "MLFLOW_TRACKING_USERNAME" if environ.get("MLFLOW_TRACKING_USERNAME") else "~/.mlflow/credentials username",
            "MLFLOW_TRACKING_PASSWORD" if environ.get("MLFLOW_TRACKING_PASSWORD") else "~/.mlflow/credentials password",
        ]
        return base_url, Credential("basic", "/".join(sources), username, password)
    if environ.get("MLFLOW_TRACKING_TOKEN"):
        return base_url, Credential("bearer", "MLFLOW_TRACKING_TOKEN", secret=environ["MLFLOW_TRACKING_TOKEN"])
    if parts.username is not None:
        return base_url, Credential("basic", "user info in the tracking URI", unquote(parts.username),
                                    unquote(parts.password or ""))
    return base_url, Credential()


def _mlflow_credentials_file(environ) -> tuple[str | None, str | None]:
    path = os.path.join(_home(environ), ".mlflow", "credentials")
    if not os.path.isfile(path):
        return None, None
    config = configparser.ConfigParser(interpolation=None)
    try:
        config.read(path, encoding="utf-8")
    except configparser.Error as error:
        raise ConfigurationError(f"{path}: not a valid INI file ({type(error).__name__})") from None
    if "mlflow" not in config:
        return None, None
    section = config["mlflow"]
    return section.get("mlflow_tracking_username"), section.get("mlflow_tracking_password")


#: Databricks' own domains: a workspace there serves its API at the root of its host.
DATABRICKS_DOMAINS = (".azuredatabricks.net", ".databricks.com", ".databricks.azure.cn", ".databricks.azure.us",
                      ".databricks.us", ".databricks.mil")


def workspace_url(host: str, source: str) -> str:
    """The API base of a Databricks workspace named by ``host`` (``source`` names where it came from).

    A workspace URL copied from the browser works: it is reduced to scheme, host and port when
    it carries a query or a fragment (``?o=123#job/1``: never part of an API base), or a path on
    one of Databricks' own domains (whose workspaces serve the API at the root). A path on any
    other host (a gateway in front of the workspace) is kept, as databricks-sdk keeps it. A
    missing scheme means ``https://``; user info is refused.

    Example::

        >>> workspace_url("https://adb-123.4.azuredatabricks.net/?o=123#job/1", "DATABRICKS_HOST")
        'https://adb-123.4.azuredatabricks.net'
        >>> workspace_url("dbc-a1.cloud.databricks.com/ml/experiments/5", "DATABRICKS_HOST")
        'https://dbc-a1.cloud.databricks.com'
        >>> workspace_url("https://gateway.example.com/workspace/", "DATABRICKS_HOST")
        'https://gateway.example.com/workspace'
    """
    text = host.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        parts.port  # raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{source}: expected a workspace URL such as https://adb-123.4.azuredatabricks.net, "
                                 f"got {hide(host)!r}")
    if parts.username is not None:
        raise ConfigurationError(f"{source}: the workspace URL must not hold credentials; expected the form "
                                 f"https://adb-123.4.azuredatabricks.net")
    origin = f"{parts.scheme.lower()}://{parts.netloc}"
    path = parts.path.rstrip("/")
    on_databricks = parts.hostname.lower().endswith(DATABRICKS_DOMAINS)
    if parts.query or parts.fragment or (path and on_databricks):
        log.info("%s: %r read as the workspace %s (a browser URL's path, query and fragment are not part of it)",
                 source, hide(host), origin)
        return origin
    return origin + path


def _databricks_credential(token, client_id, client_secret, source: str, names: tuple[str, str, str]) -> Credential | None:
    if token:
        return Credential("bearer", f"{source} {names[0]}", secret=token)
    if client_id and client_secret:
        _require_sdk()
        return Credential("oauth-m2m", f"{source} {names[1]}/{names[2]}", client_id, client_secret)
    return None


def _require_sdk() -> None:
    try:
        import databricks.sdk  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"Databricks OAuth machine-to-machine credentials (client id and secret) need databricks-sdk: {DATABRICKS_EXTRA}"
        ) from None


def _databricks(uri, options: dict, environ) -> tuple[str, Credential]:
    profile_in_uri = _uri_profile(uri.location)
    given = _given_options(options)
    if given & {"username", "password"}:
        raise ConfigurationError("options 'username'/'password' do not apply to Databricks; use 'token' or 'clientId' + 'clientSecret'")
    if given:
        host = option(options, "databricksHost")
        credential = _databricks_credential(
            option(options, "token"), option(options, "clientId"), option(options, "clientSecret"),
            "option", ("'token'", "'clientId'", "'clientSecret'"),
        )
        if host is None or credential is None:
            profile_host, profile_credential, _ = _databricks_profile(profile_in_uri, environ, required=False)
            host = host or profile_host or environ.get("DATABRICKS_HOST")
            credential = credential or profile_credential
        if not host or credential is None:
            raise ConfigurationError(
                "Databricks options: give 'databricksHost' and 'token' (or 'clientId' + 'clientSecret'), or leave "
                "out what the environment or ~/.databrickscfg provides"
            )
        return workspace_url(host, "option 'databricksHost'"), credential
    if profile_in_uri is None and environ.get("DATABRICKS_HOST"):
        credential = _databricks_credential(
            environ.get("DATABRICKS_TOKEN"), environ.get("DATABRICKS_CLIENT_ID"), environ.get("DATABRICKS_CLIENT_SECRET"),
            "environment", ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"),
        )
        if credential is not None:
            return workspace_url(environ["DATABRICKS_HOST"], "DATABRICKS_HOST"), credential
    host, credential, where = _databricks_profile(profile_in_uri, environ, required=True)
    return workspace_url(host, where), credential


def _uri_profile(location: str) -> str | None:
    if "://" not in location:
        return None
    rest = location.split("://", 1)[1].strip("/")
    if not rest:
        return None
    if ":" in rest:
        raise ConfigurationError(
            f"tracking URI {location!r}: secret-scope URIs (databricks://scope:prefix) are not supported; "
            f"use databricks://<profile> or DATABRICKS_HOST + DATABRICKS_TOKEN"
        )
    return rest


def _databricks_profile(profile: str | None, environ, required: bool):
    path = environ.get("DATABRICKS_CONFIG_FILE") or os.path.join(_home(environ), ".databrickscfg")
    name = profile or environ.get("DATABRICKS_CONFIG_PROFILE") or "DEFAULT"
    if profile:
        how = "named in the tracking URI"
    else:
        how = "DATABRICKS_CONFIG_PROFILE" if environ.get("DATABRICKS_CONFIG_PROFILE") else "default"
    where = f"profile {name!r} ({how}) of {path}"
    hint = ("set DATABRICKS_HOST and DATABRICKS_TOKEN, or options 'databricksHost' and 'token', or write the profile "
            "into ~/.databrickscfg (host = ..., token = ...)")
    if not os.path.isfile(path):
        if required:
            raise ConfigurationError(f"Databricks tracking URI: no credentials: no {path} for {where}; {hint}")
        return None, None, where
    # No inherited [DEFAULT] keys: a profile's token never comes from another profile.
    config = configparser.ConfigParser(interpolation=None, default_section="\0none")
    try:
        config.read(path, encoding="utf-8")
    except configparser.Error as error:
        raise ConfigurationError(f"{path}: not a valid INI file ({type(error).__name__})") from None
    if name not in config:
        if required:
            names = ", ".join(repr(s) for s in config.sections()) or "none"
            raise ConfigurationError(f"Databricks tracking URI: {where} does not exist (profiles there: {names}); {hint}")
        return None, None, where
    section = config[name]
    credential = _databricks_credential(
        section.get("token"), section.get("client_id"), section.get("client_secret"),
        where, ("token", "client_id", "client_secret"),
    )
    if required and (not section.get("host") or credential is None):
        raise ConfigurationError(f"Databricks tracking URI: {where} needs 'host' and 'token' (or 'client_id' + 'client_secret')")
    return section.get("host"), credential, where
