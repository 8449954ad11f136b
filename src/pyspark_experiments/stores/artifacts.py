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
- ``gs://``: ``pyarrow.fs.GcsFileSystem``, with the endpoint of ``STORAGE_EMULATOR_HOST`` when set
  (anonymous, as MLflow's Google Cloud Storage client), else Google's usual credentials;
- ``abfs://`` / ``abfss://`` and ``hdfs://``: ``pyarrow.fs.FileSystem.from_uri``, where
  the installed pyarrow supports the scheme;
- ``mlflow-artifacts:/``: only through the tracking server (:mod:`.rest.artifacts`), an error here;
- anything else (``dbfs:/``, ``wasbs://``, ``ftp://`` ...): an
  :class:`~pyspark_experiments.errors.UnsupportedStoreError` naming the scheme.

Failures per run (an unsupported scheme, a missing artifact store, a folder that cannot be
listed, a remote store that does not answer in time) raise in FAILFAST and are skipped and
reported in PERMISSIVE (:class:`Problems`).

Nothing outside a run's artifact root is listed or read: a local entry whose real path (links
resolved) leaves the root is reported instead, as are broken links and entries that are neither
files nor folders. Every remote call has a deadline (:func:`listing_timeout`): the filesystem's
own timeouts where it has them (S3's connect and request timeouts, GCS's retry time limit) and a
worker thread waited for at most that long behind them. URIs are shown without their userinfo
(:func:`~pyspark_experiments.redact.hide_uri`); an artifact URI carrying credentials (``s3://KEY:SECRET@bucket``) is not
opened: MLflow does not read credentials from it either.

Example::

    >>> from pyspark_experiments.stores.artifacts import resolve_artifact_uri
    >>> resolve_artifact_uri("file:///tmp/mlruns/1/abc/artifacts")[1]
    '/tmp/mlruns/1/abc/artifacts'
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
import stat
import threading
from collections.abc import Iterator, Sequence
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from .. import tables
from ..errors import ConfigurationError, StoreConnectionError, StoreNotFoundError, UnsupportedStoreError
from ..redact import OBJECT_STORE_SCHEMES, hide, hide_uri, split_userinfo
from .base import Partition, Selection
from .planning import BATCH_ROWS, pack_partitions
from .problems import Problems

#: Runs per partition for ``artifacts`` (listing is I/O-bound: smaller chunks than other tables).
DEFAULT_RUNS_PER_PARTITION = 200
#: The default of ``maxContentBytes``: files above it get a null ``content``.
DEFAULT_CONTENT_MAX_BYTES = 16 * 1024 * 1024
# Bound on the content bytes of one Arrow batch, so that big files do not pile up in memory.
_BATCH_CONTENT_BYTES = 64 * 1024 * 1024

#: Seconds one remote artifact call may take, unless ``MLFLOW_HTTP_REQUEST_TIMEOUT`` says otherwise.
DEFAULT_TIMEOUT_S = 120.0
TIMEOUT_VARIABLE = "MLFLOW_HTTP_REQUEST_TIMEOUT"

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
        if uri and not re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", uri) and not os.path.isabs(uri):
            uri = os.path.normpath(os.path.join(cwd, uri))
        units.append(((str(experiment_id), run_id, uri), 1))
    return pack_partitions(selection, units, DEFAULT_RUNS_PER_PARTITION)


def resolve_artifact_uri(uri: str, timeout: float = DEFAULT_TIMEOUT_S):
    """``(filesystem, path)`` for an artifact URI, or an error naming what is not supported.

    ``timeout``: seconds a remote filesystem waits for an answer (where it can be told).

    Example::

        >>> fs, path = resolve_artifact_uri("/tmp/x")
        >>> type(fs).__name__, path
        ('LocalFileSystem', '/tmp/x')
    """
    from pyarrow import fs as pafs

    parts = split_artifact_uri(uri)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES or len(scheme) == 1:  # a bare path (or a Windows drive letter)
        if scheme == "file":
            path = unquote(parts.path)
            if parts.netloc and parts.netloc != "localhost":
                path = f"//{parts.netloc}{path}"
        else:
            path = uri
        return pafs.LocalFileSystem(), path.rstrip("/") or "/"
    _, user, password, _ = split_userinfo(uri)
    if scheme in PYARROW_SCHEMES and (password is not None or (user is not None and scheme in OBJECT_STORE_SCHEMES)):
        raise UnsupportedStoreError(
            f"artifact URI {hide_uri(uri)!r} carries credentials: not opened (MLflow does not read "
            f"them from an artifact URI either); give them as the store's client expects (for S3: "
            f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile or an instance role)"
        )
    try:
        if scheme in ("s3", "s3a"):
            return _s3_filesystem(timeout), f"{parts.netloc}{unquote(parts.path)}".rstrip("/")
        if scheme in ("gs", "gcs"):
            return _gcs_filesystem(timeout), f"{parts.netloc}{unquote(parts.path)}".rstrip("/")
        if scheme in PYARROW_SCHEMES:
            return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise UnsupportedStoreError(
            f"artifact URI {hide_uri(uri)!r}: scheme {scheme!r} cannot be opened by the installed "
            f"pyarrow {pa.__version__} ({hide(str(error))})"
        ) from None
    if scheme == "mlflow-artifacts":
        raise UnsupportedStoreError(
            f"artifact URI {hide_uri(uri)!r}: 'mlflow-artifacts' artifacts are served by a tracking "
            f"server's artifacts API: read this table through the server (trackingUri "
            f"'http(s)://<server>'), not its backend store directly"
        )
    raise UnsupportedStoreError(
        f"artifact URI {hide_uri(uri)!r}: scheme {scheme!r} is not supported; supported: a path or "
        f"file://, s3://, gs://, abfs(s)://, hdfs:// (through pyarrow.fs)"
    )


def _s3_filesystem(timeout: float):
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
    return pafs.S3FileSystem(connect_timeout=min(timeout, 10.0), request_timeout=timeout, **options)


def _gcs_filesystem(timeout: float):
    from pyarrow import fs as pafs

    options = {}
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        parsed = urlsplit(emulator if "://" in emulator else f"http://{emulator}")
        options.update(anonymous=True, endpoint_override=parsed.netloc, scheme=parsed.scheme or "http")
    return pafs.GcsFileSystem(retry_time_limit=dt.timedelta(seconds=timeout), **options)


def read_artifacts(partition: Partition, runs: Sequence[tuple[str, str, str | None]] | None = None,
                   list_elsewhere=None, timeout: float | None = None) -> Iterator[pa.RecordBatch]:
    """List the artifact trees of one partition's runs (executor side).

    ``runs``: the ``(experiment_id, run_id, artifact_uri)`` to list (default: the partition's
    work). ``list_elsewhere(selection, run_id, uri, problems)``: the entries of a run whose
    artifacts a store lists itself (a tracking server's ``mlflow-artifacts:/``), or ``None``
    to list them through ``pyarrow.fs`` as any other. ``timeout``: seconds each remote call may
    take (default :func:`listing_timeout`).

    Example::

        >>> parts = plan_artifacts(Selection("artifacts", ("1",)), [("1", "r1", "/tmp/mlruns/1/r1/artifacts")])
        >>> rows = sum(b.num_rows for b in read_artifacts(parts[0]))
    """
    selection = partition.selection
    listing: list = [None, None]  # the run being listed: a skip is reported as its (a reader may re-read it)
    problems = Problems(selection.mode, context=f"artifacts, partition {partition.index}", locate=lambda _: tuple(listing))
    builder = _Batches(selection.content_max_bytes is not None)
    filesystems: dict[tuple, object] = {}
    timeout = listing_timeout() if timeout is None else timeout
    for experiment_id, run_id, uri in partition.work if runs is None else runs:
        listing[:] = [experiment_id, run_id]
        entries = list_elsewhere(selection, run_id, uri, problems) if list_elsewhere else None
        if entries is None:
            entries = _list_run(selection, run_id, uri, problems, filesystems, timeout)
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


def listing_timeout(environ=None) -> float:
    """Seconds one remote artifact call (a listing, a file read) may take: the environment's
    ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (as MLflow's requests), else :data:`DEFAULT_TIMEOUT_S`.

    Example::

        >>> listing_timeout({"MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}), listing_timeout({})
        (5.0, 120.0)
    """
    environ = os.environ if environ is None else environ
    value = environ.get(TIMEOUT_VARIABLE, "").strip()
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigurationError(f"{TIMEOUT_VARIABLE}={value!r}: expected a positive number of seconds")
    return seconds


class DeadlinePassed(Exception):
    """A remote artifact call gave no answer in time (its thread is left to finish alone)."""


def call_with_deadline(seconds: float, function, *args):
    """``function(*args)`` in a worker thread, waited for at most ``seconds``.

    pyarrow's filesystem calls block in C++ and some (GCS against a server that never answers)
    wait forever: the caller gets :class:`DeadlinePassed` and the daemon thread finishes, or
    not, on its own.

    Example::

        >>> call_with_deadline(5.0, sum, [1, 2])
        3
    """
    outcome: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # handed to the caller
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="artifact-call", daemon=True).start()
    if not done.wait(seconds):
        raise DeadlinePassed()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _list_run(selection: Selection, run_id: str, uri: str | None, problems: Problems, filesystems: dict, timeout: float):
    """``(path, is_dir, size, content)`` for one run's artifacts, sorted by path."""
    from pyarrow import fs as pafs

    if not uri:
        record_problem(problems, StoreNotFoundError(f"run {run_id}: the store records no artifact_uri"))
        return []
    where = f"run {run_id}: artifact root {hide_uri(uri)!r}"
    try:
        filesystem, root = _open(uri, filesystems, timeout)
    except UnsupportedStoreError as error:
        record_problem(problems, UnsupportedStoreError(f"run {run_id}: {error}"))
        return []
    base = posixpath.join(root, selection.artifact_path.strip("/")) if selection.artifact_path else root
    if isinstance(filesystem, pafs.LocalFileSystem):
        return _list_local(selection, root, base, where, problems)
    remote = _Remote(filesystem, timeout)
    try:
        info = remote.info(root)
        if info.type == pafs.FileType.NotFound:
            if not _exists(remote, _store_level(root)):
                raise StoreNotFoundError(
                    f"{where} does not exist, nor does the folder that holds the experiment's "
                    f"artifact locations ({hide_uri(_store_level(root))!r}): is the artifact store "
                    f"mounted or reachable from this machine?"
                )
            return []  # the run has logged no artifacts (MLflow creates the folder on first use)
        if info.type != pafs.FileType.Directory:
            raise StoreNotFoundError(f"{where} is not a folder")
        if base != root:
            target = remote.info(base)
            if target.type != pafs.FileType.Directory:
                return []  # as mlflow's list_artifacts(run_id, path): nothing under a missing path
        entries = _walk(remote, base, selection.max_depth, where, problems)
    except (StoreNotFoundError, StoreConnectionError) as error:
        record_problem(problems, error)
        return []
    except DeadlinePassed:
        record_problem(problems, StoreConnectionError(_no_answer(where, timeout)))
        return []
    except (OSError, pa.ArrowException, ValueError) as error:
        record_problem(problems, StoreConnectionError(f"{where}: cannot be listed ({hide(str(error))})"))
        return []
    found = []
    prefix = root.rstrip("/") + "/"
    bound = selection.content_max_bytes
    for entry in entries:
        if not entry.path.startswith(prefix):
            continue
        relative = entry.path[len(prefix):]
        is_dir = entry.type == pafs.FileType.Directory
        size = None if is_dir else entry.size
        content = None
        if bound is not None and entry.type == pafs.FileType.File and size is not None and size <= bound:
            try:
                content = remote.read(entry.path, bound)
            except DeadlinePassed:
                record_problem(problems, StoreConnectionError(_no_answer(f"{where}: artifact {relative!r}", timeout)))
                continue
            except (OSError, pa.ArrowException, ValueError) as error:
                record_problem(problems, StoreConnectionError(f"{where}: artifact {relative!r} cannot be read ({hide(str(error))})"))
                continue
        found.append((relative, is_dir, size, content))
    found.sort(key=lambda item: item[0])
    return found


