"""The options of the ``experiments`` source: what they mean, which table takes which, and the
validated :class:`ReadRequest` they make.

An option that cannot narrow a table is an error naming the option, the table and the options
that do apply, rather than being ignored. How the tables of artifacts, logged models and the
registry take them:

- ``artifacts``: a run table: the load path, ``viewType``, ``runIds`` and ``startTimeAfter``
  select runs as for ``runs``; ``artifactPath``, ``maxDepth``, ``withContent``,
  ``maxContentBytes`` shape the listing; ``partitionSize`` / ``numPartitions`` count runs.
- ``models``: the load path selects experiments; ``viewType`` filters the models' own lifecycle
  stage (as ``search_logged_models``, which returns active models only); ``runIds`` keeps the
  models whose ``source_run_id`` is listed.
- ``registered_models``: the whole registry of the store; only ``mode`` applies (and
  ``viewType`` ``ACTIVE_ONLY`` / ``ALL``: a deleted registered model is gone from the store).
- ``model_versions``: the whole registry; ``viewType`` ``DELETED_ONLY`` / ``ALL`` add the versions
  MLflow keeps as deleted (``current_stage`` ``Deleted_Internal``); ``runIds`` keeps the
  versions whose ``run_id`` is listed.
- ``traces``, ``spans``, ``assessments``: the load path (and ``viewType``) select experiments;
  ``startTimeAfter`` (inclusive) and ``startTimeBefore`` (exclusive) bound the request time,
  ``traceStates`` and ``traceIds`` pick traces; ``withSpanContent`` adds the spans' inputs,
  outputs and events (``spans`` only); ``partitionSize`` / ``numPartitions`` count traces;
  streams of ``traces`` and ``assessments`` take ``maxRowsPerTrigger`` and
  ``lateArrivalSeconds``.

Example::

    >>> ReadRequest.from_options({"table": "params", "runIds": "a,b"}).run_ids
    ('a', 'b')
    >>> check_table_options("registered_models", {"runids": "abc"}, None)
    Traceback (most recent call last):
    ...
    pyspark_experiments.errors.ConfigurationError: option 'runIds' does not apply to table 'registered_models'; ...
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import tables
from ..errors import ConfigurationError
from ..stores import open_store
from ..stores.artifacts import DEFAULT_CONTENT_MAX_BYTES
from ..stores.base import MODES, VIEW_TYPES, Selection
from ..stores.resolve import resolve_experiments
from ..stores.rest.settings import REST_OPTIONS
from ..uri import TrackingUri, resolve_tracking_uri

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
    "experimentIds",
    "experimentNames",
    "columnNameOfCorruptRecord",
    # table `artifacts` (ARTIFACT_OPTIONS; check_table_options says which table takes which)
    "artifactPath",
    "maxDepth",
    "withContent",
    "maxContentBytes",
    # the trace tables (TRACE_OPTIONS)
    "startTimeBefore",
    "traceStates",
    "traceIds",
    "withSpanContent",
    # streams of traces and assessments
    "lateArrivalSeconds",
    # tracking servers only: credentials, TLS, retries, concurrency (stores/rest/settings.py)
    *REST_OPTIONS,
)
_CANONICAL = {name.lower(): name for name in OPTIONS}

#: Options of the artifact listing (lower-cased as Spark hands them over -> as users write them).
ARTIFACT_OPTIONS = {
    "artifactpath": "artifactPath",
    "maxdepth": "maxDepth",
    "withcontent": "withContent",
    "maxcontentbytes": "maxContentBytes",
}

#: Options of the trace tables only (lower-cased -> as users write them).
TRACE_OPTIONS = {
    "starttimebefore": "startTimeBefore",
    "tracestates": "traceStates",
    "traceids": "traceIds",
    "withspancontent": "withSpanContent",
}
#: The values of option ``traceStates``: MLflow's ``TraceState`` names.
TRACE_STATES = ("OK", "ERROR", "IN_PROGRESS")

# Connection options of tracking servers (credentials, TLS, retries) apply to every table.
_CONNECTION = {o.lower() for o in REST_OPTIONS}
_COMMON = {"trackinguri", "table", "mode", "partitionsize", "numpartitions", "columnnameofcorruptrecord", *_CONNECTION}
_EXPERIMENTS = {"experimentids", "experimentnames"}
#: Options of the streams of traces and assessments (spark.readStream).
_STREAMED = {"maxrowspertrigger", "latearrivalseconds"}
_APPLIES = {
    tables.ARTIFACTS: _COMMON | _EXPERIMENTS | {"viewtype", "runids", "starttimeafter", *ARTIFACT_OPTIONS},
    tables.MODELS: _COMMON | _EXPERIMENTS | {"viewtype", "runids"},
    tables.REGISTERED_MODELS: _COMMON | {"viewtype"},
    tables.MODEL_VERSIONS: _COMMON | {"viewtype", "runids"},
    tables.TRACES: _COMMON | _EXPERIMENTS | {"viewtype", "starttimeafter", *TRACE_OPTIONS, *_STREAMED}
    - {"withspancontent"},
    tables.SPANS: _COMMON | _EXPERIMENTS | {"viewtype", "starttimeafter", *TRACE_OPTIONS},
    tables.ASSESSMENTS: _COMMON | _EXPERIMENTS | {"viewtype", "starttimeafter", *TRACE_OPTIONS, *_STREAMED}
    - {"withspancontent"},
}


def check_table_options(table: str, given: dict, path: str | None) -> None:
    """Raise :class:`ConfigurationError` for an option (or load path) that ``table`` cannot use.

    ``given`` holds the options lower-cased, without the load path, which is ``path``.

    Example::

        >>> check_table_options("artifacts", {"maxdepth": "2"}, "my-experiment")
        >>> check_table_options("runs", {"maxdepth": "2"}, None)
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: option 'maxDepth' only applies to table 'artifacts'
    """
    if table not in _APPLIES:
        for option in sorted(given):
            if option in ARTIFACT_OPTIONS:
                raise ConfigurationError(f"option {ARTIFACT_OPTIONS[option]!r} only applies to table 'artifacts'")
            if option in TRACE_OPTIONS:
                raise ConfigurationError(
                    f"option {TRACE_OPTIONS[option]!r} only applies to tables {', '.join(tables.TRACE_TABLE_NAMES)}"
                )
        return
    allowed = _APPLIES[table]
    for option in sorted(given):
        if option not in allowed:
            valid = ", ".join(sorted(_CANONICAL[o] for o in allowed - _CONNECTION))
            raise ConfigurationError(
                f"option {_CANONICAL.get(option, option)!r} does not apply to table {table!r}; options that do: {valid} "
                f"(and a tracking server's connection options)"
            )
    if table in tables.REGISTRY_TABLES and path and str(path).strip():
        raise ConfigurationError(
            f"table {table!r} is the model registry of the whole store, not of experiments: load() takes "
            f"no path for it (got {str(path)!r}); filter the DataFrame by name instead"
        )
    if table == tables.REGISTERED_MODELS and str(given.get("viewtype", "")).strip().upper() == "DELETED_ONLY":
        raise ConfigurationError(
            "option 'viewType': 'DELETED_ONLY' does not apply to table 'registered_models' (MLflow removes a "
            "deleted registered model from the store); use ACTIVE_ONLY or ALL"
        )
    if table in tables.TRACE_TABLE_NAMES and given.get("columnnameofcorruptrecord") and bool_option(
            "withSpanContent", given.get("withspancontent")):
        raise ConfigurationError(
            "options 'withSpanContent' and 'columnNameOfCorruptRecord' cannot be combined; read the spans "
            "with columnNameOfCorruptRecord first, then the content of the good ones"
        )
    if "maxcontentbytes" in given and str(given.get("withcontent", "false")).strip().lower() != "true":
        raise ConfigurationError("option 'maxContentBytes' needs option('withContent', 'true')")


def bool_option(option: str, value: str | None) -> bool:
    """``true`` / ``false`` (any case); anything else is an error naming the option.

    Example::

        >>> bool_option("withContent", "TRUE")
        True
    """
    if value is None:
        return False
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ConfigurationError(f"option {option!r}: expected true or false, got {value!r}")
    return text == "true"


def artifact_path_option(value: str | None) -> str | None:
    """``artifactPath``: a folder relative to each run's artifact root, ``/``-separated.

    Example::

        >>> artifact_path_option("/eval/plots/")
        'eval/plots'
    """
    if value is None or not str(value).strip().strip("/"):
        return None
    path = str(value).strip().strip("/")
    if any(part in ("", ".", "..") for part in path.split("/")) or "\\" in path:
        raise ConfigurationError(
            f"option 'artifactPath': expected a folder relative to the run's artifact root such as "
            f"'eval/plots' (no '.', '..', empty parts or backslashes), got {value!r}"
        )
    return path


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
    # experimentIds / experimentNames: taken only as ids, only as names
    experiment_ids: tuple[str, ...] | None = None
    experiment_names: tuple[str, ...] | None = None
    # columnNameOfCorruptRecord: PERMISSIVE skips arrive as rows with this column set
    corrupt_record_column: str | None = None
    # artifacts: artifactPath, maxDepth, and with withContent the size bound (else None)
    artifact_path: str | None = None
    max_depth: int | None = None
    content_max_bytes: int | None = None
    # the trace tables: startTimeBefore (exclusive), traceStates, traceIds, withSpanContent
    max_start_time_ms: int | None = None
    trace_states: tuple[str, ...] | None = None
    trace_ids: tuple[str, ...] | None = None
    with_span_content: bool = False
    # streams of traces and assessments: how late an item may arrive and still be streamed
    late_arrival_seconds: int | None = None
    # REST connection options (may hold credentials: never shown)
    store_options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @classmethod
    def from_options(cls, options, environ=None) -> ReadRequest:
        """Validate Spark's options (case-insensitive) into a request.

        Example::

            >>> ReadRequest.from_options({"viewtype": "all", "path": "1, 2"}).experiments
            ('1', '2')
        """
        environ = os.environ if environ is None else environ
        given = {str(k).lower(): v for k, v in dict(options).items()}
        path = given.pop("path", None)
        paths = given.pop("paths", None)
        unknown = sorted(set(given) - set(_CANONICAL))
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(repr(u) for u in unknown)} for format "
                f"'experiments'; valid options: {', '.join(OPTIONS)}"
            )
        if paths and paths not in ("[]", ""):
            raise ConfigurationError(
                "format 'experiments' takes one load path: experiment ids or names, comma "
                "separated, e.g. load('3,7') or load('my-experiment')"
            )
        table = tables.check_table(given.get("table", tables.RUNS))
        check_table_options(table, given, path)
        with_content = bool_option("withContent", given.get("withcontent"))
        if with_content and given.get("columnnameofcorruptrecord"):
            raise ConfigurationError(
                "options 'withContent' and 'columnNameOfCorruptRecord' cannot be combined; read the "
                "listing with columnNameOfCorruptRecord first, then the content of the good files"
            )
        return cls(
            uri=resolve_tracking_uri(given.get("trackinguri"), environ),
            table=table,
            view_type=_choice("viewType", given.get("viewtype", "ACTIVE_ONLY"), VIEW_TYPES),
            experiments=_list_option(path),
            run_ids=_list_option(given.get("runids"), "runIds", "run ids"),
            metric_keys=_list_option(given.get("metrickeys"), "metricKeys", "metric keys"),
            min_start_time_ms=_time_option("startTimeAfter", given.get("starttimeafter")),
            partition_size=_positive_int("partitionSize", given.get("partitionsize")),
            num_partitions=_positive_int("numPartitions", given.get("numpartitions")),
            mode=_choice("mode", given.get("mode", "FAILFAST"), MODES),
            metric_ranges=_ranges_option(given.get("metricranges")),
            max_rows_per_trigger=_positive_int("maxRowsPerTrigger", given.get("maxrowspertrigger")),
            experiment_ids=_names_option("experimentIds", given.get("experimentids"), strip=True),
            experiment_names=_names_option("experimentNames", given.get("experimentnames"), strip=False),
            corrupt_record_column=_corrupt_record_option(given),
            artifact_path=artifact_path_option(given.get("artifactpath")),
            max_depth=_positive_int("maxDepth", given.get("maxdepth")),
            content_max_bytes=(
                (_positive_int("maxContentBytes", given.get("maxcontentbytes")) or DEFAULT_CONTENT_MAX_BYTES)
                if with_content else None
            ),
            max_start_time_ms=_time_option("startTimeBefore", given.get("starttimebefore")),
            trace_states=_states_option(given.get("tracestates")),
            trace_ids=_list_option(given.get("traceids"), "traceIds", "trace ids"),
            with_span_content=bool_option("withSpanContent", given.get("withspancontent")),
            late_arrival_seconds=_positive_int("lateArrivalSeconds", given.get("latearrivalseconds")),
            store_options=tuple(sorted((_CANONICAL[k], str(v)) for k, v in given.items() if _CANONICAL[k] in REST_OPTIONS)),
        )

    @property
    def schema(self):
        """The Spark schema of this read (the table's, plus the corrupt-record column if asked)."""
        if self.corrupt_record_column:
            return tables.with_corrupt_record(self.table, self.corrupt_record_column)
        if self.table == tables.ARTIFACTS:
            return tables.artifacts_schema(self.content_max_bytes is not None)
        if self.table == tables.SPANS:
            return tables.spans_schema(self.with_span_content)
        return tables.spark_schema(self.table)

    def open_store(self):
        """The store backend of this read, with its connection options (no connection yet).

        Example::

            >>> ReadRequest.from_options({"trackingUri": "sqlite:////tmp/mlflow.db"}).open_store().capabilities.kind
            'sql'
        """
        return open_store(self.uri, dict(self.store_options))

    def selection(self, store, environ=None):
        """Resolve the experiments against ``store`` and describe the read for the backend.

        Example::

            >>> request = ReadRequest.from_options({"trackingUri": "sqlite:///mlflow.db"})
            >>> request.selection(open_store(request.uri)).experiment_ids  # doctest: +SKIP
            ('0', '1')
        """
        if self.table in tables.TRACE_TABLE_NAMES and self.table not in store.capabilities.tables:
            raise ConfigurationError(
                f"option 'table': {self.uri.display} does not serve table {self.table!r}; it serves "
                f"{', '.join(store.capabilities.tables)}"
            )
        if self.table in tables.REGISTRY_TABLES:
            experiment_ids = ()  # the registry is store-wide
        else:
            experiment_ids = resolve_experiments(
                store, self.experiments, self.view_type, self.table, environ,
                ids=self.experiment_ids, names=self.experiment_names,
            )
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
            artifact_path=self.artifact_path,
            max_depth=self.max_depth,
            content_max_bytes=self.content_max_bytes,
            max_start_time_ms=self.max_start_time_ms,
            trace_states=self.trace_states,
            trace_ids=self.trace_ids,
            with_span_content=self.with_span_content,
        )


