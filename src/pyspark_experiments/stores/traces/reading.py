"""What every store does alike for the trace tables: the selection a read asks for, its
partitions (chunks of traces of one experiment in time order), and malformed records.

Example::

    >>> from pyspark_experiments.stores.base import Selection
    >>> selection = Selection("traces", ("1",), trace_states=("OK",))
    >>> trace_selection(selection).states
    ('OK',)
    >>> [p.work.items for p in plan_trace_partitions(selection, [("1", 5, "tr-a"), ("1", 9, "tr-b")])]
    [('tr-a', 'tr-b')]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import ExperimentsError, MalformedRecordError
from ..base import Partition, Selection
from ..problems import Problems
from .selection import TraceSelection
from .spans import span_row

#: Traces per partition when option ``partitionSize`` is not set: spans and their content make
#: a trace far larger than a run's row, so a partition holds fewer of them.
DEFAULT_TRACES_PER_PARTITION = 1_000


@dataclass(frozen=True)
class TraceChunk:
    """One partition's traces: of experiment ``experiment_id``, requested between ``first_ms``
    and ``last_ms`` (both inclusive, ``None`` when the store did not say), in time order;
    ``items`` is what the store reads them by (trace ids, folders).

    Example::

        >>> TraceChunk("1", 5, 9, ("tr-a", "tr-b")).items
        ('tr-a', 'tr-b')
    """

    experiment_id: str
    first_ms: int | None
    last_ms: int | None
    items: tuple


def trace_selection(selection: Selection) -> TraceSelection:
    """The traces a table selection asks for: its experiments, request-time range (``startTimeAfter``
    inclusive, ``startTimeBefore`` exclusive), trace states and trace ids.

    Example::

        >>> trace_selection(Selection("spans", ("1", "2"), min_start_time_ms=10)).start_ms
        10
    """
    return TraceSelection(
        experiment_ids=tuple(selection.experiment_ids),
        start_ms=selection.min_start_time_ms,
        end_ms=selection.max_start_time_ms,
        states=selection.trace_states,
        trace_ids=selection.trace_ids,
    )


def plan_trace_partitions(selection: Selection, traces: Sequence[tuple[str, int | None, Any]]) -> list[Partition]:
    """Partitions of ``(experiment_id, request_ms, item)`` traces listed in time order: per
    experiment, consecutive chunks of ``partitionSize`` traces (default
    :data:`DEFAULT_TRACES_PER_PARTITION`), or as many as ``numPartitions`` asks for.

    Example::

        >>> traces = [("1", 1, "a"), ("2", 2, "b"), ("1", 3, "c")]
        >>> [(p.work.experiment_id, p.work.items) for p in plan_trace_partitions(Selection("traces", ("1", "2")), traces)]
        [('1', ('a', 'c')), ('2', ('b',))]
    """
    size = selection.rows_per_partition or DEFAULT_TRACES_PER_PARTITION
    if selection.num_partitions:
        size = max(1, math.ceil(len(traces) / selection.num_partitions))
    by_experiment: dict[str, list[tuple[int | None, Any]]] = {}
    for experiment_id, request_ms, item in traces:
        by_experiment.setdefault(str(experiment_id), []).append((request_ms, item))
    partitions: list[Partition] = []
    for experiment_id in sorted(by_experiment, key=lambda value: (len(value), value)):
        found = by_experiment[experiment_id]
        for start in range(0, len(found), size):
            part = found[start:start + size]
            times = [request_ms for request_ms, _ in part if request_ms is not None]
            work = TraceChunk(experiment_id, min(times, default=None), max(times, default=None),
                              tuple(item for _, item in part))
            partitions.append(Partition(len(partitions), selection, work))
    return partitions


def record_or_skip(problems: Problems | None, where: str, make: Callable[[], Any]) -> Any:
    """``make()``, or ``None`` when the record it converts is malformed: raised under FAILFAST
    (``problems`` ``None`` counts as FAILFAST), skipped and reported under PERMISSIVE. Errors
    that are not about the record (an unsupported location, a lost connection) pass through.

    Example::

        >>> record_or_skip(Problems("PERMISSIVE"), "trace tr-1", lambda: int("x")) is None
        True
        >>> record_or_skip(None, "trace tr-1", lambda: 3)
        3
    """
    try:
        return make()
    except MalformedRecordError as error:
        (problems or Problems("FAILFAST")).skip(f"{where}: {error}")
    except ExperimentsError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        (problems or Problems("FAILFAST")).skip(f"{where}: {type(error).__name__}: {error}")
    return None


def span_rows(problems: Problems | None, spans: Sequence[dict] | None, *, experiment_id: str, trace_id: str,
              with_content: bool = False) -> list[dict]:
    """The rows of one trace's ``spans`` (MLflow's span JSON, any of its forms) in start order,
    each malformed span raised or skipped as :func:`record_or_skip` does.

    Example::

        >>> span_rows(None, [], experiment_id="1", trace_id="tr-1")
        []
    """
    rows = [row for row in (
        record_or_skip(problems, f"trace {trace_id}, span {index}", lambda: span_row(
            span, experiment_id=experiment_id, trace_id=trace_id, with_content=with_content))
        for index, span in enumerate(spans or [])) if row is not None]
    rows.sort(key=lambda row: (row["start_time_ns"] is None, row["start_time_ns"] or 0, row["span_id"]))
    return rows
