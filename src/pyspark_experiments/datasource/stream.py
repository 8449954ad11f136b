"""Streaming reads: ``spark.readStream.format("experiments")`` for ``metrics``, ``runs``,
``traces`` and ``assessments``.

``metrics`` streams every metric point once, as it is logged (offsets: a position per series,
as the store's ``capabilities`` declare it); ``runs`` streams each state of a run once (offsets:
a digest per run); ``traces`` each trace once it has ended and ``assessments`` each state of an
assessment once (offsets: a horizon in time and the items emitted past it,
:mod:`.trace_offsets`). From a tracking server (positions are digests) a ``metrics`` offset keeps,
per series, the digest, how many points were emitted and a digest of those points; changed
series are re-read whole and the points after those emitted are emitted. Both support
``trigger(availableNow=True)`` and ``maxRowsPerTrigger``. How offsets, replays and limits work:
``docs/streaming.md``.

Example::

    >>> query = (spark.readStream.format("experiments")
    ...          .option("trackingUri", "sqlite:///mlflow.db")
    ...          .option("table", "metrics")
    ...          .load()
    ...          .writeStream.format("delta")
    ...          .option("checkpointLocation", "/tmp/ckpt/metrics")
    ...          .trigger(availableNow=True)
    ...          .start("/tmp/delta/metrics_stream"))  # doctest: +SKIP
    >>> query.awaitTermination()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import pyarrow as pa
from pyspark.sql.datasource import DataSourceStreamReader, InputPartition

from .. import tables
from ..errors import ConfigurationError, UnsupportedStoreError
from .trace_offsets import (
    DEFAULT_LATE_ARRIVAL_SECONDS,
    advance,
    assessment_keys,
    emitted_between,
    item_key,
    trace_keys,
)

try:  # pyspark >= 4.2
    from pyspark.sql.streaming.datasource import (
        ReadAllAvailable,
        ReadLimit,
        ReadMaxRows,
        SupportsTriggerAvailableNow,
    )
except ImportError:  # pragma: no cover - older pyspark: no admission control
    ReadAllAvailable = ReadMaxRows = ReadLimit = None

    class SupportsTriggerAvailableNow:  # type: ignore[no-redef]
        pass

log = logging.getLogger("pyspark_experiments.streaming")

STREAM_TABLES = (tables.METRICS, tables.RUNS, tables.TRACES, tables.ASSESSMENTS)
#: The streams whose offsets are a horizon in time and the items emitted past it.
TIMED_TABLES = (tables.TRACES, tables.ASSESSMENTS)
_FIELDS = {tables.METRICS: "m", tables.RUNS: "r", tables.TRACES: "t", tables.ASSESSMENTS: "a"}
OFFSET_VERSION = 1
# Runs (traces) per planned chunk of the runs (traces, assessments) stream (each chunk's
# partitions carry its digests, or the keys of its items).
_RUNS_PER_CHUNK = 1_000
_SERIES_PER_CHUNK = 5_000


class StreamPartition(InputPartition):
    """A store partition, plus, for ``runs``, the digest each run must have to be emitted; for
    ``metrics`` from a store without exact range reads, the store partitions of some series and
    the slice of each series to emit; for ``traces`` and ``assessments``, the items to emit
    (an assessment only with that key)."""

    def __init__(self, index: int, partition, digests: dict[str, str] | None = None,
                 slices: dict | None = None, keys: dict[str, int] | None = None) -> None:
        super().__init__(index)
        self.partition = partition
        self.digests = digests
        self.keys = keys
        # Digest positions: per series, (n_start, n_end, digest of the first n_end points).
        self.slices = slices

    def __repr__(self) -> str:
        return f"StreamPartition({self.index})"


class RefusedStream(DataSourceStreamReader):
    """A stream the options do not allow: every call raises the reason.

    pyspark's stream runner calls ``reader.stop()`` in a ``finally`` even when creating the
    reader failed, so an error raised by ``streamReader()`` reaches the user as an
    ``UnboundLocalError`` with the real message buried; raised from here, it is the headline.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error

    def initialOffset(self):
        raise self.error

    def latestOffset(self, start=None, limit=None):
        raise self.error

    def partitions(self, start, end):
        raise self.error

    def read(self, partition):
        raise self.error

    def stop(self) -> None:
        pass


