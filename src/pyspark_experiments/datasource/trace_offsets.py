"""Offsets of the ``traces`` and ``assessments`` streams, as pure functions: what the store
lists (:func:`trace_keys`, :func:`assessment_keys`), how an offset moves on (:func:`advance`)
and what a micro-batch between two offsets emits (:func:`emitted_between`).

MLflow gives traces and assessments no order of arrival: a trace's times are its client's
(its end is known only once it has ended), an assessment's ``last_update_time`` too. So an
offset keeps a *horizon* ``h`` (microseconds) with the items at or past it already emitted,
``e``, and ``n``, how many items lay before the horizon when the offset was taken:

- an item's *key* is a trace's end time (request time plus duration; traces in progress are
  not listed: each trace is emitted once, when it has ended) or an assessment's last update
  time; what is emitted is each trace once, and each state (key) of an assessment once;
- an item is new when its key is at or past the horizon and ``e`` does not hold it (an
  assessment: not with that key);
- the horizon follows the newest key listed (or the clock, if that is earlier) less the
  lag ``lateArrivalSeconds``, but never passes a new item: ``e`` holds every emitted item at
  or past it, so an item arriving up to the lag late is still new, and emitted once;
- an item arriving later than that, with a key before the horizon, cannot be told from the
  emitted ones: it shows as one more item before the horizon than the offset counted, and the
  stream stops with an error naming how many rather than skip it (a deletion before the
  horizon in the same interval can hide it: the count cannot tell them apart).

Example::

    >>> first = advance({}, {"tr-a": 5_000_000, "tr-b": 9_000_000}, lag_us=2_000_000, now_us=10**16)
    >>> first
    {'h': 5000000, 'n': 0, 'e': {'tr-a': 5000000, 'tr-b': 9000000}}
    >>> second = advance(first, {"tr-a": 5_000_000, "tr-b": 9_000_000, "tr-c": 8_000_000}, lag_us=2_000_000, now_us=10**16)
    >>> second, emitted_between(first, second)
    ({'h': 7000000, 'n': 1, 'e': {'tr-b': 9000000, 'tr-c': 8000000}}, ['tr-c'])
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import UnsupportedStoreError

#: How late (behind the newest one listed) a trace or assessment may arrive and still be
#: streamed, when the option ``lateArrivalSeconds`` is not set.
DEFAULT_LATE_ARRIVAL_SECONDS = 600


def item_key(value) -> int:
    """The key of an offset's item: a trace's is its key, an assessment's ``[key, trace_id]``.

    Example::

        >>> item_key(7), item_key([7, "tr-1"])
        (7, 7)
    """
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def trace_keys(batch) -> dict[str, int]:
    """``{trace_id: end time in microseconds}`` of the ended traces of a ``traces`` batch: its
    request time plus its duration (request time alone where the store has no duration).

    Example::

        >>> from pyspark_experiments.stores.traces.convert import trace_row, traces_batch
        >>> trace_keys(traces_batch([trace_row(trace_id="t", experiment_id=1, request_time_us=1_000,
        ...                                    execution_duration_ms=2, state="OK")]))
        {'t': 3000}
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    request = pc.cast(batch.column("request_time"), pa.int64()).to_pylist()
    duration = batch.column("execution_duration_ms").to_pylist()
    return {
        trace_id: (start or 0) + (took or 0) * 1000
        for trace_id, state, start, took in zip(batch.column("trace_id").to_pylist(),
                                                batch.column("state").to_pylist(), request, duration)
        if state != "IN_PROGRESS"
    }


