"""Spans kept as a ``traces.json`` artifact at a trace's local artifact location.

Where MLflow keeps spans outside a database: every trace of a file store, and the traces a SQL
store received from an MLflow older than its ``spans`` table (no ``mlflow.trace.spansLocation``
tag, or ``ARTIFACT_REPO``). The artifact location is the trace's ``mlflow.artifactLocation``
tag: a local path or ``file://`` URI is read here; any other is an
:class:`~pyspark_experiments.errors.UnsupportedStoreError` naming the trace, so that no
trace's spans go missing without a word.

Example::

    >>> local_spans_file("file:///data/mlruns/1/traces/tr-1/artifacts", "tr-1")
    '/data/mlruns/1/traces/tr-1/artifacts/traces.json'
    >>> read_spans_file("/no/such/traces.json", "tr-1") is None
    True
"""

from __future__ import annotations

import json
import os
from urllib.parse import unquote, urlparse

from ...errors import MalformedRecordError, UnsupportedStoreError

SPANS_FILE = "traces.json"
ARTIFACT_LOCATION_TAG = "mlflow.artifactLocation"
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"
#: The ``mlflow.trace.spansLocation`` of spans kept in the tracking store's ``spans`` table.
IN_TRACKING_STORE = "TRACKING_STORE"
#: The ``mlflow.trace.spansLocation`` of spans moved to an archive (MLflow 3.18 trace archival).
IN_ARCHIVE = "ARCHIVE_REPO"


def local_spans_file(location: str, trace_id: str) -> str:
    """The path of ``traces.json`` under artifact location ``location`` of trace ``trace_id``.

    Example::

        >>> local_spans_file("s3://bucket/1/traces/tr-9/artifacts", "tr-9")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.UnsupportedStoreError: trace tr-9: its spans are at 's3://...; ...local paths only
    """
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return os.path.join(unquote(parsed.path), SPANS_FILE)
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # a path, or a Windows drive letter
        return os.path.join(location, SPANS_FILE)
    raise UnsupportedStoreError(
        f"trace {trace_id}: its spans are at {location!r}; "
        "this version reads spans kept as artifacts from local paths only"
    )


def read_spans_file(path: str, trace_id: str) -> list[dict] | None:
    """The span dicts of a ``traces.json``; ``None`` when there is none (a trace still in
    progress, whose spans MLflow's client does not find either).

    Example::

        >>> read_spans_file("/no/such/traces.json", "tr-1") is None
        True
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise MalformedRecordError(f"trace {trace_id}: cannot read its spans from {path}: {error}") from None
    spans = data.get("spans") if isinstance(data, dict) else None
    if not isinstance(spans, list):
        raise MalformedRecordError(f"trace {trace_id}: {path} holds no 'spans' list")
    return spans


def archived_spans_error(trace_id: str) -> UnsupportedStoreError:
    """The error for a trace whose spans MLflow moved to its trace archive.

    Example::

        >>> str(archived_spans_error("tr-1")).startswith("trace tr-1: its spans were archived")
        True
    """
    return UnsupportedStoreError(
        f"trace {trace_id}: its spans were archived (tag {SPANS_LOCATION_TAG} = {IN_ARCHIVE}); "
        "this version does not read MLflow's trace archive"
    )
