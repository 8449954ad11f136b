"""MLflow's REST JSON (experiments, runs, metric points) as Arrow batches of the package's tables.

MLflow serializes its protobuf messages to JSON: unset fields are absent, int64 fields are
numbers (some servers write them as strings), and non-finite doubles are the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``. Every record is checked: a record that does not parse is a
:class:`~pyspark_experiments.errors.MalformedRecordError` naming the run and field (or, under
``mode PERMISSIVE``, skipped and reported), never silently dropped.

Example::

    >>> run = {"info": {"run_id": "r1", "experiment_id": "1", "status": "FINISHED", "start_time": 5,
    ...                 "lifecycle_stage": "active"},
    ...        "data": {"params": [{"key": "lr", "value": "0.1"}]}}
    >>> next(key_value_batches("params", [run])).to_pylist()
    [{'experiment_id': '1', 'run_id': 'r1', 'key': 'lr', 'value': '0.1'}]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import pyarrow as pa

from ... import tables
from ..planning import BATCH_ROWS, batches_from_columns, ms_to_us
from ..problems import Problems

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class BadRecord(ValueError):
    """A field that does not parse; the caller names the record."""


def as_float(value, what: str) -> float | None:
    """A JSON double (number, or ``"NaN"``/``"Infinity"``/``"-Infinity"``) as a float.

    Example::

        >>> as_float("NaN", "value") != as_float("NaN", "value")
        True
        >>> as_float(2, "value")
        2.0
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRecord(f"{what}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value in _SPECIAL:
            return _SPECIAL[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise BadRecord(f"{what}: expected a number, got {str(value)[:80]!r}")


def as_int(value, what: str) -> int | None:
    """A JSON int64 (a number, or a string of digits) as an int.

    Example::

        >>> as_int("1099511627776", "step")
        1099511627776
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRecord(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise BadRecord(f"{what}: expected an integer, got {str(value)[:80]!r}")


def as_str(value, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadRecord(f"{what}: expected a string, got {type(value).__name__}")


def key_values(items, what: str) -> list[tuple[str, str | None]]:
    """``[{"key": k, "value": v}, ...]`` as sorted ``(k, v)`` pairs."""
    return sorted((item["key"], as_str(item.get("value"), f"{what} {item['key']!r}")) for item in _keyed(items, what))


def _keyed(items, what: str) -> list[dict]:
    """``items`` checked to be a list (or null) of objects with a string ``key``."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadRecord(f"{what}: expected a list, got {type(items).__name__}")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise BadRecord(f"{what}: expected {{'key': ..., 'value': ...}}, got {str(item)[:80]!r}")
    return items


def run_info(run) -> dict:
    """The ``info`` of a run's JSON, checked: run id, experiment id, times, status."""
    if not isinstance(run, dict) or not isinstance(run.get("info"), dict):
        raise BadRecord(f"expected a run with an 'info' object, got {str(run)[:80]!r}")
    info = run["info"]
    run_id = info.get("run_id") or info.get("run_uuid")
    if not isinstance(run_id, str) or not run_id:
        raise BadRecord("run without 'run_id'")
    experiment_id = info.get("experiment_id")
    if experiment_id is None or not isinstance(experiment_id, (str, int)) or isinstance(experiment_id, bool):
        raise BadRecord(f"run {run_id}: no 'experiment_id'")
    return {
        "run_id": run_id,
        "experiment_id": str(experiment_id),
        "start_time": as_int(info.get("start_time"), f"run {run_id} start_time"),
        "end_time": as_int(info.get("end_time"), f"run {run_id} end_time"),
        "status": as_str(info.get("status"), f"run {run_id} status"),
        "artifact_uri": as_str(info.get("artifact_uri"), f"run {run_id} artifact_uri"),
        "run_name": as_str(info.get("run_name"), f"run {run_id} run_name"),
        "user_id": as_str(info.get("user_id"), f"run {run_id} user_id"),
        "lifecycle_stage": as_str(info.get("lifecycle_stage"), f"run {run_id} lifecycle_stage"),
    }


def _data(run, run_id: str, part: str):
    data = run.get("data") or {}
    if not isinstance(data, dict):
        raise BadRecord(f"run {run_id}: 'data' is not an object")
    return data.get(part)


def latest_metrics(run, run_id: str) -> list[tuple[str, float | None, int | None, int | None]]:
    """A run's latest metrics as ``(key, value, step, timestamp ms)``, sorted by key."""
    found = []
    for item in _keyed(_data(run, run_id, "metrics"), f"run {run_id} metrics"):
        key = item["key"]
        found.append((
            key,
            as_float(item.get("value"), f"run {run_id} metric {key!r} value"),
            as_int(item.get("step", 0), f"run {run_id} metric {key!r} step"),
            as_int(item.get("timestamp"), f"run {run_id} metric {key!r} timestamp"),
        ))
    return sorted(found)


def dataset_inputs(run, run_id: str) -> list[dict]:
    """A run's ``inputs.dataset_inputs`` as rows of the ``inputs`` table (without ids)."""
    inputs = run.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise BadRecord(f"run {run_id}: 'inputs' is not an object")
    items = inputs.get("dataset_inputs") or []
    if not isinstance(items, list):
        raise BadRecord(f"run {run_id} inputs.dataset_inputs: expected a list")
    rows = []
    for item in items:
        dataset = item.get("dataset") if isinstance(item, dict) else None
        if not isinstance(dataset, dict):
            raise BadRecord(f"run {run_id} inputs.dataset_inputs: an input without 'dataset'")
        tags = key_values(item.get("tags"), f"run {run_id} dataset input tags")
        what = f"run {run_id} dataset"
        rows.append({
            "dataset_name": as_str(dataset.get("name"), f"{what} name"),
            "dataset_digest": as_str(dataset.get("digest"), f"{what} digest"),
            "dataset_source_type": as_str(dataset.get("source_type"), f"{what} source_type"),
            "dataset_source": as_str(dataset.get("source"), f"{what} source"),
            "dataset_schema": as_str(dataset.get("schema"), f"{what} schema"),
            "dataset_profile": as_str(dataset.get("profile"), f"{what} profile"),
            "context": dict(tags).get("mlflow.data.context"),
            "tags": tags,
        })
    rows.sort(key=lambda r: (r["dataset_name"] or "", r["dataset_digest"] or "", r["context"] or ""))
    return rows


def _checked(runs: Iterable[dict], problems: Problems, build):
    """``build(run, info)`` for each run; a run that does not parse goes to ``problems``."""
    for run in runs:
        try:
            info = run_info(run)
            yield info, build(run, info)
        except BadRecord as error:
            run_id = run.get("info", {}).get("run_id") if isinstance(run, dict) and isinstance(run.get("info"), dict) else None
            problems.skip(f"run {run_id or '?'} from the tracking server: {error}")


def runs_batches(runs: Iterable[dict], problems: Problems | None = None) -> Iterator[pa.RecordBatch]:
    """The ``runs`` table from ``runs/search`` or ``runs/get`` JSON runs (sorted by run id).

    Example::

        >>> run = {"info": {"run_id": "r1", "experiment_id": "1", "status": "FINISHED"},
        ...        "data": {"metrics": [{"key": "loss", "value": "NaN", "step": 3, "timestamp": 9}]}}
        >>> next(runs_batches([run])).column("metrics").to_pylist()
        [[('loss', nan)]]
    """
    problems = problems or Problems("FAILFAST")

    def build(run, info):
        rid = info["run_id"]
        return (
            [(k, v) for k, v, _, _ in latest_metrics(run, rid)],
            key_values(_data(run, rid, "params"), f"run {rid} params"),
            key_values(_data(run, rid, "tags"), f"run {rid} tags"),
        )

    rows = sorted(_checked(runs, problems, build), key=lambda r: r[0]["run_id"])
    yield from batches_from_columns(tables.RUNS, {
        "run_id": [i["run_id"] for i, _ in rows],
        "experiment_id": [i["experiment_id"] for i, _ in rows],
        "metrics": [b[0] for _, b in rows],
        "params": [b[1] for _, b in rows],
        "tags": [b[2] for _, b in rows],
        "start_time": [ms_to_us(i["start_time"]) for i, _ in rows],
        "end_time": [ms_to_us(i["end_time"]) for i, _ in rows],
        "status": [i["status"] for i, _ in rows],
        "artifact_uri": [i["artifact_uri"] for i, _ in rows],
        "run_name": [i["run_name"] for i, _ in rows],
        "user_id": [i["user_id"] for i, _ in rows],
        "lifecycle_stage": [i["lifecycle_stage"] for i, _ in rows],
        "parent_run_id": [dict(b[2]).get(tables.PARENT_RUN_TAG) for _, b in rows],
    })


def key_value_batches(table: str, runs: Iterable[dict], problems: Problems | None = None) -> Iterator[pa.RecordBatch]:
    """The ``params`` or ``tags`` table from JSON runs, sorted by run id and key."""
    problems = problems or Problems("FAILFAST")
    rows = []
    for info, pairs in _checked(runs, problems, lambda run, info: key_values(_data(run, info["run_id"], table),
                                                                             f"run {info['run_id']} {table}")):
        rows.extend((info["run_id"], key, value, info["experiment_id"]) for key, value in pairs)
    rows.sort()
    yield from batches_from_columns(table, {
        "experiment_id": [r[3] for r in rows],
        "run_id": [r[0] for r in rows],
        "key": [r[1] for r in rows],
        "value": [r[2] for r in rows],
    })


def inputs_batches(runs: Iterable[dict], problems: Problems | None = None) -> Iterator[pa.RecordBatch]:
    """The ``inputs`` table from JSON runs' ``inputs.dataset_inputs``."""
    problems = problems or Problems("FAILFAST")
    rows = []
    for info, inputs in sorted(_checked(runs, problems, lambda run, info: dataset_inputs(run, info["run_id"])),
                               key=lambda r: r[0]["run_id"]):
        rows.extend({"experiment_id": info["experiment_id"], "run_id": info["run_id"], **row} for row in inputs)
    columns = {name: [r[name] for r in rows] for name in tables.arrow_schema(tables.INPUTS).names}
    yield from batches_from_columns(tables.INPUTS, columns)


def experiments_batches(experiments: Iterable[dict], problems: Problems | None = None) -> Iterator[pa.RecordBatch]:
    """The ``experiments`` table from ``experiments/search`` JSON, sorted by id (numerically when numeric).

    Example::

        >>> e = {"experiment_id": "3", "name": "x", "lifecycle_stage": "active", "creation_time": 1}
        >>> next(experiments_batches([e])).column("name").to_pylist()
        ['x']
    """
    problems = problems or Problems("FAILFAST")
    rows = []
    for experiment in experiments:
        try:
            rows.append(experiment_row(experiment))
        except BadRecord as error:
            problems.skip(f"experiment from the tracking server: {error}")
    rows.sort(key=lambda r: (not r["experiment_id"].isdigit(), int(r["experiment_id"]) if r["experiment_id"].isdigit() else 0,
                             r["experiment_id"]))
    columns = {name: [r[name] for r in rows] for name in tables.arrow_schema(tables.EXPERIMENTS).names}
    yield from batches_from_columns(tables.EXPERIMENTS, columns)


def experiment_row(experiment) -> dict:
    if not isinstance(experiment, dict) or experiment.get("experiment_id") in (None, ""):
        raise BadRecord(f"expected an experiment with 'experiment_id', got {str(experiment)[:80]!r}")
    eid = str(experiment["experiment_id"])
    name = as_str(experiment.get("name"), f"experiment {eid} name")
    if name is None:
        raise BadRecord(f"experiment {eid}: no 'name'")
    return {
        "experiment_id": eid,
        "name": name,
        "artifact_location": as_str(experiment.get("artifact_location"), f"experiment {eid} artifact_location"),
        "lifecycle_stage": as_str(experiment.get("lifecycle_stage"), f"experiment {eid} lifecycle_stage"),
        "creation_time": ms_to_us(as_int(experiment.get("creation_time"), f"experiment {eid} creation_time")),
        "last_update_time": ms_to_us(as_int(experiment.get("last_update_time"), f"experiment {eid} last_update_time")),
        "tags": key_values(experiment.get("tags"), f"experiment {eid} tags"),
    }


class MetricBatcher:
    """Collects metric points of many series and hands out ``metrics`` batches of ``BATCH_ROWS``.

    Example::

        >>> batcher = MetricBatcher()
        >>> batcher.add("1", "r1", "loss", [{"key": "loss", "value": 0.5, "step": 0, "timestamp": 7}])
        >>> [b.num_rows for b in batcher.flush()]
        [1]
    """

    def __init__(self, problems: Problems | None = None) -> None:
        self.problems = problems or Problems("FAILFAST")
        self._columns: dict[str, list] = {name: [] for name in tables.arrow_schema(tables.METRICS).names}

    @property
    def rows(self) -> int:
        return len(self._columns["run_id"])

    def add(self, experiment_id: str, run_id: str, key: str, points: list) -> None:
        columns = self._columns
        for point in points:
            try:
                if not isinstance(point, dict):
                    raise BadRecord(f"expected a metric point object, got {str(point)[:80]!r}")
                if point.get("key", key) != key:
                    raise BadRecord(f"a point of metric {point.get('key')!r} in the history of {key!r}")
                value = as_float(point.get("value"), "value")
                step = as_int(point.get("step", 0), "step")
                timestamp = as_int(point.get("timestamp"), "timestamp")
            except BadRecord as error:
                self.problems.skip(f"run {run_id} metric {key!r} from the tracking server: {error}")
                continue
            columns["experiment_id"].append(experiment_id)
            columns["run_id"].append(run_id)
            columns["key"].append(key)
            columns["value"].append(value)
            columns["step"].append(step)
            columns["timestamp"].append(ms_to_us(timestamp))

    def full(self) -> bool:
        return self.rows >= BATCH_ROWS

    def flush(self) -> Iterator[pa.RecordBatch]:
        columns, self._columns = self._columns, {name: [] for name in self._columns}
        yield from batches_from_columns(tables.METRICS, columns)