def _no_answer(what: str, timeout: float) -> str:
    return (f"{what}: no answer within {timeout:g} s (the request timeout: option 'requestTimeout' of a "
            f"tracking server, else {TIMEOUT_VARIABLE}; are the artifact store's endpoint and credentials right?)")


class _Remote:
    """A remote filesystem's calls, each within the deadline."""

    def __init__(self, filesystem, timeout: float) -> None:
        self.filesystem = filesystem
        self.timeout = timeout

    def info(self, what):
        return call_with_deadline(self.timeout, self.filesystem.get_file_info, what)

    def read(self, path: str, bound: int) -> bytes | None:
        def read() -> bytes:
            with self.filesystem.open_input_stream(path) as stream:
                return stream.read(bound + 1)

        content = call_with_deadline(self.timeout, read)
        return None if len(content) > bound else content  # grew past the bound since it was listed


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _list_local(selection: Selection, root: str, base: str, where: str, problems: Problems) -> list:
    """A local artifact tree, never outside the root: every entry's real path (links resolved)
    must lie under the root's real path. A link leading out is reported (PERMISSIVE: skipped,
    FAILFAST: an error), neither listed nor read; so are broken links and entries that are
    neither files nor folders (a FIFO would block a read). Links inside the root are followed,
    as MLflow lists them, but never into a folder that holds them (a loop)."""
    if not os.path.lexists(root):
        if not os.path.exists(_store_level(root)):
            record_problem(problems, StoreNotFoundError(
                f"{where} does not exist, nor does the folder that holds the experiment's artifact "
                f"locations ({hide_uri(_store_level(root))!r}): is the artifact store mounted or "
                f"reachable from this machine?"))
        return []  # the run has logged no artifacts (MLflow creates the folder on first use)
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        record_problem(problems, StoreNotFoundError(f"{where} is not a folder"))
        return []
    start = base[len(root):].strip("/") if base != root else ""
    real_base = os.path.realpath(base)
    if not _inside(real_base, real_root):
        record_problem(problems, StoreNotFoundError(f"{where}: {start!r} is a link leading outside the artifact root: not listed"))
        return []
    if not os.path.isdir(real_base):
        return []  # as mlflow's list_artifacts(run_id, path): nothing under a missing path
    bound = selection.content_max_bytes
    found = []
    pending = [(start, real_base, 1, frozenset({real_base}))]
    while pending:
        folder, real_folder, depth, ancestors = pending.pop()
        try:
            with os.scandir(real_folder) as listing:
                names = sorted(entry.name for entry in listing)
        except OSError as error:
            record_problem(problems, StoreConnectionError(f"{where}: folder {folder or '.'!r} cannot be listed ({hide(str(error))})"))
            continue
        for name in names:
            relative = posixpath.join(folder, name) if folder else name
            path = os.path.join(real_folder, name)
            real = os.path.realpath(path)
            if not _inside(real, real_root):
                record_problem(problems, StoreNotFoundError(
                    f"{where}: {relative!r} is a link leading outside the artifact root: not listed, not read"))
                continue
            try:
                status = os.stat(real)
            except OSError as error:
                broken = os.path.islink(path) and not os.path.exists(real)
                reason = "is a link to nothing (a broken link)" if broken else f"cannot be read ({hide(str(error))})"
                record_problem(problems, StoreNotFoundError(f"{where}: {relative!r} {reason}: not listed"))
                continue
            if stat.S_ISDIR(status.st_mode):
                found.append((relative, True, None, None))
                if (selection.max_depth is None or depth < selection.max_depth) and real not in ancestors:
                    pending.append((relative, real, depth + 1, ancestors | {real}))
            elif stat.S_ISREG(status.st_mode):
                content = None
                if bound is not None and status.st_size <= bound:
                    try:
                        with open(real, "rb") as handle:
                            content = handle.read(bound + 1)
                    except OSError as error:
                        record_problem(problems, StoreConnectionError(
                            f"{where}: artifact {relative!r} cannot be read ({hide(str(error))})"))
                        continue
                    if len(content) > bound:
                        content = None  # grew past the bound since it was listed
                found.append((relative, False, status.st_size, content))
            else:
                record_problem(problems, StoreNotFoundError(
                    f"{where}: {relative!r} is neither a file nor a folder (a FIFO, socket or device): not listed, not read"))
    found.sort(key=lambda item: item[0])
    return found


