"""The ``artifacts`` table over a tracking server: runs whose ``artifact_uri`` is ``mlflow-artifacts:/``.

A server started with ``--serve-artifacts`` (the default) proxies its artifact store: a run's
``artifact_uri`` reads ``mlflow-artifacts:/<experiment>/<run>/artifacts`` and the files are
listed with ``GET /api/2.0/mlflow-artifacts/artifacts?path=<path>`` (one folder per request,
entries named relative to it, as ``MlflowClient.list_artifacts`` walks them) and downloaded with
``GET /api/2.0/mlflow-artifacts/artifacts/<path>``. Requests go through the REST client
(credentials, retries, redaction) of the store. Runs whose artifacts live elsewhere (a path, an
object store) are listed as the direct stores list them (:mod:`..artifacts`).

Example::

    >>> artifacts_api_path("mlflow-artifacts:/1/abc/artifacts")
    '1/abc/artifacts'
    >>> file_entries({"files": [{"path": "a.txt", "is_dir": False, "file_size": "3"}]}, "sub")
    [('sub/a.txt', False, 3)]
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from urllib.parse import quote, unquote, urlsplit

import pyarrow as pa

from ...errors import MalformedRecordError, StoreConnectionError, StoreNotFoundError
from ...redact import hide_uri
from ..artifacts import read_artifacts, record_problem
from ..base import Partition
from ..problems import Problems

SCHEME = "mlflow-artifacts"
API = "mlflow-artifacts"


def is_proxied(uri: str | None) -> bool:
    """Whether ``uri`` is served by a tracking server's artifacts API.

    Example::

        >>> is_proxied("mlflow-artifacts:/1/r/artifacts"), is_proxied("/tmp/mlruns/1/r/artifacts")
        (True, False)
    """
    return bool(uri) and urlsplit(uri).scheme.lower() == SCHEME


def artifacts_api_path(uri: str) -> str:
    """The path the artifacts API knows a ``mlflow-artifacts:`` URI by (relative, ``/``-separated).

    Example::

        >>> artifacts_api_path("mlflow-artifacts://host:5000/0/r/artifacts/")
        '0/r/artifacts'
    """
    return unquote(urlsplit(uri).path).strip("/")


def file_entries(answer: dict, folder: str) -> list[tuple[str, bool, int | None]]:
    """``(path, is_dir, file_size)`` of one listing answer, paths joined to ``folder`` (the path
    below the run's root that was listed, ``""`` for the root); folders have no size.

    Names that would leave the folder (``..``, absolute, with ``/``) are malformed answers.

    Example::

        >>> file_entries({"files": [{"path": "d", "is_dir": True}]}, "")
        [('d', True, None)]
        >>> file_entries({}, "")
        []
    """
    files = answer.get("files", [])
    if not isinstance(files, list):
        raise MalformedRecordError(f"artifacts listing of {folder or '.'!r}: expected a list in 'files', got {type(files).__name__}")
    found = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise MalformedRecordError(f"artifacts listing of {folder or '.'!r}: an entry without a path: {str(item)[:200]!r}")
        name = item["path"]
        if not name or name in (".", "..") or "/" in name.strip("/") or name.startswith("/"):
            raise MalformedRecordError(f"artifacts listing of {folder or '.'!r}: unsafe entry name {name!r}")
        is_dir = bool(item.get("is_dir", False))
        size = None
        if not is_dir:
            try:
                size = int(item["file_size"]) if item.get("file_size") is not None else None
            except (TypeError, ValueError):
                raise MalformedRecordError(f"artifacts listing of {folder or '.'!r}: {name!r} has file_size "
                                           f"{item.get('file_size')!r}, expected an integer") from None
        found.append((posixpath.join(folder, name) if folder else name, is_dir, size))
    return found


def list_proxied_run(client, selection, run_id: str, uri: str, problems: Problems) -> list[tuple]:
    """``(path, is_dir, size, content)`` of one run's artifacts through the artifacts API, sorted.

    As ``MlflowClient.list_artifacts`` walked recursively: folder by folder, ``artifactPath``
    narrowing where listing starts and ``maxDepth`` counting levels below it. Three nested
    folders listed alike (a server that answers the same listing whatever ``path`` it is asked
    for) are a malformed answer, not a tree without end.
    """
    root = artifacts_api_path(uri)
    where = f"run {run_id}: artifact root {hide_uri(uri)!r}"
    start = selection.artifact_path.strip("/") if selection.artifact_path else ""
    found = []
    pending = [(start, 1)]
    listings: dict[str, list] = {}  # folder -> its entries, relative to it
    while pending:
        folder, depth = pending.pop()
        listed = posixpath.join(root, folder) if folder else root
        try:
            entries = file_entries(client.call("GET", "artifacts", params={"path": listed}, api=API), folder)
            listings[folder] = sorted((posixpath.basename(p), d, n) for p, d, n in entries)
            parent = posixpath.dirname(folder) if folder != start else None
            grandparent = posixpath.dirname(parent) if parent not in (None, start) else None
            if grandparent is not None and listings[folder] == listings.get(parent) == listings.get(grandparent):
                raise MalformedRecordError(
                    f"GET {client.url('artifacts', API)}: the same listing for {folder!r}, {parent!r} and "
                    f"{grandparent or '.'!r}: the server does not seem to honour 'path' (the listing would nest without end)"
                )
        except (StoreNotFoundError, StoreConnectionError, MalformedRecordError) as error:
            # FAILFAST: the read fails naming the run and folder; PERMISSIVE: only this folder is skipped
            record_problem(problems, type(error)(f"{where}: folder {folder or '.'!r} cannot be listed: {error}"))
            continue
        for path, is_dir, size in entries:
            found.append((path, is_dir, size))
            if is_dir and (selection.max_depth is None or depth < selection.max_depth):
                pending.append((path, depth + 1))
    rows = []
    bound = selection.content_max_bytes
    for path, is_dir, size in sorted(found):
        content = None
        if bound is not None and not is_dir and size is not None and size <= bound:
            try:
                content = client.call("GET", "artifacts/" + quote(posixpath.join(root, path)), api=API, raw=True)
            except (StoreNotFoundError, StoreConnectionError) as error:
                record_problem(problems, StoreConnectionError(f"run {run_id}: artifact {path!r} cannot be read ({error})"))
                continue
        rows.append((path, is_dir, size, content))
    return rows


def read_artifacts_rest(client, partition: Partition) -> Iterator[pa.RecordBatch]:
    """List the artifacts of one partition's runs (executor side): ``mlflow-artifacts:/`` roots
    through the server, any other root where it points (:mod:`..artifacts`), each remote call
    there within the store's ``requestTimeout``."""

    def through_the_server(selection, run_id, uri, problems):
        return list_proxied_run(client, selection, run_id, uri, problems) if is_proxied(uri) else None

    return read_artifacts(partition, partition.work.items, through_the_server, timeout=client.connection.retry.timeout)
