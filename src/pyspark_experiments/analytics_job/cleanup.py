"""``pyspark-experiments cleanup``: select runs to delete, list them, and delete them only when
asked, through MLflow's own API; every deletion recorded, every batch restorable.

- Selection: :func:`pyspark_experiments.analytics.cleanup_candidates` over the store's active
  runs (by experiment, status, age, user, tags, a SQL condition, or the oldest runs beyond the
  newest N of an experiment).
- Dry run (default): prints the candidates and exits; nothing changes.
- ``--yes``: soft-deletes them: ``MlflowClient(tracking_uri).delete_run`` for local stores and
  tracking servers; on Databricks, the bulk ``databricks/runs/delete-runs`` endpoint where the
  selection is exactly "runs of an experiment started before a time", else one by one. Runs
  move to ``deleted`` (MLflow's trash); nothing is written into a store directly.
- Records: one row per deleted (or restored) run, :data:`RECORD_COLUMNS`, appended to the Delta
  table ``cleanup_log`` of the target (taking the target's lock, as the sync does), or, with no
  target, to a JSON-lines file (``--record-file``, default :data:`DEFAULT_RECORD_FILE`).
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
import getpass
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import jobs
from ..errors import ConfigurationError, JobError, MissingDependencyError
from . import _cli
from .config import JobConfig

log = logging.getLogger("pyspark_experiments.cleanup")

RECORD_TABLE = "cleanup_log"
DEFAULT_RECORD_FILE = "pyspark-experiments-cleanup.jsonl"
#: The columns of a record (Delta table or JSON line).
RECORD_COLUMNS = ("batch_id", "action", "run_id", "experiment_id", "run_name", "status", "reason", "at", "by", "tracking_uri")
#: Most candidates listed in the summary (the count is always complete).
SHOWN = 200


def record_schema():
    from pyspark.sql.types import StringType, StructField, StructType, TimestampType

    return StructType([StructField(name, TimestampType() if name == "at" else StringType(), True) for name in RECORD_COLUMNS])


def new_batch_id(now: dt.datetime | None = None) -> str:
    """A batch id: UTC time and a random suffix.

    Example::

        >>> new_batch_id(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))[:17]
        '20260102T030405Z-'
    """
    return f"{(now or dt.datetime.now(dt.UTC)):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def who() -> str:
    """``user@host`` of this process.

    Example::

        >>> "@" in who()
        True
    """
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def mlflow_client(tracking_uri: str):
    """MLflow's client for ``tracking_uri``; a clear error naming the extra when mlflow is missing."""
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise MissingDependencyError(
            "cleanup deletes and restores runs through mlflow, which is not installed: "
            "pip install 'pyspark-experiments[mlflow]'"
        ) from None
    return MlflowClient(tracking_uri=tracking_uri)


def bulk_time_bound(criteria: dict) -> bool:
    """Whether Databricks' bulk ``delete-runs`` (runs of one experiment created before a time)
    selects exactly the candidates: only experiments and an age are given.

    Example::

        >>> bulk_time_bound({"experiment_ids": ["1"], "older_than": 30}), bulk_time_bound({"older_than": 30})
        (True, False)
    """
    return set(criteria) == {"experiment_ids", "older_than"}


def _databricks_delete_runs(experiment_id: str, max_timestamp_millis: int, max_runs: int) -> int:
    """``POST /api/2.0/mlflow/databricks/runs/delete-runs``; returns the runs deleted."""
    from mlflow.utils.databricks_utils import get_databricks_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    endpoint = "/api/2.0/mlflow/databricks/runs/delete-runs"
    response = http_request(get_databricks_host_creds("databricks"), endpoint, "POST", json={
        "experiment_id": experiment_id, "max_timestamp_millis": int(max_timestamp_millis), "max_runs": int(max_runs)})
    response = verify_rest_response(response, endpoint)
    return int(response.json().get("runs_deleted", 0))


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


# ------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------


