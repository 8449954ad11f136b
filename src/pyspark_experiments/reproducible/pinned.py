"""Delta tables pinned at a version, and the training input they make recorded on an MLflow run.

Example::

    >>> df, version = read_pinned(spark, "/data/events")  # doctest: +SKIP
    >>> log_training_input(df, "/data/events", version, keys=["user_id"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import ConfigurationError, MissingDependencyError
from ..jobs.target import is_table_path, latest_table_version, table_path
from .columns import check_int, resolve_keys
from .fingerprints import content_digest

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

#: Prefix of the run tags :func:`log_training_input` sets.
TAG_PREFIX = "pyspark_experiments.input"


class PinnedTable(NamedTuple):
    """A Delta table read at one version: ``df, version = read_pinned(...)``."""

    df: DataFrame
    version: int


def _delta_target(table: str) -> tuple[str, str]:
    """('path', path) or ('name', table name), by :func:`pyspark_experiments.jobs.target.is_table_path`."""
    if not isinstance(table, str) or not table.strip():
        raise TypeError(f"table must be a Delta table path or name, got {table!r}")
    if is_table_path(table):
        return "path", table_path(table)
    return "name", table.strip()


def read_pinned(spark: SparkSession, table: str, version: int | None = None) -> PinnedTable:
    """Read the Delta table ``table`` (a path or a table name) at ``version``.

    With ``version=None`` the table's current version is looked up and returned, and the
    DataFrame reads exactly that version (``versionAsOf``), even if a writer commits while
    you train. Record the version (:func:`log_training_input`) and read it again later with
    ``version=`` to get the same data; a version that was vacuumed or whose log was cleaned up
    is Delta's error.

    Example::

        >>> spark.range(5).write.format("delta").save("/tmp/events")
        >>> df, version = read_pinned(spark, "/tmp/events")
        >>> version, df.count()
        (0, 5)
        >>> read_pinned(spark, "/tmp/events", version=0).version
        0
    """
    if version is not None:
        version = check_int(version, "version", 0)
    kind, target = _delta_target(table)
    latest = latest_table_version(spark, table)
    if version is None:
        version = int(latest)
    elif version > latest:
        raise ConfigurationError(
            f"version={version} does not exist for Delta table {table!r}: "
            f"its latest version is {latest}"
        )
    reader = spark.read.format("delta").option("versionAsOf", version)
    df = reader.load(target) if kind == "path" else reader.table(target)
    return PinnedTable(df, version)


def _mlflow():
    try:
        import mlflow
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "log_training_input needs mlflow: pip install 'pyspark-experiments[mlflow]'"
        ) from error
    return mlflow


def log_training_input(
    df: DataFrame,
    table: str,
    version: int,
    *,
    keys: str | Sequence[str] | None = None,
    num_partitions: int | None = None,
    layout: Mapping[str, Any] | None = None,
    name: str | None = None,
    context: str = "training",
    run_id: str | None = None,
    fingerprint: str | None = None,
    rows: int | None = None,
    tag_prefix: str = TAG_PREFIX,
) -> dict[str, str]:
    """Record on an MLflow run exactly what it trains on: table, version, fingerprint, row
    count and layout, as a dataset input and as run tags.

    ``df`` is the data you train on (the pinned table, or a split of it), ``table`` and
    ``version`` where it came from (:func:`read_pinned`). The content fingerprint and row count
    are computed in one Spark job unless passed. ``keys`` and ``num_partitions`` (the
    :func:`deterministic_layout` parameters) and ``layout`` (anything else: split weights and
    seed, shard) are stored as JSON. The run is ``run_id`` or the active run.

    Logged: a dataset input (mlflow's source type ``delta_table`` with table and version,
    digest = the fingerprint, profile = the row count, the schema; ``mlflow.data.context`` =
    ``context``)
    whose input tags and the run tags are ``<tag_prefix>.table``, ``.version``,
    ``.fingerprint``, ``.rows`` and ``.layout``. Log several inputs on one run with different
    ``tag_prefix`` values. Returns the tags. Needs mlflow (the ``mlflow`` extra).

    Example::

        >>> import mlflow
        >>> df, version = read_pinned(spark, "/tmp/events")
        >>> train = deterministic_layout(df, ["id"], 4)
        >>> with mlflow.start_run():
        ...     tags = log_training_input(train, "/tmp/events", version, keys=["id"],
        ...                               num_partitions=4)
        >>> tags["pyspark_experiments.input.version"]
        '0'
    """
    mlflow = _mlflow()
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.spark_dataset import SparkDataset
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    kind, target = _delta_target(table)
    version = check_int(version, "version", 0)
    layout_info: dict[str, Any] = {}
    if keys is not None:
        layout_info["keys"] = resolve_keys(df, keys)
    if num_partitions is not None:
        layout_info["num_partitions"] = check_int(num_partitions, "num_partitions", 1)
    if layout is not None:
        if not isinstance(layout, Mapping):
            raise TypeError(f"layout must be a mapping, got {layout!r}")
        layout_info.update(layout)
    if not isinstance(tag_prefix, str) or not tag_prefix:
        raise TypeError(f"tag_prefix must be a non-empty string, got {tag_prefix!r}")

    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise ConfigurationError("log_training_input needs an active MLflow run or run_id=")
        run_id = active.info.run_id

    if fingerprint is None or rows is None:
        computed_fingerprint, computed_rows = content_digest(df)
        fingerprint = fingerprint or computed_fingerprint
        rows = computed_rows if rows is None else rows

    if kind == "path":
        source = DeltaDatasetSource(path=target, delta_table_version=version)
    else:
        source = DeltaDatasetSource(delta_table_name=target, delta_table_version=version)
    if name is None:
        base = target.rstrip("/").replace("\\", "/").split("/")[-1] or target
        name = f"{base}@v{version}"
    tags = {
        f"{tag_prefix}.table": table,
        f"{tag_prefix}.version": str(version),
        f"{tag_prefix}.fingerprint": fingerprint,
        f"{tag_prefix}.rows": str(int(rows)),
        f"{tag_prefix}.layout": json.dumps(layout_info, sort_keys=True),
    }
    # The entity is built here rather than by SparkDataset.to_dict(), whose profile starts an
    # approximate count job that keeps running in the background.
    with warnings.catch_warnings():  # mlflow's hint about integer columns is for model inputs
        warnings.simplefilter("ignore")
        schema = SparkDataset(df=df, source=source, name=name, digest=fingerprint).schema
    entity = DatasetEntity(
        name=name,
        digest=fingerprint,
        source_type=source._get_source_type(),
        source=source.to_json(),
        schema=json.dumps({"mlflow_colspec": schema.to_dict()}) if schema else None,
        profile=json.dumps({"num_rows": int(rows)}),
    )
    input_tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)] + [
        InputTag(key=k, value=v) for k, v in tags.items()
    ]
    client = mlflow.MlflowClient()
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=entity, tags=input_tags)])
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    return tags
