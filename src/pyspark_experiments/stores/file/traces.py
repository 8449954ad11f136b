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

Files are read with the file store's own helpers (:func:`~.meta.read_yaml`,
:func:`~.meta.read_values`); a malformed one goes to ``problems``: an error under FAILFAST,
skipped and reported under PERMISSIVE (``None`` counts as FAILFAST).

:class:`FileTraceTables` is the part of :class:`~.store.FileStore` that plans and reads them.

Example::

    >>> plan_trace_folders("/no/such/root", TraceSelection(experiment_ids=("1",)))
    []
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pyarrow as pa

from ... import tables
from ...errors import UnsupportedStoreError
from ..base import Partition, Selection
from ..fingerprints import TRACE_FINGERPRINT_PARTS, fingerprint, text_digest
from ..problems import Problems
from ..traces.artifact_spans import ARTIFACT_LOCATION_TAG, SPANS_FILE, local_spans_file, read_spans_file
from ..traces.convert import (
    assessment_from_json,
    assessments_batch,
    rfc3339_to_us,
    spans_batch,
    trace_from_json,
    traces_batch,
)
from ..traces.reading import plan_trace_partitions, record_or_skip, span_rows, trace_selection
from ..traces.selection import TraceSelection
from .meta import file_stats, read_local_file, read_values, read_yaml

TRACES_FOLDER = "traces"
TRACE_INFO_FILE = "trace_info.yaml"
TAGS_FOLDER = "tags"
METADATA_FOLDER = "request_metadata"
ASSESSMENTS_FOLDER = "assessments"


def plan_trace_folders(root: str, selection: TraceSelection,
                       problems: Problems | None = None) -> list[tuple[str, str, str, int | None]]:
    """``(trace_id, experiment_id, folder, request_ms)`` of every selected trace, by request
    time then id.

    Reads each candidate's ``trace_info.yaml`` (its request time orders the traces); one that
    does not parse goes to ``problems``.

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
            info = read_trace_info(folder, problems)
            if info is None:  # planned all the same: its read reports it (PERMISSIVE planning)
                found.append((None, trace_id, experiment_id, folder))
                continue
            request_us = rfc3339_to_us(info.get("request_time")) if "request_time" in info else (
                None if info.get("timestamp_ms") is None else int(info["timestamp_ms"]) * 1000)
            state = info.get("state", info.get("status"))
            if selection.states and state not in selection.states:
                continue
            if selection.start_ms is not None and (request_us is None or request_us < selection.start_ms * 1000):
                continue
            if selection.end_ms is not None and (request_us is None or request_us >= selection.end_ms * 1000):
                continue
            found.append((request_us, trace_id, experiment_id, folder))
    found.sort(key=lambda item: (item[0] is None, item[0] or 0, item[1]))
    return [(trace_id, experiment_id, folder, request_us // 1000 if request_us is not None else None)
            for request_us, trace_id, experiment_id, folder in found]


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


def read_traces(folders: Sequence[str], problems: Problems | None = None) -> pa.RecordBatch:
    """The ``traces`` rows of the trace folders ``folders``.

    Example::

        >>> read_traces([]).num_rows
        0
    """
    rows = []
    for folder in folders:
        info = read_trace_info(folder, problems)
        if info is None:
            continue
        tags = read_key_files(os.path.join(folder, TAGS_FOLDER), problems)
        metadata = read_key_files(os.path.join(folder, METADATA_FOLDER), problems)
        row = record_or_skip(problems, f"{folder}/{TRACE_INFO_FILE}",
                             lambda: trace_from_json(info, tags=tags, metadata=metadata))
        if row is not None:
            rows.append(row)
    return traces_batch(rows)


def read_spans(folders: Sequence[tuple[str, str]], with_content: bool = False,
               problems: Problems | None = None) -> pa.RecordBatch:
    """The ``spans`` rows of ``(experiment_id, folder)`` traces, each trace's spans by start time.

    Example::

        >>> read_spans([]).num_rows
        0
    """
    return spans_batch(list(iter_span_rows(folders, with_content, problems)), with_content)


def iter_span_rows(folders: Sequence[tuple[str, str]], with_content: bool = False,
                   problems: Problems | None = None) -> Iterator[dict]:
    """The rows of :func:`read_spans`, one trace at a time.

    Example::

        >>> list(iter_span_rows([]))
        []
    """
    for experiment_id, folder in folders:
        trace_id = os.path.basename(os.path.normpath(folder))
        spans = record_or_skip(problems, f"trace {trace_id}",
                               lambda: read_spans_file(spans_path(folder), trace_id))
        yield from span_rows(problems, spans, experiment_id=experiment_id, trace_id=trace_id, with_content=with_content)


def read_assessments(folders: Sequence[tuple[str, str]], problems: Problems | None = None) -> pa.RecordBatch:
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
            if not name.endswith(".yaml"):
                continue
            path = os.path.join(assessments, name)
            content = read_yaml(path, problems, required=True)
            row = None if content is None else record_or_skip(
                problems, path, lambda: assessment_from_json(content, experiment_id, trace_id=trace_id))
            if row is not None:
                found.append(row)
        found.sort(key=lambda row: (row["create_time"] or 0, row["assessment_id"]))
        rows.extend(found)
    return assessments_batch(rows)


def read_trace_info(folder: str, problems: Problems | None = None) -> dict | None:
    """The parsed ``trace_info.yaml`` of a trace folder; ``None`` when ``problems`` skipped it.

    Example::

        >>> read_trace_info("/no/trace")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.MalformedRecordError: malformed record at /no/trace/trace_info.yaml: missing ...
    """
    return read_yaml(os.path.join(folder, TRACE_INFO_FILE), problems, required=True)


def read_key_files(folder: str, problems: Problems | None = None) -> dict[str, str]:
    """``{key: value}`` of a folder of one file per key (``tags/``, ``request_metadata/``).

    Example::

        >>> read_key_files("/no/such/folder")
        {}
    """
    return dict(read_values(folder, problems or Problems("FAILFAST")))


def spans_path(folder: str) -> str:
    """Where a trace's ``traces.json`` is: at its artifact location tag, else ``artifacts/``.

    A location that is not local is an error naming the trace (see :mod:`..traces.artifact_spans`).

    Example::

        >>> spans_path("/r/1/traces/tr-1")
        '/r/1/traces/tr-1/artifacts/traces.json'
    """
    trace_id = os.path.basename(os.path.normpath(folder))
    try:
        location = read_local_file(os.path.join(folder, TAGS_FOLDER, ARTIFACT_LOCATION_TAG)).decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return os.path.join(folder, "artifacts", SPANS_FILE)
    return local_spans_file(location.strip(), trace_id)


def trace_fingerprints(root: str, experiment_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{trace_id: (experiment_id, fingerprint)}`` of every trace of ``experiment_ids`` (see
    :meth:`~..base.Store.trace_fingerprints`), from the sizes and modification times of its
    files, none parsed: ``trace_info.yaml``, ``tags/`` and ``request_metadata/`` (the
    ``trace`` part), its ``traces.json`` (``spans``: written after ``trace_info.yaml``, so a
    trace seen before its spans were written is read again), ``assessments/``.

    Example::

        >>> trace_fingerprints("/no/such/root", ["1"])
        {}
    """
    found = {}
    for experiment_id in experiment_ids:
        traces = os.path.join(experiment_folder(root, experiment_id), TRACES_FOLDER)
        try:
            names = sorted(os.listdir(traces))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for trace_id in names:
            folder = os.path.join(traces, trace_id)
            try:
                info = os.stat(os.path.join(folder, TRACE_INFO_FILE))
            except (FileNotFoundError, NotADirectoryError):
                continue  # not a trace, as plan_trace_folders sees it
            trace = [f"{TRACE_INFO_FILE} {info.st_size} {info.st_mtime_ns}\n"]
            file_stats(os.path.join(folder, TAGS_FOLDER), TAGS_FOLDER, trace)
            file_stats(os.path.join(folder, METADATA_FOLDER), METADATA_FOLDER, trace)
            assessments: list[str] = []
            file_stats(os.path.join(folder, ASSESSMENTS_FOLDER), ASSESSMENTS_FOLDER, assessments)
            found[trace_id] = (str(experiment_id), fingerprint({
                "trace": text_digest("".join(trace)), "spans": text_digest(_spans_file_stat(folder)),
                "assessments": text_digest("".join(assessments)),
            }, TRACE_FINGERPRINT_PARTS))
    return found