def assessment_keys(batch) -> dict[str, list]:
    """``{assessment_id: [last update time in microseconds, trace_id]}`` of an ``assessments``
    batch (the creation time where there is no update time).

    Example::

        >>> from pyspark_experiments.stores.traces.convert import assessment_row, assessments_batch
        >>> row = assessment_row(assessment_id="a", trace_id="t", experiment_id=1, run_id=None, span_id=None,
        ...     name="n", assessment_type="feedback", value=1, error_code=None, error_message=None,
        ...     source_type="HUMAN", source_id=None, rationale=None, valid=True, overrides=None, metadata={},
        ...     create_time_us=5, last_update_time_us=None)
        >>> assessment_keys(assessments_batch([row]))
        {'a': [5, 't']}
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    updated = pc.cast(batch.column("last_update_time"), pa.int64()).to_pylist()
    created = pc.cast(batch.column("create_time"), pa.int64()).to_pylist()
    return {
        assessment_id: [first if first is not None else (second or 0), trace_id]
        for assessment_id, trace_id, first, second in zip(batch.column("assessment_id").to_pylist(),
                                                          batch.column("trace_id").to_pylist(), updated, created)
    }


def advance(before: Mapping, listing: Mapping[str, object], *, lag_us: int, now_us: int,
            max_rows: int | None = None, restate: bool = False, what: str = "trace", where: str = "") -> dict:
    """The offset after ``before`` (``{}``: the start) for the items ``listing`` holds now
    (``{id: key}`` or ``{id: [key, ...]}``), taking at most ``max_rows`` new items (those with
    the earliest keys); ``restate``: an item whose key changed is new again (each state of an
    assessment once). Raises :class:`~pyspark_experiments.errors.UnsupportedStoreError`
    (naming ``what`` and ``where``) when more items lie before the horizon than ``before``
    counted: items arrived later than the lag.

    Example::

        >>> start = {"h": 100, "n": 0, "e": {"a": 150}}
        >>> advance(start, {"a": 150, "late": 90}, lag_us=10, now_us=10**9, where="sqlite:///m.db")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.UnsupportedStoreError: traces stream from sqlite:///m.db: 1 trace(s) arrived ...
    """
    horizon = before.get("h")
    emitted = dict(before.get("e") or {})
    if horizon is not None:
        late = sum(1 for value in listing.values() if item_key(value) < horizon) - int(before.get("n") or 0)
        if late > 0:
            raise UnsupportedStoreError(
                f"{what}s stream from {where}: {late} {what}(s) arrived with a time before this stream's horizon "
                f"({horizon} µs since the epoch), more than lateArrivalSeconds behind the newest one it had seen; "
                f"exactly-once cannot be kept for them: restart the query with a new checkpoint (and a larger "
                f"lateArrivalSeconds), or keep a Delta copy with pyspark_experiments.sync"
            )

    def is_new(item: str, value) -> bool:
        if horizon is not None and item_key(value) < horizon:
            return False
        old = emitted.get(item)
        return old is None or (restate and item_key(old) != item_key(value))

    pending = sorted((item_key(value), item) for item, value in listing.items() if is_new(item, value))
    taken = pending if max_rows is None else pending[:max(0, max_rows)]
    emitted.update({item: listing[item] for _, item in taken})
    keys = [item_key(value) for value in listing.values()]
    limit = min(max(keys), now_us) - lag_us if keys else None
    if pending:  # the horizon never passes an item not yet emitted
        limit = pending[0][0] if limit is None else min(limit, pending[0][0])
    if horizon is not None:
        limit = horizon if limit is None else max(horizon, limit)
    if limit is not None:
        emitted = {item: value for item, value in emitted.items() if item_key(value) >= limit}
    below = 0 if limit is None else sum(1 for key in keys if key < limit)
    # Spark compares offsets as JSON text: keep one key order.
    return {"h": limit, "n": below, "e": dict(sorted(emitted.items()))}


def emitted_between(start: Mapping, end: Mapping, restate: bool = False) -> list[str]:
    """The items a micro-batch from offset ``start`` to ``end`` (both of :func:`advance`)
    emits: those ``end`` holds that ``start`` does not (``restate``: or holds with another key).

    Example::

        >>> emitted_between({"e": {"a": [1, "t"]}}, {"e": {"a": [2, "t"], "b": [1, "t"]}}, restate=True)
        ['a', 'b']
    """
    before = (start or {}).get("e") or {}
    return sorted(item for item, value in ((end or {}).get("e") or {}).items()
                  if item not in before or (restate and item_key(before[item]) != item_key(value)))
