"""A real MariaDB server on loopback for the tests, started from Debian's binaries.

``.ci/setup`` installs Debian's ``mariadb-server`` where it is missing. The server runs as the
``mysql`` system user when the tests run as root, in a temporary data folder, on a free loopback
port, with grant tables (a user ``mlflow`` with a password, so a wrong password is refused for
real), and is stopped when the test session ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time

from support.ports import free_port, hand_to_service_user

PASSWORD = "pe-mysql-secret"


def mariadb_bin() -> tuple[str, str] | None:
    """``(mariadbd, mariadb-install-db)``, or ``None`` if MariaDB is not installed."""
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/libexec")
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return (server, install) if server and install else None


@contextlib.contextmanager
def running_mariadb(folder: str):
    """Start MariaDB with its data in ``folder``; yield ``(host, port, user, password)``."""
    import pymysql

    binaries = mariadb_bin()
    if binaries is None:
        raise RuntimeError("MariaDB is not installed (bash .ci/setup installs it)")
    server, install = binaries
    as_root = os.geteuid() == 0
    user = "mysql" if as_root else None
    data = os.path.join(folder, "data")
    os.makedirs(data, exist_ok=True)
    if as_root:
        hand_to_service_user("mysql", folder, data)
    subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *([f"--user={user}"] if user else [])],
        check=True, capture_output=True, text=True,
    )
    port = free_port()
    socket_path = os.path.join(folder, "mysqld.sock")
    log = open(os.path.join(folder, "server.log"), "w")
    process = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", "--bind-address=127.0.0.1", f"--port={port}",
         f"--socket={socket_path}", f"--pid-file={os.path.join(folder, 'mysqld.pid')}",
         "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=64M",
         "--character-set-server=utf8mb4", *([f"--user={user}"] if user else [])],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                root = pymysql.connect(unix_socket=socket_path, user="root", password="", autocommit=True)
                break
            except pymysql.err.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"MariaDB did not start; see {log.name}") from None
                time.sleep(0.2)
        with root.cursor() as cursor:
            cursor.execute("CREATE USER 'mlflow'@'127.0.0.1' IDENTIFIED BY %s", (PASSWORD,))
            cursor.execute("CREATE USER 'mlflow'@'localhost' IDENTIFIED BY %s", (PASSWORD,))
            cursor.execute("GRANT ALL ON *.* TO 'mlflow'@'127.0.0.1' WITH GRANT OPTION")
            cursor.execute("GRANT ALL ON *.* TO 'mlflow'@'localhost' WITH GRANT OPTION")
        root.close()
        yield "127.0.0.1", port, "mlflow", PASSWORD
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def create_database(host: str, port: int, user: str, password: str, name: str) -> str:
    """Create database ``name``; return its SQLAlchemy URI for mlflow (PyMySQL driver)."""
    import pymysql

    connection = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        connection.close()
    return f"mysql+pymysql://{user}:{password}@{host}:{port}/{name}"