class Records:
    """Where deletions are recorded: the target's ``cleanup_log`` Delta table or a JSON-lines file."""

    def __init__(self, spark, cfg: JobConfig) -> None:
        self.spark, self.cfg = spark, cfg
        self.target = _cli.target_of(spark, cfg) if cfg.has_target else None
        self.file = None if self.target else os.path.abspath(cfg.record_file or DEFAULT_RECORD_FILE)

    @property
    def display(self) -> str:
        return f"{self.target.sql_name(RECORD_TABLE)}" if self.target else self.file

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self.target:
            self.target.ensure(RECORD_TABLE, record_schema())
            frame = self.spark.createDataFrame([tuple(row[c] for c in RECORD_COLUMNS) for row in rows], record_schema())
            self.target.write(frame, RECORD_TABLE, "append")
            return
        folder = os.path.dirname(self.file)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(self.file, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({**row, "at": row["at"].isoformat()}, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[dict]:
        if self.target:
            if not self.target.exists(RECORD_TABLE):
                return []
            return [row.asDict() for row in self.target.read(RECORD_TABLE).collect()]
        if not os.path.exists(self.file):
            return []
        rows = []
        with open(self.file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except ValueError as error:
                    raise ConfigurationError(f"{self.file}, line {number}: not a JSON record ({error})") from None
        return rows


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------


def select(spark, cfg: JobConfig, now: dt.datetime) -> list[dict]:
    """The candidate runs (as dicts), read from the store's active runs.

    Example::

        >>> select(spark, JobConfig(statuses=("FAILED",)), dt.datetime.now(dt.UTC))   # doctest: +SKIP
    """
    from ..analytics import cleanup_candidates

    runs = _cli.read_tables(spark, cfg.override(source="store"), view_type="ACTIVE_ONLY")["runs"]
    return [row.asDict() for row in cleanup_candidates(runs, now=now, **cfg.cleanup_criteria()).collect()]


def _locked(spark, cfg: JobConfig):
    """The target's lock, acquired, as a context (:meth:`TargetLock.releasing`); none without a target."""
    from ..target import TargetLock

    if not cfg.has_target:
        return contextlib.nullcontext()
    target = _cli.target_of(spark, cfg)
    target.prepare()
    lock = TargetLock(target, job="cleanup", timeout_minutes=cfg.lock_timeout_minutes)
    lock.ensure_table()
    lock.acquire()
    return lock.releasing()


def run_cleanup(spark, cfg: JobConfig, *, yes: bool = False, restore: str | None = None,
                now: dt.datetime | None = None) -> CleanupResult:
    """Select (and with ``yes`` delete, or with ``restore`` restore) runs; see the module.

    Example::

        >>> run_cleanup(spark, JobConfig(tracking_uri="sqlite:///m.db", statuses=("FAILED",))).runs   # doctest: +SKIP
    """
    from ..uri import resolve_tracking_uri

    started = time.monotonic()
    uri = resolve_tracking_uri(cfg.tracking_uri)
    records = Records(spark, cfg)
    if restore:
        return _restore(spark, cfg, uri, records, restore, started)
    criteria = cfg.cleanup_criteria()
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
    with _locked(spark, cfg):
        runs = select(spark, cfg, now)
        batch = new_batch_id(now)
        deleted = _delete(uri, runs, criteria, now)
        by, at = who(), dt.datetime.now(dt.UTC)
        records.append([{"batch_id": batch, "action": "delete", "run_id": r["run_id"], "experiment_id": r["experiment_id"],
                         "run_name": r.get("run_name"), "status": r.get("status"), "reason": r.get("reason"), "at": at,
                         "by": by, "tracking_uri": uri.display} for r in runs if r["run_id"] in deleted])
    failed = [r for r in runs if r["run_id"] not in deleted]
    if failed:
        raise JobError(f"cleanup: {len(failed)} of {len(runs)} run(s) could not be deleted (first: {failed[0]['run_id']}); "
                       f"the {len(deleted)} deleted are recorded as batch {batch} in {records.display}")
    return CleanupResult("delete", uri.display, text, runs, batch, records.display, time.monotonic() - started)


def _delete(uri, runs: list[dict], criteria: dict, now: dt.datetime) -> set[str]:
    """Delete the runs; returns the ids deleted (the rest failed, and are logged)."""
    deleted: set[str] = set()
    if not runs:
        return deleted
    client = mlflow_client(uri.location)
    if uri.scheme == "databricks" and bulk_time_bound(criteria):
        bound = now - dt.timedelta(days=float(criteria["older_than"]))
        for experiment_id in sorted({r["experiment_id"] for r in runs}):
            wanted = [r for r in runs if r["experiment_id"] == experiment_id]
            count = _databricks_delete_runs(experiment_id, int(bound.timestamp() * 1000), len(wanted))
            # Recorded as deleted: the selected runs the workspace now lists as deleted, no others.
            done = {r["run_id"] for r in wanted} & _deleted_runs(client, experiment_id)
            if count != len(wanted) or len(done) != len(wanted):
                log.warning("experiment %s: Databricks deleted %d run(s); %d were selected, %d of them are now deleted",
                            experiment_id, count, len(wanted), len(done))
            deleted |= done
        return deleted
    for run in runs:
        try:
            client.delete_run(run["run_id"])
            deleted.add(run["run_id"])
        except Exception as error:  # recorded as not deleted; the job then fails with the count
            log.error("run %s: not deleted: %s", run["run_id"], jobs.short_error(error))
    return deleted


def _deleted_runs(client, experiment_id: str) -> set[str]:
    """The ids of the runs of ``experiment_id`` the store lists as deleted (every page)."""
    from mlflow.entities import ViewType

    found, token = set(), None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY, max_results=50_000, page_token=token)
        found.update(run.info.run_id for run in page)
        token = page.token
        if not token:
            return found


def _restore(spark, cfg: JobConfig, uri, records: Records, batch: str, started: float) -> CleanupResult:
    with _locked(spark, cfg):
        rows = [r for r in records.read() if r.get("batch_id") == batch and r.get("action") == "delete"]
        if not rows:
            raise ConfigurationError(f"cleanup --restore {batch!r}: no deletions of that batch in {records.display}")
        client = mlflow_client(uri.location)
        restored, by, at = [], who(), dt.datetime.now(dt.UTC)
        for row in rows:
            try:
                client.restore_run(row["run_id"])
                restored.append(row)
            except Exception as error:
                log.error("run %s: not restored: %s", row["run_id"], jobs.short_error(error))
        records.append([{**{c: row.get(c) for c in RECORD_COLUMNS}, "action": "restore", "at": at, "by": by,
                         "tracking_uri": uri.display} for row in restored])
    if len(restored) != len(rows):
        raise JobError(f"cleanup --restore {batch}: {len(rows) - len(restored)} of {len(rows)} run(s) could not be restored")
    return CleanupResult("restore", uri.display, "", restored, batch, records.display, time.monotonic() - started)


def _parser():
    p = _cli.parser("pyspark-experiments cleanup",
                    "Select runs to clean up and list them (dry run, the default); with --yes soft-delete them through "
                    "MLflow's API and record every deletion; --restore BATCH undoes a batch.")
    p.add_argument("--experiment-ids", help="condition: runs of these experiment ids, comma separated")
    p.add_argument("--statuses", help="condition: runs with these statuses, e.g. FAILED,KILLED")
    p.add_argument("--older-than-days", type=float, help="condition: started more than this many days ago")
    p.add_argument("--users", help="condition: runs of these users, comma separated")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="condition: a tag value (repeatable)")
    p.add_argument("--where", help="condition: SQL on the runs columns, e.g. \"metrics['loss'] > 1\"")
    p.add_argument("--keep-newest", type=int, help="condition: beyond the newest N runs of their experiment")
    p.add_argument("--yes", action="store_true", help="delete the selected runs (default: list them only)")
    p.add_argument("--restore", metavar="BATCH", help="restore the runs a batch deleted")
    p.add_argument("--record-file", help=f"JSON-lines record when there is no target (default ./{DEFAULT_RECORD_FILE})")
    p.add_argument("--lock-timeout-minutes", type=float, help="take over another host's lock after this long")
    return p


def _parse(argv: list[str]) -> jobs.JobSettings:
    jobs.hide_tracking_uri_flag(argv)
    args = _parser().parse_args(argv)
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--tag {item!r}: expected KEY=VALUE")
        tags[key.strip()] = value
    cfg = _cli.config(args, cleanup_experiments=args.experiment_ids, statuses=args.statuses, older_than_days=args.older_than_days,
                      users=args.users, tags=tags or None, where=args.where, keep_newest=args.keep_newest,
                      record_file=args.record_file, lock_timeout_minutes=args.lock_timeout_minutes)
    if args.yes and args.restore:
        raise ConfigurationError("--yes and --restore: give one")
    return jobs.JobSettings(cfg.validate(), args)


def _run(settings: jobs.JobSettings, show: bool) -> CleanupResult:
    with _cli.session("cleanup", settings.cfg) as spark:
        return run_cleanup(spark, settings.cfg, yes=settings.args.yes, restore=settings.args.restore)


def main(argv: Sequence[str] | None = None) -> int:
    """``pyspark-experiments cleanup``: returns the exit code (0, 1, 2, 75 when another job
    holds the target, 130).

    Example::

        >>> main(["--tracking-uri", "sqlite:///mlflow.db", "--statuses", "FAILED"])   # doctest: +SKIP
        0
    """
    return jobs.run_job("cleanup", list(sys.argv[1:] if argv is None else argv), _parse, _run)


if __name__ == "__main__":
    sys.exit(main())
