"""Run and trace fingerprints: one digest per part of a run (its row, params, tags, dataset
inputs) or of a trace (its ``traces`` row, spans, assessments), joined into one text, so that a
reader can tell which of the tables changed.

Example::

    >>> fingerprint_parts(fingerprint({"run": "a", "params": "b", "tags": "c", "inputs": "d"}))["params"]
    'b'
    >>> fingerprint({"trace": "a", "spans": "b", "assessments": "c"}, TRACE_FINGERPRINT_PARTS)
    'trace=a;spans=b;assessments=c'
"""

from __future__ import annotations

import pyarrow as pa

FINGERPRINT_PARTS = ("run", "params", "tags", "inputs")
#: The parts of a trace fingerprint: the sources of its ``traces`` row (info, tags, request
#: metadata, trace metrics), its spans, its assessments.
TRACE_FINGERPRINT_PARTS = ("trace", "spans", "assessments")


def fingerprint(digests: dict[str, str], parts: tuple[str, ...] = FINGERPRINT_PARTS) -> str:
    """Join per-part digests into a fingerprint: a run's (parts as in
    :data:`FINGERPRINT_PARTS`) or, with ``parts`` :data:`TRACE_FINGERPRINT_PARTS`, a trace's.

    Example::

        >>> fingerprint({"run": "a", "params": "b", "tags": "c", "inputs": "d"})
        'run=a;params=b;tags=c;inputs=d'
    """
    return ";".join(f"{part}={digests[part]}" for part in parts)


def digests_by_run(rows: pa.Table) -> dict[str, str]:
    """A digest per run of ``rows`` (first column: the run id; the others: any values, cast to
    text), whatever the rows' order. Each row is written with every value's length before it
    (``<bytes>:<text>:<bytes>:<text>``, ``-`` for null), so that no two different rows read
    alike; the rows of a run are sorted and their bytes hashed. Everything but the hashing of
    each run's bytes is Arrow compute.

    Example::

        >>> rows = pa.table({"run": ["r", "r", "s"], "key": ["b", "a", "a"], "value": ["2", "1", None]})
        >>> digests = digests_by_run(rows)
        >>> digests == digests_by_run(rows.take([2, 1, 0])), digests["r"] != digests["s"]
        (True, True)
    """
    import hashlib

    import numpy as np
    import pyarrow.compute as pc

    parts = []
    for column in rows.columns[1:]:
        text = pc.cast(column, pa.large_string())
        length = pc.cast(pc.binary_length(text), pa.large_string())
        parts += [pc.fill_null(length, "-"), pc.fill_null(text, "")]
    line = pc.binary_join_element_wise(*parts, pa.scalar(":", pa.large_string()))
    ordered = pa.table({"run": rows.column(0), "line": line}).sort_by([("run", "ascending"), ("line", "ascending")])
    runs = ordered.column("run").combine_chunks()
    lines = ordered.column("line").combine_chunks()
    if not len(lines):
        return {}
    encoded = pc.run_end_encode(runs)
    ends = encoded.run_ends.to_numpy()
    starts = np.concatenate(([0], ends[:-1]))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    data = memoryview(lines.buffers()[2] or b"")
    return {
        run_id: hashlib.sha1(data[offsets[start]:offsets[end]]).hexdigest()
        for run_id, start, end in zip(encoded.values.to_pylist(), starts, ends)
    }


def fingerprint_parts(value: str | None, parts: tuple[str, ...] = FINGERPRINT_PARTS) -> dict[str, str]:
    """Split a run fingerprint (or, with ``parts``, a trace fingerprint) into its parts; ``{}``
    for ``None`` or an unstructured one.

    Example::

        >>> fingerprint_parts("run=a;params=b;tags=c;inputs=d")["tags"]
        'c'
        >>> fingerprint_parts("trace=a;spans=b;assessments=c", TRACE_FINGERPRINT_PARTS)["spans"]
        'b'
    """
    found = dict(item.partition("=")[::2] for item in (value or "").split(";") if "=" in item)
    return found if set(found) == set(parts) else {}


def text_digest(*values) -> str:
    """A digest of ``values`` as text, each written with its length (``-`` for ``None``), so
    that no two different lists read alike.

    Example::

        >>> text_digest("a", None) == text_digest("a", None), text_digest("ab", "c") == text_digest("a", "bc")
        (True, False)
    """
    import hashlib

    digest = hashlib.sha1()
    for value in values:
        text = "-" if value is None else str(value)
        digest.update(f"{'-' if value is None else len(text)}:{text}:".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
