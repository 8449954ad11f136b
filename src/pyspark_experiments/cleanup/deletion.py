"""Deleting and restoring runs through MLflow's own API (nothing is written into a store
directly): ``MlflowClient.delete_run`` / ``restore_run`` for local stores and tracking servers;
on Databricks, the bulk ``databricks/runs/delete-runs`` endpoint where the selection is exactly
"runs of an experiment started before a time" (:func:`bulk_time_bound`).

Example::

    >>> bulk_time_bound({"experiment_ids": ["1"], "older_than": 30}), bulk_time_bound({"older_than": 30})
    (True, False)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import MissingDependencyError
from ..jobs.hiding import short_error
from .families import deletion_order, hold_ancestors, parents

log = logging.getLogger("pyspark_experiments.cleanup")

#: Crash tests: SIGKILL the cleanup after this many deletions.
KILL_ENV = "PYSPARK_EXPERIMENTS_CLEANUP_KILL_AFTER"


def mlflow_client(tracking_uri: str):
    """MLflow's client for ``tracking_uri``; a clear error naming the extra when mlflow is missing.

    Example::

        >>> mlflow_client("sqlite:///mlflow.db").tracking_uri                # doctest: +SKIP
        'sqlite:///mlflow.db'
    """
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
    selects exactly the candidates: only experiments and an age are given (``keep_children``
    aside: the caller checks that no nested run joined the selection).

    Example::

        >>> bulk_time_bound({"experiment_ids": ["1"], "older_than": 30, "statuses": ["FAILED"]})
        False
    """
    return set(criteria) - {"keep_children"} == {"experiment_ids", "older_than"}


def databricks_host_creds(uri):
    """MLflow's host credentials for the workspace the resolved tracking URI ``uri`` names
    (``databricks``, or ``databricks://<profile>``: that profile, never the default's), resolved
    as the REST store resolves them
    (:func:`~pyspark_experiments.stores.rest.auth.resolve_connection`: a host copied from the
    browser is reduced to the workspace's API base); OAuth machine-to-machine credentials go
    through MLflow's own resolution of the same URI.

    Example::

        >>> databricks_host_creds(resolve_tracking_uri("databricks://team")).host   # doctest: +SKIP
        'https://adb-123.4.azuredatabricks.net'
    """
    from mlflow.utils.databricks_utils import get_databricks_host_creds
    from mlflow.utils.rest_utils import MlflowHostCreds

    from ..stores.rest.auth import resolve_connection

    connection = resolve_connection(uri)
    if connection.credential.kind != "bearer":
        return get_databricks_host_creds(uri.location)
    return MlflowHostCreds(
        connection.base_url, token=connection.credential.secret, ignore_tls_verification=connection.verify is False,
        server_cert_path=connection.verify if isinstance(connection.verify, str) else None,
        client_cert_path=connection.client_cert,
    )


def databricks_delete_runs(uri, experiment_id: str, max_timestamp_millis: int, max_runs: int) -> int:
    """``POST /api/2.0/mlflow/databricks/runs/delete-runs`` to the workspace the resolved
    tracking URI ``uri`` names (:func:`databricks_host_creds`); returns the runs deleted.

    Example::

        >>> databricks_delete_runs(resolve_tracking_uri("databricks://team"), "7", 1767225600000, 100)   # doctest: +SKIP
        100
    """
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    endpoint = "/api/2.0/mlflow/databricks/runs/delete-runs"
    response = http_request(databricks_host_creds(uri), endpoint, "POST", timeout=120, json={
        "experiment_id": experiment_id, "max_timestamp_millis": int(max_timestamp_millis), "max_runs": int(max_runs)})
    response = verify_rest_response(response, endpoint)
    return int(response.json().get("runs_deleted", 0))


def _kill_after(count: int) -> None:
    """SIGKILL this process after ``count`` deletions when :data:`KILL_ENV` says so (crash tests)."""
    limit = os.environ.get(KILL_ENV, "").strip()
    if limit and count >= int(limit):
        log.warning("%s=%s: killing this process (SIGKILL)", KILL_ENV, limit)
        os.kill(os.getpid(), signal.SIGKILL)


def _nothing(runs: list[dict]) -> None:
    return None


@dataclass
class Deletion:
    """What :func:`delete_runs` did: the ids deleted, the ids already deleted (by someone else:
    not deleted again, not recorded as deleted by this batch), and the ids that failed.

    Example::

        >>> Deletion(deleted={"r1"}).failed
        set()
    """

    deleted: set[str] = field(default_factory=set)
    already: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


