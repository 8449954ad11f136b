"""The tables ``artifacts``, ``models``, ``registered_models`` and ``model_versions`` over REST.

Endpoints: ``logged-models/search`` (MLflow 3, pages of 100 per experiment group),
``registered-models/search`` (pages of 1,000), ``model-versions/search`` (pages of 10,000),
and for ``artifacts`` the runs' listing (``runs/search``) then the artifacts API
(:mod:`.artifacts`). The server's search endpoints return active records only: deleted logged
models and deleted model versions are not served, so those tables take ``viewType``
``ACTIVE_ONLY`` over REST (other view types fail with a clear error instead of answering short).

Example::

    >>> rows = registered_model_rows({"registered_models": [{"name": "m", "creation_timestamp": "5",
    ...     "aliases": [{"alias": "champion", "version": "2"}], "tags": [{"key": "t", "value": "x"}]}]})
    >>> rows[0]["aliases"], rows[0]["tags"], rows[0]["creation_time"]
    ({'champion': '2'}, {'t': 'x'}, 5)
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from ... import tables
from ...errors import MalformedRecordError, UnsupportedStoreError
from ..artifacts import plan_artifacts
from ..base import Partition
from ..models import model_batches, model_id_from_source, model_version_batches, registered_model_batches
from ..planning import chunk
from . import convert
from .artifacts import read_artifacts_rest
from .work import RestWork

LOGGED_MODELS_PAGE_SIZE = 100
EXPERIMENTS_PER_MODEL_SEARCH = 100
REGISTERED_MODELS_PAGE_SIZE = 1_000
MODEL_VERSIONS_PAGE_SIZE = 10_000
#: The REST names of ``LoggedModelStatus`` and the names the tables use (as the direct stores).
_STATUSES = {
    "LOGGED_MODEL_STATUS_UNSPECIFIED": "UNSPECIFIED", "LOGGED_MODEL_PENDING": "PENDING",
    "LOGGED_MODEL_READY": "READY", "LOGGED_MODEL_UPLOAD_FAILED": "FAILED",
}


def _int(value, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MalformedRecordError(f"{what}: expected an integer, got {value!r}") from None


def _float(value, what: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)  # proto JSON writes NaN and the infinities as strings
    except (TypeError, ValueError):
        raise MalformedRecordError(f"{what}: expected a number, got {value!r}") from None


def _pairs(items, what: str) -> dict:
    found = {}
    for item in items or []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise MalformedRecordError(f"{what}: expected {{'key', 'value'}} objects, got {str(item)[:200]!r}")
        found[item["key"]] = item.get("value")
    return found


def _items(answer: dict, name: str, endpoint: str) -> list:
    items = answer.get(name, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise MalformedRecordError(f"{endpoint}: expected a list of objects in {name!r}")
    return items


def logged_model_rows(answer: dict) -> list[dict]:
    """Rows of the ``models`` table from one ``logged-models/search`` answer.

    Example::

        >>> answer = {"models": [{"info": {"model_id": "m-1", "experiment_id": "1", "name": "n",
        ...     "status": "LOGGED_MODEL_READY", "model_type": "", "source_run_id": "r",
        ...     "creation_timestamp_ms": 1, "last_updated_timestamp_ms": 2},
        ...     "data": {"params": [{"key": "p", "value": "1"}],
        ...              "metrics": [{"key": "acc", "value": "NaN", "step": "0", "timestamp": 3}]}}]}
        >>> row = logged_model_rows(answer)[0]
        >>> value = row["metrics"][0]["value"]
        >>> row["status"], row["model_type"], row["params"], value != value  # NaN
        ('READY', '', {'p': '1'}, True)
    """
    rows = []
    for model in _items(answer, "models", "logged-models/search"):
        info, data = model.get("info") or {}, model.get("data") or {}
        model_id = info.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise MalformedRecordError(f"logged-models/search: a model without a model_id: {str(info)[:200]!r}")
        what = f"logged model {model_id}"
        metrics = []
        for metric in data.get("metrics") or []:
            if not isinstance(metric, dict) or not isinstance(metric.get("key"), str):
                raise MalformedRecordError(f"{what}: a metric without a key: {str(metric)[:200]!r}")
            metrics.append({
                "key": metric["key"], "value": _float(metric.get("value"), f"{what} metric {metric['key']!r}"),
                "step": _int(metric.get("step", 0), f"{what} metric step") or 0,
                "timestamp": _int(metric.get("timestamp"), f"{what} metric timestamp"),
                "run_id": metric.get("run_id"),
                "dataset_name": metric.get("dataset_name"), "dataset_digest": metric.get("dataset_digest"),
            })
        status = info.get("status")
        rows.append({
            "model_id": model_id, "experiment_id": str(info.get("experiment_id")), "name": info.get("name"),
            # as mlflow's client reads the answer (LoggedModel.from_proto): a string left out is ""
            "source_run_id": info.get("source_run_id", ""),
            "status": _STATUSES.get(status, status), "model_type": info.get("model_type", ""),
            "artifact_location": info.get("artifact_uri"),
            "creation_time": _int(info.get("creation_timestamp_ms"), f"{what} creation_timestamp_ms"),
            "last_updated_time": _int(info.get("last_updated_timestamp_ms"), f"{what} last_updated_timestamp_ms"),
            "lifecycle_stage": "active",  # logged-models/search serves active models only
            "params": _pairs(data.get("params"), f"{what} params"), "tags": _pairs(info.get("tags"), f"{what} tags"),
            "metrics": metrics,
        })
    return rows


def registered_model_rows(answer: dict) -> list[dict]:
    """Rows of ``registered_models`` from one ``registered-models/search`` answer."""
    rows = []
    for model in _items(answer, "registered_models", "registered-models/search"):
        name = model.get("name")
        if not isinstance(name, str):
            raise MalformedRecordError(f"registered-models/search: a model without a name: {str(model)[:200]!r}")
        aliases = {}
        for alias in model.get("aliases") or []:
            if not isinstance(alias, dict) or "alias" not in alias:
                raise MalformedRecordError(f"registered model {name!r}: alias {alias!r}: expected {{'alias', 'version'}}")
            aliases[alias["alias"]] = str(alias.get("version"))
        rows.append({
            # the server leaves out an empty description; mlflow's client reads it as ""
            "name": name, "description": model.get("description", ""),
            "creation_time": _int(model.get("creation_timestamp"), f"registered model {name!r} creation_timestamp"),
            "last_updated_time": _int(model.get("last_updated_timestamp"), f"registered model {name!r} last_updated_timestamp"),
            "tags": _pairs(model.get("tags"), f"registered model {name!r} tags"), "aliases": aliases,
        })
    return rows


def model_version_rows(answer: dict) -> list[dict]:
    """Rows of ``model_versions`` from one ``model-versions/search`` answer.

    A version registered from a logged model names it in its source (``models:/<model_id>``)
    where the server answers no ``model_id`` (as the direct SQL store reads it).

    Example::

        >>> model_version_rows({"model_versions": [{"name": "m", "version": "2", "aliases": ["champion"],
        ...     "source": "models:/m-0123456789abcdef0123456789abcdef"}]})[0]["model_id"]
        'm-0123456789abcdef0123456789abcdef'
    """
    rows = []
    for version in _items(answer, "model_versions", "model-versions/search"):
        name = version.get("name")
        number = _int(version.get("version"), f"model version of {name!r}")
        if not isinstance(name, str) or number is None:
            raise MalformedRecordError(f"model-versions/search: a version without a name or number: {str(version)[:200]!r}")
        what = f"model version {name!r} {number}"
        aliases = version.get("aliases") or []
        if not isinstance(aliases, list):
            raise MalformedRecordError(f"{what}: aliases: expected a list, got {aliases!r}")
        rows.append({
            "name": name, "version": number, "source": version.get("source"), "run_id": version.get("run_id"),
            "model_id": version.get("model_id") or model_id_from_source(version.get("source")),
            "status": version.get("status"), "current_stage": version.get("current_stage"),
            "description": version.get("description"),
            "creation_time": _int(version.get("creation_timestamp"), f"{what} creation_timestamp"),
            "last_updated_time": _int(version.get("last_updated_timestamp"), f"{what} last_updated_timestamp"),
            "tags": _pairs(version.get("tags"), f"{what} tags"), "aliases": [str(a) for a in aliases],
        })
    return rows


def with_version_aliases(versions: list[dict], registered: list[dict]) -> list[dict]:
    """``versions`` with each one's aliases taken from the registered models' alias maps too.

    Example::

        >>> with_version_aliases([{"name": "m", "version": 2, "aliases": []}],
        ...                      [{"name": "m", "aliases": {"champion": "2"}}])[0]["aliases"]
        ['champion']
    """
    named: dict[tuple[str, int], set[str]] = {}
    for model in registered:
        for alias, version in model["aliases"].items():
            named.setdefault((model["name"], int(version)), set()).add(alias)
    return [{**v, "aliases": sorted(set(v["aliases"]) | named.get((v["name"], int(v["version"])), set()))} for v in versions]


def _only_active(store, selection, what: str) -> None:
    if selection.table in store.capabilities.active_only_tables and selection.view_type != "ACTIVE_ONLY":
        raise UnsupportedStoreError(
            f"table {selection.table!r} over a tracking server: {what} answers active records only, so viewType "
            f"{selection.view_type} cannot be served; use viewType ACTIVE_ONLY, or read the server's backend store "
            f"directly (its database URI) to see deleted ones"
        )


def plan_model_tables(store, selection) -> list[Partition]:
    """Partitions for the model tables (driver side): ``artifacts`` per chunk of runs, the
    others one partition (logged models per experiment, the registry store-wide)."""
    connection = store.connection
    if selection.table == tables.ARTIFACTS:
        runs = []
        for run in store.list_runs(selection):
            info = convert.run_info(run)
            runs.append((info["experiment_id"], info["run_id"], info["artifact_uri"]))
        return [Partition(p.index, selection, RestWork(connection, tuple(p.work))) for p in plan_artifacts(selection, runs)]
    if selection.table == tables.MODELS:
        _only_active(store, selection, "logged-models/search")
        if not selection.experiment_ids:
            return []
    elif selection.table == tables.MODEL_VERSIONS:
        _only_active(store, selection, "model-versions/search")
    return [Partition(0, selection, RestWork(connection, tuple(selection.experiment_ids)))]


def read_model_tables(client, partition: Partition) -> Iterator[pa.RecordBatch]:
    """Read one partition of a model table (executor side)."""
    selection = partition.selection
    table = selection.table
    if table == tables.ARTIFACTS:
        yield from read_artifacts_rest(client, partition)
        return
    if table == tables.MODELS:
        rows = []
        for group in chunk(list(partition.work.items), EXPERIMENTS_PER_MODEL_SEARCH):
            body = {"experiment_ids": list(group), "max_results": LOGGED_MODELS_PAGE_SIZE}
            for page in client.pages("POST", "logged-models/search", "models", body=body):
                rows.extend(logged_model_rows({"models": page}))
        if selection.run_ids is not None:
            rows = [r for r in rows if r["source_run_id"] in selection.run_ids]
        yield from model_batches(rows)
    elif table == tables.REGISTERED_MODELS:
        rows = []
        for page in client.pages("GET", "registered-models/search", "registered_models",
                                 params={"max_results": REGISTERED_MODELS_PAGE_SIZE}):
            rows.extend(registered_model_rows({"registered_models": page}))
        yield from registered_model_batches(rows)
    elif table == tables.MODEL_VERSIONS:
        rows = []
        for page in client.pages("GET", "model-versions/search", "model_versions", params={"max_results": MODEL_VERSIONS_PAGE_SIZE}):
            rows.extend(model_version_rows({"model_versions": page}))
        # model-versions/search answers no aliases: the registered models name them
        aliases = []
        for page in client.pages("GET", "registered-models/search", "registered_models",
                                 params={"max_results": REGISTERED_MODELS_PAGE_SIZE}):
            aliases.extend(registered_model_rows({"registered_models": page}))
        rows = with_version_aliases(rows, aliases)
        if selection.run_ids is not None:
            rows = [r for r in rows if r["run_id"] in selection.run_ids]
        yield from model_version_batches(rows)


__all__ = ["logged_model_rows", "model_version_rows", "plan_model_tables", "read_model_tables", "registered_model_rows"]
