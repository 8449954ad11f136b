"""The tables the ``experiments`` source produces: names and schemas, defined once.

Every other module takes its columns from here: the store backends build Arrow batches with
:func:`arrow_schema`, the Spark adapter declares :func:`spark_schema`, the Delta sync creates
its tables from them.

Example::

    >>> from pyspark_experiments import tables
    >>> tables.TABLE_NAMES
    ('runs', 'metrics', 'params', 'tags', 'experiments', 'inputs')
    >>> tables.spark_schema("params").fieldNames()
    ['experiment_id', 'run_id', 'key', 'value']
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from .errors import ConfigurationError

RUNS = "runs"
METRICS = "metrics"
PARAMS = "params"
TAGS = "tags"
EXPERIMENTS = "experiments"
INPUTS = "inputs"

TABLE_NAMES = (RUNS, METRICS, PARAMS, TAGS, EXPERIMENTS, INPUTS)

# Artifacts, MLflow 3 logged models and the model registry. Not in TABLE_NAMES, which
# lists the tables the Delta sync keeps.
ARTIFACTS = "artifacts"
MODELS = "models"
REGISTERED_MODELS = "registered_models"
MODEL_VERSIONS = "model_versions"
MODEL_TABLE_NAMES = (ARTIFACTS, MODELS, REGISTERED_MODELS, MODEL_VERSIONS)
#: Tables of the model registry: the whole registry of the store, not per experiment.
REGISTRY_TABLES = (REGISTERED_MODELS, MODEL_VERSIONS)

# MLflow 3 GenAI traces. Not in TABLE_NAMES either: the Delta sync keeps them when asked (``tables``).
TRACES = "traces"
SPANS = "spans"
ASSESSMENTS = "assessments"
TRACE_TABLE_NAMES = (TRACES, SPANS, ASSESSMENTS)

#: Every value of the ``table`` option.
ALL_TABLE_NAMES = TABLE_NAMES + MODEL_TABLE_NAMES + TRACE_TABLE_NAMES
#: MLflow's tag naming a nested run's parent; the ``runs`` column ``parent_run_id`` holds its value.
PARENT_RUN_TAG = "mlflow.parentRunId"

_STRING_MAP = MapType(StringType(), StringType(), valueContainsNull=True)
_DOUBLE_MAP = MapType(StringType(), DoubleType(), valueContainsNull=True)

_SCHEMAS = {
    # The first nine columns are those of Databricks' `mlflow-experiment` source; columns added
    # later go at the end, so that positional reads of older tables keep their meaning.
    RUNS: StructType(
        [
            StructField("run_id", StringType(), False),
            StructField("experiment_id", StringType(), False),
            StructField("metrics", MapType(StringType(), DoubleType(), True), False),
            StructField("params", _STRING_MAP, False),
            StructField("tags", _STRING_MAP, False),
            StructField("start_time", TimestampType(), True),
            StructField("end_time", TimestampType(), True),
            StructField("status", StringType(), True),
            StructField("artifact_uri", StringType(), True),
            StructField("run_name", StringType(), True),
            StructField("user_id", StringType(), True),
            StructField("lifecycle_stage", StringType(), True),
            StructField("parent_run_id", StringType(), True),
        ]
    ),
    METRICS: StructType(
        [
            StructField("experiment_id", StringType(), False),
            StructField("run_id", StringType(), False),
            StructField("key", StringType(), False),
            StructField("value", DoubleType(), True),
            StructField("step", LongType(), False),
            StructField("timestamp", TimestampType(), True),
        ]
    ),
    PARAMS: StructType(
        [
            StructField("experiment_id", StringType(), False),
            StructField("run_id", StringType(), False),
            StructField("key", StringType(), False),
            StructField("value", StringType(), True),
        ]
    ),
    TAGS: StructType(
        [
            StructField("experiment_id", StringType(), False),
            StructField("run_id", StringType(), False),
            StructField("key", StringType(), False),
            StructField("value", StringType(), True),
        ]
    ),
    EXPERIMENTS: StructType(
        [
            StructField("experiment_id", StringType(), False),
            StructField("name", StringType(), False),
            StructField("artifact_location", StringType(), True),
            StructField("lifecycle_stage", StringType(), True),
            StructField("creation_time", TimestampType(), True),
            StructField("last_update_time", TimestampType(), True),
            StructField("tags", _STRING_MAP, False),
        ]
    ),
    INPUTS: StructType(
        [
            StructField("experiment_id", StringType(), False),
            StructField("run_id", StringType(), False),
            StructField("dataset_name", StringType(), True),
            StructField("dataset_digest", StringType(), True),
            StructField("dataset_source_type", StringType(), True),
            StructField("dataset_source", StringType(), True),
            StructField("dataset_schema", StringType(), True),
            StructField("dataset_profile", StringType(), True),
            StructField("context", StringType(), True),
            StructField("tags", _STRING_MAP, False),
        ]
    ),
    # With the option withContent the source adds ARTIFACT_CONTENT_FIELD (see artifacts_schema).
    ARTIFACTS: StructType(
        [
            StructField("experiment_id", StringType(), False),
            StructField("run_id", StringType(), False),
            StructField("path", StringType(), False),
            StructField("is_dir", BooleanType(), False),
            StructField("file_size", LongType(), True),
        ]
    ),
    MODELS: StructType(
        [
            StructField("model_id", StringType(), False),
            StructField("experiment_id", StringType(), False),
            StructField("name", StringType(), True),
            StructField("source_run_id", StringType(), True),
            StructField("status", StringType(), True),
            StructField("model_type", StringType(), True),
            StructField("artifact_location", StringType(), True),
            StructField("creation_time", TimestampType(), True),
            StructField("last_updated_time", TimestampType(), True),
            StructField("lifecycle_stage", StringType(), True),
            StructField("params", _STRING_MAP, False),
            StructField("tags", _STRING_MAP, False),
            StructField(
                "metrics",
                ArrayType(
                    StructType(
                        [
                            StructField("key", StringType(), False),
                            StructField("value", DoubleType(), True),
                            StructField("step", LongType(), False),
                            StructField("timestamp", TimestampType(), True),
                            StructField("run_id", StringType(), True),
                            StructField("dataset_name", StringType(), True),
                            StructField("dataset_digest", StringType(), True),
                        ]
                    ),
                    containsNull=False,
                ),
                False,
            ),
        ]
    ),
    REGISTERED_MODELS: StructType(
        [
            StructField("name", StringType(), False),
            StructField("description", StringType(), True),
            StructField("creation_time", TimestampType(), True),
            StructField("last_updated_time", TimestampType(), True),
            StructField("tags", _STRING_MAP, False),
            StructField("aliases", _STRING_MAP, False),
        ]
    ),
    MODEL_VERSIONS: StructType(
        [
            StructField("name", StringType(), False),
            StructField("version", StringType(), False),
            StructField("source", StringType(), True),
            StructField("run_id", StringType(), True),
            StructField("model_id", StringType(), True),
            StructField("status", StringType(), True),
            StructField("current_stage", StringType(), True),
            StructField("description", StringType(), True),
            StructField("creation_time", TimestampType(), True),
            StructField("last_updated_time", TimestampType(), True),
            StructField("tags", _STRING_MAP, False),
            StructField("aliases", ArrayType(StringType(), containsNull=False), False),
        ]
    ),
    TRACES: StructType(
        [
            StructField("trace_id", StringType(), False),
            StructField("experiment_id", StringType(), False),
            StructField("request_time", TimestampType(), True),
            StructField("execution_duration_ms", LongType(), True),
            StructField("state", StringType(), True),
            StructField("trace_name", StringType(), True),
            StructField("client_request_id", StringType(), True),
            StructField("session_id", StringType(), True),
            StructField("user_id", StringType(), True),
            StructField("source_run_id", StringType(), True),
            StructField("request_preview", StringType(), True),
            StructField("response_preview", StringType(), True),
            StructField("input_tokens", LongType(), True),
            StructField("output_tokens", LongType(), True),
            StructField("total_tokens", LongType(), True),
            StructField("cache_read_input_tokens", LongType(), True),
            StructField("cache_creation_input_tokens", LongType(), True),
            StructField("input_cost", DoubleType(), True),
            StructField("output_cost", DoubleType(), True),
            StructField("total_cost", DoubleType(), True),
            StructField("tags", _STRING_MAP, False),
            StructField("request_metadata", _STRING_MAP, False),
            StructField("trace_metrics", _DOUBLE_MAP, False),
        ]
    ),
    # With the option withSpanContent the source adds SPAN_CONTENT_FIELDS (see spans_schema).
    SPANS: StructType(
        [
            StructField("trace_id", StringType(), False),
            StructField("experiment_id", StringType(), False),
            StructField("span_id", StringType(), False),
            StructField("parent_span_id", StringType(), True),
            StructField("name", StringType(), True),
            StructField("span_type", StringType(), True),
            StructField("status", StringType(), True),
            StructField("status_message", StringType(), True),
            StructField("start_time", TimestampType(), True),
            StructField("end_time", TimestampType(), True),
            StructField("start_time_ns", LongType(), True),
            StructField("end_time_ns", LongType(), True),
            StructField("duration_ms", DoubleType(), True),
            StructField("model_name", StringType(), True),
            StructField("model_provider", StringType(), True),
            StructField("input_tokens", LongType(), True),
            StructField("output_tokens", LongType(), True),
            StructField("total_tokens", LongType(), True),
            StructField("cost", DoubleType(), True),
            StructField("attributes", _STRING_MAP, False),
        ]
    ),
    ASSESSMENTS: StructType(
        [
            StructField("assessment_id", StringType(), False),
            StructField("trace_id", StringType(), False),
            StructField("experiment_id", StringType(), False),
            StructField("run_id", StringType(), True),
            StructField("span_id", StringType(), True),
            StructField("name", StringType(), True),
            StructField("assessment_type", StringType(), True),
            StructField("value", StringType(), True),
            StructField("value_type", StringType(), True),
            StructField("numeric_value", DoubleType(), True),
            StructField("error_code", StringType(), True),
            StructField("error_message", StringType(), True),
            StructField("source_type", StringType(), True),
            StructField("source_id", StringType(), True),
            StructField("rationale", StringType(), True),
            StructField("valid", BooleanType(), True),
            StructField("overrides", StringType(), True),
            StructField("metadata", _STRING_MAP, False),
            StructField("create_time", TimestampType(), True),
            StructField("last_update_time", TimestampType(), True),
        ]
    ),
}

#: The ``content`` column that the option ``withContent`` adds to ``artifacts``.
ARTIFACT_CONTENT_FIELD = StructField("content", BinaryType(), True)

#: The columns that the option ``withSpanContent`` adds to ``spans``: the span's inputs and
#: outputs and its events (exceptions among them), each JSON text as MLflow stores it.
SPAN_CONTENT_FIELDS = (
    StructField("inputs", StringType(), True),
    StructField("outputs", StringType(), True),
    StructField("events", StringType(), True),
)

# Natural keys: the columns that identify a row (used by the Delta sync's MERGE).
NATURAL_KEYS = {
    RUNS: ("run_id",),
    METRICS: ("run_id", "key", "step", "timestamp", "value"),
    PARAMS: ("run_id", "key"),
    TAGS: ("run_id", "key"),
    EXPERIMENTS: ("experiment_id",),
    INPUTS: ("run_id", "dataset_name", "dataset_digest", "context"),
    ARTIFACTS: ("run_id", "path"),
    MODELS: ("model_id",),
    REGISTERED_MODELS: ("name",),
    MODEL_VERSIONS: ("name", "version"),
    TRACES: ("trace_id",),
    SPANS: ("trace_id", "span_id"),
    ASSESSMENTS: ("assessment_id",),
}


def check_table(name: str) -> str:
    """Return the canonical table name for ``name`` (case-insensitive), else a ``ConfigurationError``.

    Example::

        >>> check_table("Metrics")
        'metrics'
    """
    canonical = str(name).strip().lower()
    if canonical not in ALL_TABLE_NAMES:
        raise ConfigurationError(
            f"option 'table': unknown table {name!r}; expected one of {', '.join(ALL_TABLE_NAMES)}"
        )
    return canonical


def spark_schema(table: str) -> StructType:
    """The Spark schema of ``table`` (any table of :data:`ALL_TABLE_NAMES`).

    Example::

        >>> spark_schema("runs").fieldNames()[:3]
        ['run_id', 'experiment_id', 'metrics']
        >>> spark_schema("assessments").fieldNames()[:2]
        ['assessment_id', 'trace_id']
    """
    return _SCHEMAS[check_table(table)]


@cache
def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table``, exactly as Spark's Python data source checks it.

    Timestamps are ``timestamp[us, tz=UTC]``, strings ``string``; names, order and
    nullability follow :func:`spark_schema`.

    Example::

        >>> arrow_schema("metrics").field("timestamp").type
        TimestampType(timestamp[us, tz=UTC])
    """
    return pa.schema([_arrow_field(field) for field in spark_schema(table).fields])


