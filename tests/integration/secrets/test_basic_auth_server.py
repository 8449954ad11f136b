"""A real ``mlflow server --app-name basic-auth`` (slow tier: the server takes a while to start):
a user whose password is the random secret, set for real through the server's admin API, reads
with it from every source MLflow reads (options, ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``,
``~/.mlflow/credentials``, the URL's userinfo) and fails with it as the password of a user the
server does not know, without Spark and through it; no form of the secret shows in errors,
logs, reprs, ``explain()`` or Spark's log.
"""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings

from support.mlflow_server import ADMIN_PASSWORD, ADMIN_USER, running_mlflow_server, write_auth_config
from support.stores import environ

from .conftest import EXPERIMENT
from .shown import EVERY_SPECIAL, assert_hidden, log_everything, secrets
from .test_reads_through_spark import explained, failure
from .test_reads_without_spark import CREDENTIAL_VARIABLES, attempt

pytestmark = pytest.mark.slow

READER = "reader"
#: The basic-auth app refuses passwords shorter than 12 characters.
PASSWORDS = secrets(min_size=12)


@pytest.fixture(autouse=True)
def _no_credentials_around(monkeypatch, tmp_path):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """``(url, set_password)``: a basic-auth server holding experiment EXPERIMENT (one run, one
    point), readable by user READER, whose password ``set_password(secret)`` sets."""
    import requests
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("secret-auth-server")
    env = {"MLFLOW_AUTH_CONFIG_PATH": write_auth_config(str(folder)), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-for-tests"}
    with running_mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", str(folder), app_name="basic-auth", env=env) as url:
        admin = (ADMIN_USER, ADMIN_PASSWORD)
        with environ(MLFLOW_TRACKING_USERNAME=ADMIN_USER, MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD):
            client = MlflowClient(tracking_uri=url)
            experiment = client.create_experiment(EXPERIMENT)
            run = client.create_run(experiment)
            client.log_metric(run.info.run_id, "loss", 0.5, step=0)
            client.set_terminated(run.info.run_id)
        api = f"{url}/api/2.0/mlflow"
        assert requests.post(f"{api}/users/create", json={"username": READER, "password": "first-Passw0rd"},
                             auth=admin, timeout=30).ok
        granted = requests.post(f"{url}/api/3.0/mlflow/users/permissions/grant", auth=admin, timeout=30, json={
            "username": READER, "resource_type": "experiment", "resource_id": experiment, "permission": "READ"})
        assert granted.ok, granted.text

        def set_password(secret: str) -> None:
            answer = requests.patch(f"{api}/users/update-password", json={"username": READER, "password": secret},
                                    auth=admin, timeout=30)
            assert answer.ok, answer.text

        yield url, set_password


def _sources(url: str, secret: str, home: str):
    """(name, options, environment) of each way MLflow's client takes a login."""
    host = url.split("://", 1)[1]
    yield "options", {"trackingUri": url, "username": READER, "password": secret}, {}
    yield "MLFLOW_TRACKING_USERNAME/PASSWORD", {"trackingUri": url}, {"MLFLOW_TRACKING_USERNAME": READER,
                                                                      "MLFLOW_TRACKING_PASSWORD": secret}
    credentials = os.path.join(home, ".mlflow", "credentials")
    os.makedirs(os.path.dirname(credentials), exist_ok=True)
    with open(credentials, "w", encoding="utf-8") as handle:
        handle.write(f"[mlflow]\nmlflow_tracking_username = {READER}\nmlflow_tracking_password = {secret}\n")
    yield "~/.mlflow/credentials", {"trackingUri": url}, {}
    os.remove(credentials)
    yield "userinfo", {"trackingUri": f"http://{READER}:{quote(secret, safe='')}@{host}"}, {}


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=PASSWORDS)
@example(secret=EVERY_SPECIAL)
def test_basic_auth_passwords_never_shown(auth_server, caplog, secret):
    url, set_password = auth_server
    set_password(secret)
    log_everything(caplog)
    home = os.environ["HOME"]
    shown: list = []
    for name, options, variables in _sources(url, secret, home):
        with environ(**variables):
            rows = attempt({**options, "table": "metrics", "path": EXPERIMENT, "maxRetries": "0"}, shown, name)
            assert [r["value"] for r in rows or []] == [0.5], (name, shown[-1])
    for user in ("nobody", ADMIN_USER):  # the secret as the password of a user it is not
        wrong = {"trackingUri": url, "username": user, "password": secret, "table": "runs", "maxRetries": "0"}
        assert attempt(wrong, shown, f"{user}, wrong password") is None
    assert any("HTTP 401" in text for text in shown)
    assert_hidden({**{f"shown {i}": text for i, text in enumerate(shown)}, "log": caplog.text},
                  (READER, "nobody", ADMIN_USER), secret)


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=PASSWORDS)
@example(secret=EVERY_SPECIAL)
def test_basic_auth_passwords_never_shown_by_spark(spark, auth_server, caplog, capfd, secret):
    url, set_password = auth_server
    set_password(secret)
    log_everything(caplog)
    capfd.readouterr()

    def load(user: str):
        return (spark.read.format("experiments").option("trackingUri", url).option("username", user)
                .option("password", secret).option("maxRetries", "0").option("table", "metrics").load(EXPERIMENT))

    shown = {"wrong password": failure(load("nobody").collect)}
    df = load(READER)
    assert [row.value for row in df.collect()] == [0.5]
    explained(df, shown, "right password")
    output = capfd.readouterr()
    assert "HTTP 401" in shown["wrong password"]
    assert_hidden({**shown, "stdout": output.out, "stderr": output.err, "log": caplog.text}, (READER, "nobody"), secret)
