"""The offsets of the ``traces`` and ``assessments`` streams (datasource/trace_offsets.py):
items emitted once whatever the order their times come in, within the lag; later ones an error,
never a silent skip; deletions no error; limits per micro-batch; replays of the same offsets
emit the same items. Pure: listings as the store would give them, no Spark."""

from __future__ import annotations

import pytest

from pyspark_experiments.datasource.options import ReadRequest
from pyspark_experiments.datasource.trace_offsets import advance, emitted_between
from pyspark_experiments.errors import ConfigurationError, UnsupportedStoreError

S = 1_000_000  # a second in microseconds
NOW = 10_000 * S
LAG = 60 * S


def step(before, listing, **options):
    return advance(before, listing, lag_us=LAG, now_us=NOW, **options)


def run(listings, **options) -> list[str]:
    """Offsets after each listing (one trigger each, as many as needed to drain it); every
    item emitted, in order."""
    offset, out = {}, []
    for listing in listings:
        while True:
            end = step(offset, listing, **options)
            out += emitted_between(offset, end, restate=options.get("restate", False))
            if end == offset:
                break
            offset = end
    return out


def test_each_trace_once_whatever_order_its_end_time_comes_in_within_the_lag():
    first = {"a": 1000 * S, "b": 1100 * S}
    # c ends 50 s before the newest already emitted (within the 60 s lag), d after it
    second = {**first, "c": 1050 * S, "d": 1200 * S}
    emitted = run([first, second, second])
    assert sorted(emitted) == ["a", "b", "c", "d"] and len(emitted) == 4


def test_the_offset_keeps_only_items_within_the_lag_of_the_newest():
    listing = {f"t{i}": i * 10 * S for i in range(100)}
    offset = {}
    for _ in range(3):
        offset = step(offset, listing)
    newest = 99 * 10 * S
    assert offset["h"] == newest - LAG
    assert set(offset["e"]) == {item for item, key in listing.items() if key >= newest - LAG}
    assert offset["n"] == len(listing) - len(offset["e"])


def test_the_clock_caps_the_horizon_when_a_client_clock_runs_ahead():
    offset = step(step({}, {"a": NOW + 3600 * S}), {"a": NOW + 3600 * S})
    assert offset["h"] == NOW - LAG
    # a trace from a client on time is still new
    assert emitted_between(offset, step(offset, {"a": NOW + 3600 * S, "b": NOW - S})) == ["b"]


def test_a_trace_later_than_the_lag_stops_the_stream_naming_it():
    listing = {"a": 1000 * S, "b": 2000 * S}
    offset = step(step({}, listing), listing)
    assert offset["h"] == 2000 * S - LAG
    with pytest.raises(UnsupportedStoreError, match=r"traces stream from /m: 1 trace\(s\) arrived .*lateArrivalSeconds"):
        step(offset, {**listing, "late": 1500 * S}, what="trace", where="/m")


def test_deleted_traces_are_no_error():
    listing = {"a": 1000 * S, "b": 2000 * S, "c": 2001 * S}
    offset = step(step({}, listing), listing)
    del listing["a"], listing["c"]
    assert emitted_between(offset, step(offset, listing)) == []


def test_max_rows_takes_the_earliest_and_leaves_the_rest_for_later_batches():
    listing = {f"t{i}": (1000 + i) * S for i in range(7)}
    first = step({}, listing, max_rows=3)
    assert emitted_between({}, first) == ["t0", "t1", "t2"]
    second = step(first, listing, max_rows=3)
    assert emitted_between(first, second) == ["t3", "t4", "t5"]
    assert sorted(run([listing], max_rows=3)) == sorted(listing)


def test_replayed_offsets_emit_the_same_items():
    listing = {"a": 1000 * S, "b": 1100 * S}
    start = step({}, {"a": 1000 * S})
    end = step(start, listing)
    assert emitted_between(start, end) == emitted_between(start, end) == ["b"]
    assert step(start, listing) == end  # the same listing gives the same offset


def test_assessments_emit_each_state_once():
    created = {"x": [1000 * S, "t1"], "y": [1001 * S, "t1"]}
    updated = {**created, "x": [1500 * S, "t1"]}
    emitted = run([created, updated, updated], restate=True)
    assert sorted(emitted) == ["x", "x", "y"]


def test_stream_options_of_the_trace_tables():
    request = ReadRequest.from_options({"table": "traces", "lateArrivalSeconds": "30", "maxRowsPerTrigger": "5"},
                                       environ={})
    assert (request.late_arrival_seconds, request.max_rows_per_trigger) == (30, 5)
    with pytest.raises(ConfigurationError, match="'lateArrivalSeconds' does not apply to table 'spans'"):
        ReadRequest.from_options({"table": "spans", "lateArrivalSeconds": "30"}, environ={})
    with pytest.raises(ConfigurationError, match="lateArrivalSeconds"):
        ReadRequest.from_options({"table": "assessments", "lateArrivalSeconds": "soon"}, environ={})