def _choice(option: str, value: str, valid: tuple[str, ...]) -> str:
    canonical = str(value).strip().upper()
    if canonical not in valid:
        raise ConfigurationError(f"option {option!r}: unknown value {value!r}; expected one of {', '.join(valid)}")
    return canonical


def _list_option(value: str | None, option: str | None = None, what: str = "items") -> tuple[str, ...] | None:
    """Comma-separated items, blanks dropped; ``None`` for none. Where ``option`` is named, a
    value without items is an error: an empty filter (``",".join([])``) must not read everything."""
    if value is None:
        return None
    items = tuple(item.strip() for item in str(value).split(",") if item.strip())
    if not items and option:
        raise ConfigurationError(
            f"option {option!r}: expected {what} separated by commas, got {value!r}, which names none; "
            f"leave the option out to read them all"
        )
    return items or None


def _names_option(option: str, value: str | None, strip: bool) -> tuple[str, ...] | None:
    """Comma-separated items, or a JSON list of strings for items holding commas or
    surrounding spaces (``'["exp,comma", " padded "]'``); names keep their spaces in JSON."""
    if value is None:
        return None
    text = str(value).strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ValueError
        except ValueError:
            raise ConfigurationError(
                f"option {option!r}: expected names separated by commas, or a JSON list of strings "
                f"for names that hold commas or surrounding spaces, e.g. '[\"exp,comma\", \" padded \"]'; "
                f"got {value!r}"
            ) from None
        items = [i.strip() for i in items] if strip else items
        return tuple(i for i in items if i) or None
    return _list_option(text)