def artifacts_schema(with_content: bool = False) -> StructType:
    """The Spark schema of ``artifacts``; ``with_content`` adds the binary ``content`` column.

    Example::

        >>> artifacts_schema(True).fieldNames()[-1]
        'content'
    """
    base = spark_schema(ARTIFACTS)
    return StructType([*base.fields, ARTIFACT_CONTENT_FIELD]) if with_content else base


@cache
def artifacts_arrow_schema(with_content: bool = False) -> pa.Schema:
    """The Arrow schema of :func:`artifacts_schema`.

    Example::

        >>> artifacts_arrow_schema(True).field("content").type
        DataType(binary)
    """
    return pa.schema([_arrow_field(field) for field in artifacts_schema(with_content).fields])


def spans_schema(with_content: bool = False) -> StructType:
    """The Spark schema of ``spans``; ``with_content`` adds ``inputs``, ``outputs`` and ``events``.

    Example::

        >>> spans_schema(True).fieldNames()[-3:]
        ['inputs', 'outputs', 'events']
    """
    base = spark_schema(SPANS)
    return StructType([*base.fields, *SPAN_CONTENT_FIELDS]) if with_content else base


@cache
def spans_arrow_schema(with_content: bool = False) -> pa.Schema:
    """The Arrow schema of :func:`spans_schema`.

    Example::

        >>> spans_arrow_schema().field("start_time_ns").type
        DataType(int64)
    """
    return pa.schema([_arrow_field(field) for field in spans_schema(with_content).fields])


