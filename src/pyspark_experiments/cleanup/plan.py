"""A saved cleanup plan: the runs a dry run selected, with the selection that chose them, so that
``--yes --plan-file`` deletes exactly those runs and nothing else.

The plan is a JSON file: ``store`` (the tracking URI, password hidden), ``criteria`` (the
conditions), ``now`` (the instant the selection was made: ``--older-than-days`` is measured from
it, so the bound does not move with the clock), ``older_than_bound`` (that bound, for readers)
and ``runs``, each with its fingerprint (:func:`fingerprint`: experiment, status, end time,
lifecycle stage), its ``parent_run_id`` and ``selected_with`` (for a run nested under a selected
one, that run: it is in the plan because of it). Carrying a plan out (:func:`compare`), a run
that no longer matches the selection, or whose fingerprint changed, is skipped and reported.

Example::

    >>> run = {"run_id": "r1", "experiment_id": "1", "status": "FAILED", "end_time": None, "run_name": "a"}
    >>> plan = new_plan("sqlite:///m.db", {"statuses": ["FAILED"]}, dt.datetime(2026, 12, 7, tzinfo=dt.UTC), [run])
    >>> compare(plan, [run])
    ([{'run_id': 'r1', 'experiment_id': '1', 'status': 'FAILED', 'end_time': None, 'run_name': 'a'}], [])
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from ..errors import ConfigurationError

PLAN_FORMAT = "pyspark-experiments cleanup plan"
PLAN_VERSION = 1


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else value


def fingerprint(run: dict) -> dict:
    """What must not have changed for a planned run to be deleted: its experiment, status, end
    time and lifecycle stage.

    Example::

        >>> fingerprint({"run_id": "r", "experiment_id": "1", "status": "FAILED", "end_time": None})
        {'experiment_id': '1', 'status': 'FAILED', 'end_time': None, 'lifecycle_stage': 'active'}
    """
    return {"experiment_id": run.get("experiment_id"), "status": run.get("status"),
            "end_time": _text(run.get("end_time")), "lifecycle_stage": run.get("lifecycle_stage") or "active"}


def new_plan(store: str, criteria: dict, now: dt.datetime, runs: list[dict]) -> dict:
    """The plan of a dry run that selected ``runs`` from ``store`` with ``criteria`` at ``now``.

    Example::

        >>> new_plan("s", {"older_than": 30.0}, dt.datetime(2026, 12, 7, tzinfo=dt.UTC), [])["older_than_bound"]
        '2026-11-07T00:00:00+00:00'
    """
    bound = None
    if criteria.get("older_than") is not None:
        bound = (now - dt.timedelta(days=float(criteria["older_than"]))).isoformat()
    return {
        "format": PLAN_FORMAT, "version": PLAN_VERSION, "store": store, "criteria": criteria,
        "now": now.isoformat(), "older_than_bound": bound,
        "runs": [{"run_id": r["run_id"], "run_name": r.get("run_name"), "start_time": _text(r.get("start_time")),
                  "reason": r.get("reason"), "parent_run_id": r.get("parent_run_id"), "selected_with": r.get("selected_with"),
                  "fingerprint": fingerprint(r)} for r in runs],
    }


def write_plan(path: str, plan: dict) -> None:
    """Write ``plan`` to ``path`` whole or not at all (a temporary file renamed over it).

    Example::

        >>> write_plan("/tmp/plan.json", new_plan("s", {"statuses": ["FAILED"]}, dt.datetime.now(dt.UTC), []))
    """
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(plan, handle, indent=1, sort_keys=True, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_plan(path: str, store: str) -> dict:
    """The plan saved at ``path``, checked: a :class:`ConfigurationError` naming the file when
    it is missing, not a plan, or made for another store than ``store``.

    Example::

        >>> read_plan("/tmp/plan.json", "s")["criteria"]                       # doctest: +SKIP
        {'statuses': ['FAILED']}
    """
    try:
        with open(path, encoding="utf-8") as handle:
            plan = json.load(handle)
    except OSError as error:
        raise ConfigurationError(f"--plan-file {path}: cannot be read ({error.strerror or error})") from None
    except ValueError as error:
        raise ConfigurationError(f"--plan-file {path}: not a cleanup plan (not JSON: {error})") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT or not isinstance(plan.get("runs"), list):
        raise ConfigurationError(f"--plan-file {path}: not a cleanup plan (write one with a dry run and --plan-file)")
    if plan.get("version") != PLAN_VERSION:
        raise ConfigurationError(f"--plan-file {path}: plan version {plan.get('version')!r}; this version reads {PLAN_VERSION}")
    if plan.get("store") != store:
        raise ConfigurationError(f"--plan-file {path}: the plan was made for {plan.get('store')}, not {store}")
    try:
        plan["now"] = dt.datetime.fromisoformat(plan["now"])
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(f"--plan-file {path}: no valid 'now' (the instant of the selection)") from None
    if not isinstance(plan.get("criteria"), dict) or not plan["criteria"]:
        raise ConfigurationError(f"--plan-file {path}: no selection criteria")
    return plan


def compare(plan: dict, candidates: list[dict]) -> tuple[list[dict], list[tuple[dict, str]]]:
    """Of the plan's runs, those to delete (as ``candidates`` has them: the selection made again
    with the plan's criteria and instant) and those skipped, with why: no longer selected, or
    their fingerprint changed. Candidates the plan does not list are never returned.

    Example::

        >>> plan = {"runs": [{"run_id": "r1", "fingerprint": {"experiment_id": "1", "status": "FAILED",
        ...                                                   "end_time": None, "lifecycle_stage": "active"}}]}
        >>> compare(plan, [{"run_id": "r1", "experiment_id": "1", "status": "KILLED", "end_time": None}])[1]
        [({'run_id': 'r1', ...}, 'changed since the plan: status FAILED -> KILLED')]
    """
    current = {r["run_id"]: r for r in candidates}
    chosen, skipped = [], []
    for planned in plan["runs"]:
        run = current.get(planned["run_id"])
        if run is None:
            skipped.append((planned, "no longer selected (deleted, or no longer matching the plan's criteria)"))
            continue
        was, now = planned.get("fingerprint") or {}, fingerprint(run)
        changes = [f"{key} {was.get(key)} -> {now[key]}" for key in now if was.get(key) != now[key]]
        if changes:
            skipped.append((planned, "changed since the plan: " + ", ".join(changes)))
            continue
        chosen.append(run)
    return chosen, skipped
