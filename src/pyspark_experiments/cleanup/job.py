"""The cleanup: select runs to delete, list them, and delete them only when asked, through
MLflow's own API (:mod:`.deletion`); every deletion recorded, every batch restorable.

- Selection: :func:`pyspark_experiments.analytics.cleanup_candidates` over the store's active
  runs (by experiment, status, age, user, tags, a SQL condition, or the oldest runs beyond the
  newest N of an experiment), with the runs nested under a selected run unless
  ``keep_children``: a parent and its children go together (:mod:`.families`), nested runs
  deleted first, a parent never deleted while a run under it stays.
- Dry run (default): prints the candidates and exits; nothing changes. With a plan file, saves
  them with their selection (:mod:`.plan`); ``--yes`` with the plan deletes exactly those that
  still match and have not changed.
- ``--yes``: soft-deletes them: ``MlflowClient(tracking_uri).delete_run`` for local stores and
  tracking servers; on Databricks, the bulk ``databricks/runs/delete-runs`` endpoint where the
  selection is exactly "runs of an experiment started before a time", else one by one. Runs
  move to ``deleted`` (MLflow's trash); nothing is written into a store directly.
- Records (:mod:`.records`): each run recorded before it is deleted (``intent``), then its
  outcome, in the Delta table ``cleanup_log`` of the target (taking the target's lock, as the
  sync does), or, with no target, in a JSON-lines file (``--record-file``, under an OS lock).
- ``--restore BATCH``: restores the runs a batch deleted, or was deleting when it stopped
  (``MlflowClient.restore_run``), and records that too (``action = "restore"``).

Example::

    $ pyspark-experiments cleanup --tracking-uri sqlite:///mlflow.db --statuses FAILED,KILLED --older-than-days 30
    $ pyspark-experiments cleanup ... --yes
    $ pyspark-experiments cleanup --tracking-uri sqlite:///mlflow.db --restore 20260101T000000Z-1a2b3c
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from dataclasses import dataclass, field

from ..analytics import cleanup_candidates
from ..analytics.cleanup import NESTED_REASON
from ..analytics.inputs import read_tables
from ..errors import ConfigurationError, JobError
from ..jobs.hiding import short_error
from ..jobs.lock import locked
from ..uri import resolve_tracking_uri
from .config import CleanupConfig, no_condition_error
from .deletion import delete_runs, never_deleted, restore_runs
from .families import deletion_order, keep_together
from .plan import compare, new_plan, read_plan, write_plan
from .records import DELETE, INTENT, NOT_DELETED, RECORD_COLUMNS, RESTORE, Records, new_batch_id, who

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
    skipped: list[tuple[dict, str]] = field(default_factory=list)

    def summary(self) -> str:
        n = len(self.runs)
        if self.mode == "dry run":
            head = f"pyspark-experiments cleanup: dry run: {n} run(s) selected in {self.store} ({self.criteria}); nothing deleted"
            tail = "run again with --yes to delete them (soft delete: `--restore <batch>` undoes it)" if n else ""
            if self.record:
                tail = (f"plan saved to {self.record}; delete exactly these runs with: "
                        f"pyspark-experiments cleanup --yes --plan-file {self.record}")
        elif self.mode == "restore":
            head = f"pyspark-experiments cleanup: restored {n} run(s) of batch {self.batch_id} in {self.store}"
            tail = f"recorded in {self.record}"
        else:
            head = f"pyspark-experiments cleanup: deleted {n} run(s) in {self.store} ({self.criteria}) as batch {self.batch_id}"
            if self.skipped:
                head += f"; {len(self.skipped)} skipped"
            tail = f"recorded in {self.record}; undo with: pyspark-experiments cleanup --restore {self.batch_id}" if n else ""
        lines = [head]
        if n:
            lines.append("  experiment  run_id                            status    started              run_name")
            for run in self.runs[:SHOWN]:
                started = run.get("start_time")
                started = started.strftime("%Y-%m-%d %H:%M:%S") if isinstance(started, dt.datetime) else str(started or "")[:19]
                lines.append(f"  {run['experiment_id']:<10}  {run['run_id']:<32}  {str(run.get('status') or ''):<8}  "
                             f"{started:<19}  {run.get('run_name') or ''}")
                if run.get("selected_with"):
                    lines[-1] += f"  (nested under selected run {run['selected_with']})"
            if n > SHOWN:
                lines.append(f"  ... and {n - SHOWN} more")
            nested = sum(1 for run in self.runs if run.get("selected_with"))
            if nested:
                lines.append(f"  {nested} of them nested under a selected run, selected with it (--keep-children leaves them)")
        for run, why in self.skipped[:SHOWN]:
            lines.append(f"  skipped {run['run_id']}: {why}")
        if len(self.skipped) > SHOWN:
            lines.append(f"  ... and {len(self.skipped) - SHOWN} more skipped")
        if tail:
            lines.append(tail)
        return "\n".join(lines)


def select(spark, cfg: CleanupConfig, now: dt.datetime, criteria: dict | None = None) -> list[dict]:
    """The candidate runs (as dicts), read from the store's active runs, by ``criteria``
    (default: the config's); a ``where`` Spark cannot parse or resolve is a
    :class:`ConfigurationError` naming ``--where``.

    Example::

        >>> select(spark, CleanupConfig(statuses=("FAILED",)), dt.datetime.now(dt.UTC))   # doctest: +SKIP
    """
    criteria = cfg.criteria() if criteria is None else criteria
    runs = read_tables(spark, cfg, source="store", view_type="ACTIVE_ONLY")["runs"]
    if criteria.get("where"):
        try:
            runs.where(criteria["where"]).schema  # analysed, not run
        except Exception as error:  # ParseException / AnalysisException, classic or Connect
            first = short_error(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigurationError(f"--where ([cleanup] where) {criteria['where']!r}: not a valid SQL condition on the "
                                     f"runs columns ({first})") from None
    runs.cache()  # read once: finding nested runs queries it once per nesting level
    try:
        return [row.asDict() for row in cleanup_candidates(runs, now=now, **criteria).collect()]
    finally:
        runs.unpersist()


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
                now: dt.datetime | None = None, plan_file: str | None = None) -> CleanupResult:
    """Select (and with ``yes`` delete, or with ``restore`` restore) runs; see the module. A dry
    run with ``plan_file`` saves the selection there (:mod:`.plan`); ``yes`` with ``plan_file``
    deletes exactly the runs it lists that still match and have not changed.

    Example::

        >>> run_cleanup(spark, CleanupConfig(tracking_uri="sqlite:///m.db", statuses=("FAILED",))).runs   # doctest: +SKIP
    """
    started = time.monotonic()
    uri = resolve_tracking_uri(cfg.tracking_uri)
    records = Records(spark, cfg, cfg.record_file)
    if restore:
        return _restore(spark, cfg, uri, records, restore, started)
    criteria = cfg.criteria()
    plan = None
    if yes and plan_file:
        plan = read_plan(plan_file, uri.display)
        if criteria and _normal(criteria) != _normal(plan["criteria"]):
            raise ConfigurationError(f"--plan-file {plan_file}: the conditions given ({_text(criteria)}) are not the "
                                     f"plan's ({_text(plan['criteria'])}); give none, or the plan's")
        criteria, now = plan["criteria"], plan["now"]
    if not set(criteria) - {"keep_children"}:
        raise no_condition_error()
    now = now or dt.datetime.now(dt.UTC)
    text = _text(criteria)
    if not yes:
        runs = select(spark, cfg, now, criteria)
        if plan_file:
            write_plan(plan_file, new_plan(uri.display, criteria, now, runs))
        return CleanupResult("dry run", uri.display, text, runs, record=os.path.abspath(plan_file) if plan_file else None,
                             elapsed_s=time.monotonic() - started)
    with target_locked(spark, cfg), records.held():
        skipped: list[tuple[dict, str]] = []
        keep_children = bool(criteria.get("keep_children"))
        if plan is None:
            runs = select(spark, cfg, now, criteria)
        else:
            candidates = select(spark, cfg, now, criteria)
            runs, skipped = compare(plan, candidates)
            if not keep_children:  # a planned parent stays while a run under it stays
                runs, held = keep_together(runs, candidates)
                skipped += held
        batch = new_batch_id(dt.datetime.now(dt.UTC))
        # Databricks' bulk delete by time bound only for exactly its selection: no plan, no nested run added.
        bulk = {} if plan or any(r.get("selected_with") for r in runs) else criteria
        outcome = _delete(uri, records, batch, deletion_order(runs), bulk, now, keep_children=keep_children)
    done = [r for r in runs if r["run_id"] in outcome.deleted]
    result = CleanupResult("delete", uri.display, text, done, batch, records.display, time.monotonic() - started,
                           skipped=[(r, why) for r, why in skipped]
                           + [(r, "already deleted (not by this batch)") for r in runs if r["run_id"] in outcome.already])
    if outcome.failed:
        first = sorted(outcome.failed)[0]
        raise JobError(f"cleanup: {len(outcome.failed)} of {len(runs)} run(s) could not be deleted (first: {first}); "
                       f"the {len(outcome.deleted)} deleted are recorded as batch {batch} in {records.display}")
    return result


def _normal(criteria: dict) -> str:
    return json.dumps(criteria, sort_keys=True, default=str)


def _text(criteria: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in criteria.items())


def _row(run: dict, batch: str, action: str, uri, by: str) -> dict:
    return {"batch_id": batch, "action": action, "run_id": run["run_id"], "experiment_id": run["experiment_id"],
            "run_name": run.get("run_name"), "status": run.get("status"), "reason": run.get("reason"),
            "at": dt.datetime.now(dt.UTC), "by": by, "tracking_uri": uri.display}


def _delete(uri, records: Records, batch: str, runs: list[dict], criteria: dict, now: dt.datetime, *,
            keep_children: bool = False):
    """Delete ``runs`` (nested runs first), each printed and recorded (``intent``) before it is
    deleted, its outcome after: in a JSON-lines file one fsynced line at a time; in
    ``cleanup_log`` the batch's intents in one commit before any deletion, the outcomes in one
    commit after."""
    by = who()

    def announce(some: list[dict]) -> None:
        for run in some:
            print(f"deleting {run['experiment_id']} {run['run_id']} {run.get('status') or ''} {run.get('run_name') or ''}",
                  flush=True)
        if not records.target:
            records.append([_row(run, batch, INTENT, uri, by) for run in some])

    done: list[dict] = []

    def deleted(some: list[dict]) -> None:
        if records.target:
            done.extend(some)
        else:
            records.append([_row(run, batch, DELETE, uri, by) for run in some])

    if records.target:
        records.append([_row(run, batch, INTENT, uri, by) for run in runs])
    try:
        outcome = delete_runs(uri, runs, criteria, now, before=announce, after=deleted, keep_children=keep_children)
    finally:
        if records.target:
            records.append([_row(run, batch, DELETE, uri, by) for run in done])
    missed = [r for r in runs if r["run_id"] in outcome.failed | outcome.already]
    records.append([_row(run, batch, NOT_DELETED, uri, by) for run in missed])
    return outcome


def restore_order(rows: list[dict]) -> list[dict]:
    """Records of a batch (one per run, its ``intent``) in the order to restore their runs:
    parents before the runs nested under them, the reverse of the deletion (the runs the
    conditions selected first, then the nested ones, each latest recorded first).

    Example::

        >>> rows = [{"run_id": "c", "reason": "nested under selected run p", "at": "2026-12-08T10:00:01+00:00"},
        ...         {"run_id": "p", "reason": "status FAILED", "at": "2026-12-08T10:00:02+00:00"}]
        >>> [r["run_id"] for r in restore_order(rows)]
        ['p', 'c']
    """
    def at(row: dict) -> float:
        value = row.get("at")
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value.timestamp() if isinstance(value, dt.datetime) else 0.0

    return sorted(rows, key=lambda row: (str(row.get("reason") or "").startswith(NESTED_REASON), -at(row)))


def _restore(spark, cfg: CleanupConfig, uri, records: Records, batch: str, started: float) -> CleanupResult:
    with target_locked(spark, cfg), records.held():
        rows = [r for r in records.read() if r.get("batch_id") == batch]
        actions: dict[str, set[str]] = {}
        for row in rows:
            actions.setdefault(row["run_id"], set()).add(row.get("action"))
        # Deleted by the batch, or about to be when it stopped (an intent without an outcome).
        wanted: dict[str, dict] = {}
        for row in rows:
            done = actions[row["run_id"]]
            if DELETE in done or done == {INTENT}:
                # the intent row where there is one: intents are recorded in the order of deletion
                if row.get("action") == INTENT or row["run_id"] not in wanted:
                    wanted[row["run_id"]] = row
        if not wanted:
            raise ConfigurationError(f"cleanup --restore {batch!r}: no deletions of that batch in {records.display}")
        unsure = [row for run_id, row in wanted.items() if DELETE not in actions[run_id]]
        never = never_deleted(uri, unsure)
        todo = restore_order([row for run_id, row in wanted.items() if run_id not in never])
        restored = restore_runs(uri, todo)
        by, at = who(), dt.datetime.now(dt.UTC)
        records.append([{**{c: row.get(c) for c in RECORD_COLUMNS}, "action": RESTORE, "at": at, "by": by,
                         "tracking_uri": uri.display} for row in restored])
    if len(restored) != len(todo):
        raise JobError(f"cleanup --restore {batch}: {len(todo) - len(restored)} of {len(todo)} run(s) could not be restored")
    return CleanupResult("restore", uri.display, "", restored, batch, records.display, time.monotonic() - started)
