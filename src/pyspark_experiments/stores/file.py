"""MLflow's file store (an ``mlruns/`` folder), read directly from its files.

Layout: ``<root>/<experiment_id>/meta.yaml`` and ``tags/``; deleted experiments under
``<root>/.trash/``; runs in ``<root>/<experiment_id>/<run_id>/`` with ``meta.yaml``,
``params/``, ``metrics/``, ``tags/`` (keys holding ``/`` are nested folders) and
``inputs/<id>/meta.yaml``, whose datasets live in ``<experiment>/datasets/<id>/meta.yaml``.
Metric files hold one point a line: ``timestamp value [step [dataset_name dataset_digest]]``.

Example::

    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> store = FileStore(resolve_tracking_uri("/tmp/mlruns"))
    >>> [e.name for e in store.list_experiments()]
    ['Default', ...]
"""

from __future__ import annotations

import functools
import math
import os
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import replace
from itertools import accumulate, repeat

import pyarrow as pa

from .. import tables
from ..errors import StoreNotFoundError
from . import metric_files
from .base import (
    BATCH_ROWS,
    RUN_STATUSES,
    ExperimentRef,
    MetricPosition,
    Partition,
    Problems,
    Selection,
    Store,
    StoreCapabilities,
    batches_from_columns,
    default_partition_points,
    fingerprint,
    lifecycle_stages,
    metric_units,
    ms_to_us,
    pack_partitions,
    partition_size,
    read_local_file,
)
from .metric_files import stale_last_line

TRASH = ".trash"
META = "meta.yaml"
# Experiment sub-folders that are not runs (MLflow's RESERVED_EXPERIMENT_FOLDERS).
RESERVED_FOLDERS = frozenset({"tags", "datasets", "traces", "models"})
# What only a run's folder holds: one of these without meta.yaml is a damaged run.
RUN_DATA = ("metrics", "params", "tags", "inputs")

# Runs per partition for the per-run tables: a file-store run costs about 0.3 ms (26 small
# files), so 5,000 runs make a task of a second or two; a smaller store still gets a few
# partitions, of at least 1,000 runs.
_RUNS_PER_PARTITION = 5_000
_MIN_RUNS_PER_PARTITION = 1_000
# Average bytes of one metric line, to estimate points from file sizes when planning.
_BYTES_PER_POINT = 32


def default_partition_runs(total: int) -> int:
    """Runs per partition for ``total`` runs of a per-run table (``runs``, ``params``, ``tags``,
    ``inputs``), when option ``partitionSize`` is not set.

    Example::

        >>> default_partition_runs(20_000), default_partition_runs(8_000), default_partition_runs(2_000)
        (5000, 2000, 1000)
    """
    return partition_size(total, _RUNS_PER_PARTITION, _MIN_RUNS_PER_PARTITION)


def _yaml_loader():
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_FLAT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
# A plain scalar starting with one of these, or holding one of the others, is left to PyYAML.
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_OR_COMMENT = re.compile(r": | #|[\[\]{},]")
_STR, _INT, _NULL = (f"tag:yaml.org,2002:{name}" for name in ("str", "int", "null"))


@functools.lru_cache(maxsize=4096)
def _implicit_tag(value: str) -> str:
    """The tag PyYAML's resolver gives the plain scalar ``value`` (keys and common values
    repeat from one meta.yaml to the next)."""
    from yaml.nodes import ScalarNode
    from yaml.resolver import Resolver

    return Resolver().resolve(ScalarNode, value, (True, False))


def flat_yaml(text: str) -> dict | None:
    """``text`` parsed as PyYAML's safe loader parses it, where it is a flat mapping the way
    MLflow writes ``meta.yaml`` (``yaml.safe_dump``): one ``key: value`` a line, each value a
    plain or single-quoted string, a decimal integer, ``null`` or an empty ``[]`` / ``{}``. None
    for anything else (comments, continuation lines, other quoting, tags, non-ASCII text, a key
    twice, ...): the caller then lets PyYAML parse it. Plain values resolve through PyYAML's own
    resolver, so a value is a string, a number or a null exactly where PyYAML says so.

    PyYAML builds a Python object per node through its Python constructors (its C loader only
    parses): a run's meta.yaml was the largest single cost of the file store's runs table. This
    takes less than half as long (53 against 123 µs a document, measured on the L store).

    Example::

        >>> flat_yaml("run_id: 00a1\\nstart_time: 1700000000000\\nend_time: null\\nrun_name: 'it''s'\\ntags: []\\n")
        {'run_id': '00a1', 'start_time': 1700000000000, 'end_time': None, 'run_name': "it's", 'tags': []}
        >>> flat_yaml("run_name: yes\\n") is None, flat_yaml("a: 1 # note\\n") is None
        (True, True)
    """
    if not text.isascii() or not text.endswith("\n"):
        return None
    found: dict = {}
    for line in text[:-1].split("\n"):
        key, separator, value = line.partition(": ")
        if (not separator or not line.isprintable() or not _FLAT_KEY.fullmatch(key) or key in found
                or not value or value[0] == " " or value[-1] == " "
                or _implicit_tag(key) != _STR):  # "yes: 1" is {True: 1}
            return None
        if value[0] == "'":
            inner = value[1:-1]
            if len(value) < 2 or value[-1] != "'" or "'" in inner.replace("''", ""):
                return None
            found[key] = inner.replace("''", "'")
        elif value in ("[]", "{}"):
            found[key] = [] if value == "[]" else {}
        elif value[0] in _INDICATORS or value[-1] == ":" or _FLOW_OR_COMMENT.search(value):
            return None
        else:
            tag = _implicit_tag(value)
            if tag == _STR:
                found[key] = value
            elif tag == _INT and _DECIMAL.fullmatch(value):
                found[key] = int(value)
            elif tag == _NULL and value == "null":
                found[key] = None
            else:
                return None  # booleans, floats, dates, other integer forms: PyYAML's
    return found


