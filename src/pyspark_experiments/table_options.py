"""Which options apply to which table, for the tables of artifacts, logged models and the registry.

An option that cannot narrow a table is an error naming the option, the table and the options
that do apply, rather than being ignored. How the others apply:

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

Example::

    >>> check_table_options("registered_models", {"runids": "abc"}, None)
    Traceback (most recent call last):
    ...
    pyspark_experiments.errors.ConfigurationError: option 'runIds' does not apply to table 'registered_models' ...
"""

from __future__ import annotations

from . import tables
from .errors import ConfigurationError
from .stores.rest.settings import REST_OPTIONS

#: Options of the artifact listing (lower-cased as Spark hands them over -> as users write them).
ARTIFACT_OPTIONS = {
    "artifactpath": "artifactPath",
    "maxdepth": "maxDepth",
    "withcontent": "withContent",
    "maxcontentbytes": "maxContentBytes",
}

# Connection options of tracking servers (credentials, TLS, retries) apply to every table.
_CONNECTION = {o.lower() for o in REST_OPTIONS}
_COMMON = {"trackinguri", "table", "mode", "partitionsize", "numpartitions", "columnnameofcorruptrecord", *_CONNECTION}
_EXPERIMENTS = {"experimentids", "experimentnames"}
_APPLIES = {
    tables.ARTIFACTS: _COMMON | _EXPERIMENTS | {"viewtype", "runids", "starttimeafter", *ARTIFACT_OPTIONS},
    tables.MODELS: _COMMON | _EXPERIMENTS | {"viewtype", "runids"},
    tables.REGISTERED_MODELS: _COMMON | {"viewtype"},
    tables.MODEL_VERSIONS: _COMMON | {"viewtype", "runids"},
}
_NAMES = {
    "trackinguri": "trackingUri", "table": "table", "viewtype": "viewType", "metrickeys": "metricKeys",
    "runids": "runIds", "starttimeafter": "startTimeAfter", "partitionsize": "partitionSize",
    "numpartitions": "numPartitions", "mode": "mode", "metricranges": "metricRanges",
    "maxrowspertrigger": "maxRowsPerTrigger", "experimentids": "experimentIds",
    "experimentnames": "experimentNames", "columnnameofcorruptrecord": "columnNameOfCorruptRecord",
    **ARTIFACT_OPTIONS,
    **{o.lower(): o for o in REST_OPTIONS},
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
        for option in given:
            if option in ARTIFACT_OPTIONS:
                raise ConfigurationError(f"option {ARTIFACT_OPTIONS[option]!r} only applies to table 'artifacts'")
        return
    allowed = _APPLIES[table]
    for option in sorted(given):
        if option not in allowed:
            valid = ", ".join(sorted(_NAMES[o] for o in allowed - _CONNECTION))
            raise ConfigurationError(
                f"option {_NAMES.get(option, option)!r} does not apply to table {table!r}; options that do: {valid} "
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
