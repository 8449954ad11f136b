"""The sync's reads of the store: on the executors through the ``experiments`` data source
(:meth:`Reads.executor_read`), or, when small, on the driver through the same store backend
(:meth:`Reads.driver_read`); and what PERMISSIVE reads skipped (:class:`Skips`).

Example::

    >>> reads = Reads(spark, scope, ("1", "2"), Skips())                     # doctest: +SKIP
    >>> reads.driver_read("params", run_ids={"abc"}).num_rows                # doctest: +SKIP
    12
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .. import tables
from ..stores.base import Selection
from ..stores.problems import SkippedRecord, collect_skipped
from .plan import DRIVER_READ_TRACES, KEYED_TABLES, MAX_LISTED_RUNS
from .scope import SyncScope
from .traces import TRACE_TABLES

#: The column through which executor reads hand PERMISSIVE skips back (option
#: columnNameOfCorruptRecord); split off before anything is written.
CORRUPT_COLUMN = "_sync_corrupt_record"


class Skips:
    """What this sync's PERMISSIVE reads skipped, from any thread: records of runs (the state
    does not record those runs as synced), records of whole tables (no run of theirs) and
    records of the trace tables (the traces read are not recorded as synced).

    Example::

        >>> skips = Skips()
        >>> skips.add([SkippedRecord("/m/1/r/meta.yaml: not valid YAML", "1", "r")])
        >>> skips.add_table([SkippedRecord("/m/models/m1/meta.yaml: not valid YAML")])
        >>> bool(skips), skips.places()
        (True, ['/m/1/r/meta.yaml: not valid YAML', '/m/models/m1/meta.yaml: not valid YAML'])
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._of_runs: list[SkippedRecord] = []
        self._of_tables: list[SkippedRecord] = []
        self._of_traces: list[SkippedRecord] = []

    def add(self, records: Iterable[SkippedRecord]) -> None:
        """Record skips in reads of runs."""
        with self._lock:
            self._of_runs.extend(records)

    def add_table(self, records: Iterable[SkippedRecord]) -> None:
        """Record skips in reads of whole tables (they name no run to re-read)."""
        with self._lock:
            self._of_tables.extend(records)

    def add_traces(self, records: Iterable[SkippedRecord]) -> None:
        """Record skips in reads of the trace tables."""
        with self._lock:
            self._of_traces.extend(records)

    @property
    def of_traces(self) -> bool:
        """Whether a read of a trace table skipped a record."""
        with self._lock:
            return bool(self._of_traces)

    @property
    def of_runs(self) -> list[SkippedRecord]:
        """The skips in reads of runs, in the order they were recorded."""
        with self._lock:
            return list(self._of_runs)

    def places(self) -> list[str]:
        """Every distinct place skipped, once, in the order first recorded (runs' first)."""
        with self._lock:
            return list(dict.fromkeys(s.where for s in self._of_runs + self._of_tables + self._of_traces))

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._of_runs or self._of_tables or self._of_traces)


