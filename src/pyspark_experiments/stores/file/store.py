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

import os
from collections.abc import Iterator
from dataclasses import replace

import pyarrow as pa

from ... import tables
from ...errors import MalformedRecordError, StoreNotFoundError
from ..artifacts import plan_artifacts, read_artifacts
from ..base import (
    RUN_STATUSES,
    ExperimentRef,
    MetricPosition,
    Partition,
    Selection,
    Store,
    StoreCapabilities,
    lifecycle_stages,
)
from ..fingerprints import fingerprint
from ..models import model_batches, model_version_batches, registered_model_batches
from ..planning import (
    BATCH_ROWS,
    batches_from_columns,
    default_partition_points,
    metric_units,
    ms_to_us,
    pack_partitions,
    partition_size,
)
from ..problems import Problems
from .meta import META, file_stats, key_files, read_values, read_yaml, valid_meta
from .metrics import latest_values_of_runs, line_check, metric_file_sizes, read_metric_files
from .models import logged_models, model_versions, registry
from .traces import FileTraceTables

TRASH = ".trash"
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


class FileStore(FileTraceTables, Store):
    """Reads an MLflow file store (its trace tables: :class:`~.traces.FileTraceTables`)."""

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
            recorded = str(meta.get("experiment_id", os.path.basename(path)))
            if recorded != os.path.basename(path):  # MLflow ignores such an experiment, its runs with it
                raise MalformedRecordError(
                    f"{os.path.join(path, META)}: experiment_id {recorded!r} is not its folder's name "
                    f"{os.path.basename(path)!r}"
                )
            stage = meta.get("lifecycle_stage", "active")
            if stage in stages:
                found.append(ExperimentRef(recorded, meta.get("name"), stage))
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
        if selection.table in tables.TRACE_TABLE_NAMES:
            return self._plan_trace_tables(selection)
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
            counts += [(run, key, size // _BYTES_PER_POINT + 1) for key, size in metric_file_sizes(metrics_dir, probe)]
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
        trace_fingerprints=True,
        tables=tables.ALL_TABLE_NAMES,
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
            for key, size in metric_file_sizes(os.path.join(experiment_path, run_name, "metrics"), problems):
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
                if meta and not valid_meta(meta, os.path.join(run_dir, META), "run", problems):
                    continue
                if not selection.admits_run(run_name, meta.get("lifecycle_stage", "active"), meta.get("start_time")):
                    continue
            digests = {"run": hashlib.sha1(f"{meta_stat.st_size} {meta_stat.st_mtime_ns}".encode()).hexdigest()}
            for folder in ("params", "tags", "inputs"):
                lines: list[str] = []
                file_stats(os.path.join(run_dir, folder), folder, lines)
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
        elif table in tables.TRACE_TABLE_NAMES:
            yield from self._read_trace_tables(partition, problems)
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
            if not valid_meta(meta, meta_path, "run", problems):
                continue
            if selection.admits_run(run_id, meta.get("lifecycle_stage", "active"), meta.get("start_time")):
                yield run_dir, meta

    def _read_runs(self, runs, problems: Problems) -> Iterator[pa.RecordBatch]:
        columns = {name: [] for name in tables.arrow_schema(tables.RUNS).names}
        latest = latest_values_of_runs(runs, problems)
        for run_dir, meta in runs:
            columns["run_id"].append(meta.get("run_id") or meta.get("run_uuid"))
            columns["experiment_id"].append(str(meta.get("experiment_id")))
            columns["metrics"].append(sorted(latest.get(run_dir, ())))
            columns["params"].append(read_values(os.path.join(run_dir, "params"), problems))
            tags = read_values(os.path.join(run_dir, "tags"), problems)
            columns["tags"].append(tags)
            columns["start_time"].append(ms_to_us(meta.get("start_time")))
            columns["end_time"].append(ms_to_us(meta.get("end_time")))
            columns["status"].append(_status(meta.get("status")))
            columns["artifact_uri"].append(meta.get("artifact_uri"))
            columns["run_name"].append(meta.get("run_name"))
            columns["user_id"].append(meta.get("user_id"))
            columns["lifecycle_stage"].append(meta.get("lifecycle_stage", "active"))
            columns["parent_run_id"].append(dict(tags).get(tables.PARENT_RUN_TAG))
        yield from batches_from_columns(tables.RUNS, columns)

    def _read_key_values(self, table: str, runs, problems: Problems) -> Iterator[pa.RecordBatch]:
        columns = {"experiment_id": [], "run_id": [], "key": [], "value": []}
        for run_dir, meta in runs:
            for key, value in read_values(os.path.join(run_dir, table), problems):
                columns["experiment_id"].append(str(meta.get("experiment_id")))
                columns["run_id"].append(os.path.basename(run_dir))
                columns["key"].append(key)
                columns["value"].append(value)
        yield from batches_from_columns(table, columns)

    def _read_experiments(self, experiment_dirs, problems: Problems) -> Iterator[pa.RecordBatch]:
        columns = {name: [] for name in tables.arrow_schema(tables.EXPERIMENTS).names}
        for path in experiment_dirs:
            meta = read_yaml(os.path.join(path, META), problems, required=True)
            if meta is None or not valid_meta(meta, os.path.join(path, META), "experiment", problems):
                continue
            columns["experiment_id"].append(str(meta.get("experiment_id")))
            columns["name"].append(meta.get("name"))
            columns["artifact_location"].append(meta.get("artifact_location"))
            columns["lifecycle_stage"].append(meta.get("lifecycle_stage", "active"))
            columns["creation_time"].append(ms_to_us(meta.get("creation_time")))
            columns["last_update_time"].append(ms_to_us(meta.get("last_update_time")))
            columns["tags"].append(read_values(os.path.join(path, "tags"), problems))
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
                    found = [(k, path, 0, None) for k, path in key_files(metrics_dir, problems) if selection.admits_metric_key(k)]
                else:
                    found = [(key, os.path.join(metrics_dir, key), *(bounds or (0, None)))]
                for k, path, after, upto in found:
                    keys.append(k)
                    runs.append(run_id)
                    experiments.append(experiment_id)
                    files.append((path, after, upto))
        keys, runs, experiments = (pa.array(column, pa.string()) for column in (keys, runs, experiments))
        timestamp_type = schema.field("timestamp").type
        for chunk in read_metric_files(files, problems):
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

    # -- artifacts, logged models, model registry (their folders: see .models) ----------------

    def _plan_model_tables(self, selection: Selection) -> list[Partition]:
        if selection.table != tables.ARTIFACTS:
            return [Partition(0, selection, selection.experiment_ids)]
        problems = Problems(selection.mode, context=f"file store {self.root!r}, planning artifacts")
        runs = [
            (str(meta.get("experiment_id")), os.path.basename(run_dir), meta.get("artifact_uri"))
            for run_dir, meta in self._admitted_runs(selection, self._run_dirs(selection), problems)
        ]
        problems.report()
        return plan_artifacts(selection, runs)

    def _read_model_tables(self, partition: Partition, problems: Problems) -> Iterator[pa.RecordBatch]:
        table = partition.selection.table
        if table == tables.ARTIFACTS:
            yield from read_artifacts(partition)
        elif table == tables.MODELS:
            yield from model_batches(logged_models(self.experiment_dir, partition.selection, problems))
        elif table == tables.REGISTERED_MODELS:
            yield from registered_model_batches([model for model, _ in registry(self.root, problems)])
        elif table == tables.MODEL_VERSIONS:
            yield from model_version_batches(model_versions(self.root, partition.selection, problems))


def _status(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        return RUN_STATUSES.get(value, str(value))
    return str(value)
