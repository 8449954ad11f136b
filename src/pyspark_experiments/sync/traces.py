"""The sync's decisions for the trace tables (``traces``, ``spans``, ``assessments``), as pure
functions: from the traces' fingerprints in the store (:meth:`Store.trace_fingerprints
<pyspark_experiments.stores.base.Store.trace_fingerprints>`) and those the last completed sync
saved, to what this sync reads and how it writes it (:class:`TracePlan`). No Spark, no I/O.

The rules:

- a trace the target never saw is read into every kept trace table and appended;
- a known trace whose fingerprint changed is read again into the tables of the parts that
  changed (``trace`` -> ``traces``, ``spans`` -> ``spans``, ``assessments`` ->
  ``assessments``) and merged on the natural keys, deleting its rows the store no longer has
  (a deleted assessment; tags are in the ``traces`` row's map);
- a trace the state knows that the store no longer holds (``mlflow.delete_traces``) is deleted
  from every kept trace table: within the synced experiments, or wherever it was when every
  experiment is synced;
- a full sync, and a table kept for the first time, read every trace into the table and make
  it mirror the store (rows of traces outside the scan are deleted, within the synced
  experiments); a sync after a killed or failed one merges what it reads (it may have been
  written) and also deletes the traces the target holds but the store does not (found when
  written);
- a trace whose reads skipped a record (PERMISSIVE) is saved :data:`~.state.UNSYNCED`: the next
  sync reads it again, whole.

Example::

    >>> fp = "trace=a;spans=b;assessments=c"
    >>> saved = {"t1": ("1", fp), "gone": ("1", fp)}
    >>> plan = plan_traces({"t1": ("1", "trace=a2;spans=b;assessments=c"), "t2": ("1", fp)}, saved,
    ...                    kept=TRACE_TABLES, gone={"gone"})
    >>> sorted(plan.changed["traces"]), sorted(plan.changed["spans"]), sorted(plan.gone)
    (['t1', 't2'], ['t2'], ['gone'])
    >>> plan.appends("spans"), plan.appends("traces")
    (False, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .. import tables
from ..stores.fingerprints import TRACE_FINGERPRINT_PARTS, fingerprint_parts
from .state import UNSYNCED

#: The trace tables, in the order the sync writes and shows them.
TRACE_TABLES = (tables.TRACES, tables.SPANS, tables.ASSESSMENTS)
#: The part of a trace's fingerprint that each trace table is read again for.
PART_OF_TABLE = {tables.TRACES: "trace", tables.SPANS: "spans", tables.ASSESSMENTS: "assessments"}


@dataclass
class TracePlan:
    """What one sync reads and writes of the trace tables it keeps (``kept``).

    ``fingerprints``: the store's traces as scanned; ``changed``: per table, the traces read;
    ``new``: traces the target never saw; ``gone``: traces deleted from the store since the
    last sync; ``mirrored``: tables read whole that end as the store (rows of other traces of
    the synced experiments deleted); ``merged_only``: nothing is appended (a full sync, or one
    after a sync that did not finish).
    """

    kept: tuple[str, ...]
    fingerprints: dict[str, tuple[str, str]]
    changed: dict[str, set[str]] = field(default_factory=dict)
    new: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    mirrored: set[str] = field(default_factory=set)
    merged_only: bool = False

    def appends(self, table: str) -> bool:
        """Whether ``table``'s rows are appended: only traces the target never saw are read,
        none was deleted, and the table is not mirrored.

        Example::

            >>> TracePlan(("traces",), {}, {"traces": {"t"}}, {"t"}).appends("traces")
            True
        """
        read = self.changed.get(table, set())
        return (bool(read) and read <= self.new and not self.gone and table not in self.mirrored
                and not self.merged_only)

    @property
    def read(self) -> set[str]:
        """Every trace read by this sync, into any table."""
        found: set[str] = set()
        for table in self.kept:
            found |= self.changed.get(table, set())
        return found

    @property
    def changed_count(self) -> int:
        """Known traces read again (new ones apart)."""
        return len(self.read - self.new)


def plan_traces(scanned: Mapping[str, tuple[str, str]], saved: Mapping[str, tuple[str, str]], *,
                kept: Iterable[str], gone: Iterable[str] = (), full: bool = False, recovering: bool = False,
                first_time: Iterable[str] = ()) -> TracePlan:
    """The plan of the trace tables ``kept`` (see the module documentation): ``scanned`` and
    ``saved`` are ``{trace_id: (experiment_id, fingerprint)}`` of the store now and of the state
    (ignored on a ``full`` sync); ``gone``: the saved traces deleted from the store (within the
    synced experiments: :func:`~.plan.purged_runs` tells them); ``first_time``: tables the last
    completed sync did not keep.

    Example::

        >>> plan = plan_traces({"t": ("1", "trace=a;spans=b;assessments=c")}, {}, kept=["traces"], full=True)
        >>> plan.changed, plan.mirrored, plan.appends("traces")
        ({'traces': {'t'}}, {'traces'}, False)
    """
    kept = tuple(t for t in TRACE_TABLES if t in set(kept))
    saved = {} if full else dict(saved)
    mirrored = set(kept) if full else set(kept) & set(first_time)
    changed: dict[str, set[str]] = {table: set() for table in kept}
    for trace_id, (_, value) in scanned.items():
        old = saved.get(trace_id, (None, None))[1]
        if old == value:
            continue
        new_parts = fingerprint_parts(value, TRACE_FINGERPRINT_PARTS)
        old_parts = fingerprint_parts(old, TRACE_FINGERPRINT_PARTS)
        for table in kept:
            part = PART_OF_TABLE[table]
            if not new_parts or not old_parts or new_parts[part] != old_parts[part]:
                changed[table].add(trace_id)
    for table in mirrored:
        changed[table] = set(scanned)
    return TracePlan(kept=kept, fingerprints=dict(scanned), changed=changed, new=set(scanned) - set(saved),
                     gone=set() if full else set(gone) & set(saved), mirrored=mirrored, merged_only=full or recovering)


def next_traces(saved: Mapping[str, tuple[str, str]], plan: TracePlan | None, deleted: Iterable[str] = (),
                skipped: Iterable[str] = ()) -> dict[str, tuple[str, str]]:
    """The traces the state records after this sync: the saved ones (none of those ``deleted``
    from the tables), updated with the scanned ones; those whose reads ``skipped`` a record
    saved :data:`~.state.UNSYNCED`. Without a plan (no trace table kept), the saved ones.

    Example::

        >>> plan = plan_traces({"t": ("1", "f2")}, {"t": ("1", "f1"), "d": ("1", "f")}, kept=["traces"], gone={"d"})
        >>> next_traces({"t": ("1", "f1"), "d": ("1", "f")}, plan, deleted=plan.gone, skipped={"t"})
        {'t': ('1', 'unsynced')}
    """
    if plan is None:
        return dict(saved)
    deleted = set(deleted)
    found = {trace_id: entry for trace_id, entry in saved.items() if trace_id not in deleted}
    found.update(plan.fingerprints)
    for trace_id in set(skipped) & set(found):
        found[trace_id] = (found[trace_id][0], UNSYNCED)
    return found