def delete_runs(uri, runs: list[dict], criteria: dict, now: dt.datetime, *,
                before: Callable[[list[dict]], None] = _nothing,
                after: Callable[[list[dict]], None] = _nothing, keep_children: bool = False) -> Deletion:
    """Delete ``runs`` (dicts with ``run_id``, ``experiment_id`` and ``parent_run_id``) from the
    store at ``uri`` (a resolved tracking URI), nested runs before their parents
    (:func:`~.families.deletion_order`). ``before(runs)`` is called with the runs about to be
    deleted (to record them first), ``after(runs)`` with those deleted; a run mlflow already
    lists as deleted is left alone (:attr:`Deletion.already`), a failure logged
    (:attr:`Deletion.failed`). Unless ``keep_children``, a run whose nested run failed is not
    deleted either (it fails too): no child outlives its parent.

    Example::

        >>> delete_runs(resolve_tracking_uri("sqlite:///m.db"), runs, {"statuses": ["FAILED"]}, now).deleted   # doctest: +SKIP
        {'0a1b...'}
    """
    outcome = Deletion()
    if not runs:
        return outcome
    runs = deletion_order(runs)
    client = mlflow_client(uri.location)
    if uri.scheme == "databricks" and bulk_time_bound(criteria):
        bound = now - dt.timedelta(days=float(criteria["older_than"]))
        for experiment_id in sorted({r["experiment_id"] for r in runs}):
            wanted = [r for r in runs if r["experiment_id"] == experiment_id]
            before(wanted)
            count = databricks_delete_runs(uri, experiment_id, int(bound.timestamp() * 1000), len(wanted))
            # Recorded as deleted: the selected runs the workspace now lists as deleted, no others.
            done = {r["run_id"] for r in wanted} & deleted_runs(client, experiment_id)
            if count != len(wanted) or len(done) != len(wanted):
                log.warning("experiment %s: Databricks deleted %d run(s); %d were selected, %d of them are now deleted",
                            experiment_id, count, len(wanted), len(done))
            outcome.deleted |= done
            outcome.failed |= {r["run_id"] for r in wanted} - done
            after([r for r in wanted if r["run_id"] in done])
            _kill_after(len(outcome.deleted))
        return outcome
    parent_of, held = parents(runs), {}
    for run in runs:
        if not keep_children and run["run_id"] in held:
            log.error("run %s: not deleted: its nested run %s was not", run["run_id"], held[run["run_id"]])
            outcome.failed.add(run["run_id"])
            continue
        try:
            if client.get_run(run["run_id"]).info.lifecycle_stage == "deleted":
                log.warning("run %s: already deleted; left alone", run["run_id"])
                outcome.already.add(run["run_id"])
                continue
            before([run])
            client.delete_run(run["run_id"])
        except Exception as error:  # recorded as not deleted; the job then fails with the count
            log.error("run %s: not deleted: %s", run["run_id"], short_error(error))
            outcome.failed.add(run["run_id"])
            hold_ancestors(run["run_id"], parent_of, held)
            continue
        outcome.deleted.add(run["run_id"])
        after([run])
        _kill_after(len(outcome.deleted))
    return outcome


def deleted_runs(client, experiment_id: str) -> set[str]:
    """The ids of the runs of ``experiment_id`` the store lists as deleted (every page).

    Example::

        >>> deleted_runs(mlflow_client("databricks"), "7")                   # doctest: +SKIP
        {'0a1b...'}
    """
    from mlflow.entities import ViewType

    found, token = set(), None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY, max_results=50_000, page_token=token)
        found.update(run.info.run_id for run in page)
        token = page.token
        if not token:
            return found


def never_deleted(uri, rows: list[dict]) -> set[str]:
    """Of ``rows`` (records with ``run_id``), the ids of the runs mlflow lists as active: a run
    whose deletion was intended but never happened (a cleanup stopped before it) has nothing to
    restore.

    Example::

        >>> never_deleted(resolve_tracking_uri("sqlite:///m.db"), rows)        # doctest: +SKIP
        {'0a1b...'}
    """
    if not rows:
        return set()
    client = mlflow_client(uri.location)
    active = set()
    for row in rows:
        try:
            if client.get_run(row["run_id"]).info.lifecycle_stage != "deleted":
                active.add(row["run_id"])
        except Exception as error:  # restore_run then says what is wrong with it
            log.warning("run %s: cannot read its lifecycle stage: %s", row["run_id"], short_error(error))
    return active


def restore_runs(uri, rows: list[dict]) -> list[dict]:
    """Restore the runs of ``rows`` (records with ``run_id``) in the store at ``uri``; returns
    the rows restored (the rest failed, and are logged).

    Example::

        >>> restore_runs(resolve_tracking_uri("sqlite:///m.db"), rows)         # doctest: +SKIP
    """
    client = mlflow_client(uri.location)
    restored = []
    for row in rows:
        try:
            client.restore_run(row["run_id"])
            restored.append(row)
        except Exception as error:
            log.error("run %s: not restored: %s", row["run_id"], short_error(error))
    return restored
