"""Which traces a read selects: the same selection for every store backend.

Example::

    >>> TraceSelection(experiment_ids=("1",), start_ms=0).end_ms is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TraceSelection:
    """Which traces to read: experiments, and optionally a request-time range (epoch ms,
    ``start_ms`` inclusive, ``end_ms`` exclusive), trace states and trace ids.

    Example::

        >>> TraceSelection(experiment_ids=("1", "2"), states=("ERROR",)).states
        ('ERROR',)
    """

    experiment_ids: tuple[str, ...]
    start_ms: int | None = None
    end_ms: int | None = None
    states: tuple[str, ...] | None = None
    trace_ids: tuple[str, ...] | None = None