def _arrow_field(field: StructField) -> pa.Field:
    # Written out rather than taken from pyspark.sql.pandas.types.to_arrow_schema, whose
    # signature (timezone, map and nullability handling) differs across the Spark 4.x
    # releases this package supports.
    return pa.field(field.name, _arrow_type(field.dataType), nullable=field.nullable)


def _arrow_type(data_type) -> pa.DataType:
    if isinstance(data_type, StringType):
        return pa.string()
    if isinstance(data_type, DoubleType):
        return pa.float64()
    if isinstance(data_type, LongType):
        return pa.int64()
    if isinstance(data_type, TimestampType):
        return pa.timestamp("us", tz="UTC")
    if isinstance(data_type, BooleanType):
        return pa.bool_()
    if isinstance(data_type, BinaryType):
        return pa.binary()
    if isinstance(data_type, ArrayType):
        return pa.list_(pa.field("element", _arrow_type(data_type.elementType), nullable=data_type.containsNull))
    if isinstance(data_type, StructType):
        return pa.struct([_arrow_field(field) for field in data_type.fields])
    if isinstance(data_type, MapType):
        return pa.map_(
            pa.field("key", _arrow_type(data_type.keyType), nullable=False),
            pa.field("value", _arrow_type(data_type.valueType), nullable=data_type.valueContainsNull),
        )
    raise TypeError(f"no Arrow type for {data_type!r}")


