"""Streaming reads: ``spark.readStream.format("experiments")`` for ``metrics`` and ``runs``.

``metrics`` streams every metric point once, as it is logged (offsets: a position per series,
as the store's ``capabilities`` declare it); ``runs`` streams each state of a run once (offsets:
a digest per run). Both support ``trigger(availableNow=True)`` and ``maxRowsPerTrigger``. How
offsets, replays and limits work: ``docs/streaming.md``.

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
from collections.abc import Iterator
from dataclasses import replace

import pyarrow as pa
from pyspark.sql.datasource import DataSourceStreamReader, InputPartition

from . import tables
from .errors import ConfigurationError, UnsupportedStoreError

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

STREAM_TABLES = (tables.METRICS, tables.RUNS)
OFFSET_VERSION = 1
#: Why a ``metrics`` stream from a tracking server is refused (docs/streaming.md says more).
REST_METRICS_REFUSAL = (
    "streaming 'metrics' from a tracking server ({uri}) is not supported: MLflow's REST API gives "
    "metric points no order or id (metrics/get-history returns a series whole, with no 'since'), so "
    "a micro-batch cannot tell the points it must emit from those emitted before without keeping "
    "every emitted point in the offsets; stream the 'runs' table (it carries the latest metrics), "
    "or keep a Delta copy with pyspark_experiments.sync, which re-reads changed series and merges "
    "them on their natural keys"
)
# Runs per planned chunk of the runs stream (each chunk's partitions carry its digests).
_RUNS_PER_CHUNK = 1_000


class StreamPartition(InputPartition):
    """A store partition, plus, for ``runs``, the digest each run must have to be emitted."""

    def __init__(self, index: int, partition, digests: dict[str, str] | None = None) -> None:
        super().__init__(index)
        self.partition = partition
        self.digests = digests

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


class ExperimentsStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """The stream reader of the ``experiments`` source, for ``metrics`` and ``runs``.

    It holds no state beyond the offsets Spark checkpoints, except the target offset that
    ``trigger(availableNow=True)`` fixes when a query starts.

    Example::

        >>> df = (spark.readStream.format("experiments").option("table", "runs")
        ...       .option("maxRowsPerTrigger", "500").load())
    """

    def __init__(self, request) -> None:
        if request.table not in STREAM_TABLES:
            raise ConfigurationError(
                f"option 'table': streaming reads support {' and '.join(repr(t) for t in STREAM_TABLES)}, "
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
        if request.uri.kind == "rest" and request.table == tables.METRICS:
            raise UnsupportedStoreError(REST_METRICS_REFUSAL.format(uri=request.uri.display))
        self.request = request
        self._target: dict | None = None

    # -- helpers ---------------------------------------------------------------------------------

    def _store(self):
        return self.request.open_store()

    def _selection(self, store):
        return self.request.selection(store)

    def _current(self) -> dict:
        """The store's current offset: positions per series, or digests per run."""
        store = self._store()
        selection = self._selection(store)
        if self.request.table == tables.METRICS:
            if not store.capabilities.exact_metric_ranges:
                raise UnsupportedStoreError(
                    f"streaming 'metrics' needs a store that orders its points (a file store or "
                    f"SQLite); {store.uri.display} does not: use the batch source or "
                    f"pyspark_experiments.sync, which merge on natural keys"
                )
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
        return "m" if self.request.table == tables.METRICS else "r"

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

    def read(self, partition) -> Iterator:
        if not isinstance(partition, StreamPartition):
            return
        store = self._store()
        if partition.digests is None:
            yield from store.read(partition.partition)
            return
        for batch in store.read(partition.partition):
            keep = [partition.digests.get(row["run_id"]) == run_digest(row) for row in batch.to_pylist()]
            if all(keep):
                yield batch
            elif any(keep):
                yield batch.filter(pa.array(keep, type=pa.bool_()))

    def commit(self, end: dict) -> None:
        pass

    def stop(self) -> None:
        pass


__all__ = ["REST_METRICS_REFUSAL", "ExperimentsStreamReader", "RefusedStream", "StreamPartition", "run_digest"]
