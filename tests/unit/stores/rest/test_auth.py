"""Where a REST read's credentials come from: MLflow's and Databricks' rules, options first."""

from __future__ import annotations

import pickle

import pytest

from pyspark_experiments.errors import ConfigurationError, MissingDependencyError
from pyspark_experiments.stores.rest.auth import resolve_connection
from pyspark_experiments.uri import resolve_tracking_uri

SECRET = "s3cret-value-42"


def connect(uri: str, options=None, **environ):
    return resolve_connection(resolve_tracking_uri(uri, environ={}), options or {}, environ=environ)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_username_and_password_win_over_token():
    c = connect("http://h:5000", MLFLOW_TRACKING_USERNAME="u", MLFLOW_TRACKING_PASSWORD=SECRET, MLFLOW_TRACKING_TOKEN="t0k")
    assert (c.credential.kind, c.credential.username, c.credential.secret) == ("basic", "u", SECRET)
    assert c.credential.source == "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"


def test_token_alone_is_bearer_and_username_alone_is_not_enough():
    c = connect("http://h:5000", MLFLOW_TRACKING_USERNAME="u", MLFLOW_TRACKING_TOKEN="t0ken")
    assert (c.credential.kind, c.credential.secret, c.credential.source) == ("bearer", "t0ken", "MLFLOW_TRACKING_TOKEN")


def test_credentials_file_fills_in_per_field(tmp_path):
    write(tmp_path / ".mlflow" / "credentials", f"[mlflow]\nmlflow_tracking_username = fileuser\nmlflow_tracking_password = {SECRET}\n")
    c = connect("https://h", HOME=str(tmp_path))
    assert (c.credential.username, c.credential.secret) == ("fileuser", SECRET)
    c = connect("https://h", HOME=str(tmp_path), MLFLOW_TRACKING_USERNAME="envuser")
    assert (c.credential.username, c.credential.source) == ("envuser", "MLFLOW_TRACKING_USERNAME/~/.mlflow/credentials password")


def test_options_override_every_source(tmp_path):
    write(tmp_path / ".mlflow" / "credentials", "[mlflow]\nmlflow_tracking_username = a\nmlflow_tracking_password = b\n")
    c = connect("http://h", {"token": "opt-token"}, HOME=str(tmp_path), MLFLOW_TRACKING_USERNAME="x", MLFLOW_TRACKING_PASSWORD="y")
    assert (c.credential.kind, c.credential.secret, c.credential.source) == ("bearer", "opt-token", "option 'token'")
    with pytest.raises(ConfigurationError, match="together"):
        connect("http://h", {"username": "only"})
    with pytest.raises(ConfigurationError, match="databricks"):
        connect("http://h", {"clientSecret": "x"})


def test_user_info_in_the_url_is_taken_out_of_the_url():
    c = connect(f"https://bob:{SECRET}@mlflow.example.com:8443/prefix/")
    assert c.base_url == "https://mlflow.example.com:8443/prefix"
    assert (c.credential.kind, c.credential.username, c.credential.secret) == ("basic", "bob", SECRET)
    assert c.api_root == "https://mlflow.example.com:8443/prefix/api/2.0/mlflow"


def test_no_secret_in_repr_str_or_pickled_reprs():
    c = connect("http://h", MLFLOW_TRACKING_USERNAME="u", MLFLOW_TRACKING_PASSWORD=SECRET)
    for text in (repr(c), str(c), repr(c.credential), str(c.credential), repr(pickle.loads(pickle.dumps(c)))):
        assert SECRET not in text
    assert pickle.loads(pickle.dumps(c)).credential.secret == SECRET  # the executors get it


def test_tls_settings(tmp_path):
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    assert connect("https://h", MLFLOW_TRACKING_INSECURE_TLS="true").verify is False
    assert connect("https://h", MLFLOW_TRACKING_SERVER_CERT_PATH=str(cert)).verify == str(cert)
    assert connect("https://h", {"clientCertPath": str(cert)}).client_cert == str(cert)
    with pytest.raises(ConfigurationError, match="cannot both be set"):
        connect("https://h", MLFLOW_TRACKING_INSECURE_TLS="true", MLFLOW_TRACKING_SERVER_CERT_PATH=str(cert))
    with pytest.raises(ConfigurationError, match="no file"):
        connect("https://h", {"serverCertPath": str(tmp_path / "missing.pem")})


