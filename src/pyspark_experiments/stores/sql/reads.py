"""The SQL store's table reads (executor side): experiments, runs, params, tags, inputs and
metric points (by run, by series, by SQLite ``rowid`` span, by metric range), as Arrow batches.

Example::

    >>> RowidSpan(0, 1_000_000)
    RowidSpan(after=0, upto=1000000)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from ... import tables
from ..base import Partition
from ..planning import BATCH_ROWS, chunk
from .connections import typed_batch
from .dialects import IN_LIST
from .encodings import BOOL, FLOAT, INT, STR, as_array, map_column, metric_batches, ms_timestamps, nan_where, table_batches

_POINT_COLUMNS = [("run_id", STR), ("experiment_id", STR), ("key", STR), ("value", FLOAT), ("is_nan", BOOL),
                  ("step", INT), ("timestamp", INT)]


@dataclass(frozen=True)
class RowidSpan:
    """A partition's share of a SQLite ``metrics`` table: the rows with ``after < rowid <= upto``."""

    after: int
    upto: int


def _series_key(run_id: str, key: str) -> str:
    return f"{run_id}\x00{key}"


class SqlTableReads:
    """The table reads of :class:`~.store.SqlStore` (a part of it: the connection and query
    helpers are :class:`~.connections.SqlConnections`', the run selection the store's)."""

    def _read_experiments(self, connection, experiment_ids) -> Iterator[pa.RecordBatch]:
        ids = [int(e) for e in experiment_ids]
        rows = self._arrow_in(
            connection,
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, "
            "last_update_time FROM experiments WHERE experiment_id IN ({in})",
            ids,
            [("experiment_id", INT), ("name", STR), ("artifact_location", STR), ("lifecycle_stage", STR),
             ("creation_time", INT), ("last_update_time", INT)],
        ).sort_by("experiment_id")
        tags = self._arrow_in(
            connection, "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ({in})", ids,
            [("experiment_id", INT), ("key", STR), ("value", STR)],
        )
        schema = tables.arrow_schema(tables.EXPERIMENTS)
        yield from table_batches(schema, [
            rows["experiment_id"].cast(STR), rows["name"], rows["artifact_location"], rows["lifecycle_stage"],
            ms_timestamps(rows["creation_time"]), ms_timestamps(rows["last_update_time"]),
            map_column(rows["experiment_id"], tags["experiment_id"], tags["key"], tags["value"], schema.field("tags").type),
        ])

    def _read_runs(self, connection, run_ids) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        runs = self._arrow_in(
            connection,
            "SELECT run_uuid, experiment_id, start_time, end_time, status, artifact_uri, name, "
            "user_id, lifecycle_stage FROM runs WHERE run_uuid IN ({in})",
            run_ids,
            [("run_id", STR), ("experiment_id", STR), ("start_time", INT), ("end_time", INT), ("status", STR),
             ("artifact_uri", STR), ("run_name", STR), ("user_id", STR), ("lifecycle_stage", STR)],
        ).sort_by("run_id")
        latest = self._arrow_in(
            connection, "SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({in})", run_ids,
            [("run_id", STR), ("key", STR), ("value", FLOAT), ("is_nan", BOOL)],
        )
        params, tags = (
            self._arrow_in(connection, f"SELECT run_uuid, key, value FROM {name} WHERE run_uuid IN ({{in}})", run_ids,
                           [("run_id", STR), ("key", STR), ("value", STR)])
            for name in ("params", "tags")
        )
        schema = tables.arrow_schema(tables.RUNS)

        def as_map(name: str, entries: pa.Table, values) -> pa.Array:
            return map_column(runs["run_id"], entries["run_id"], entries["key"], values, schema.field(name).type)

        # parent_run_id: the parent tag's value, from the tags already read (one per run: the
        # tags table's primary key is (key, run_uuid)).
        parent = tags.filter(pc.equal(tags["key"], tables.PARENT_RUN_TAG))
        found = pc.index_in(runs["run_id"], value_set=as_array(parent["run_id"]))
        yield from table_batches(schema, [
            runs["run_id"], runs["experiment_id"],
            as_map("metrics", latest, nan_where(latest["value"], latest["is_nan"])),
            as_map("params", params, params["value"]), as_map("tags", tags, tags["value"]),
            ms_timestamps(runs["start_time"]), ms_timestamps(runs["end_time"]),
            runs["status"], runs["artifact_uri"], runs["run_name"], runs["user_id"], runs["lifecycle_stage"],
            as_array(parent["value"]).take(found),
        ])

    def _read_key_values(self, connection, table: str, run_ids) -> Iterator[pa.RecordBatch]:
        rows = self._arrow_in(
            connection,
            f"SELECT t.run_uuid, r.experiment_id, t.key, t.value FROM {table} t JOIN runs r ON r.run_uuid = t.run_uuid "
            "WHERE t.run_uuid IN ({in})",
            run_ids,
            [("run_id", STR), ("experiment_id", STR), ("key", STR), ("value", STR)],
        ).sort_by([("run_id", "ascending"), ("key", "ascending"), ("value", "ascending")])
        yield from table_batches(tables.arrow_schema(table), [rows["experiment_id"], rows["run_id"], rows["key"], rows["value"]])

    def _read_inputs(self, connection, run_ids) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        rows = self._arrow_in(
            connection,
            "SELECT i.destination_id, r.experiment_id, i.input_uuid, d.name, d.digest, d.dataset_source_type, "
            "d.dataset_source, d.dataset_schema, d.dataset_profile "
            "FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id JOIN runs r ON r.run_uuid = i.destination_id "
            "WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' "
            "AND i.destination_id IN ({in})",
            run_ids,
            [("run_id", STR), ("experiment_id", STR), ("input_uuid", STR), ("dataset_name", STR),
             ("dataset_digest", STR), ("dataset_source_type", STR), ("dataset_source", STR),
             ("dataset_schema", STR), ("dataset_profile", STR)],
        )
        # Ordered by run, dataset name and digest (a missing one as ''), then input id.
        rows = (rows.append_column("name_order", rows["dataset_name"].fill_null(""))
                .append_column("digest_order", rows["dataset_digest"].fill_null(""))
                .sort_by([(c, "ascending") for c in ("run_id", "name_order", "digest_order", "input_uuid")]))
        tags = self._arrow_in(
            connection, "SELECT input_uuid, name, value FROM input_tags WHERE input_uuid IN ({in})",
            rows["input_uuid"].to_pylist(), [("input_uuid", STR), ("name", STR), ("value", STR)],
        )
        context = tags.filter(pc.equal(tags["name"], "mlflow.data.context"))
        found = pc.index_in(rows["input_uuid"], value_set=as_array(context["input_uuid"]))
        schema = tables.arrow_schema(tables.INPUTS)
        yield from table_batches(schema, [
            *(rows[name] for name in schema.names[:8]),
            as_array(context["value"]).take(found),
            map_column(rows["input_uuid"], tags["input_uuid"], tags["name"], tags["value"], schema.field("tags").type),
        ])

    # Metric points as every dialect reads them: run, experiment, key, value, is_nan, step, ms.
    _POINTS = ("SELECT m.run_uuid, r.experiment_id, m.key, m.value, m.is_nan, m.step, m.timestamp "
               "FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid WHERE ")

    def _points_reader(self, connection):
        """``(sql, params, columns) -> batches`` for metric points: the connection's own driver,
        or, where the dialect has one, a second Arrow-native driver (MySQL: connectorx)."""
        if self._dialect.arrow_points:
            from .mysql import arrow_reader

            arrow = arrow_reader(self.uri.location)
            if arrow is not None:
                def read(sql, params, columns):
                    for batch in arrow(sql, params).to_batches(max_chunksize=BATCH_ROWS):
                        if batch.num_rows:
                            yield typed_batch(batch.columns, columns)
                return read
        return lambda sql, params, columns: self._arrow(connection, sql, params, columns)

    def _read_metrics(self, connection, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Metric points as Arrow batches. Each query joins ``runs`` for the experiment id, so it
        reads one consistent view by itself. Where positions are counts (not exact), a range is
        its whole series."""
        selection = partition.selection
        if isinstance(partition.work, RowidSpan):
            yield from self._read_rowid_span(connection, partition)
            return
        points = self._points_reader(connection)
        if selection.metric_ranges is not None:
            if self.capabilities.exact_metric_ranges:
                yield from self._read_metric_ranges(connection, points, partition)
                return
            whole, single = [], sorted({(run_id, key) for run_id, key, _, _ in partition.work})
        else:
            whole = [run_id for run_id, key in partition.work if key is None]
            single = [(run_id, key) for run_id, key in partition.work if key is not None]
        keys = selection.metric_keys or ()
        key_hint = self._dialect.key_hint
        # SQLite: "+m.key" keeps the planner on the run's index instead of scanning the primary
        # key's index on key over the whole store; MySQL compares the key's bytes (exact).
        key_marks, key_params = self._in(connection, keys)
        key_filter = f"{key_hint} IN ({key_marks}) AND " if keys else ""
        for runs in self._chunks(connection, whole, len(keys)):
            run_marks, run_params = self._in(connection, runs)
            sql = f"{self._POINTS}{key_filter}m.run_uuid IN ({run_marks})"
            yield from metric_batches(points(sql, [*(key_params if keys else ()), *run_params], _POINT_COLUMNS))
        for part in chunk(single, IN_LIST // 2):
            sql = self._POINTS + " OR ".join(f"(m.run_uuid = ? AND {key_hint} = ?)" for _ in part)
            yield from metric_batches(points(sql, [value for series in part for value in series], _POINT_COLUMNS))

    def _read_rowid_span(self, connection, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Points with a rowid in the partition's span whose run the selection admits.

        The admitted runs are read first: every point of the span was written before planning
        took its last rowid, so its run already exists. The experiment id is attached by lookup,
        which costs far less than a join per point."""
        import pyarrow.compute as pc

        selection, span = partition.selection, partition.work
        runs = self._selected_runs(connection, selection)
        run_ids, experiment_ids = as_array(runs.column(0)), as_array(runs.column(1))
        keys = selection.metric_keys or ()
        key_marks, key_params = self._in(connection, keys)
        key_filter = f" AND {self._dialect.key_hint} IN ({key_marks})" if keys else ""
        sql = (f"SELECT m.run_uuid, m.key, m.value, m.is_nan, m.step, m.timestamp FROM metrics m "
               f"WHERE m.rowid > ? AND m.rowid <= ?{key_filter}")
        columns = [column for column in _POINT_COLUMNS if column[0] != "experiment_id"]
        for batch in self._arrow(connection, sql, [span.after, span.upto, *(key_params if keys else ())], columns):
            run = pc.index_in(batch.column(0), value_set=run_ids)
            if run.null_count:
                admitted = run.is_valid()
                batch, run = batch.filter(admitted), run.filter(admitted)
            if batch.num_rows:
                yield from metric_batches(
                    [pa.RecordBatch.from_arrays([batch.column(0), experiment_ids.take(run), *batch.columns[1:]],
                                                names=[name for name, _ in _POINT_COLUMNS])]
                )

    def _read_metric_ranges(self, connection, points, partition: Partition) -> Iterator[pa.RecordBatch]:
        """Points of each (run, key) with a rowid between two positions (SQLite)."""
        import pyarrow.compute as pc

        ranges = {(run_id, key): (after, upto) for run_id, key, after, upto in partition.work}
        run_ids = sorted({run_id for run_id, _ in ranges})
        for runs in self._chunks(connection, run_ids, 1):
            members = set(runs)
            mine = sorted(item for item in ranges.items() if item[0][0] in members)
            series = pa.array([_series_key(run_id, key) for (run_id, key), _ in mine], STR)
            after = pa.array([bounds[0] for _, bounds in mine], INT)
            upto = pa.array([bounds[1] for _, bounds in mine], INT)
            # Skip, in the query, what every range of this chunk has already read.
            run_marks, run_params = self._in(connection, runs)
            sql = f"{self._POINTS.replace('SELECT ', 'SELECT m.rowid, ', 1)}m.rowid > ? AND m.run_uuid IN ({run_marks})"
            for batch in points(sql, [min(after.to_pylist()), *run_params], [("rowid", INT), *_POINT_COLUMNS]):
                found = pc.index_in(pc.binary_join_element_wise(batch.column(1), batch.column(3), "\x00"), value_set=series)
                rowid = batch.column(0)
                kept = pc.and_(pc.greater(rowid, after.take(found)), pc.less_equal(rowid, upto.take(found))).fill_null(False)
                batch = batch.filter(kept)
                if batch.num_rows:
                    yield from metric_batches([pa.RecordBatch.from_arrays(batch.columns[1:], names=batch.schema.names[1:])])
