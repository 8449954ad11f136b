"""Rows of the ``models``, ``registered_models`` and ``model_versions`` tables as Arrow batches.

The SQL and file backends read MLflow's records their own way and hand plain Python rows
(dicts, times in epoch milliseconds) to the builders here, which sort them and build record
batches of the tables' schemas (:mod:`pyspark_experiments.tables`).

Example::

    >>> from pyspark_experiments.stores.models import registered_model_batches
    >>> rows = [{"name": "m", "description": None, "creation_time": 0, "last_updated_time": 0,
    ...          "tags": {"team": "x"}, "aliases": {"champion": "1"}}]
    >>> next(registered_model_batches(rows)).num_rows
    1
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyarrow as pa

from .. import tables
from .planning import BATCH_ROWS, ms_to_us

#: MLflow's ``LoggedModelStatus`` as stored (an integer in both stores).
LOGGED_MODEL_STATUSES = {0: "UNSPECIFIED", 1: "PENDING", 2: "READY", 3: "FAILED"}
#: The stage MLflow gives a deleted model version (the row stays in the store).
STAGE_DELETED_INTERNAL = "Deleted_Internal"


def logged_model_status(value) -> str | None:
    """A logged model's status name from what the store holds (an integer, or already a name).

    Example::

        >>> logged_model_status(2), logged_model_status("READY")
        ('READY', 'READY')
    """
    if value is None:
        return None
    if isinstance(value, int) or str(value).isdigit():
        return LOGGED_MODEL_STATUSES.get(int(value), str(value))
    return str(value)


def version_admitted(current_stage: str | None, view_type: str) -> bool:
    """Whether a model version passes the view type: deleted versions are ``DELETED_ONLY``.

    Example::

        >>> version_admitted("Deleted_Internal", "ACTIVE_ONLY"), version_admitted("None", "ACTIVE_ONLY")
        (False, True)
    """
    deleted = current_stage == STAGE_DELETED_INTERNAL
    return {"ACTIVE_ONLY": not deleted, "DELETED_ONLY": deleted}.get(view_type, True)


_LOGGED_MODEL_URI = re.compile(r"^models:/(m-[0-9a-f]{32})/?$")


def model_id_from_source(source: str | None) -> str | None:
    """The logged model a version's source names (``models:/m-<32 hex>``), else ``None``.

    Example::

        >>> model_id_from_source("models:/m-0123456789abcdef0123456789abcdef")
        'm-0123456789abcdef0123456789abcdef'
        >>> model_id_from_source("runs:/abc/model") is None
        True
    """
    match = _LOGGED_MODEL_URI.match(source or "")
    return match.group(1) if match else None


def _pairs(mapping) -> list[tuple[str, str | None]]:
    return sorted((str(k), None if v is None else str(v)) for k, v in (mapping or {}).items())


def _batches(table: str, columns: dict[str, list]) -> Iterator[pa.RecordBatch]:
    schema = tables.arrow_schema(table)
    if not columns[schema.names[0]]:
        return
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    yield from pa.Table.from_arrays(arrays, schema=schema).to_batches(max_chunksize=BATCH_ROWS)


def metric_sort_key(metric: dict) -> tuple:
    return (
        metric["key"], metric["step"], metric["timestamp"] or 0, metric.get("run_id") or "",
        metric.get("dataset_name") or "", metric.get("dataset_digest") or "", repr(metric["value"]),
    )


def model_batches(models: list[dict]) -> Iterator[pa.RecordBatch]:
    """``models`` rows: dicts with the table's columns, times in ms, maps as dicts, ``metrics`` a
    list of dicts (key, value, step, timestamp ms, run_id, dataset_name, dataset_digest).

    Example::

        >>> m = {"model_id": "m-1", "experiment_id": "1", "name": "n", "source_run_id": None,
        ...      "status": "READY", "model_type": None, "artifact_location": "/a",
        ...      "creation_time": 1, "last_updated_time": 2, "lifecycle_stage": "active",
        ...      "params": {}, "tags": {}, "metrics": [{"key": "acc", "value": 0.9, "step": 0,
        ...      "timestamp": 5, "run_id": "r", "dataset_name": None, "dataset_digest": None}]}
        >>> next(model_batches([m])).column("metrics")[0][0]["key"].as_py()
        'acc'
    """
    names = tables.arrow_schema(tables.MODELS).names
    columns: dict[str, list] = {name: [] for name in names}
    for model in sorted(models, key=lambda m: (m["experiment_id"], m["model_id"])):
        for name in names:
            value = model.get(name)
            if name in ("creation_time", "last_updated_time"):
                value = ms_to_us(value)
            elif name in ("params", "tags"):
                value = _pairs(value)
            elif name == "metrics":
                value = [
                    {**metric, "timestamp": ms_to_us(metric["timestamp"])}
                    for metric in sorted(value or [], key=metric_sort_key)
                ]
            columns[name].append(value)
    yield from _batches(tables.MODELS, columns)


def registered_model_batches(models: list[dict]) -> Iterator[pa.RecordBatch]:
    """``registered_models`` rows: name, description, times in ms, tags and aliases as dicts."""
    names = tables.arrow_schema(tables.REGISTERED_MODELS).names
    columns: dict[str, list] = {name: [] for name in names}
    for model in sorted(models, key=lambda m: m["name"]):
        columns["name"].append(model["name"])
        columns["description"].append(model.get("description"))
        columns["creation_time"].append(ms_to_us(model.get("creation_time")))
        columns["last_updated_time"].append(ms_to_us(model.get("last_updated_time")))
        columns["tags"].append(_pairs(model.get("tags")))
        columns["aliases"].append(_pairs(model.get("aliases")))
    yield from _batches(tables.REGISTERED_MODELS, columns)


def model_version_batches(versions: list[dict]) -> Iterator[pa.RecordBatch]:
    """``model_versions`` rows: the table's columns, ``version`` any integer-like value, times in
    ms, tags a dict, aliases a list."""
    names = tables.arrow_schema(tables.MODEL_VERSIONS).names
    columns: dict[str, list] = {name: [] for name in names}
    for version in sorted(versions, key=lambda v: (v["name"], int(v["version"]))):
        for name in names:
            value = version.get(name)
            if name == "version":
                value = str(int(value))
            elif name in ("creation_time", "last_updated_time"):
                value = ms_to_us(value)
            elif name == "tags":
                value = _pairs(value)
            elif name == "aliases":
                value = sorted(value or [])
            columns[name].append(value)
    yield from _batches(tables.MODEL_VERSIONS, columns)
