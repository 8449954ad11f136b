"""What a sync did: :class:`SyncResult` (per-table counts, Delta versions, what changed in the
store) with its one-screen summary, and :class:`TableResult` per table.

Example::

    >>> from datetime import datetime
    >>> result = SyncResult(store="/m", target="/d", mode="full", started_at=datetime(2026, 12, 7), runs=3, new_runs=3)
    >>> result.summary().splitlines()[0]
    'pyspark-experiments sync #0: OK, full, 0.0 s (started 2026-12-07 00:00:00 UTC)'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import tables
from ..redact import hide
from .plan import COMMIT_ORDER, Plan
from .state import STATE_TABLE
from .traces import TRACE_TABLES

log = logging.getLogger("pyspark_experiments.sync")

#: Skipped records shown by place in the summary and JSON.
SHOWN_SKIPS = 5


@dataclass
class TableResult:
    """What one sync did to one table; ``version`` is the Delta version it wrote, if any."""

    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    version: int | None = None
    commits: int = 0


@dataclass
class SyncResult:
    """The outcome of :func:`sync`: per-table counts, Delta versions, what changed in the store.

    Example::

        >>> result = sync("sqlite:///mlflow.db", "/tmp/delta", spark=spark)   # doctest: +SKIP
        >>> result.tables["runs"].inserted                                    # doctest: +SKIP
        42
    """

    store: str
    target: str
    mode: str  # "full" or "incremental"
    started_at: datetime
    duration_s: float = 0.0
    experiments: int = 0
    runs: int = 0
    new_runs: int = 0
    changed_runs: int = 0
    purged_runs: int = 0
    series_read: int = 0
    # where a trace table is kept: the store's traces, those new to the target, those read
    # again, those deleted from the store (and so from the tables)
    traces: int = 0
    new_traces: int = 0
    changed_traces: int = 0
    deleted_traces: int = 0
    # PERMISSIVE: distinct records the reads skipped, the runs they belong to (never recorded
    # as synced: the next sync re-reads them), and the first few places
    skipped_records: int = 0
    skipped_runs: int = 0
    skipped_where: list[str] = field(default_factory=list)
    tables: dict[str, TableResult] = field(default_factory=dict)
    state_version: int | None = None
    sync_id: int = 0
    # the store's change token showed nothing changed since the last sync: nothing was read
    store_unchanged: bool = False

    def summary(self) -> str:
        """A one-screen report for a job log.

        Example::

            >>> print(result.summary())                                      # doctest: +SKIP
            pyspark-experiments sync #3: OK, incremental, 12.4 s
            ...
        """
        skips = f" with {self.skipped_records:,} skipped records" if self.skipped_records else ""
        lines = [
            f"pyspark-experiments sync #{self.sync_id}: OK{skips}, {self.mode}, {self.duration_s:.1f} s "
            f"(started {self.started_at:%Y-%m-%d %H:%M:%S} UTC)",
            f"  store   {self.store}",
            f"          {self.experiments:,} experiments, {self.runs:,} runs: {self.new_runs:,} new, "
            f"{self.changed_runs:,} changed, "
            + (f"{self.skipped_runs:,} skipped, " if self.skipped_runs else "")
            + f"{self.purged_runs:,} purged; {self.series_read:,} metric series read",
        ]
        if self.traces or self.deleted_traces or any(t in self.tables for t in TRACE_TABLES):
            lines.append(f"          {self.traces:,} traces: {self.new_traces:,} new, {self.changed_traces:,} changed, "
                         f"{self.deleted_traces:,} deleted")
        if self.store_unchanged:
            lines.append(f"          unchanged since sync #{self.sync_id - 1}: nothing read")
        if self.skipped_records:
            more = self.skipped_records - len(self.skipped_where)
            lines.append(f"  skipped {self.skipped_records:,} malformed records (PERMISSIVE; re-read by the next sync):")
            lines += [f"          {where[:160]}" for where in self.skipped_where]
            if more > 0:
                lines.append(f"          (and {more:,} more)")
        lines += [
            f"  target  {self.target}",
            "",
            f"  {'table':<17} {'inserted':>10} {'updated':>9} {'deleted':>9} {'unchanged':>11}  delta version",
        ]
        for name in COMMIT_ORDER:
            if name not in tables.TABLE_NAMES and name not in self.tables:
                continue  # an optional table this sync did not keep
            t = self.tables.get(name) or TableResult(name)
            version = "-" if t.version is None else (f"{t.version}" + (f" ({t.commits} commits)" if t.commits > 1 else ""))
            lines.append(
                f"  {name:<17} {t.inserted:>10,} {t.updated:>9,} {t.deleted:>9,} {t.unchanged:>11,}  {version}"
            )
        lines.append(f"  {STATE_TABLE:<17} {'':>10} {'':>9} {'':>9} {'':>11}  {self.state_version}")
        return hide("\n".join(lines))

    def to_dict(self) -> dict:
        """The result as plain data (JSON-ready).

        Example::

            >>> json.dumps(result.to_dict())                                # doctest: +SKIP
        """
        data = dataclasses.asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data


def book_plan(result: SyncResult, plan: Plan, sync_id: int) -> None:
    """Record in ``result`` what ``plan`` reads, as sync number ``sync_id``; logs it.

    Example::

        >>> book_plan(result, plan, 3)                                       # doctest: +SKIP
    """
    result.sync_id = sync_id
    result.mode = plan.mode
    result.experiments = len(plan.experiment_ids)
    result.runs = len(plan.fingerprints)
    result.new_runs = plan.new_run_count
    result.changed_runs = plan.changed_run_count
    result.series_read = plan.series_read
    if plan.traces is not None:
        result.traces, result.new_traces = len(plan.traces.fingerprints), len(plan.traces.read & plan.traces.new)
        result.changed_traces = plan.traces.changed_count
    log.info(
        "%s sync: %d experiments, %d runs (%d new, %d changed), %d metric series with new points",
        plan.mode, result.experiments, result.runs, result.new_runs, result.changed_runs, plan.series_read,
    )


def book_skips(result: SyncResult, plan: Plan, places: list[str], skipped: set[str]) -> None:
    """Report what PERMISSIVE reads skipped (each distinct place once, ``places``; the runs
    they belong to, ``skipped``) in ``result``; the runs not re-read whole are counted as new
    or changed only when nothing of theirs was skipped.

    Example::

        >>> book_skips(result, plan, ["/m/1/r/meta.yaml: not valid YAML"], {"r"})  # doctest: +SKIP
    """
    result.skipped_records, result.skipped_runs = len(places), len(skipped)
    result.skipped_where = places[:SHOWN_SKIPS]
    result.new_runs = len((plan.touched_runs & plan.new_runs) - skipped)
    result.changed_runs = len((plan.touched_runs - plan.new_runs) - skipped)
    if places:
        log.warning("PERMISSIVE: skipped %d malformed record(s) in %d run(s), not recorded as synced (the next "
                    "sync re-reads them): %s%s", len(places), len(skipped), "; ".join(places[:SHOWN_SKIPS]),
                    f" (and {len(places) - SHOWN_SKIPS} more)" if len(places) > SHOWN_SKIPS else "")


def sync_entry(result: SyncResult, holder: str, store: str, experiments: Iterable[str] | None) -> dict:
    """The state's ``sync`` entry: which sync this is, who ran it (``holder``), when, from where.

    Example::

        >>> entry = sync_entry(SyncResult("/m", "/d", "full", datetime(2026, 12, 7), sync_id=1), "h", "/m", None)
        >>> entry["sync_id"], entry["holder"], entry["started_at"], entry["experiments"]
        (1, 'h', '2026-12-07T00:00:00', [])
    """
    return {
        "sync_id": result.sync_id,
        "holder": holder,
        "mode": result.mode,
        "started_at": result.started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "store": store,
        "experiments": list(experiments or []),
        "store_unchanged": result.store_unchanged,
    }
