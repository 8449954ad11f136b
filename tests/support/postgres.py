"""A real PostgreSQL server on loopback for the tests, started from the machine's binaries.

``.ci/setup`` installs Debian's PostgreSQL where it is missing. The server runs as the
``postgres`` system user when the tests run as root (``initdb`` refuses root), in a temporary
data folder, on a free loopback port, and is stopped when the test session ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time

from support.ports import free_port, hand_to_service_user


def postgres_bin() -> str | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or ``None`` if PostgreSQL is not installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if os.path.exists(os.path.join(folder, "initdb")):
            return folder
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


@contextlib.contextmanager
def running_postgres(folder: str):
    """Start PostgreSQL with its data in ``folder``; yield ``(host, port, user, password)``.

    A ``folder`` that already holds a server's data (from an earlier start) is started again
    as it is, on a new port: a benchmark store kept between runs."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (bash .ci/setup installs it)")
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    data = os.path.join(folder, "data")
    os.makedirs(folder, exist_ok=True)
    password_file = os.path.join(folder, "password")
    password = "pe-test-secret"
    with open(password_file, "w") as handle:
        handle.write(password + "\n")
    if as_root:
        hand_to_service_user("postgres", folder, password_file)
    if not os.path.exists(os.path.join(data, "PG_VERSION")):
        subprocess.run(
            [*run_as, os.path.join(binaries, "initdb"), "-D", data, "-U", "mlflow", "--auth=md5",
             f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True, text=True,
        )
    port = free_port()
    log = os.path.join(folder, "server.log")
    subprocess.run(
        [*run_as, os.path.join(binaries, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60",
         "-o", f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off",
         "start"],
        check=True, capture_output=True, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield "127.0.0.1", port, "mlflow", password
    finally:
        subprocess.run(
            [*run_as, os.path.join(binaries, "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
            capture_output=True, text=True,
        )


def create_database(host: str, port: int, user: str, password: str, name: str) -> str:
    """Create database ``name``; return its SQLAlchemy URI for mlflow (psycopg 3 driver)."""
    import psycopg

    with psycopg.connect(host=host, port=port, user=user, password=password, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://{user}:{password}@{host}:{port}/{name}"