def read_yaml(path: str, problems: Problems | None = None, required: bool = False) -> dict | None:
    """Parse one ``meta.yaml``; ``None`` if it is missing (a malformed record if ``required``).
    A file that is not UTF-8, not YAML, not a mapping, or a folder is a malformed record.

    Example::

        >>> read_yaml("/nonexistent/meta.yaml") is None
        True
    """
    import yaml

    try:
        text = read_local_file(path).decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        if required:
            _malformed(problems, f"{path}: missing")
        return None
    except IsADirectoryError:
        _malformed(problems, f"{path}: expected a file, found a folder")
        return None
    except UnicodeDecodeError as error:
        _malformed(problems, f"{path}: not valid UTF-8 (byte {error.start})")
        return None
    except OSError as error:
        _malformed(problems, f"{path}: cannot be read ({error.strerror or error})")
        return None
    content = flat_yaml(text)
    try:
        if content is None:
            content = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else path
        _malformed(problems, f"{where}: not valid YAML ({getattr(error, 'problem', error)})")
        return None
    if not isinstance(content, dict):
        _malformed(problems, f"{path}: expected a YAML mapping of MLflow metadata, got {type(content).__name__}")
        return None
    return content


def _malformed(problems: Problems | None, where: str) -> None:
    (problems or Problems("FAILFAST")).skip(where)


#: Fields of MLflow's meta.yaml files that must be integers (epoch milliseconds) when present.
_TIME_FIELDS = {
    "run": ("start_time", "end_time"),
    "experiment": ("creation_time", "last_update_time"),
}


def _valid_meta(meta: dict, path: str, kind: str, problems: Problems | None) -> bool:
    """Whether ``meta``'s fields hold what MLflow writes; a malformed record otherwise."""
    folder = os.path.basename(os.path.dirname(path))
    experiment_folder = folder if kind == "experiment" else os.path.basename(os.path.dirname(os.path.dirname(path)))
    if str(meta.get("experiment_id")) != experiment_folder:
        _malformed(problems, f"{path}: experiment_id {meta.get('experiment_id')!r} does not match its folder {experiment_folder!r}")
        return False
    if kind == "experiment" and not isinstance(meta.get("name"), str):
        _malformed(problems, f"{path}: name {meta.get('name')!r} is not an experiment name")
        return False
    stage = meta.get("lifecycle_stage", "active")
    if stage not in ("active", "deleted"):
        _malformed(problems, f"{path}: lifecycle_stage {stage!r} is neither 'active' nor 'deleted'")
        return False
    for name in _TIME_FIELDS[kind]:
        value = meta.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            _malformed(problems, f"{path}: {name} {value!r} is not epoch milliseconds (an integer)")
            return False
    status = meta.get("status")
    if kind == "run" and status is not None and not isinstance(status, (int, str)):
        _malformed(problems, f"{path}: status {status!r} is not a run status")
        return False
    return True