def with_corrupt_record(table: str, column: str) -> StructType:
    """``table``'s Spark schema for a read with option ``columnNameOfCorruptRecord``: every
    column nullable (a skipped record's row holds only what is known of it), plus ``column``
    (string: where the skipped record is and why; null on every good row).

    Example::

        >>> schema = with_corrupt_record("params", "_corrupt_record")
        >>> schema.fieldNames(), schema["run_id"].nullable
        (['experiment_id', 'run_id', 'key', 'value', '_corrupt_record'], True)
    """
    fields = spark_schema(table).fields
    if column in [f.name for f in fields]:
        raise ConfigurationError(
            f"option 'columnNameOfCorruptRecord': {column!r} is a column of table {table!r}; "
            f"choose another name, e.g. '_corrupt_record'"
        )
    return StructType(
        [StructField(f.name, f.dataType, True) for f in fields] + [StructField(column, StringType(), True)]
    )


@cache
def arrow_with_corrupt_record(table: str, column: str) -> pa.Schema:
    """The Arrow schema of :func:`with_corrupt_record`.

    Example::

        >>> arrow_with_corrupt_record("params", "_bad").field("_bad").type
        DataType(string)
    """
    return pa.schema([_arrow_field(field) for field in with_corrupt_record(table, column).fields])
