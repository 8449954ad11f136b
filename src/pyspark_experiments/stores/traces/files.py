"""The file store's traces (``mlruns/``) read into Arrow batches.

Layout as MLflow 3.18's ``FileStore`` writes it::

    <root>/<experiment_id>/traces/<trace_id>/
        trace_info.yaml           TraceInfo.to_dict() without tags and metadata
        tags/<key>                one file per tag, its value as text
        request_metadata/<key>    one file per metadata entry
        assessments/<id>.yaml     Assessment.to_dictionary()
        artifacts/traces.json     {"spans": [Span.to_dict(), ...]}, at the trace's artifact
                                  location (tag ``mlflow.artifactLocation``)

Deleted experiments move to ``<root>/.trash/<experiment_id>`` with their traces; deleted traces
are removed. A trace still in progress may have no ``traces.json`` yet: it then has no spans,
as ``MlflowClient.get_trace`` finds none.

Example::

    >>> plan_trace_folders("/no/such/root", TraceSelection(experiment_ids=("1",)))
    []
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pyarrow as pa
import yaml

from ...errors import MalformedRecordError
from .artifact_spans import ARTIFACT_LOCATION_TAG, SPANS_FILE, local_spans_file, read_spans_file
from .convert import (
    assessment_from_json,
    assessments_batch,
    rfc3339_to_us,
    spans_batch,
    trace_from_json,
    traces_batch,
)
from .selection import TraceSelection
from .spans import span_row

TRACES_FOLDER = "traces"
TRACE_INFO_FILE = "trace_info.yaml"
TAGS_FOLDER = "tags"
METADATA_FOLDER = "request_metadata"
ASSESSMENTS_FOLDER = "assessments"


def plan_trace_folders(root: str, selection: TraceSelection) -> list[tuple[str, str, str]]:
    """``(trace_id, experiment_id, folder)`` of every selected trace, by request time then id.

    Reads each candidate's ``trace_info.yaml`` (its request time orders the traces).

    Example::

        >>> plan_trace_folders("/tmp/none", TraceSelection(experiment_ids=()))
        []
    """
    wanted = None if selection.trace_ids is None else set(selection.trace_ids)
    found = []
    for experiment_id in selection.experiment_ids:
        traces = os.path.join(experiment_folder(root, experiment_id), TRACES_FOLDER)
        if not os.path.isdir(traces):
            continue
        for trace_id in sorted(os.listdir(traces)):
            folder = os.path.join(traces, trace_id)
            if (wanted is not None and trace_id not in wanted) or not os.path.isfile(
                    os.path.join(folder, TRACE_INFO_FILE)):
                continue
            info = read_trace_info(folder)
            request_us = rfc3339_to_us(info.get("request_time")) if "request_time" in info else (
                None if info.get("timestamp_ms") is None else int(info["timestamp_ms"]) * 1000)
            state = info.get("state", info.get("status"))
            if selection.states and state not in selection.states:
                continue
            if selection.start_ms is not None and (request_us is None or request_us < selection.start_ms * 1000):
                continue
            if selection.end_ms is not None and (request_us is None or request_us >= selection.end_ms * 1000):
                continue
            found.append((request_us or 0, trace_id, experiment_id, folder))
    found.sort()
    return [(trace_id, experiment_id, folder) for _, trace_id, experiment_id, folder in found]


def experiment_folder(root: str, experiment_id: str) -> str:
    """The folder of experiment ``experiment_id``: ``<root>/<id>``, or ``<root>/.trash/<id>``
    once deleted.

    Example::

        >>> experiment_folder("/no/root", "7")
        '/no/root/7'
    """
    folder = os.path.join(root, str(experiment_id))
    trashed = os.path.join(root, ".trash", str(experiment_id))
    return trashed if not os.path.isdir(folder) and os.path.isdir(trashed) else folder


def read_traces(folders: Sequence[str]) -> pa.RecordBatch:
    """The ``traces`` rows of the trace folders ``folders``.

    Example::

        >>> read_traces([]).num_rows
        0
    """
    rows = []
    for folder in folders:
        info = read_trace_info(folder)
        rows.append(trace_from_json(info, tags=read_key_files(os.path.join(folder, TAGS_FOLDER)),
                                    metadata=read_key_files(os.path.join(folder, METADATA_FOLDER))))
    return traces_batch(rows)


def read_spans(folders: Sequence[tuple[str, str]], with_content: bool = False) -> pa.RecordBatch:
    """The ``spans`` rows of ``(experiment_id, folder)`` traces, each trace's spans by start time.

    Example::

        >>> read_spans([]).num_rows
        0
    """
    return spans_batch(list(iter_span_rows(folders, with_content)), with_content)


def iter_span_rows(folders: Sequence[tuple[str, str]], with_content: bool = False) -> Iterator[dict]:
    """The rows of :func:`read_spans`, one trace at a time.

    Example::

        >>> list(iter_span_rows([]))
        []
    """
    for experiment_id, folder in folders:
        trace_id = os.path.basename(os.path.normpath(folder))
        spans = read_spans_file(spans_path(folder), trace_id)
        rows = [span_row(span, experiment_id=experiment_id, trace_id=trace_id, with_content=with_content)
                for span in spans or []]
        rows.sort(key=lambda row: (row["start_time_ns"] is None, row["start_time_ns"] or 0, row["span_id"]))
        yield from rows


def read_assessments(folders: Sequence[tuple[str, str]]) -> pa.RecordBatch:
    """The ``assessments`` rows of ``(experiment_id, folder)`` traces, by creation time.

    Example::

        >>> read_assessments([]).num_rows
        0
    """
    rows = []
    for experiment_id, folder in folders:
        trace_id = os.path.basename(os.path.normpath(folder))
        assessments = os.path.join(folder, ASSESSMENTS_FOLDER)
        if not os.path.isdir(assessments):
            continue
        found = []
        for name in sorted(os.listdir(assessments)):
            if name.endswith(".yaml"):
                found.append(assessment_from_json(_read_yaml(os.path.join(assessments, name)), experiment_id,
                                                  trace_id=trace_id))
        found.sort(key=lambda row: (row["create_time"] or 0, row["assessment_id"]))
        rows.extend(found)
    return assessments_batch(rows)


def read_trace_info(folder: str) -> dict:
    """The parsed ``trace_info.yaml`` of a trace folder.

    Example::

        >>> read_trace_info("/no/trace")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.MalformedRecordError: trace folder /no/trace: cannot read trace_info.yaml: ...
    """
    return _read_yaml(os.path.join(folder, TRACE_INFO_FILE), what=f"trace folder {folder}: cannot read {TRACE_INFO_FILE}")


def read_key_files(folder: str) -> dict[str, str]:
    """``{key: value}`` of a folder of one file per key (``tags/``, ``request_metadata/``).

    Example::

        >>> read_key_files("/no/such/folder")
        {}
    """
    found = {}
    if not os.path.isdir(folder):
        return found
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            key = os.path.relpath(path, folder).replace(os.sep, "/")
            with open(path, encoding="utf-8") as handle:
                found[key] = handle.read()
    return found


def spans_path(folder: str) -> str:
    """Where a trace's ``traces.json`` is: at its artifact location tag, else ``artifacts/``.

    A location that is not local is an error naming the trace (see :mod:`.artifact_spans`).

    Example::

        >>> spans_path("/r/1/traces/tr-1")
        '/r/1/traces/tr-1/artifacts/traces.json'
    """
    trace_id = os.path.basename(os.path.normpath(folder))
    location_file = os.path.join(folder, TAGS_FOLDER, ARTIFACT_LOCATION_TAG)
    if not os.path.isfile(location_file):
        return os.path.join(folder, "artifacts", SPANS_FILE)
    with open(location_file, encoding="utf-8") as handle:
        return local_spans_file(handle.read().strip(), trace_id)


def _read_yaml(path: str, what: str | None = None) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as error:
        raise MalformedRecordError(f"{what or path}: {error}") from None
    if not isinstance(data, dict):
        raise MalformedRecordError(f"{what or path}: expected a YAML mapping")
    return data