def test_databricks_environment_then_profile(tmp_path):
    write(tmp_path / ".databrickscfg", "[DEFAULT]\nhost = https://default.example.com\ntoken = dapi-default\n\n"
                                      "[dev]\nhost = dev.example.com\ntoken = dapi-dev\n\n[notoken]\nhost = https://x.example.com\n")
    c = connect("databricks", HOME=str(tmp_path), DATABRICKS_HOST="https://env.example.com/", DATABRICKS_TOKEN="dapi-env")
    assert (c.base_url, c.credential.secret, c.credential.source, c.databricks) == (
        "https://env.example.com", "dapi-env", "environment DATABRICKS_TOKEN", True)
    c = connect("databricks", HOME=str(tmp_path))
    assert (c.base_url, c.credential.secret) == ("https://default.example.com", "dapi-default")
    c = connect("databricks", HOME=str(tmp_path), DATABRICKS_CONFIG_PROFILE="dev")
    assert (c.base_url, c.credential.secret) == ("https://dev.example.com", "dapi-dev")
    # a profile in the URI wins over the environment's host and token
    c = connect("databricks://dev", HOME=str(tmp_path), DATABRICKS_HOST="https://env.example.com", DATABRICKS_TOKEN="dapi-env")
    assert (c.base_url, c.credential.secret) == ("https://dev.example.com", "dapi-dev")
    assert "'dev' (named in the tracking URI)" in c.credential.source
    # no inherited [DEFAULT] token
    with pytest.raises(ConfigurationError, match="needs 'host' and 'token'"):
        connect("databricks://notoken", HOME=str(tmp_path))
    with pytest.raises(ConfigurationError, match="does not exist"):
        connect("databricks://nope", HOME=str(tmp_path))
    with pytest.raises(ConfigurationError, match="DATABRICKS_HOST and DATABRICKS_TOKEN"):
        connect("databricks", HOME=str(tmp_path / "empty"))
    assert c.experiments_page_size == 3_000
    assert connect("http://h").experiments_page_size == 50_000


def test_databricks_options_override(tmp_path):
    c = connect("databricks", {"databricksHost": "opt.example.com", "token": "dapi-opt"},
                DATABRICKS_HOST="https://env.example.com", DATABRICKS_TOKEN="dapi-env")
    assert (c.base_url, c.credential.secret, c.credential.source) == ("https://opt.example.com", "dapi-opt", "option 'token'")
    with pytest.raises(ConfigurationError, match="do not apply to Databricks"):
        connect("databricks", {"username": "u", "password": "p"})


def test_oauth_m2m_needs_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sdk(name, *args, **kwargs):
        if name.startswith("databricks"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sdk)
    with pytest.raises(MissingDependencyError, match=r"pyspark-experiments\[databricks\]"):
        connect("databricks", DATABRICKS_HOST="https://h.example.com", DATABRICKS_CLIENT_ID="id", DATABRICKS_CLIENT_SECRET=SECRET)


def test_oauth_m2m_with_the_sdk():
    pytest.importorskip("databricks.sdk")
    c = connect("databricks", DATABRICKS_HOST="https://h.example.com", DATABRICKS_CLIENT_ID="cid", DATABRICKS_CLIENT_SECRET=SECRET)
    assert (c.credential.kind, c.credential.username, c.credential.secret) == ("oauth-m2m", "cid", SECRET)
    assert SECRET not in repr(c)


def test_databricks_uris_parse_as_rest():
    assert resolve_tracking_uri("databricks", environ={}).kind == "rest"
    assert resolve_tracking_uri("databricks://prof", environ={}).scheme == "databricks"
    with pytest.raises(ConfigurationError, match="secret-scope"):
        connect("databricks://scope:prefix")


@pytest.mark.parametrize("options, environ, named", [
    ({"insecureTls": "definitely"}, {}, "option 'insecureTls'"),
    ({"insecureTls": "yes"}, {}, "option 'insecureTls'"),
    ({}, {"MLFLOW_TRACKING_INSECURE_TLS": "definitely"}, "environment variable 'MLFLOW_TRACKING_INSECURE_TLS'"),
    ({"bulkMetricHistory": "sometimes"}, {}, "option 'bulkMetricHistory'"),
])
def test_a_boolean_option_or_variable_refuses_other_words(options, environ, named):
    with pytest.raises(ConfigurationError) as error:
        connect("https://h", options, **environ)
    assert named in str(error.value) and "expected true or false (or 1 or 0)" in str(error.value)


