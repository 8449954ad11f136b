"""The ``experiments`` Spark data source: options in, store partitions out, Arrow batches back.

This adapter is thin on purpose: it validates options, resolves the tracking URI and the
experiments (on the driver), asks the store backend for partitions, and on each executor
yields the backend's record batches.

Example::

    >>> df = (spark.read.format("experiments")
    ...       .option("trackingUri", "sqlite:///mlflow.db")
    ...       .option("table", "metrics")
    ...       .option("metricKeys", "loss,val/acc")
    ...       .load("my-experiment"))
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

from . import tables
from .stores.rest.settings import REST_OPTIONS
from .uri import TrackingUri, resolve_tracking_uri

# Option names as users write them; Spark hands them to us lower-cased.
OPTIONS = (
    "trackingUri",
    "table",
    "viewType",
    "metricKeys",
    "runIds",
    "startTimeAfter",
    "partitionSize",
    "numPartitions",
    "mode",
    "metricRanges",
    "maxRowsPerTrigger",
    # tracking servers only: credentials, TLS, retries, concurrency (stores/rest/settings.py)
    *REST_OPTIONS,
)
_CANONICAL = {name.lower(): name for name in OPTIONS}


@dataclass(frozen=True)
class ReadRequest:
    """The validated options of one read; picklable, holds no connection.

    Example::

        >>> ReadRequest.from_options({"table": "params"}).table
        'params'
    """

    uri: TrackingUri
    table: str = tables.RUNS
    view_type: str = "ACTIVE_ONLY"
    experiments: tuple[str, ...] | None = None
    run_ids: tuple[str, ...] | None = None
    metric_keys: tuple[str, ...] | None = None
    min_start_time_ms: int | None = None
    partition_size: int | None = None
    num_partitions: int | None = None
    mode: str = "FAILFAST"
    # metricRanges: (run_id, key, after, upto) positions, as the sync reads new points
    metric_ranges: tuple[tuple[str, str, int, int], ...] | None = None
    # maxRowsPerTrigger: streaming reads only, rows (points or runs) per micro-batch
    max_rows_per_trigger: int | None = None
    # REST connection options (may hold credentials: never shown)
    store_options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @classmethod
    def from_options(cls, options, environ=None) -> ReadRequest:
        """Validate Spark's options (case-insensitive) into a request.

        Example::

            >>> ReadRequest.from_options({"viewtype": "all", "path": "1, 2"}).experiments
            ('1', '2')
        """
        from .stores.base import MODES, VIEW_TYPES

        environ = os.environ if environ is None else environ
        given = {str(k).lower(): v for k, v in dict(options).items()}
        path = given.pop("path", None)
        paths = given.pop("paths", None)
        unknown = sorted(set(given) - set(_CANONICAL))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(repr(u) for u in unknown)} for format "
                f"'experiments'; valid options: {', '.join(OPTIONS)}"
            )
        if paths and paths not in ("[]", ""):
            raise ValueError(
                "format 'experiments' takes one load path: experiment ids or names, comma "
                "separated, e.g. load('3,7') or load('my-experiment')"
            )
        return cls(
            uri=resolve_tracking_uri(given.get("trackinguri"), environ),
            table=tables.check_table(given.get("table", tables.RUNS)),
            view_type=_choice("viewType", given.get("viewtype", "ACTIVE_ONLY"), VIEW_TYPES),
            experiments=_list_option(path),
            run_ids=_list_option(given.get("runids")),
            metric_keys=_list_option(given.get("metrickeys")),
            min_start_time_ms=_time_option("startTimeAfter", given.get("starttimeafter")),
            partition_size=_positive_int("partitionSize", given.get("partitionsize")),
            num_partitions=_positive_int("numPartitions", given.get("numpartitions")),
            mode=_choice("mode", given.get("mode", "FAILFAST"), MODES),
            metric_ranges=_ranges_option(given.get("metricranges")),
            max_rows_per_trigger=_positive_int("maxRowsPerTrigger", given.get("maxrowspertrigger")),
            store_options=tuple(sorted((_CANONICAL[k], str(v)) for k, v in given.items() if _CANONICAL[k] in REST_OPTIONS)),
        )

    def selection(self, store, environ=None):
        """Resolve the experiments against ``store`` and describe the read for the backend."""
        from .stores.base import Selection
        from .uri import resolve_experiments

        experiment_ids = resolve_experiments(store, self.experiments, self.view_type, self.table, environ)
        return Selection(
            table=self.table,
            experiment_ids=experiment_ids,
            view_type=self.view_type,
            run_ids=self.run_ids,
            metric_keys=self.metric_keys,
            min_start_time_ms=self.min_start_time_ms,
            rows_per_partition=self.partition_size,
            num_partitions=self.num_partitions,
            mode=self.mode,
            metric_ranges=self.metric_ranges,
        )


def _choice(option: str, value: str, valid: tuple[str, ...]) -> str:
    canonical = str(value).strip().upper()
    if canonical not in valid:
        raise ValueError(f"option {option!r}: unknown value {value!r}; expected one of {', '.join(valid)}")
    return canonical


def _list_option(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(item.strip() for item in str(value).split(",") if item.strip())
    return items or None


def _positive_int(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"option {option!r}: expected a positive integer, got {value!r}")
    return number


def _ranges_option(value: str | None) -> tuple[tuple[str, str, int, int], ...] | None:
    """``metricRanges``: JSON ``{run_id: {key: [after, upto]}}`` of store positions."""
    if value is None:
        return None
    import json

    try:
        parsed = json.loads(value)
        ranges = tuple(sorted(
            (str(run_id), str(key), int(after), int(upto))
            for run_id, keys in parsed.items()
            for key, (after, upto) in keys.items()
        ))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(
            "option 'metricRanges': expected JSON {run_id: {metric key: [after, upto]}} with "
            "integer positions as the store reports them, e.g. '{\"3f2a\": {\"loss\": [0, 1893]}}'"
        ) from None
    return ranges


def _time_option(option: str, value: str | None) -> int | None:
    """Epoch milliseconds from an ISO-8601 time (UTC unless it says otherwise) or a number."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"option {option!r}: expected an ISO-8601 time such as '2026-01-31T12:00:00Z' or "
            f"epoch milliseconds, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class ExperimentsDataSource(DataSource):
    """``spark.read.format("experiments")``: MLflow tracking stores as DataFrames.

    Example::

        >>> spark.dataSource.register(ExperimentsDataSource)
        >>> spark.read.format("experiments").option("table", "experiments").load().count()
        3
    """

    @classmethod
    def name(cls) -> str:
        return "experiments"

    def __init__(self, options) -> None:
        super().__init__(options)
        self.request = ReadRequest.from_options(options)

    def schema(self):
        return tables.spark_schema(self.request.table)

    def reader(self, schema) -> ExperimentsReader:
        return ExperimentsReader(self.request)

    def streamReader(self, schema):
        from .streaming import ExperimentsStreamReader

        return ExperimentsStreamReader(self.request)