def _spans_file_stat(folder: str) -> str | None:
    """``"<size> <mtime ns>"`` of a trace's ``traces.json``; None when there is none; its
    location when it is not local (the read reports that)."""
    try:
        path = spans_path(folder)
    except UnsupportedStoreError as error:
        return str(error)
    try:
        stat = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return f"{stat.st_size} {stat.st_mtime_ns}"


class FileTraceTables:
    """The trace tables of :class:`~.store.FileStore` (a part of it: ``root``, ``_check_root``
    and ``_problems`` are the store's)."""

    def _plan_trace_tables(self, selection: Selection) -> list[Partition]:
        # Planning only looks: a trace_info.yaml that does not parse is planned, and its read
        # reports it under the read's mode.
        planned = plan_trace_folders(self.root, trace_selection(selection), Problems("PERMISSIVE"))
        return plan_trace_partitions(selection, [(experiment_id, request_ms, folder)
                                                 for _, experiment_id, folder, request_ms in planned])

    def _read_trace_tables(self, partition: Partition, problems: Problems) -> Iterator[pa.RecordBatch]:
        selection = partition.selection
        folders = [(partition.work.experiment_id, folder) for folder in partition.work.items]
        if selection.table == tables.TRACES:
            batch = read_traces([folder for _, folder in folders], problems)
        elif selection.table == tables.SPANS:
            batch = read_spans(folders, selection.with_span_content, problems)
        else:
            batch = read_assessments(folders, problems)
        if batch.num_rows:
            yield batch

    def trace_fingerprints(self, selection: Selection) -> dict[str, tuple[str, str]]:
        """The traces' fingerprints of the selected experiments (:func:`trace_fingerprints`)."""
        self._check_root()
        return trace_fingerprints(self.root, selection.experiment_ids)
