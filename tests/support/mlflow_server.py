"""A real ``mlflow server`` on loopback, for the REST store's tests and benchmark.

:func:`running_mlflow_server` starts ``mlflow server`` on a free loopback port over a SQLite
backend store, waits until it answers, and stops it (the whole process group) on exit. The
session-scoped fixtures log the reference content (:func:`support.stores.log_reference_data`)
through the server with the real mlflow client:

- ``mlflow_server``: ``(url, backend_uri)`` of a plain server holding the reference data.
- ``auth_server``: a server running MLflow's ``basic-auth`` app, with its admin's credentials.

Example::

    >>> with running_mlflow_server("sqlite:////tmp/x/mlflow.db", "/tmp/x") as url:
    ...     requests.get(f"{url}/health").text
    'OK'
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from support.ports import free_port
from support.stores import environ

__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USER",
    "auth_server",
    "free_port",
    "mlflow_server",
    "running_mlflow_server",
]

ADMIN_USER = "admin"
ADMIN_PASSWORD = "adm1n-Pa55word-for-tests"  # the basic-auth app's admin, set at first start


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, folder: str, app_name: str | None = None, env: dict | None = None,
                          workers: int | None = 1, timeout: float = 120.0, extra_args: tuple[str, ...] = ()):
    """Run ``mlflow server`` over ``backend_uri`` on a random loopback port; yield its URL.

    ``extra_args``: more command-line arguments (for example ``("--no-serve-artifacts",)``).
    """
    import requests

    port = free_port()
    artifacts = os.path.join(folder, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", backend_uri, "--artifacts-destination", artifacts,
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    if app_name:
        command += ["--app-name", app_name]
    command += list(extra_args)
    log_path = os.path.join(folder, f"server-{port}.log")
    environ = {**os.environ, **(env or {})}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        environ.pop(name, None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=environ,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                with open(log_path, encoding="utf-8", errors="replace") as log:
                    raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{log.read()[-4000:]}")
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer on {url} within {timeout:.0f} s (log: {log_path})")
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """``(url, backend_uri)``: a plain ``mlflow server`` holding the reference data, logged through it."""
    from support.stores import log_reference_data

    folder = tmp_path_factory.mktemp("mlflow-server")
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    with running_mlflow_server(backend, str(folder)) as url:
        log_reference_data(url)
        yield url, backend


def write_auth_config(folder: str) -> str:
    """A basic-auth config: its own user database in ``folder``, no permission by default."""
    path = os.path.join(folder, "basic_auth.ini")
    with open(path, "w", encoding="utf-8") as config:
        config.write(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{os.path.join(folder, 'basic_auth.db')}\n"
            f"admin_username = {ADMIN_USER}\n"
            f"admin_password = {ADMIN_PASSWORD}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
    return path


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    """``(url, backend_uri)``: ``mlflow server --app-name basic-auth`` holding the reference data.

    The admin is :data:`ADMIN_USER` / :data:`ADMIN_PASSWORD`; users other than the admin have no
    permission on any experiment unless granted.
    """
    from support.stores import log_reference_data

    folder = tmp_path_factory.mktemp("mlflow-auth-server")
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": write_auth_config(str(folder)),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-for-tests",
    }
    with running_mlflow_server(backend, str(folder), app_name="basic-auth", env=env) as url:
        with environ(MLFLOW_TRACKING_USERNAME=ADMIN_USER, MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD):
            log_reference_data(url)
        yield url, backend
