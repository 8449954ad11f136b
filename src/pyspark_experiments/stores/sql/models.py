"""The SQL store's ``artifacts``, ``models``, ``registered_models`` and ``model_versions``
tables: MLflow's ``logged_model*`` and registry tables read into the rows of :mod:`..models`.

Example::

    >>> from pyspark_experiments.stores import open_store                              # doctest: +SKIP
    >>> from pyspark_experiments.stores.base import Selection                           # doctest: +SKIP
    >>> store = open_store(resolve_tracking_uri("sqlite:////tmp/mlflow.db"))            # doctest: +SKIP
    >>> [p.work for p in store.plan(Selection("registered_models", ()))]               # doctest: +SKIP
    [()]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pyarrow as pa

from ... import tables
from ..artifacts import plan_artifacts, read_artifacts
from ..base import Partition, Selection, lifecycle_stages
from ..models import (
    logged_model_status,
    model_batches,
    model_id_from_source,
    model_version_batches,
    registered_model_batches,
    version_admitted,
)


class SqlModelTables:
    """The model tables of :class:`~.store.SqlStore` (a part of it: the connection and query
    helpers are :class:`~.connections.SqlConnections`', the run selection the store's)."""

    # -- artifacts, logged models, model registry --------------------------------------------

    def _plan_model_tables(self, selection: Selection) -> list[Partition]:
        if selection.table != tables.ARTIFACTS:
            # Small tables: one partition (the registry is store-wide, models per experiment).
            return [Partition(0, selection, selection.experiment_ids)]
        with self._connect() as connection:
            run_ids = self._selected_run_ids(connection, selection)
            runs = self._query_in(
                connection, "SELECT experiment_id, run_uuid, artifact_uri FROM runs WHERE run_uuid IN ({in})", run_ids
            )
        return plan_artifacts(selection, [(str(e), r, uri) for e, r, uri in runs])

    def _read_model_tables(self, partition: Partition) -> Iterator[pa.RecordBatch]:
        table = partition.selection.table
        if table == tables.ARTIFACTS:
            yield from read_artifacts(partition)
            return
        with self._connect(reading=True) as connection:
            if table == tables.MODELS:
                yield from self._read_logged_models(connection, partition.selection)
            elif table == tables.REGISTERED_MODELS:
                yield from self._read_registered_models(connection)
            elif table == tables.MODEL_VERSIONS:
                yield from self._read_model_versions(connection, partition.selection)

    def _has_table(self, connection, table: str, column: str) -> bool:
        try:
            self._query(connection, f"SELECT {column} FROM {table} WHERE 1 = 0")
            return True
        except Exception:
            return False

    def _read_logged_models(self, connection, selection: Selection) -> Iterator[pa.RecordBatch]:
        if not self._has_table(connection, "logged_models", "model_id"):
            return  # a store written before MLflow 3 holds no logged models
        stages = lifecycle_stages(selection.view_type)
        rows = self._query_in(
            connection,
            "SELECT model_id, experiment_id, name, source_run_id, status, model_type, artifact_location, "
            "creation_timestamp_ms, last_updated_timestamp_ms, COALESCE(lifecycle_stage, 'active') "
            "FROM logged_models WHERE experiment_id IN ({in})",
            [int(e) for e in selection.experiment_ids],
        )
        wanted_runs = None if selection.run_ids is None else set(selection.run_ids)
        rows = [r for r in rows if r[9] in stages and (wanted_runs is None or r[3] in wanted_runs)]
        model_ids = [r[0] for r in rows]
        params, tags, metrics = defaultdict(dict), defaultdict(dict), defaultdict(list)
        for model_id, key, value in self._query_in(
            connection, "SELECT model_id, param_key, param_value FROM logged_model_params WHERE model_id IN ({in})", model_ids
        ):
            params[model_id][key] = value
        for model_id, key, value in self._query_in(
            connection, "SELECT model_id, tag_key, tag_value FROM logged_model_tags WHERE model_id IN ({in})", model_ids
        ):
            tags[model_id][key] = value
        for model_id, key, value, step, timestamp, run_id, dataset_name, dataset_digest in self._query_in(
            connection,
            "SELECT model_id, metric_name, metric_value, metric_step, metric_timestamp_ms, run_id, dataset_name, "
            "dataset_digest FROM logged_model_metrics WHERE model_id IN ({in})",
            model_ids,
        ):
            metrics[model_id].append({
                "key": key, "value": None if value is None else float(value), "step": int(step), "timestamp": timestamp,
                "run_id": run_id, "dataset_name": dataset_name, "dataset_digest": dataset_digest,
            })
        yield from model_batches([
            {
                "model_id": r[0], "experiment_id": str(r[1]), "name": r[2], "source_run_id": r[3],
                "status": logged_model_status(r[4]), "model_type": r[5], "artifact_location": r[6],
                "creation_time": r[7], "last_updated_time": r[8], "lifecycle_stage": r[9],
                "params": params[r[0]], "tags": tags[r[0]], "metrics": metrics[r[0]],
            }
            for r in rows
        ])

    def _registry_scope(self, connection, table: str) -> str:
        # MLflow 3.17 keeps the registry per workspace; a single-tenant server uses 'default'.
        return " WHERE workspace = 'default'" if self._has_table(connection, table, "workspace") else ""

    def _read_registered_models(self, connection) -> Iterator[pa.RecordBatch]:
        rows = self._query(
            connection,
            "SELECT name, description, creation_time, last_updated_time FROM registered_models"
            + self._registry_scope(connection, "registered_models"),
        )
        tags, aliases = defaultdict(dict), defaultdict(dict)
        for name, key, value in self._query(
            connection, "SELECT name, key, value FROM registered_model_tags" + self._registry_scope(connection, "registered_model_tags")
        ):
            tags[name][key] = value
        for name, alias, version in self._query(
            connection,
            "SELECT name, alias, version FROM registered_model_aliases" + self._registry_scope(connection, "registered_model_aliases"),
        ):
            aliases[name][alias] = str(version)
        yield from registered_model_batches([
            {"name": n, "description": d, "creation_time": c, "last_updated_time": u, "tags": tags[n], "aliases": aliases[n]}
            for n, d, c, u in rows
        ])

    def _read_model_versions(self, connection, selection: Selection) -> Iterator[pa.RecordBatch]:
        rows = self._query(
            connection,
            "SELECT name, version, source, run_id, status, current_stage, description, creation_time, "
            "last_updated_time FROM model_versions" + self._registry_scope(connection, "model_versions"),
        )
        rows = [
            r for r in rows
            if version_admitted(r[5], selection.view_type) and (selection.run_ids is None or r[3] in selection.run_ids)
        ]
        tags, aliases = defaultdict(dict), defaultdict(list)
        for name, version, key, value in self._query(
            connection,
            "SELECT name, version, key, value FROM model_version_tags" + self._registry_scope(connection, "model_version_tags"),
        ):
            tags[(name, int(version))][key] = value
        for name, alias, version in self._query(
            connection,
            "SELECT name, alias, version FROM registered_model_aliases" + self._registry_scope(connection, "registered_model_aliases"),
        ):
            aliases[(name, int(version))].append(alias)
        # MLflow's SQL registry stores no model id (search_model_versions answers None): a version
        # registered from a logged model names it in its source, models:/<model_id>.
        yield from model_version_batches([
            {
                "name": r[0], "version": r[1], "source": r[2], "run_id": r[3], "model_id": model_id_from_source(r[2]),
                "status": r[4], "current_stage": r[5], "description": r[6], "creation_time": r[7],
                "last_updated_time": r[8], "tags": tags[(r[0], int(r[1]))], "aliases": aliases[(r[0], int(r[1]))],
            }
            for r in rows
        ])