@dataclass(frozen=True)
class Reads:
    """Reads of the store of ``scope`` within ``experiment_ids``, on ``spark``; their skips go
    to ``skips``.

    Example::

        >>> Reads(spark, scope, ("1",), Skips()).executor_read("runs").count()   # doctest: +SKIP
        42
    """

    spark: object
    scope: SyncScope
    experiment_ids: tuple[str, ...]
    skips: Skips

    def executor_read(self, table: str, run_ids=None, ranges=None, report: bool = False, trace_ids=None):
        """The store's ``table`` through the ``experiments`` data source, read on the executors,
        narrowed to ``run_ids`` (a trace table: to ``trace_ids``) and, for metrics, to
        ``ranges`` (``{(run_id, key): (after, upto)}``). With ``report``, a PERMISSIVE read
        carries its skips in column :data:`CORRUPT_COLUMN` (see :meth:`written_part`).

        Example::

            >>> reads.executor_read("metrics", ranges={("r", "loss"): (0, 96)})   # doctest: +SKIP
        """
        from pyspark.sql import functions as F

        cfg = self.scope.cfg
        reader = (
            self.spark.read.format("experiments")
            .option("trackingUri", self.scope.uri.location)
            .option("table", table)
            .option("viewType", self.scope.view_type(table))
            .option("mode", cfg.read_mode)
            .options(**self.scope.store_options)
        )
        if report and cfg.read_mode == "PERMISSIVE":
            reader = reader.option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
        if ranges is not None:
            listed: dict[str, dict[str, list[int]]] = {}
            for (run_id, key), (after, upto) in ranges.items():
                listed.setdefault(run_id, {})[key] = [after, upto]
            reader = reader.option("metricRanges", json.dumps(listed, separators=(",", ":")))
        semi = None
        narrowing = ("runIds", "run_id", run_ids) if trace_ids is None else ("traceIds", "trace_id", trace_ids)
        option, column, ids = narrowing
        if ids is not None and ranges is None:
            if len(ids) <= MAX_LISTED_RUNS:
                reader = reader.option(option, ",".join(sorted(ids)))
            else:
                semi = self.spark.createDataFrame([(i,) for i in sorted(ids)], f"{column} string")
        df = reader.load(",".join(self.experiment_ids))
        if semi is not None:
            df = df.join(F.broadcast(semi), column, "left_semi")
        return df

    def written_part(self, df, table: str | None = None):
        """The rows of an :meth:`executor_read` of ``table`` with ``report`` to write; the
        records it skipped (PERMISSIVE) go to :attr:`skips` (a second pass over the read).

        Example::

            >>> reads.written_part(reads.executor_read("tags", run_ids={"r"}, report=True))  # doctest: +SKIP
        """
        if CORRUPT_COLUMN not in df.columns:
            return df
        from pyspark.sql import functions as F

        bad = df.where(F.col(CORRUPT_COLUMN).isNotNull())
        if table in TRACE_TABLES:
            self.skips.add_traces(SkippedRecord(r[CORRUPT_COLUMN], r["experiment_id"])
                                  for r in bad.select("experiment_id", CORRUPT_COLUMN).collect())
        else:
            self.skips.add(SkippedRecord(r[CORRUPT_COLUMN], r["experiment_id"], r["run_id"])
                           for r in bad.select("experiment_id", "run_id", CORRUPT_COLUMN).collect())
        return df.where(F.col(CORRUPT_COLUMN).isNull()).drop(CORRUPT_COLUMN)

    def driver_read(self, table: str, run_ids=None, ranges=None, trace_ids=None):
        """A small read on the driver, through the store backend the data source uses: a Spark
        job per table would cost more than the read. Returns an Arrow table; a table with
        nothing to write never becomes a DataFrame (see :meth:`arrow_frame`).

        Example::

            >>> reads.driver_read("models").num_rows                         # doctest: +SKIP
            3
        """
        import pyarrow as pa

        store = self.scope.store
        experiment_ids = () if table in tables.REGISTRY_TABLES else self.experiment_ids  # the registry is store-wide
        selection = Selection(
            table, experiment_ids, view_type=self.scope.view_type(table), mode=self.scope.cfg.read_mode,
            run_ids=None if run_ids is None else tuple(sorted(run_ids)),
            metric_ranges=None if ranges is None else tuple(
                (run_id, key, after, upto) for (run_id, key), (after, upto) in sorted(ranges.items())
            ),
            trace_ids=None if trace_ids is None else tuple(sorted(trace_ids)),
        )
        batches = []
        if experiment_ids or table in tables.REGISTRY_TABLES:
            with collect_skipped() as skipped:
                batches = [batch for partition in store.plan(selection) for batch in store.read(partition)]
            if table in KEYED_TABLES:  # a whole table's skips name no run to re-read
                self.skips.add_table(skipped)
            elif table in TRACE_TABLES:
                self.skips.add_traces(skipped)
            else:
                self.skips.add(skipped)
        return pa.Table.from_batches(batches, schema=tables.arrow_schema(table))

    def trace_read(self, table: str, trace_ids):
        """The rows of ``trace_ids`` in trace table ``table``: read on the driver when few
        (:data:`~.plan.DRIVER_READ_TRACES`), else on the executors; as a DataFrame, and the
        number of rows where known (None: read on the executors).

        Example::

            >>> df, rows = reads.trace_read("assessments", {"tr-1"})          # doctest: +SKIP
        """
        if len(trace_ids) <= DRIVER_READ_TRACES:
            arrow = self.driver_read(table, trace_ids=trace_ids)
            return self.arrow_frame(arrow, table), arrow.num_rows
        return self.written_part(self.executor_read(table, report=True, trace_ids=trace_ids), table), None

    def arrow_frame(self, arrow, table: str):
        """A DataFrame of ``table``'s schema holding ``arrow``, in one partition (one file per
        table and sync, not one per core).

        Example::

            >>> reads.arrow_frame(reads.driver_read("params", run_ids={"r"}), "params")  # doctest: +SKIP
        """
        if arrow.num_rows == 0:  # pyspark 4.2 cannot convert an Arrow table without chunks
            return self.spark.createDataFrame([], schema=tables.spark_schema(table))
        return self.spark.createDataFrame(arrow, schema=tables.spark_schema(table)).coalesce(1)