def run_digest(row: dict) -> str:
    """A short digest of one ``runs`` row (as ``pyarrow`` ``to_pylist`` gives it).

    Example::

        >>> run_digest({"run_id": "a", "status": "FINISHED"}) == run_digest({"status": "FINISHED", "run_id": "a"})
        True
    """
    text = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def point_order(row: dict) -> tuple:
    """The order in which a ``metrics`` stream from a digest-positioned store (a tracking
    server) emits a series' points: by timestamp, step, value. Points logged later have later
    timestamps (MLflow's default), so new points come after those emitted before.

    Example::

        >>> sorted([{"timestamp": 2, "step": 0, "value": 1.0}, {"timestamp": 1, "step": 5, "value": None}], key=point_order)[0]["step"]
        5
    """
    value = row.get("value")
    stamp = row.get("timestamp")
    if stamp is not None and hasattr(stamp, "timestamp"):
        stamp = stamp.timestamp()
    return (stamp is not None, 0.0 if stamp is None else float(stamp), int(row.get("step") or 0),
            value is not None, value is not None and value != value, 0.0 if value is None or value != value else value)


def points_digest(points: list[dict]) -> str:
    """A digest of points in order (their timestamp, step and value).

    Example::

        >>> points_digest([]) == points_digest([])
        True
    """
    digest = hashlib.sha1()
    for row in points:
        digest.update(f"{row.get('timestamp')}|{row.get('step')}|{row.get('value')!r};".encode())
    return digest.hexdigest()[:20]


def _narrowed(selection, series):
    """``selection`` narrowed to whole ``series`` (and their runs: fewer runs/search pages)."""
    return replace(selection, run_ids=tuple(sorted({run_id for run_id, _ in series})),
                   metric_ranges=tuple((run_id, key, 0, 1) for run_id, key in series))


def _check_prefix(uri: str, run_id: str, key: str, points: list[dict], emitted: int, check: str) -> None:
    if len(points) < emitted or points_digest(points[:emitted]) != check:
        raise UnsupportedStoreError(
            f"metrics stream from {uri}: series {key!r} of run {run_id} no longer starts with the "
            f"{emitted} point(s) this stream emitted (a point was logged with an older timestamp than "
            f"points already emitted, or removed); exactly-once cannot be kept for it: restart the "
            f"query with a new checkpoint, or keep a Delta copy with pyspark_experiments.sync"
        )


class ExperimentsStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """The stream reader of the ``experiments`` source, for ``metrics``, ``runs``, ``traces`` and
    ``assessments``.

    It holds no state beyond the offsets Spark checkpoints, except the target offset that
    ``trigger(availableNow=True)`` fixes when a query starts.

    Example::

        >>> df = (spark.readStream.format("experiments").option("table", "runs")
        ...       .option("maxRowsPerTrigger", "500").load())
    """

    def __init__(self, request) -> None:
        if request.table not in STREAM_TABLES:
            raise ConfigurationError(
                f"option 'table': streaming reads support {', '.join(repr(t) for t in STREAM_TABLES[:-1])} and "
                f"{STREAM_TABLES[-1]!r}, "
                f"not {request.table!r}; read {request.table!r} with spark.read (batch) or keep a "
                f"Delta copy with pyspark_experiments.sync"
            )
        if request.corrupt_record_column is not None:
            raise ConfigurationError(
                "option 'columnNameOfCorruptRecord' is for batch reads; a stream reports skipped "
                "records in its log (or read the table in batch with the option to see them)"
            )
        if request.metric_ranges is not None:
            raise ConfigurationError("option 'metricRanges' is for batch reads; a stream tracks positions itself")
        if request.late_arrival_seconds is not None and request.table not in TIMED_TABLES:
            raise ConfigurationError(
                f"option 'lateArrivalSeconds' applies to the streams of {' and '.join(TIMED_TABLES)}, "
                f"not {request.table!r}"
            )
        if request.table == tables.TRACES and "IN_PROGRESS" in (request.trace_states or ()):
            raise ConfigurationError(
                "option 'traceStates': a traces stream emits each trace once, when it has ended; "
                "IN_PROGRESS does not apply (stream OK and ERROR traces, or read traces in progress in batch)"
            )
        self.request = request
        self._target: dict | None = None
        # (change token, offset content) of the last scan, where the store takes tokens: a
        # trigger on a store whose token has not moved reuses it instead of scanning again.
        self._scanned: tuple[str, dict] | None = None
        # Stores whose positions say "changed", not "how far" (digests over REST; point counts in
        # PostgreSQL and MySQL, whose range reads are not exact): see _advance_digests.
        self._digests = request.table == tables.METRICS and not self._store().capabilities.exact_metric_ranges

    # -- helpers ---------------------------------------------------------------------------------

    def _store(self):
        return self.request.open_store()

    def _selection(self, store):
        return self.request.selection(store)

    def _current(self) -> dict:
        """The store's current offset: positions per series, or digests per run; the last
        scan's while the store's change token has not moved (taken before the scan, so a write
        during it moves the next one)."""
        store = self._store()
        token = store.change_token() if store.capabilities.change_token else None
        if token is not None and self._scanned is not None and self._scanned[0] == token:
            return self._scanned[1]
        current = self._scan(store)
        self._scanned = (token, current) if token is not None else None
        return current

    def _scan(self, store) -> dict:
        selection = self._selection(store)
        if self.request.table in TIMED_TABLES:
            listing: dict = {}
            keys_of = trace_keys if self.request.table == tables.TRACES else assessment_keys
            if selection.experiment_ids:
                for partition in store.plan(selection):
                    for batch in store.read(partition):
                        listing.update(keys_of(batch))
            return listing
        if self.request.table == tables.METRICS:
            if not selection.experiment_ids:
                return {}
            nested: dict[str, dict[str, int]] = {}
            for (run_id, key), position in store.metric_positions(selection).items():
                nested.setdefault(run_id, {})[key] = position
            return nested
        digests = {}
        if selection.experiment_ids:
            for partition in store.plan(selection):
                for batch in store.read(partition):
                    for row in batch.to_pylist():
                        digests[row["run_id"]] = run_digest(row)
        return digests

    @property
    def _field(self) -> str:
        return _FIELDS[self.request.table]

    def _offset(self, content: dict) -> dict:
        return {"v": OFFSET_VERSION, self._field: content}

    def _content(self, offset: dict | None) -> dict:
        if not offset:
            return {}
        if offset.get("v") != OFFSET_VERSION or self._field not in offset:
            raise ConfigurationError(
                f"checkpointed offset {str(offset)[:200]!r} is not an offset of this source's "
                f"{self.request.table!r} stream (version {OFFSET_VERSION}); start the query with a "
                f"new checkpoint location"
            )
        return offset[self._field]

    # -- DataSourceStreamReader ------------------------------------------------------------------

    def initialOffset(self) -> dict:
        """A new query starts from the beginning: every point, every run."""
        return self._offset({})

    def getDefaultReadLimit(self):
        if ReadMaxRows is not None and self.request.max_rows_per_trigger:
            return ReadMaxRows(self.request.max_rows_per_trigger)
        return ReadAllAvailable() if ReadAllAvailable is not None else None

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = self._current()

    def reportLatestOffset(self):
        return None

    def latestOffset(self, start: dict | None = None, limit=None) -> dict:
        current = self._target if self._target is not None else self._current()
        before = self._content(start)
        max_rows = getattr(limit, "max_rows", None) if limit is not None else None
        if max_rows is None and limit is None and self.request.max_rows_per_trigger:
            max_rows = self.request.max_rows_per_trigger
        if self.request.table in TIMED_TABLES:
            lag = self.request.late_arrival_seconds
            lag = DEFAULT_LATE_ARRIVAL_SECONDS if lag is None else lag
            return self._offset(advance(
                before, current, lag_us=lag * 1_000_000, now_us=time.time_ns() // 1000, max_rows=max_rows,
                restate=self.request.table == tables.ASSESSMENTS, what=self.request.table[:-1],
                where=self.request.uri.display,
            ))
        if self._digests:
            return self._offset(self._advance_digests(before, current, max_rows))
        if self.request.table == tables.METRICS:
            return self._offset(self._advance_metrics(before, current, max_rows))
        return self._offset(self._advance_runs(before, current, max_rows))

    def _advance_metrics(self, before: dict, current: dict, max_rows: int | None) -> dict:
        per_point = max(1, self._store().capabilities.position_units_per_point)
        end: dict[str, dict[str, int]] = {}
        budget = max_rows
        for run_id in sorted(current):
            for key in sorted(current[run_id]):
                position = current[run_id][key]
                after = before.get(run_id, {}).get(key, 0)
                upto = position
                if position > after and budget is not None:
                    if budget <= 0:
                        upto = after
                    else:
                        points = -(-(position - after) // per_point)
                        if points > budget:
                            upto = after + budget * per_point
                            budget = 0
                        else:
                            budget -= points
                elif position < after:
                    log.warning("metric series %r of run %s shrank (%d -> %d); following it from there",
                                key, run_id, after, position)
                if upto > 0 or key in before.get(run_id, {}):
                    end.setdefault(run_id, {})[key] = upto
        return end

    def _histories(self, series: list[tuple[str, str]]) -> dict[tuple[str, str], list[dict]]:
        """The whole histories of ``series``, read on the driver, each in :func:`point_order`."""
        found: dict[tuple[str, str], list[dict]] = {pair: [] for pair in series}
        if not series:
            return found
        store = self._store()
        selection = _narrowed(self._selection(store), series)
        for partition in store.plan(selection):
            for batch in store.read(partition):
                for row in batch.to_pylist():
                    if (row["run_id"], row["key"]) in found:
                        found[(row["run_id"], row["key"])].append(row)
        return {pair: sorted(rows, key=point_order) for pair, rows in found.items()}

    def _advance_digests(self, before: dict, current: dict, max_rows: int | None) -> dict:
        """Offsets of a store whose positions are digests: per series ``[digest, n, h]``, the
        first ``n`` points in :func:`point_order` emitted, ``h`` their :func:`points_digest`.
        Series whose digest changed are read whole here (to count them); a series whose first
        ``n`` points are no longer those emitted (a point logged with an older timestamp) stops
        the query with an error rather than emitting a point twice or never."""
        end = {run_id: {key: list(value) for key, value in keys.items()} for run_id, keys in before.items()}
        changed = [(run_id, key) for run_id in sorted(current) for key in sorted(current[run_id])
                   if (before.get(run_id, {}).get(key) or [None])[0] != current[run_id][key]]
        budget = max_rows
        for (run_id, key), points in self._histories(changed).items():
            digest, emitted, check = (before.get(run_id, {}).get(key) or [None, 0, points_digest([])])
            _check_prefix(self.request.uri.display, run_id, key, points, emitted, check)
            upto = len(points)
            if budget is not None:
                upto = min(upto, emitted + max(0, budget))
                budget -= upto - emitted
            # A series read in part keeps no digest: the next trigger reads on from `upto`.
            done = current[run_id][key] if upto == len(points) else 0
            end.setdefault(run_id, {})[key] = [done, upto, points_digest(points[:upto])]
        return {run_id: dict(sorted(keys.items())) for run_id, keys in sorted(end.items())}

    def _advance_runs(self, before: dict, current: dict, max_rows: int | None) -> dict:
        end = {run_id: digest for run_id, digest in before.items() if run_id in current}
        changed = [run_id for run_id in sorted(current) if before.get(run_id) != current[run_id]]
        if max_rows is not None:
            changed = changed[:max_rows]
        for run_id in changed:
            end[run_id] = current[run_id]
        # Spark compares offsets as JSON text: keep one key order.
        return dict(sorted(end.items()))

    def partitions(self, start: dict, end: dict) -> list[StreamPartition]:
        before, after = self._content(start), self._content(end)
        store = self._store()
        selection = self._selection(store)
        if not selection.experiment_ids:
            return []
        result: list[StreamPartition] = []
        if self.request.table in TIMED_TABLES:
            return self._timed_partitions(store, selection, before, after)
        if self._digests:
            slices = {
                (run_id, key): (int((before.get(run_id, {}).get(key) or [None, 0])[1]), int(value[1]), value[2])
                for run_id in sorted(after) for key, value in sorted(after[run_id].items())
            }
            series = sorted(pair for pair, s in slices.items() if s[1] > s[0])
            # Each stream partition reads its own series: the store partitions planned for them.
            for i in range(0, len(series), _SERIES_PER_CHUNK):
                mine = series[i:i + _SERIES_PER_CHUNK]
                parts = tuple(store.plan(_narrowed(selection, mine)))
                result.append(StreamPartition(len(result), parts, slices={pair: slices[pair] for pair in mine}))
            return result
        if self.request.table == tables.METRICS:
            ranges = tuple(
                (run_id, key, before.get(run_id, {}).get(key, 0), upto)
                for run_id in sorted(after) for key, upto in sorted(after[run_id].items())
                if upto > before.get(run_id, {}).get(key, 0)
            )
            if not ranges:
                return []
            for partition in store.plan(replace(selection, metric_ranges=ranges)):
                result.append(StreamPartition(len(result), partition))
            return result
        changed = {run_id: digest for run_id, digest in after.items() if before.get(run_id) != digest}
        run_ids = sorted(changed)
        if selection.run_ids is not None:
            admitted = set(selection.run_ids)
            run_ids = [r for r in run_ids if r in admitted]
        for i in range(0, len(run_ids), _RUNS_PER_CHUNK):
            chunk = run_ids[i:i + _RUNS_PER_CHUNK]
            digests = {run_id: changed[run_id] for run_id in chunk}
            for partition in store.plan(replace(selection, run_ids=tuple(chunk))):
                result.append(StreamPartition(len(result), partition, digests))
        return result

    def _timed_partitions(self, store, selection, before: dict, after: dict) -> list[StreamPartition]:
        """The partitions of the traces (assessments) a micro-batch emits
        (:func:`~.trace_offsets.emitted_between`): chunks of traces, each partition with the
        items to emit (an assessment with its key)."""
        assessments = self.request.table == tables.ASSESSMENTS
        items = emitted_between(before, after, restate=assessments)
        trace_of = {item: after["e"][item][1] if assessments else item for item in items}
        traces = sorted(set(trace_of.values()))
        result: list[StreamPartition] = []
        for i in range(0, len(traces), _RUNS_PER_CHUNK):
            chunk = set(traces[i:i + _RUNS_PER_CHUNK])
            keys = {item: item_key(after["e"][item]) for item in items if trace_of[item] in chunk}
            for partition in store.plan(replace(selection, trace_ids=tuple(sorted(chunk)))):
                result.append(StreamPartition(len(result), partition, keys=keys))
        return result

    def read(self, partition) -> Iterator:
        if not isinstance(partition, StreamPartition):
            return
        store = self._store()
        if partition.keys is not None:
            yield from self._read_timed(store, partition)
            return
        if partition.slices is not None:
            yield from self._read_slices(store, partition)
            return
        if partition.digests is None:
            yield from store.read(partition.partition)
            return
        for batch in store.read(partition.partition):
            keep = [partition.digests.get(row["run_id"]) == run_digest(row) for row in batch.to_pylist()]
            if all(keep):
                yield batch
            elif any(keep):
                yield batch.filter(pa.array(keep, type=pa.bool_()))

    def _read_timed(self, store, partition) -> Iterator:
        """The rows of the partition's traces (assessments: with the key the end offset holds:
        one changed again since is emitted by a later micro-batch)."""
        assessments = self.request.table == tables.ASSESSMENTS
        for batch in store.read(partition.partition):
            if assessments:
                found = assessment_keys(batch)
                keep = [partition.keys.get(item) == found[item][0] for item in batch.column("assessment_id").to_pylist()]
            else:
                keep = [item in partition.keys for item in batch.column("trace_id").to_pylist()]
            if all(keep):
                yield batch
            elif any(keep):
                yield batch.filter(pa.array(keep, type=pa.bool_()))

    def _read_slices(self, store, partition) -> Iterator:
        """Each series' points ``[n_start, n_end)`` in :func:`point_order`, after checking that
        its first ``n_end`` points are those the end offset counted (a replay emits the same)."""
        found: dict[tuple[str, str], list[dict]] = {pair: [] for pair in partition.slices}
        for part in partition.partition:
            for batch in store.read(part):
                for row in batch.to_pylist():
                    if (row["run_id"], row["key"]) in found:
                        found[(row["run_id"], row["key"])].append(row)
        rows = []
        for (run_id, key), (start, upto, check) in sorted(partition.slices.items()):
            points = sorted(found[(run_id, key)], key=point_order)
            _check_prefix(self.request.uri.display, run_id, key, points, upto, check)
            rows.extend(points[start:upto])
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=tables.arrow_schema(tables.METRICS))

    def commit(self, end: dict) -> None:
        pass

    def stop(self) -> None:
        pass


__all__ = ["ExperimentsStreamReader", "RefusedStream", "StreamPartition", "run_digest"]