def split_artifact_uri(uri: str):
    """``urlsplit(uri)``, or an :class:`UnsupportedStoreError` naming the URI (its credentials
    hidden) where it is no URL: a ``[`` or ``]`` outside an IPv6 address, as a password written
    unencoded may hold.

    Example::

        >>> split_artifact_uri("s3://KEY:pa[ss@bucket/x")
        Traceback (most recent call last):
        pyspark_experiments.errors.UnsupportedStoreError: artifact URI 's3://***@bucket/x' is no URL (Invalid IPv6 URL): \
is a '[' or ']' of its user info not percent-encoded?
    """
    try:
        return urlsplit(uri)
    except ValueError as error:
        raise UnsupportedStoreError(f"artifact URI {hide_uri(uri)!r} is no URL ({error}): is a '[' or ']' of its "
                                    f"user info not percent-encoded?") from None


def _open(uri: str, filesystems: dict, timeout: float):
    """``(filesystem, path)`` for ``uri``, one filesystem per scheme and bucket or host."""
    parts = split_artifact_uri(uri)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES or len(scheme) == 1:
        key = ("",)
    else:
        key = (scheme, parts.netloc)
    if key not in filesystems:
        filesystems[key] = resolve_artifact_uri(uri, timeout)
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


def _exists(remote: _Remote, path: str) -> bool:
    from pyarrow import fs as pafs

    if path in ("", "/"):
        return True
    try:
        return remote.info(path).type != pafs.FileType.NotFound
    except OSError:
        return False


def _walk(remote: _Remote, base: str, max_depth: int | None, where: str, problems: Problems) -> list:
    """Every entry under ``base``, ``max_depth`` levels deep (``None``: all).

    One recursive listing where possible (a single paged request on object stores); when that
    fails, or a depth is set, folder by folder, so that PERMISSIVE skips only the folder that
    cannot be listed (and FAILFAST names it).
    """
    from pyarrow import fs as pafs

    if max_depth is None:
        try:
            return remote.info(pafs.FileSelector(base, recursive=True))
        except OSError:
            pass  # find the folder that fails, below
    found = []
    pending = [(base, 1)]
    while pending:
        folder, depth = pending.pop()
        try:
            entries = remote.info(pafs.FileSelector(folder, recursive=False))
        except OSError as error:
            relative = folder[len(base):].lstrip("/") or "."
            record_problem(problems, StoreConnectionError(f"{where}: folder {relative!r} cannot be listed ({hide(str(error))})"))
            continue
        for entry in entries:
            found.append(entry)
            if entry.type == pafs.FileType.Directory and (max_depth is None or depth < max_depth):
                pending.append((entry.path, depth + 1))
    return found
