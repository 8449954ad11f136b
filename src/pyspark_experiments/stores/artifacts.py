"""The ``artifacts`` table: each run's artifact tree, listed where its ``artifact_uri`` points.

Store-independent: a backend plans the runs (experiment id, run id, artifact URI, on the driver)
with :func:`plan_artifacts`; an executor lists each run's tree through ``pyarrow.fs`` with
:func:`read_artifacts`. Nothing here opens the tracking store.

Where artifacts can live:

- local paths and ``file://`` URIs: ``pyarrow.fs.LocalFileSystem``;
- ``s3://``: ``pyarrow.fs.S3FileSystem``, configured as MLflow's own S3 client is: the endpoint
  from ``MLFLOW_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``),
  credentials and region from the AWS SDK's usual chain (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
  instance roles, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``);
- ``gs://``, ``abfs://`` / ``abfss://`` and ``hdfs://``: ``pyarrow.fs.FileSystem.from_uri``, where
  the installed pyarrow supports the scheme;
- ``mlflow-artifacts:/``: only through the tracking server (:mod:`.rest.artifacts`), an error here;
- anything else (``dbfs:/``, ``wasbs://``, ``ftp://`` ...): an
  :class:`~pyspark_experiments.errors.UnsupportedStoreError` naming the scheme.

Failures per run (an unsupported scheme, a missing artifact store, a folder that cannot be
listed) raise in FAILFAST and are skipped and reported in PERMISSIVE (:class:`Problems`).

Example::

    >>> from pyspark_experiments.stores.artifacts import resolve_artifact_uri
    >>> resolve_artifact_uri("file:///tmp/mlruns/1/abc/artifacts")[1]
    '/tmp/mlruns/1/abc/artifacts'
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator, Sequence
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from .. import tables
from ..errors import StoreConnectionError, StoreNotFoundError, UnsupportedStoreError
from ..redact import hide
from .base import Partition, Selection
from .planning import BATCH_ROWS, pack_partitions
from .problems import Problems

#: Runs per partition for ``artifacts`` (listing is I/O-bound: smaller chunks than other tables).
DEFAULT_RUNS_PER_PARTITION = 200
#: The default of ``maxContentBytes``: files above it get a null ``content``.
DEFAULT_CONTENT_MAX_BYTES = 16 * 1024 * 1024
# Bound on the content bytes of one Arrow batch, so that big files do not pile up in memory.
_BATCH_CONTENT_BYTES = 64 * 1024 * 1024

LOCAL_SCHEMES = ("", "file")
PYARROW_SCHEMES = ("s3", "s3a", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")


def plan_artifacts(selection: Selection, runs: Sequence[tuple[str, str, str | None]], cwd: str | None = None) -> list[Partition]:
    """Partitions of ``(experiment_id, run_id, artifact_uri)`` chunks, sorted by run id.

    A relative local artifact URI is made absolute here, on the driver (as MLflow resolves it
    against the working directory), so that executors list the same folder.

    Example::

        >>> s = Selection("artifacts", ("1",), rows_per_partition=2)
        >>> [len(p.work) for p in plan_artifacts(s, [("1", "a", "/x"), ("1", "b", "/y"), ("1", "c", "/z")])]
        [2, 1]
    """
    cwd = cwd or os.getcwd()
    units = []
    for experiment_id, run_id, uri in sorted(runs, key=lambda r: r[1]):
        if uri and not urlsplit(uri).scheme and not os.path.isabs(uri):
            uri = os.path.normpath(os.path.join(cwd, uri))
        units.append(((str(experiment_id), run_id, uri), 1))
    return pack_partitions(selection, units, DEFAULT_RUNS_PER_PARTITION)


def resolve_artifact_uri(uri: str):
    """``(filesystem, path)`` for an artifact URI, or an error naming what is not supported.

    Example::

        >>> fs, path = resolve_artifact_uri("/tmp/x")
        >>> type(fs).__name__, path
        ('LocalFileSystem', '/tmp/x')
    """
    from pyarrow import fs as pafs

    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES or len(scheme) == 1:  # a bare path (or a Windows drive letter)
        if scheme == "file":
            path = unquote(parts.path)
            if parts.netloc and parts.netloc != "localhost":
                path = f"//{parts.netloc}{path}"
        else:
            path = uri
        return pafs.LocalFileSystem(), path.rstrip("/") or "/"
    if scheme in ("s3", "s3a"):
        return _s3_filesystem(), f"{parts.netloc}{unquote(parts.path)}".rstrip("/")
    if scheme in PYARROW_SCHEMES:
        try:
            return pafs.FileSystem.from_uri(uri)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise UnsupportedStoreError(
                f"artifact URI {hide(uri)!r}: scheme {scheme!r} cannot be opened by the installed "
                f"pyarrow {pa.__version__} ({hide(str(error))})"
            ) from None
    if scheme == "mlflow-artifacts":
        raise UnsupportedStoreError(
            f"artifact URI {hide(uri)!r}: 'mlflow-artifacts' artifacts are served by a tracking "
            f"server's artifacts API: read this table through the server (trackingUri "
            f"'http(s)://<server>'), not its backend store directly"
        )
    raise UnsupportedStoreError(
        f"artifact URI {hide(uri)!r}: scheme {scheme!r} is not supported; supported: a path or "
        f"file://, s3://, gs://, abfs(s)://, hdfs:// (through pyarrow.fs)"
    )


def _s3_filesystem():
    from pyarrow import fs as pafs

    endpoint = (
        os.environ.get("MLFLOW_S3_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    options = {}
    if endpoint:
        parsed = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = parsed.netloc
        options["scheme"] = parsed.scheme or "https"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


def read_artifacts(partition: Partition, runs: Sequence[tuple[str, str, str | None]] | None = None,
                   list_elsewhere=None) -> Iterator[pa.RecordBatch]:
    """List the artifact trees of one partition's runs (executor side).

    ``runs``: the ``(experiment_id, run_id, artifact_uri)`` to list (default: the partition's
    work). ``list_elsewhere(selection, run_id, uri, problems)``: the entries of a run whose
    artifacts a store lists itself (a tracking server's ``mlflow-artifacts:/``), or ``None``
    to list them through ``pyarrow.fs`` as any other.

    Example::

        >>> parts = plan_artifacts(Selection("artifacts", ("1",)), [("1", "r1", "/tmp/mlruns/1/r1/artifacts")])
        >>> rows = sum(b.num_rows for b in read_artifacts(parts[0]))
    """
    selection = partition.selection
    listing: list = [None, None]  # the run being listed: a skip is reported as its (a reader may re-read it)
    problems = Problems(selection.mode, context=f"artifacts, partition {partition.index}", locate=lambda _: tuple(listing))
    builder = _Batches(selection.content_max_bytes is not None)
    filesystems: dict[tuple, object] = {}
    for experiment_id, run_id, uri in partition.work if runs is None else runs:
        listing[:] = [experiment_id, run_id]
        entries = list_elsewhere(selection, run_id, uri, problems) if list_elsewhere else None
        if entries is None:
            entries = _list_run(selection, run_id, uri, problems, filesystems)
        for path, is_dir, size, content in entries:
            builder.add(experiment_id, run_id, path, is_dir, size, content)
            if builder.full:
                yield builder.flush()
    if builder.rows:
        yield builder.flush()
    problems.report()


class _Batches:
    def __init__(self, with_content: bool) -> None:
        self.with_content = with_content
        self.schema = tables.artifacts_arrow_schema(with_content)
        self._reset()

    def _reset(self) -> None:
        self.columns = {name: [] for name in self.schema.names}
        self.rows = 0
        self.content_bytes = 0

    def add(self, experiment_id, run_id, path, is_dir, size, content) -> None:
        columns = self.columns
        columns["experiment_id"].append(experiment_id)
        columns["run_id"].append(run_id)
        columns["path"].append(path)
        columns["is_dir"].append(is_dir)
        columns["file_size"].append(size)
        if self.with_content:
            columns["content"].append(content)
            self.content_bytes += len(content or b"")
        self.rows += 1

    @property
    def full(self) -> bool:
        return self.rows >= BATCH_ROWS or self.content_bytes >= _BATCH_CONTENT_BYTES

    def flush(self) -> pa.RecordBatch:
        arrays = [pa.array(self.columns[f.name], type=f.type) for f in self.schema]
        self._reset()
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def record_problem(problems: Problems, error: Exception) -> None:
    """FAILFAST: raise ``error``; PERMISSIVE: record it as a skip (reported per partition).

    Example::

        >>> problems = Problems("PERMISSIVE")
        >>> record_problem(problems, StoreNotFoundError("run r: the store records no artifact_uri"))
        >>> problems.where
        ['run r: the store records no artifact_uri']
    """
    if problems.mode == "FAILFAST":
        raise error
    problems.skip(str(error))


def _list_run(selection: Selection, run_id: str, uri: str | None, problems: Problems, filesystems: dict):
    """``(path, is_dir, size, content)`` for one run's artifacts, sorted by path."""
    from pyarrow import fs as pafs

    if not uri:
        record_problem(problems, StoreNotFoundError(f"run {run_id}: the store records no artifact_uri"))
        return []
    try:
        filesystem, root = _open(uri, filesystems)
    except UnsupportedStoreError as error:
        record_problem(problems, UnsupportedStoreError(f"run {run_id}: {error}"))
        return []
    base = posixpath.join(root, selection.artifact_path.strip("/")) if selection.artifact_path else root
    where = f"run {run_id}: artifact root {hide(uri)!r}"
    try:
        info = filesystem.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            if not _exists(filesystem, _store_level(root)):
                raise StoreNotFoundError(
                    f"{where} does not exist, nor does the folder that holds the experiment's "
                    f"artifact locations ({hide(_store_level(root))!r}): is the artifact store "
                    f"mounted or reachable from this machine?"
                )
            return []  # the run has logged no artifacts (MLflow creates the folder on first use)
        if info.type != pafs.FileType.Directory:
            raise StoreNotFoundError(f"{where} is not a folder")
        if base != root:
            target = filesystem.get_file_info(base)
            if target.type != pafs.FileType.Directory:
                return []  # as mlflow's list_artifacts(run_id, path): nothing under a missing path
        entries = _walk(filesystem, base, selection.max_depth, where, problems)
    except (StoreNotFoundError, StoreConnectionError) as error:
        record_problem(problems, error)
        return []
    except OSError as error:
        record_problem(problems, StoreConnectionError(f"{where}: cannot be listed ({hide(str(error))})"))
        return []
    found = []
    prefix = root.rstrip("/") + "/"
    for entry in entries:
        if not entry.path.startswith(prefix):
            continue
        relative = entry.path[len(prefix):]
        is_dir = entry.type == pafs.FileType.Directory
        size = None if is_dir else entry.size
        content = None
        if selection.content_max_bytes is not None and not is_dir and size is not None and size <= selection.content_max_bytes:
            try:
                with filesystem.open_input_stream(entry.path) as stream:
                    content = stream.read()
            except OSError as error:
                record_problem(problems, StoreConnectionError(f"run {run_id}: artifact {relative!r} cannot be read ({hide(str(error))})"))
                continue
        found.append((relative, is_dir, size, content))
    found.sort(key=lambda item: item[0])
    return found


def _open(uri: str, filesystems: dict):
    """``(filesystem, path)`` for ``uri``, one filesystem per scheme and bucket or host."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES or len(scheme) == 1:
        key = ("",)
    else:
        key = (scheme, parts.netloc)
    if key not in filesystems:
        filesystems[key] = resolve_artifact_uri(uri)
        return filesystems[key]
    filesystem = filesystems[key][0]
    if key == ("",):
        return filesystem, resolve_artifact_uri(uri)[1]
    if scheme in ("abfs", "abfss"):
        container = parts.netloc.split("@", 1)[0]
        return filesystem, f"{container}{unquote(parts.path)}".rstrip("/")
    if scheme in ("hdfs", "viewfs"):
        return filesystem, unquote(parts.path).rstrip("/") or "/"
    return filesystem, f"{parts.netloc}{unquote(parts.path)}".rstrip("/")


def _store_level(root: str) -> str:
    """The folder that holds experiments' artifact locations: ``<here>/<experiment>/<run>/artifacts``."""
    path = root
    for _ in range(3):
        parent = posixpath.dirname(path)
        if parent in ("", path):
            break
        path = parent
    return path


def _exists(filesystem, path: str) -> bool:
    from pyarrow import fs as pafs

    if path in ("", "/"):
        return True
    try:
        return filesystem.get_file_info(path).type != pafs.FileType.NotFound
    except OSError:
        return False


def _walk(filesystem, base: str, max_depth: int | None, where: str, problems: Problems) -> list:
    """Every entry under ``base``, ``max_depth`` levels deep (``None``: all).

    One recursive listing where possible (a single paged request on object stores); when that
    fails, or a depth is set, folder by folder, so that PERMISSIVE skips only the folder that
    cannot be listed (and FAILFAST names it).
    """
    from pyarrow import fs as pafs

    if max_depth is None:
        try:
            return filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
        except OSError:
            pass  # find the folder that fails, below
    found = []
    pending = [(base, 1)]
    while pending:
        folder, depth = pending.pop()
        try:
            entries = filesystem.get_file_info(pafs.FileSelector(folder, recursive=False))
        except OSError as error:
            relative = folder[len(base):].lstrip("/") or "."
            record_problem(problems, StoreConnectionError(f"{where}: folder {relative!r} cannot be listed ({hide(str(error))})"))
            continue
        for entry in entries:
            found.append(entry)
            if entry.type == pafs.FileType.Directory and (max_depth is None or depth < max_depth):
                pending.append((entry.path, depth + 1))
    return found