class StorePartition(InputPartition):
    """A Spark input partition wrapping one backend :class:`~.stores.base.Partition`."""

    def __init__(self, partition) -> None:
        super().__init__(partition.index)
        self.partition = partition

    def __repr__(self) -> str:
        return f"StorePartition({self.partition.index})"


class ExperimentsReader(DataSourceReader):
    """Plans on the driver, reads on the executors."""

    def __init__(self, request: ReadRequest) -> None:
        self.request = request

    def partitions(self) -> list[StorePartition]:
        from .stores import open_store

        store = open_store(self.request.uri, dict(self.request.store_options))
        return [StorePartition(p) for p in store.plan(self.request.selection(store))]

    def read(self, partition) -> Iterator:
        if not isinstance(partition, StorePartition):
            return  # a plan with no partitions: Spark still asks for one
        from .stores import open_store

        yield from open_store(self.request.uri, dict(self.request.store_options)).read(partition.partition)


def plan_read(options: dict, environ=None):
    """Plan a read without Spark: the resolved selection and its partitions (for tools and tests).

    Example::

        >>> selection, parts = plan_read({"trackingUri": "sqlite:///mlflow.db", "table": "runs"})
        >>> len(parts) >= 1
        True
    """
    from .stores import open_store

    request = ReadRequest.from_options(options, environ)
    store = open_store(request.uri, dict(request.store_options))
    selection = request.selection(store, environ)
    return selection, store.plan(selection)


__all__ = ["ExperimentsDataSource", "ExperimentsReader", "ReadRequest", "StorePartition", "plan_read"]