class FileStore(Store):
    """Reads an MLflow file store."""

    @property
    def root(self) -> str:
        return self.uri.location

    def _problems(self, mode: str, context: str = "") -> Problems:
        return Problems(mode, context=context or f"file store {self.root!r}", locate=self._ids_for)

    def _ids_for(self, where: str) -> tuple[str | None, str | None]:
        """(experiment id, run id) of a place in the store, as far as its path tells."""
        prefix = self.root.rstrip(os.sep) + os.sep
        if not where.startswith(prefix):
            return None, None
        parts = where[len(prefix):].split(os.sep)
        if parts[0] == TRASH:
            parts = parts[1:]
        experiment = parts[0].split(",")[0].split(":")[0] if parts else None
        run = parts[1] if len(parts) > 2 and parts[1] not in RESERVED_FOLDERS else None
        return experiment or None, run

    def _check_root(self) -> None:
        if os.path.isfile(self.root):
            with open(self.root, "rb") as handle:
                is_sqlite = handle.read(16) == b"SQLite format 3\x00"
            hint = (f"; it is a SQLite database: use sqlite:///{self.root}" if is_sqlite
                    else "; a file store is a folder (mlruns/)")
            raise StoreNotFoundError(
                f"tracking URI {self.uri.display!r}: no file store at {self.root!r} (a file, not a folder{hint})"
            )
        if not os.path.isdir(self.root):
            raise StoreNotFoundError(
                f"tracking URI {self.uri.display!r}: no file store at {self.root!r} (folder not found)"
            )
        has_store = any(
            entry.is_dir() and (entry.name.isdigit() or entry.name == TRASH)
            for entry in os.scandir(self.root)
        )
        if not has_store:
            raise StoreNotFoundError(
                f"tracking URI {self.uri.display!r}: {self.root!r} holds no MLflow file store "
                f"(expected experiment folders such as '0/meta.yaml')"
            )

    # -- planning (driver) -------------------------------------------------------------------

    def _experiment_dirs(self) -> Iterator[str]:
        for parent in (self.root, os.path.join(self.root, TRASH)):
            try:
                entries = sorted(os.scandir(parent), key=lambda e: e.name)
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir() and entry.name != TRASH and os.path.exists(os.path.join(entry.path, META)):
                    yield entry.path

    def list_experiments(self, view_type: str = "ALL") -> list[ExperimentRef]:
        self._check_root()
        stages = lifecycle_stages(view_type)
        found = []
        for path in self._experiment_dirs():
            meta = read_yaml(os.path.join(path, META))
            if meta is None:
                continue
            stage = meta.get("lifecycle_stage", "active")
            if stage in stages:
                found.append(ExperimentRef(str(meta.get("experiment_id", os.path.basename(path))), meta.get("name"), stage))
        return sorted(found, key=lambda e: (len(e.experiment_id), e.experiment_id))

    def experiment_dir(self, experiment_id: str) -> str | None:
        for parent in (self.root, os.path.join(self.root, TRASH)):
            path = os.path.join(parent, experiment_id)
            if os.path.isfile(os.path.join(path, META)):
                return path
        return None

    def _run_dirs(self, selection: Selection) -> list[tuple[str, str]]:
        runs = []
        for experiment_id in selection.experiment_ids:
            path = self.experiment_dir(experiment_id)
            if path is None:
                continue
            # Files other than meta.yaml are planned too: a read reports them (a run folder
            # replaced by a file must not vanish silently).
            names = sorted(
                entry.name for entry in os.scandir(path)
                if entry.name not in RESERVED_FOLDERS and entry.name != META and not entry.name.startswith(".")
            )
            if selection.run_ids is not None:
                wanted = set(selection.run_ids)
                names = [n for n in names if n in wanted]
            runs.extend((path, name) for name in names)
        return runs

    def plan(self, selection: Selection) -> list[Partition]:
        self._check_root()
        if selection.table in tables.MODEL_TABLE_NAMES:
            return self._plan_model_tables(selection)
        if selection.table == tables.EXPERIMENTS:
            dirs = tuple(self.experiment_dir(e) for e in selection.experiment_ids)
            return [Partition(0, selection, tuple(d for d in dirs if d))]
        if selection.table == tables.METRICS and selection.metric_ranges is not None:
            return self._plan_metric_ranges(selection)
        run_dirs = self._run_dirs(selection)
        if selection.table != tables.METRICS:
            units = [(run, 1) for run in run_dirs]
            return pack_partitions(selection, units, default_partition_runs(len(units)))
        counts, damaged = [], []
        for run in run_dirs:
            probe = Problems("PERMISSIVE")  # planning only looks; the read reports
            metrics_dir = os.path.join(*run, "metrics")
            counts += [(run, key, size // _BYTES_PER_POINT + 1) for key, size in _metric_files(metrics_dir, probe)]
            if probe.count or not os.path.isdir(os.path.join(*run)):
                damaged.append(run)
        target = default_partition_points(sum(points for _, _, points in counts))
        units = metric_units(selection, counts, target)
        # A damaged run with nothing else to read is read all the same, to be reported there.
        planned = {run for (run, _), _ in units}
        units += [((run, None), 1) for run in damaged if run not in planned]
        return pack_partitions(selection, units, target)

    def _plan_metric_ranges(self, selection: Selection) -> list[Partition]:
        ranges: dict[str, dict[str, tuple[int, int]]] = {}
        for run_id, key, after, upto in selection.metric_ranges:
            if upto > after and selection.admits_metric_key(key):
                ranges.setdefault(run_id, {})[key] = (after, upto)
        admitted = None if selection.run_ids is None else set(selection.run_ids)
        wanted = tuple(r for r in ranges if admitted is None or r in admitted)
        units = []
        for experiment_path, run_name in self._run_dirs(replace(selection, run_ids=wanted)):
            for key, (after, upto) in sorted(ranges[run_name].items()):
                units.append((((experiment_path, run_name), key, after, upto), (upto - after) // _BYTES_PER_POINT + 1))
        return pack_partitions(selection, units, default_partition_points(sum(points for _, points in units)))

    # -- change detection (driver) -----------------------------------------------------------

    #: Metric files are append-only: a position is the bytes written, a range read is exact.
    capabilities = StoreCapabilities(
        kind="file",
        state_key="file",
        metric_positions="bytes",
        exact_metric_ranges=True,
        position_units_per_point=_BYTES_PER_POINT,
        run_fingerprints=True,
    )

    def metric_positions(self, selection: Selection) -> dict[tuple[str, str], int]:
        """Bytes written to each metric file (metric files are append-only).

        Only file sizes are read; the view type and start time apply when points are read.
        With ``selection.metric_ranges``, only the listed series are reported, each as a
        :class:`MetricPosition` whose ``check`` digests the line ending at its size and
        ``check_after`` the line ending at the listed ``after`` (None for 0): a file changed in
        place before ``after`` (MLflow only appends) no longer has the line a sync saw there.
        """
        self._check_root()
        if selection.metric_ranges is not None:
            return self._checked_positions(selection)
        problems = self._problems(selection.mode)
        positions = {}
        for experiment_path, run_name in self._run_dirs(selection):
            for key, size in _metric_files(os.path.join(experiment_path, run_name, "metrics"), problems):
                if selection.admits_metric_key(key):
                    positions[(run_name, key)] = size
        problems.report()
        return positions

    def _checked_positions(self, selection: Selection) -> dict[tuple[str, str], int]:
        listed = {(run_id, key): after for run_id, key, after, _ in selection.metric_ranges}
        wanted = tuple(sorted({run_id for run_id, _ in listed}))
        positions = {}
        for experiment_path, run_name in self._run_dirs(replace(selection, run_ids=wanted)):
            for (run_id, key), after in listed.items():
                if run_id != run_name:
                    continue
                path = os.path.join(experiment_path, run_name, "metrics", key)
                try:
                    with open(path, "rb") as handle:
                        size = os.fstat(handle.fileno()).st_size
                        positions[(run_id, key)] = MetricPosition(
                            size, line_check(handle, size), line_check(handle, after) if after > 0 else None)
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    continue  # gone, or reported by the read
        return positions

    def run_fingerprints(self, selection: Selection) -> dict[str, tuple[str, str]]:
        """A digest of the sizes and modification times of each run's ``meta.yaml``, params, tags
        and inputs files (no file is parsed unless the view type or start time needs meta.yaml).
        """
        import hashlib

        self._check_root()
        needs_meta = selection.view_type != "ALL" or selection.min_start_time_ms is not None
        problems = self._problems(selection.mode)
        found = {}
        for experiment_path, run_name in self._run_dirs(selection):
            run_dir = os.path.join(experiment_path, run_name)
            try:
                meta_stat = os.stat(os.path.join(run_dir, META))
            except (FileNotFoundError, NotADirectoryError):
                continue  # not a run, as MLflow treats it (a read reports a damaged one)
            if needs_meta:
                meta = read_yaml(os.path.join(run_dir, META), problems) or {}
                if meta and not _valid_meta(meta, os.path.join(run_dir, META), "run", problems):
                    continue
                if not selection.admits_run(run_name, meta.get("lifecycle_stage", "active"), meta.get("start_time")):
                    continue
            digests = {"run": hashlib.sha1(f"{meta_stat.st_size} {meta_stat.st_mtime_ns}".encode()).hexdigest()}
            for folder in ("params", "tags", "inputs"):
                lines: list[str] = []
                _file_stats(os.path.join(run_dir, folder), folder, lines)
                digests[folder] = hashlib.sha1("".join(lines).encode()).hexdigest()
            found[run_name] = (os.path.basename(experiment_path), fingerprint(digests))
        problems.report()
        return found

    # -- reading (executor) ------------------------------------------------------------------

    def read(self, partition: Partition) -> Iterator[pa.RecordBatch]:
        selection = partition.selection
        problems = self._problems(selection.mode, f"file store {self.root!r}, partition {partition.index}")
        table = selection.table
        if table in tables.MODEL_TABLE_NAMES:
            yield from self._read_model_tables(partition, problems)
        elif table == tables.EXPERIMENTS:
            yield from self._read_experiments(partition.work, problems)
        elif table == tables.METRICS:
            yield from self._read_metrics(selection, partition.work, problems)
        else:
            runs = list(self._admitted_runs(selection, partition.work, problems))
            if table == tables.RUNS:
                yield from self._read_runs(runs, problems)
            elif table in (tables.PARAMS, tables.TAGS):
                yield from self._read_key_values(table, runs, problems)
            elif table == tables.INPUTS:
                yield from self._read_inputs(runs, problems)
        problems.report()

    def _admitted_runs(self, selection: Selection, run_dirs, problems: Problems) -> Iterator[tuple[str, dict]]:
        """Yield (run folder, run meta) for the runs that the selection admits."""
        for experiment_path, run_name in run_dirs:
            run_dir = os.path.join(experiment_path, run_name)
            meta_path = os.path.join(run_dir, META)
            if not os.path.isdir(run_dir):
                if os.path.lexists(run_dir):
                    problems.skip(f"{run_dir}: expected a run folder, found a file")
                continue
            meta = read_yaml(meta_path, problems)
            if meta is None:
                # No meta.yaml: not a run, as MLflow treats it, unless it holds a run's data.
                if any(os.path.lexists(os.path.join(run_dir, part)) for part in RUN_DATA):
                    problems.skip(f"{meta_path}: missing, but {run_dir} holds run data ({', '.join(RUN_DATA)})")
                continue
            run_id = meta.get("run_id") or meta.get("run_uuid")
            if run_id != run_name:
                problems.skip(f"{meta_path}: run_id {run_id!r} does not match its folder {run_name!r}")
                continue
            if not _valid_meta(meta, meta_path, "run", problems):
                continue
            if selection.admits_run(run_id, meta.get("lifecycle_stage", "active"), meta.get("start_time")):
                yield run_dir, meta

    def _read_runs(self, runs, problems: Problems) -> Iterator[pa.RecordBatch]:
        columns = {name: [] for name in tables.arrow_schema(tables.RUNS).names}
        latest = _latest_values(runs, problems)
        for run_dir, meta in runs:
            columns["run_id"].append(meta.get("run_id") or meta.get("run_uuid"))
            columns["experiment_id"].append(str(meta.get("experiment_id")))
            columns["metrics"].append(sorted(latest.get(run_dir, ())))
            columns["params"].append(_read_values(os.path.join(run_dir, "params"), problems))
            columns["tags"].append(_read_values(os.path.join(run_dir, "tags"), problems))
            columns["start_time"].append(ms_to_us(meta.get("start_time")))
            columns["end_time"].append(ms_to_us(meta.get("end_time")))
            columns["status"].append(_status(meta.get("status")))
            columns["artifact_uri"].append(meta.get("artifact_uri"))
            columns["run_name"].append(meta.get("run_name"))
            columns["user_id"].append(meta.get("user_id"))
            columns["lifecycle_stage"].append(meta.get("lifecycle_stage", "active"))
        yield from batches_from_columns(tables.RUNS, columns)

    def _read_key_values(self, table: str, runs, problems: Problems) -> Iterator[pa.RecordBatch]:
        columns = {"experiment_id": [], "run_id": [], "key": [], "value": []}
        for run_dir, meta in runs:
            for key, value in _read_values(os.path.join(run_dir, table), problems):
                columns["experiment_id"].append(str(meta.get("experiment_id")))
                columns["run_id"].append(os.path.basename(run_dir))
                columns["key"].append(key)
                columns["value"].append(value)
        yield from batches_from_columns(table, columns)

    def _read_experiments(self, experiment_dirs, problems: Problems) -> Iterator[pa.RecordBatch]:
        columns = {name: [] for name in tables.arrow_schema(tables.EXPERIMENTS).names}
        for path in experiment_dirs:
            meta = read_yaml(os.path.join(path, META), problems, required=True)
            if meta is None or not _valid_meta(meta, os.path.join(path, META), "experiment", problems):
                continue
            columns["experiment_id"].append(str(meta.get("experiment_id")))
            columns["name"].append(meta.get("name"))
            columns["artifact_location"].append(meta.get("artifact_location"))
            columns["lifecycle_stage"].append(meta.get("lifecycle_stage", "active"))
            columns["creation_time"].append(ms_to_us(meta.get("creation_time")))
            columns["last_update_time"].append(ms_to_us(meta.get("last_update_time")))
            columns["tags"].append(_read_values(os.path.join(path, "tags"), problems))
        yield from batches_from_columns(tables.EXPERIMENTS, columns)

    def _read_inputs(self, runs, problems: Problems) -> Iterator[pa.RecordBatch]:
        columns = {name: [] for name in tables.arrow_schema(tables.INPUTS).names}
        for run_dir, meta in runs:
            inputs_dir = os.path.join(run_dir, "inputs")
            if not os.path.isdir(inputs_dir):
                if os.path.lexists(inputs_dir):
                    problems.skip(f"{inputs_dir}: expected a folder of dataset inputs, found a file")
                continue
            found = []
            for input_id in sorted(os.listdir(inputs_dir)):
                input_meta = read_yaml(os.path.join(inputs_dir, input_id, META), problems, required=True)
                if not input_meta or input_meta.get("source_type") != "DATASET":
                    continue
                dataset_path = os.path.join(os.path.dirname(run_dir), "datasets", str(input_meta.get("source_id")), META)
                dataset = read_yaml(dataset_path, problems)
                if dataset is None:
                    problems.skip(f"{os.path.join(inputs_dir, input_id, META)}: its dataset {dataset_path} is missing")
                    continue
                input_tags = {str(k): None if v is None else str(v) for k, v in (input_meta.get("tags") or {}).items()}
                found.append((dataset.get("name"), dataset.get("digest"), dataset, input_tags))
            for name, digest, dataset, input_tags in sorted(found, key=lambda f: (f[0] or "", f[1] or "")):
                columns["experiment_id"].append(str(meta.get("experiment_id")))
                columns["run_id"].append(os.path.basename(run_dir))
                columns["dataset_name"].append(name)
                columns["dataset_digest"].append(digest)
                columns["dataset_source_type"].append(dataset.get("source_type"))
                columns["dataset_source"].append(dataset.get("source"))
                columns["dataset_schema"].append(dataset.get("schema"))
                columns["dataset_profile"].append(dataset.get("profile"))
                columns["context"].append(input_tags.get("mlflow.data.context"))
                columns["tags"].append(sorted(input_tags.items()))
        yield from batches_from_columns(tables.INPUTS, columns)

    def _read_metrics(self, selection: Selection, work, problems: Problems) -> Iterator[pa.RecordBatch]:
        schema = tables.arrow_schema(tables.METRICS)
        by_run: dict[tuple[str, str], list[tuple]] = {}
        for run, key, *bounds in work:
            # key None: every metric of the run; bounds: (after, upto) for a metricRanges read
            by_run.setdefault(run, []).append((key, *bounds))
        # One entry per metric file: (key, run, experiment) by position, and (path, after, upto)
        keys, runs, experiments, files = [], [], [], []
        for run_dir, meta in self._admitted_runs(selection, list(by_run), problems):
            run_id = os.path.basename(run_dir)
            experiment_id = str(meta.get("experiment_id"))
            metrics_dir = os.path.join(run_dir, "metrics")
            for key, *bounds in by_run[(os.path.dirname(run_dir), run_id)]:
                if key is None:
                    found = [(k, path, 0, None) for k, path in _key_files(metrics_dir, problems) if selection.admits_metric_key(k)]
                else:
                    found = [(key, os.path.join(metrics_dir, key), *(bounds or (0, None)))]
                for k, path, after, upto in found:
                    keys.append(k)
                    runs.append(run_id)
                    experiments.append(experiment_id)
                    files.append((path, after, upto))
        keys, runs, experiments = (pa.array(column, pa.string()) for column in (keys, runs, experiments))
        timestamp_type = schema.field("timestamp").type
        for chunk in metric_files.read_metric_files(files, problems):
            if not chunk.points.num_rows:
                continue
            index = chunk.file_index()
            points = chunk.points
            arrays = [
                experiments.take(index),
                runs.take(index),
                keys.take(index),
                points["value"],
                points["step"],
                points["timestamp"].cast(pa.timestamp("ms", tz="UTC")).cast(timestamp_type),
            ]
            yield from pa.Table.from_arrays(arrays, schema=schema).to_batches(max_chunksize=BATCH_ROWS)

    # -- artifacts, logged models, model registry (issue 12) ---------------------------------
    # Logged models: <experiment>/models/<model_id>/ with meta.yaml, params/, tags/, metrics/
    # (lines `timestamp value step run_id [dataset_name dataset_digest]`). The registry:
    # <root>/models/<name>/ with meta.yaml, tags/, aliases/<alias> (holding the version) and
    # version-<n>/ with meta.yaml and tags/.

    def _plan_model_tables(self, selection: Selection) -> list[Partition]:
        if selection.table != tables.ARTIFACTS:
            return [Partition(0, selection, selection.experiment_ids)]
        from .artifacts import plan_artifacts

        problems = Problems(selection.mode, context=f"file store {self.root!r}, planning artifacts")
        runs = [
            (str(meta.get("experiment_id")), os.path.basename(run_dir), meta.get("artifact_uri"))
            for run_dir, meta in self._admitted_runs(selection, self._run_dirs(selection), problems)
        ]
        problems.report()
        return plan_artifacts(selection, runs)

    def _read_model_tables(self, partition: Partition, problems: Problems) -> Iterator[pa.RecordBatch]:
        from .models import model_batches, model_version_batches, registered_model_batches

        table = partition.selection.table
        if table == tables.ARTIFACTS:
            from .artifacts import read_artifacts

            yield from read_artifacts(partition)
        elif table == tables.MODELS:
            yield from model_batches(self._logged_models(partition.selection, problems))
        elif table == tables.REGISTERED_MODELS:
            yield from registered_model_batches([model for model, _ in self._registry(problems)])
        elif table == tables.MODEL_VERSIONS:
            yield from model_version_batches(self._model_versions(partition.selection, problems))

    def _logged_models(self, selection: Selection, problems: Problems) -> list[dict]:
        from .models import logged_model_status

        stages = lifecycle_stages(selection.view_type)
        found = []
        for experiment_id in selection.experiment_ids:
            experiment_path = self.experiment_dir(experiment_id)
            models_dir = os.path.join(experiment_path or "", "models")
            if experiment_path is None or not os.path.isdir(models_dir):
                continue
            for model_id in sorted(os.listdir(models_dir)):
                model_dir = os.path.join(models_dir, model_id)
                meta_path = os.path.join(model_dir, META)
                if not os.path.isdir(model_dir) or not os.path.exists(meta_path):
                    continue
                meta = read_yaml(meta_path, problems)
                if meta is None:
                    continue
                if str(meta.get("model_id")) != model_id or str(meta.get("experiment_id")) != str(experiment_id):
                    problems.skip(
                        f"{meta_path}: model {meta.get('model_id')!r} of experiment {meta.get('experiment_id')!r} "
                        f"does not match its folder (model {model_id!r} in experiment {experiment_id!r})"
                    )
                    continue
                stage = meta.get("lifecycle_stage") or "active"
                if stage not in stages or (selection.run_ids is not None and meta.get("source_run_id") not in selection.run_ids):
                    continue
                found.append({
                    "model_id": model_id, "experiment_id": str(experiment_id), "name": meta.get("name"),
                    "source_run_id": meta.get("source_run_id"), "status": logged_model_status(meta.get("status")),
                    "model_type": meta.get("model_type"), "artifact_location": meta.get("artifact_location"),
                    "creation_time": meta.get("creation_timestamp"), "last_updated_time": meta.get("last_updated_timestamp"),
                    "lifecycle_stage": stage,
                    "params": dict(_read_values(os.path.join(model_dir, "params"), problems)),
                    "tags": dict(_read_values(os.path.join(model_dir, "tags"), problems)),
                    "metrics": [
                        point
                        for key, path in _key_files(os.path.join(model_dir, "metrics"))
                        for point in _read_model_metric_file(key, path, problems)
                    ],
                })
        return found

    def _registry(self, problems: Problems) -> list[tuple[dict, str]]:
        """(registered model row, its folder) for every registered model of the store."""
        registry_dir = os.path.join(self.root, "models")
        found = []
        if not os.path.isdir(registry_dir):
            return found
        for name in sorted(os.listdir(registry_dir)):
            model_dir = os.path.join(registry_dir, name)
            meta = read_yaml(os.path.join(model_dir, META), problems) if os.path.isdir(model_dir) else None
            if meta is None:
                continue
            found.append(({
                "name": meta.get("name", name), "description": meta.get("description"),
                "creation_time": meta.get("creation_timestamp"), "last_updated_time": meta.get("last_updated_timestamp"),
                "tags": dict(_read_values(os.path.join(model_dir, "tags"), problems)),
                "aliases": {alias: value.strip() for alias, value in _read_values(os.path.join(model_dir, "aliases"), problems)},
            }, model_dir))
        return found

    def _model_versions(self, selection: Selection, problems: Problems) -> list[dict]:
        from .models import version_admitted

        found = []
        for model, model_dir in self._registry(problems):
            for folder in sorted(os.listdir(model_dir)):
                version_dir = os.path.join(model_dir, folder)
                if not folder.startswith("version-") or not os.path.isdir(version_dir):
                    continue
                meta_path = os.path.join(version_dir, META)
                meta = read_yaml(meta_path, problems)
                if meta is None:
                    continue
                if str(meta.get("version")) != folder[len("version-"):]:
                    problems.skip(f"{meta_path}: version {meta.get('version')!r} does not match its folder {folder!r}")
                    continue
                if not version_admitted(meta.get("current_stage"), selection.view_type):
                    continue
                if selection.run_ids is not None and meta.get("run_id") not in selection.run_ids:
                    continue
                version = str(meta.get("version"))
                found.append({
                    "name": model["name"], "version": version, "source": meta.get("source"), "run_id": meta.get("run_id"),
                    "model_id": meta.get("model_id"), "status": meta.get("status"), "current_stage": meta.get("current_stage"),
                    "description": meta.get("description"), "creation_time": meta.get("creation_timestamp"),
                    "last_updated_time": meta.get("last_updated_timestamp"),
                    "tags": dict(_read_values(os.path.join(version_dir, "tags"), problems)),
                    "aliases": [alias for alias, target in model["aliases"].items() if target == version],
                })
        return found


def _read_model_metric_file(key: str, path: str, problems: Problems) -> list[dict]:
    """A logged model's metric file: ``timestamp value step run_id [dataset_name dataset_digest]``
    per line, exact duplicate lines once (a last line without its newline is still being written)."""
    lines = read_local_file(path).split(b"\n")
    lines.pop()
    points, seen = [], set()
    for number, raw in enumerate(lines, start=1):
        if raw in seen:
            continue
        seen.add(raw)
        fields = raw.decode("utf-8", "replace").split()
        try:
            if len(fields) not in (4, 6):
                raise ValueError(f"{len(fields)} fields")
            point = {
                "key": key, "timestamp": int(fields[0]), "value": float(fields[1]), "step": int(fields[2]),
                "run_id": fields[3], "dataset_name": fields[4] if len(fields) == 6 else None,
                "dataset_digest": fields[5] if len(fields) == 6 else None,
            }
        except ValueError:
            problems.skip(
                f"{path}, line {number}: expected 'timestamp value step run_id [dataset_name dataset_digest]', "
                f"got {raw[:200].decode('utf-8', 'replace')!r}"
            )
            continue
        points.append(point)
    return points


def _status(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        return RUN_STATUSES.get(value, str(value))
    return str(value)


def _key_files(folder: str, problems: Problems | None = None, prefix: str = "") -> list[tuple[str, str]]:
    """(key, path) for every file under ``folder``; keys with ``/`` are nested folders.

    A missing folder holds no keys; a file where the folder belongs is a malformed record
    (reported when ``problems`` is given, as a read does; planning only looks)."""
    return [(key, entry.path) for key, entry in _key_entries(folder, problems, prefix)]


def _key_entries(folder: str, problems: Problems | None = None, prefix: str = "") -> list[tuple[str, os.DirEntry]]:
    """:func:`_key_files` with each file's directory entry (its ``stat()`` is one call)."""
    found = []
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return found
    except NotADirectoryError:
        if problems is not None and not prefix:
            problems.skip(f"{folder}: expected a folder of {os.path.basename(folder)} files, found a file")
        return found
    with entries:
        for entry in entries:
            if entry.is_dir():
                nested = _key_entries(entry.path, problems, f"{prefix}{entry.name}/")
                if not nested and problems is not None:
                    # MLflow writes a folder only for keys holding "/", never an empty one
                    problems.skip(f"{entry.path}: expected the file of key {prefix + entry.name!r}, found an empty folder")
                found.extend(nested)
            else:
                found.append((prefix + entry.name, entry))
    return sorted(found, key=lambda item: item[0])


def _file_stats(folder: str, relative: str, lines: list[str]) -> None:
    """Append ``"<relative path> <size> <mtime ns>\\n"`` for every file under ``folder``: a
    folder's files by name, then its sub-folders by name (the order of a sorted ``os.walk``,
    so fingerprints taken before stay comparable). A missing folder adds nothing.

    Example::

        >>> lines = []; _file_stats("/nonexistent", "params", lines); lines
        []
    """
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    folders = []
    for entry in entries:
        if entry.is_dir():
            if not entry.is_symlink():  # os.walk does not follow links to folders either
                folders.append(entry)
            continue
        try:
            stat = entry.stat()
        except FileNotFoundError:
            continue
        lines.append(f"{relative}/{entry.name} {stat.st_size} {stat.st_mtime_ns}\n")
    for entry in folders:
        _file_stats(entry.path, f"{relative}/{entry.name}", lines)


def _metric_files(folder: str, problems: Problems | None = None) -> list[tuple[str, int]]:
    found = []
    for key, entry in _key_entries(folder, problems):
        try:
            found.append((key, entry.stat().st_size))
        except FileNotFoundError:
            continue  # removed since the listing
    return found


def _read_values(folder: str, problems: Problems) -> list[tuple[str, str]]:
    values = []
    for key, path in _key_files(folder, problems):
        try:
            values.append((key, read_local_file(path).decode("utf-8")))
        except FileNotFoundError:
            continue  # deleted since the listing (MLflow deletes tags by removing the file)
        except UnicodeDecodeError as error:
            problems.skip(f"{path}: not valid UTF-8 (byte {error.start})")
        except OSError as error:
            problems.skip(f"{path}: cannot be read ({error.strerror or error})")
    return values


# The longest tail of a line a position check digests.
_CHECK_BYTES = 4096


def line_check(handle, position: int) -> str | None:
    """A digest of the line of an open metric file that ends at byte ``position`` (its last
    4 KiB at most; None at 0 or past the end, where no such line is).

    Example::

        >>> import io
        >>> line_check(io.BytesIO(b"1 0.5 0\\n2 0.25 1\\n"), 8) == line_check(io.BytesIO(b"1 0.5 0\\n"), 8)
        True
    """
    import hashlib

    if position <= 0:
        return None
    start = max(0, position - _CHECK_BYTES)
    handle.seek(start)
    data = handle.read(position - start)
    if len(data) != position - start:
        return None
    line = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
    return hashlib.sha1(line).hexdigest()[:16]


def read_metric_file(
    path: str, problems: Problems, after: int = 0, upto: int | None = None
) -> tuple[list[int], list[float], list[int]]:
    """The points of one metric file as columns (timestamps ms, values, steps), duplicates once.

    A last line without its newline is a point still being written: it is left for the next
    read, not parsed half-written. Exact duplicate lines (MLflow 3 writes some points twice)
    are kept once, at their first occurrence.

    With ``after`` / ``upto`` (byte positions, as :meth:`FileStore.metric_positions` reports
    them), only the points whose line ends after byte ``after`` and at or before byte ``upto``
    are returned, and only where that line is the point's first occurrence in the file: reads of
    consecutive ranges return every distinct point exactly once, whatever the ranges' bounds.

    Example::

        >>> read_metric_file("/nonexistent", Problems("FAILFAST"))
        ([], [], [])
    """
    try:
        data = read_local_file(path, upto)
    except FileNotFoundError:
        return [], [], []
    except IsADirectoryError:
        problems.skip(f"{path}: expected a metric file, found a folder")
        return [], [], []
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line still being written
    stale = stale_last_line(path, data, len(lines))
    if stale is not None:
        problems.skip(stale)
    first = 0
    if after > 0:
        ends = list(accumulate(len(line) + 1 for line in lines))
        first = bisect_right(ends, after)
        if first == len(lines):
            return [], [], []  # nothing new after `after`
    return _parse_file_lines(path, lines, first, problems)


def _parse_file_lines(path: str, lines: list[bytes], first: int, problems: Problems):
    """The per-line path: the terminated ``lines`` of one file as columns, from line ``first``."""
    fast = _parse_three_field_lines(lines, first)
    if fast is not None:
        return fast
    return _parse_lines_one_by_one(path, lines, first, problems)


def _parse_three_field_lines(lines: list[bytes], first: int):
    """The common case in bulk: every line ``timestamp value step``, no duplicate line."""
    if len(set(lines)) != len(lines) or set(map(bytes.count, lines, repeat(b" "))) - {2}:
        return None
    tokens = b" ".join(lines[first:]).split(b" ")
    try:
        timestamps, values, steps = list(map(int, tokens[0::3])), list(map(float, tokens[1::3])), list(map(int, tokens[2::3]))
    except ValueError:
        return None
    integers = timestamps + steps
    if integers and (min(integers) not in _INT64 or max(integers) not in _INT64):
        return None
    return timestamps, values, steps


# The range of the table's timestamp and step columns (Python reads any integer).
_INT64 = range(-(2**63), 2**63)


def _parse_lines_one_by_one(path: str, lines: list[bytes], first: int, problems: Problems):
    timestamps, values, steps = [], [], []
    seen = set()
    for number, raw in enumerate(lines, start=1):
        fields = raw.split()
        try:
            if len(fields) not in (2, 3, 5):
                raise ValueError(f"{len(fields)} fields")
            timestamp, value = int(fields[0]), float(fields[1])
            step = int(fields[2]) if len(fields) >= 3 else 0
            if timestamp not in _INT64 or step not in _INT64:
                raise ValueError("beyond 64 bits")
        except ValueError:
            if number > first:
                problems.skip(
                    f"{path}, line {number}: expected 'timestamp value step' (2, 3 or 5 space-separated "
                    f"fields; timestamp and step 64-bit integers), got {raw[:200].decode('utf-8', 'replace')!r}"
                )
            continue
        identity = (timestamp, step, value if value == value else "nan")
        if identity in seen:
            continue
        seen.add(identity)
        if number > first:
            timestamps.append(timestamp)
            values.append(value)
            steps.append(step)
    return timestamps, values, steps


def _latest_values(runs, problems: Problems) -> dict[str, list[tuple[str, float]]]:
    """``run folder -> [(key, latest value)]`` for the runs' metric files, parsed in bulk; the
    latest value as MLflow picks it (see :func:`.metric_files.latest_values`)."""
    owners, files = [], []
    for run_dir, _meta in runs:
        for key, path in _key_files(os.path.join(run_dir, "metrics"), problems):
            owners.append((run_dir, key))
            files.append((path, 0, None))
    found: dict[str, list[tuple[str, float]]] = {}
    for chunk in metric_files.read_metric_files(files, problems):
        for (run_dir, key), value in zip(owners[chunk.first:], metric_files.latest_values(chunk)):
            if value is not None:
                found.setdefault(run_dir, []).append((key, value))
    return found


def _latest_point(path: str, problems: Problems) -> float | None:
    """The latest value of one metric file as MLflow picks it: ``max`` by (step, timestamp,
    value), first on ties (the per-line reference of :func:`_latest_values`)."""
    timestamps, values, steps = read_metric_file(path, problems)
    if not values:
        return None
    if any(map(math.isnan, values)):
        return _python_max(steps, timestamps, values)
    return max(zip(steps, timestamps, values))[2]


def _python_max(steps, timestamps, values) -> float:
    # NaN compares false both ways, so Python's max() keeps whichever came first: replay it.
    best_key = None
    for key in zip(steps, timestamps, values):
        if best_key is None or key > best_key:
            best_key = key
    return best_key[2]