def test_boolean_options_take_mlflows_words_and_options_win_over_variables():
    for text, insecure in (("TRUE", True), ("1", True), ("False", False), ("0", False)):
        assert (connect("https://h", {"insecureTls": text}).verify is False) is insecure
        assert (connect("https://h", MLFLOW_TRACKING_INSECURE_TLS=text).verify is False) is insecure
    assert connect("https://h", {"insecureTls": "false"}, MLFLOW_TRACKING_INSECURE_TLS="true").verify is True
    assert connect("https://h", {"insecureTls": "false"}, MLFLOW_TRACKING_INSECURE_TLS="definitely").verify is True
    assert connect("https://h", {"bulkMetricHistory": "0"}).bulk_history is False
    assert connect("https://h").bulk_history is True


@pytest.mark.parametrize("given, expected", [
    ("https://adb-123.4.azuredatabricks.net/?o=123#job/1", "https://adb-123.4.azuredatabricks.net"),
    ("adb-123.4.azuredatabricks.net/?o=123", "https://adb-123.4.azuredatabricks.net"),
    ("https://dbc-a1b2.cloud.databricks.com/ml/experiments/5", "https://dbc-a1b2.cloud.databricks.com"),
    ("https://1234.5.gcp.databricks.com/#workspace/Users", "https://1234.5.gcp.databricks.com"),
    ("http://127.0.0.1:8080/?o=1#job/2", "http://127.0.0.1:8080"),
    ("http://[::1]:8080/browse?o=7", "http://[::1]:8080"),
    ("https://gateway.example.com/workspace/", "https://gateway.example.com/workspace"),  # a gateway's prefix
    ("https://dbc-a1b2.cloud.databricks.com/", "https://dbc-a1b2.cloud.databricks.com"),
])
def test_a_workspace_url_from_the_browser_is_reduced_to_its_host(tmp_path, given, expected):
    assert connect("databricks", DATABRICKS_HOST=given, DATABRICKS_TOKEN="dapi-x").base_url == expected
    assert connect("databricks", {"databricksHost": given, "token": "dapi-x"}).base_url == expected
    write(tmp_path / ".databrickscfg", f"[DEFAULT]\nhost = {given}\ntoken = dapi-x\n")
    assert connect("databricks", HOME=str(tmp_path)).base_url == expected


def test_a_workspace_url_that_is_no_url_is_refused_with_the_expected_form():
    for given in ("ftp://adb-1.azuredatabricks.net", "https://", "https://h:port/", "https://u:p@h.example.com"):
        with pytest.raises(ConfigurationError, match="DATABRICKS_HOST: .*https://adb-123.4.azuredatabricks.net") as error:
            connect("databricks", DATABRICKS_HOST=given, DATABRICKS_TOKEN="dapi-x")
        assert ":p@" not in str(error.value)


@pytest.mark.parametrize("uri, options, environ, named", [
    ("http://h:5000", {"token": "tok-12€-x"}, {}, "the token from option 'token'"),
    ("http://h:5000", {}, {"MLFLOW_TRACKING_TOKEN": "tok-1234\n"}, "the token from MLFLOW_TRACKING_TOKEN"),
    ("databricks", {}, {"DATABRICKS_HOST": "https://h.example.com", "DATABRICKS_TOKEN": "dapi-漢字"},
     "the token from environment DATABRICKS_TOKEN"),
])
def test_a_token_http_cannot_carry_is_refused_naming_its_source_not_its_value(uri, options, environ, named):
    """Sent, a token beyond Latin-1 fails inside http.client, whose error holds the header."""
    with pytest.raises(ConfigurationError, match=f"^{named} cannot be sent over HTTP") as refused:
        connect(uri, options, **environ)
    token = (options or environ).get("token") or environ.get("MLFLOW_TRACKING_TOKEN") or environ["DATABRICKS_TOKEN"]
    assert token.strip() not in str(refused.value)


def test_oauth_client_credentials_http_cannot_carry_are_refused():
    pytest.importorskip("databricks.sdk")
    with pytest.raises(ConfigurationError, match="the client secret from environment DATABRICKS_CLIENT_ID/"):
        connect("databricks", DATABRICKS_HOST="https://h.example.com", DATABRICKS_CLIENT_ID="cid",
                DATABRICKS_CLIENT_SECRET="sécret-€")
