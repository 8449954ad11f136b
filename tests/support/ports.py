"""For the servers tests start on loopback: free ports, and data folders a service user may use."""

from __future__ import annotations

import os
import shutil
import socket


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hand_to_service_user(user: str, folder: str, *paths: str) -> None:
    """Give ``folder`` and ``paths`` to ``user`` (a database server run as its own user when the
    tests run as root), and make every parent of ``folder`` traversable by it."""
    for path in (folder, *paths):
        shutil.chown(path, user, user)
    os.chmod(folder, 0o755)
    parent = os.path.dirname(os.path.abspath(folder))
    while parent not in ("/", ""):
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
        parent = os.path.dirname(parent)
