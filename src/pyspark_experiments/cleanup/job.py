"""The cleanup: select runs to delete, list them, and delete them only when asked, through
MLflow's own API (:mod:`.deletion`); every deletion recorded, every batch restorable.

- Selection: :func:`pyspark_experiments.analytics.cleanup_candidates` over the store's active
  runs (by experiment, status, age, user, tags, a SQL condition, or the oldest runs beyond the
  newest N of an experiment).
- Dry run (default): prints the candidates and exits; nothing changes.
- ``--yes``: soft-deletes them: ``MlflowClient(tracking_uri).delete_run`` for local stores and
  tracking servers; on Databricks, the bulk ``databricks/runs/delete-runs`` endpoint where the
  selection is exactly "runs of an experiment started before a time", else one by one. Runs
  move to ``deleted`` (MLflow's trash); nothing is written into a store directly.
- Records (:mod:`.records`): one row per deleted (or restored) run, appended to the Delta table
  ``cleanup_log`` of the target (taking the target's lock, as the sync does), or, with no
  target, to a JSON-lines file (``--record-file``).
- ``--restore BATCH``: restores the runs a batch deleted (``MlflowClient.restore_run``) and
  records that too (``action = "restore"``).

Example::

    $ pyspark-experiments cleanup --tracking-uri sqlite:///mlflow.db --statuses FAILED,KILLED --older-than-days 30
    $ pyspark-experiments cleanup ... --yes
    $ pyspark-experiments cleanup --tracking-uri sqlite:///mlflow.db --restore 20260101T000000Z-1a2b3c
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass, field

from ..analytics import cleanup_candidates
from ..analytics.inputs import read_tables
from ..errors import ConfigurationError, JobError
from ..jobs.lock import locked
from ..uri import resolve_tracking_uri
from .config import CleanupConfig
from .deletion import delete_runs, restore_runs
from .records import RECORD_COLUMNS, Records, new_batch_id, who

#: Most candidates listed in the summary (the count is always complete).
SHOWN = 200


@dataclass
class CleanupResult:
    """What one cleanup did (or, in a dry run, would do).

    Example::

        >>> CleanupResult(mode="dry run", store="s", criteria="status FAILED").summary().splitlines()[0]
        'pyspark-experiments cleanup: dry run: 0 run(s) selected in s (status FAILED); nothing deleted'
    """

    mode: str
    store: str
    criteria: str
    runs: list[dict] = field(default_factory=list)
    batch_id: str | None = None
    record: str | None = None
    elapsed_s: float = 0.0

    def summary(self) -> str:
        n = len(self.runs)
        if self.mode == "dry run":
            head = f"pyspark-experiments cleanup: dry run: {n} run(s) selected in {self.store} ({self.criteria}); nothing deleted"
            tail = "run again with --yes to delete them (soft delete: `--restore <batch>` undoes it)" if n else ""
        elif self.mode == "restore":
            head = f"pyspark-experiments cleanup: restored {n} run(s) of batch {self.batch_id} in {self.store}"
            tail = f"recorded in {self.record}"
        else:
            head = f"pyspark-experiments cleanup: deleted {n} run(s) in {self.store} ({self.criteria}) as batch {self.batch_id}"
            tail = f"recorded in {self.record}; undo with: pyspark-experiments cleanup --restore {self.batch_id}" if n else ""
        lines = [head]
        if n:
            lines.append("  experiment  run_id                            status    started              run_name")
            for run in self.runs[:SHOWN]:
                started = run.get("start_time")
                started = started.strftime("%Y-%m-%d %H:%M:%S") if isinstance(started, dt.datetime) else str(started or "")[:19]
                lines.append(f"  {run['experiment_id']:<10}  {run['run_id']:<32}  {str(run.get('status') or ''):<8}  "
                             f"{started:<19}  {run.get('run_name') or ''}")
            if n > SHOWN:
                lines.append(f"  ... and {n - SHOWN} more")
        if tail:
            lines.append(tail)
        return "\n".join(lines)


def select(spark, cfg: CleanupConfig, now: dt.datetime) -> list[dict]:
    """The candidate runs (as dicts), read from the store's active runs.

    Example::

        >>> select(spark, CleanupConfig(statuses=("FAILED",)), dt.datetime.now(dt.UTC))   # doctest: +SKIP
    """
    runs = read_tables(spark, cfg, source="store", view_type="ACTIVE_ONLY")["runs"]
    return [row.asDict() for row in cleanup_candidates(runs, now=now, **cfg.criteria()).collect()]


def target_locked(spark, cfg: CleanupConfig):
    """The target's lock held around a block (:func:`~pyspark_experiments.jobs.lock.locked`);
    nothing to hold without a target.

    Example::

        >>> with target_locked(spark, cfg):                                    # doctest: +SKIP
        ...     records.append(rows)
    """
    if not cfg.has_target:
        return contextlib.nullcontext()
    return locked(cfg.target(spark), job="cleanup", timeout_minutes=cfg.lock_timeout_minutes)


def run_cleanup(spark, cfg: CleanupConfig, *, yes: bool = False, restore: str | None = None,
                now: dt.datetime | None = None) -> CleanupResult:
    """Select (and with ``yes`` delete, or with ``restore`` restore) runs; see the module.

    Example::

        >>> run_cleanup(spark, CleanupConfig(tracking_uri="sqlite:///m.db", statuses=("FAILED",))).runs   # doctest: +SKIP
    """
    started = time.monotonic()
    uri = resolve_tracking_uri(cfg.tracking_uri)
    records = Records(spark, cfg, cfg.record_file)
    if restore:
        return _restore(spark, cfg, uri, records, restore, started)
    criteria = cfg.criteria()
    if not criteria:
        raise ConfigurationError(
            "cleanup: no condition given; pass at least one of --experiment-ids, --statuses, --older-than-days, --users, "
            "--tag, --where, --keep-newest (selecting every run is never a default)"
        )
    now = now or dt.datetime.now(dt.UTC)
    text = "; ".join(f"{k}={v}" for k, v in criteria.items())
    if not yes:
        runs = select(spark, cfg, now)
        return CleanupResult("dry run", uri.display, text, runs, elapsed_s=time.monotonic() - started)
    with target_locked(spark, cfg):
        runs = select(spark, cfg, now)
        batch = new_batch_id(now)
        deleted = delete_runs(uri, runs, criteria, now)
        by, at = who(), dt.datetime.now(dt.UTC)
        records.append([{"batch_id": batch, "action": "delete", "run_id": r["run_id"], "experiment_id": r["experiment_id"],
                         "run_name": r.get("run_name"), "status": r.get("status"), "reason": r.get("reason"), "at": at,
                         "by": by, "tracking_uri": uri.display} for r in runs if r["run_id"] in deleted])
    failed = [r for r in runs if r["run_id"] not in deleted]
    if failed:
        raise JobError(f"cleanup: {len(failed)} of {len(runs)} run(s) could not be deleted (first: {failed[0]['run_id']}); "
                       f"the {len(deleted)} deleted are recorded as batch {batch} in {records.display}")
    return CleanupResult("delete", uri.display, text, runs, batch, records.display, time.monotonic() - started)


def _restore(spark, cfg: CleanupConfig, uri, records: Records, batch: str, started: float) -> CleanupResult:
    with target_locked(spark, cfg):
        rows = [r for r in records.read() if r.get("batch_id") == batch and r.get("action") == "delete"]
        if not rows:
            raise ConfigurationError(f"cleanup --restore {batch!r}: no deletions of that batch in {records.display}")
        restored = restore_runs(uri, rows)
        by, at = who(), dt.datetime.now(dt.UTC)
        records.append([{**{c: row.get(c) for c in RECORD_COLUMNS}, "action": "restore", "at": at, "by": by,
                         "tracking_uri": uri.display} for row in restored])
    if len(restored) != len(rows):
        raise JobError(f"cleanup --restore {batch}: {len(rows) - len(restored)} of {len(rows)} run(s) could not be restored")
    return CleanupResult("restore", uri.display, "", restored, batch, records.display, time.monotonic() - started)