def _corrupt_record_option(given: dict) -> str | None:
    column = given.get("columnnameofcorruptrecord")
    if column is None:
        return None
    column = str(column).strip()
    if not column:
        raise ConfigurationError("option 'columnNameOfCorruptRecord': expected a column name, e.g. '_corrupt_record'")
    tables.with_corrupt_record(tables.check_table(given.get("table", tables.RUNS)), column)  # not a table column
    return column


def _states_option(value: str | None) -> tuple[str, ...] | None:
    """``traceStates``: trace states, comma separated, any case.

    Example::

        >>> _states_option("error, ok")
        ('ERROR', 'OK')
    """
    states = _list_option(value, "traceStates", "trace states")
    if states is None:
        return None
    return tuple(_choice("traceStates", state, TRACE_STATES) for state in states)


def _positive_int(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigurationError(f"option {option!r}: expected a positive integer, got {value!r}")
    return number


def _ranges_option(value: str | None) -> tuple[tuple[str, str, int, int], ...] | None:
    """``metricRanges``: JSON ``{run_id: {key: [after, upto]}}`` of store positions."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
        ranges = tuple(sorted(
            (str(run_id), str(key), int(after), int(upto))
            for run_id, keys in parsed.items()
            for key, (after, upto) in keys.items()
        ))
    except (ValueError, TypeError, AttributeError):
        raise ConfigurationError(
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
        number = int(text)
        if 10**8 <= abs(number) < 10**11:
            # as milliseconds, a moment in 1970; as seconds, 1973 to 5138: surely seconds
            raise ConfigurationError(
                f"option {option!r}: {text} looks like epoch seconds; expected epoch milliseconds "
                f"({number * 1000}) or an ISO-8601 time such as '2026-01-31T12:00:00Z'"
            )
        return number
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"option {option!r}: expected an ISO-8601 time such as '2026-01-31T12:00:00Z' or "
            f"epoch milliseconds, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


__all__ = [
    "ARTIFACT_OPTIONS", "OPTIONS", "TRACE_OPTIONS", "TRACE_STATES", "ReadRequest", "artifact_path_option",
    "bool_option", "check_table_options",
]
