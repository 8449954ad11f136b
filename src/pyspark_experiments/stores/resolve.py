"""Which experiments a read covers, by MLflow's rules, decided against the store itself.

The order (README, "Resolution"): the load path (ids or names); else ``MLFLOW_EXPERIMENT_ID``;
else ``MLFLOW_EXPERIMENT_NAME``; else every experiment the view type admits. For the run tables
``DELETED_ONLY`` looks in every experiment, since a deleted run may sit in an active one. An id
or name that the store does not hold is an :class:`~pyspark_experiments.errors.ExperimentNotFoundError`
that names it and lists what the store has.

This lives beside the stores, not in :mod:`pyspark_experiments.uri`: it asks a store for its
experiments, and URI handling must not depend on stores.

Example::

    >>> from pyspark_experiments.stores.base import ExperimentRef
    >>> class Listed:  # anything with list_experiments() and a uri.display
    ...     uri = type("Uri", (), {"display": "sqlite:///mlflow.db"})()
    ...     def list_experiments(self, view_type="ALL"):
    ...         return [ExperimentRef("0", "Default", "active"), ExperimentRef("1", "train", "active")]
    >>> resolve_experiments(Listed(), ("train",), "ACTIVE_ONLY", "runs", environ={})
    ('1',)
"""

from __future__ import annotations

import os

from ..errors import ExperimentNotFoundError
from .base import ExperimentRef, lifecycle_stages


def resolve_experiments(store, requested, view_type: str, table: str, environ=None) -> tuple[str, ...]:
    """The experiment ids a read of ``table`` covers (see the module docstring for the order).

    ``requested`` is the load path's items (ids or names) or ``None``; ``environ`` defaults to
    ``os.environ``.

    Example::

        >>> from pyspark_experiments.stores import open_store
        >>> from pyspark_experiments.uri import resolve_tracking_uri
        >>> store = open_store(resolve_tracking_uri("sqlite:///mlflow.db"))
        >>> resolve_experiments(store, ("Default",), "ACTIVE_ONLY", "runs")  # doctest: +SKIP
        ('0',)
    """
    environ = os.environ if environ is None else environ
    source = "load path"
    if not requested:
        if environ.get("MLFLOW_EXPERIMENT_ID", "").strip():
            requested, source = (environ["MLFLOW_EXPERIMENT_ID"].strip(),), "MLFLOW_EXPERIMENT_ID"
        elif environ.get("MLFLOW_EXPERIMENT_NAME", "").strip():
            requested, source = (environ["MLFLOW_EXPERIMENT_NAME"].strip(),), "MLFLOW_EXPERIMENT_NAME"
    known = store.list_experiments("ALL")
    if not requested:
        return all_admitted(known, view_type, table)
    by_id = {e.experiment_id: e for e in known}
    by_name = {e.name: e for e in known}
    resolved: list[str] = []
    for item in requested:
        experiment = by_id.get(item) or by_name.get(item)
        if experiment is None:
            raise ExperimentNotFoundError(
                f"{source}: no experiment with id or name {item!r} in the store at "
                f"{store.uri.display}; experiments there: {_listing(known)}"
            )
        if table == "experiments" and experiment.lifecycle_stage not in lifecycle_stages(view_type):
            continue
        if experiment.experiment_id not in resolved:
            resolved.append(experiment.experiment_id)
    return tuple(resolved)


def all_admitted(known: list[ExperimentRef], view_type: str, table: str) -> tuple[str, ...]:
    """Every experiment a read with no experiment named covers.

    For the ``experiments`` table the view type filters experiments; for the run tables
    ``DELETED_ONLY`` reads every experiment (a deleted run may sit in an active one).

    Example::

        >>> known = [ExperimentRef("0", "Default", "active"), ExperimentRef("1", "old", "deleted")]
        >>> all_admitted(known, "DELETED_ONLY", "runs"), all_admitted(known, "DELETED_ONLY", "experiments")
        (('0', '1'), ('1',))
    """
    admitted = view_type if table == "experiments" or view_type != "DELETED_ONLY" else "ALL"
    return tuple(e.experiment_id for e in known if e.lifecycle_stage in lifecycle_stages(admitted))


def _listing(known: list[ExperimentRef], limit: int = 10) -> str:
    names = ", ".join(f"{e.name!r} (id {e.experiment_id})" for e in known[:limit])
    return (names + (" ..." if len(known) > limit else "")) or "none"


__all__ = ["all_admitted", "resolve_experiments"]
