"""Which experiments a read covers, by MLflow's rules, decided against the store itself.

The order (README, "Resolution"): the load path (ids or names); else ``MLFLOW_EXPERIMENT_ID``;
else ``MLFLOW_EXPERIMENT_NAME``; else every experiment the view type admits. For the run tables
``DELETED_ONLY`` looks in every experiment, since a deleted run may sit in an active one. An id
or name that the store does not hold is an :class:`~pyspark_experiments.errors.ExperimentNotFoundError`
that names it, says how many experiments the store has and suggests the closest names
(:func:`closest_experiments`).

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

from ..errors import ConfigurationError, ExperimentNotFoundError
from ..suggest import closest_names
from .base import ExperimentRef, lifecycle_stages


def resolve_experiments(
    store, requested, view_type: str, table: str, environ=None, ids=None, names=None
) -> tuple[str, ...]:
    """The experiment ids a read of ``table`` covers (see the module docstring for the order).

    ``requested`` is the load path's items (each an id or a name) or ``None``; ``ids`` and
    ``names`` (the options ``experimentIds`` / ``experimentNames``) are taken only as ids, only
    as names. A load-path item that is one experiment's id and another's name is an error that
    names both. The experiments are the union of the three; ``environ`` defaults to ``os.environ``.

    Example::

        >>> from pyspark_experiments.stores import open_store
        >>> from pyspark_experiments.uri import resolve_tracking_uri
        >>> store = open_store(resolve_tracking_uri("sqlite:///mlflow.db"))
        >>> resolve_experiments(store, ("Default",), "ACTIVE_ONLY", "runs")  # doctest: +SKIP
        ('0',)
    """
    environ = os.environ if environ is None else environ
    wanted: list[tuple[str, str, str]] = []  # (source, "id" | "name" | "either", item)
    wanted += [("load path", "either", item) for item in requested or ()]
    wanted += [("option 'experimentIds'", "id", item) for item in ids or ()]
    wanted += [("option 'experimentNames'", "name", item) for item in names or ()]
    if not wanted:
        if environ.get("MLFLOW_EXPERIMENT_ID", "").strip():
            wanted = [("MLFLOW_EXPERIMENT_ID", "id", environ["MLFLOW_EXPERIMENT_ID"].strip())]
        elif environ.get("MLFLOW_EXPERIMENT_NAME", "").strip():
            # MLflow takes the variable's value as the name, spaces included
            wanted = [("MLFLOW_EXPERIMENT_NAME", "name", environ["MLFLOW_EXPERIMENT_NAME"])]
    known = store.list_experiments("ALL")
    if not wanted:
        return all_admitted(known, view_type, table)
    by_id = {e.experiment_id: e for e in known}
    by_name = {e.name: e for e in known}
    resolved: list[str] = []
    for source, kind, item in wanted:
        experiment = _lookup(store, known, by_id, by_name, source, kind, item)
        if experiment.lifecycle_stage == "deleted" and view_type == "ACTIVE_ONLY":
            # MLflow would answer with nothing (the runs were deleted with the experiment).
            raise ConfigurationError(
                f"{source}: experiment {experiment.name!r} (id {experiment.experiment_id}) is deleted "
                f"and option 'viewType' is ACTIVE_ONLY (the default), so nothing would be read"
                + ("; its runs were deleted with it" if table != "experiments" else "")
                + ": set option('viewType', 'ALL') or 'DELETED_ONLY' to read it"
            )
        if table == "experiments" and experiment.lifecycle_stage not in lifecycle_stages(view_type):
            continue
        if experiment.experiment_id not in resolved:
            resolved.append(experiment.experiment_id)
    return tuple(resolved)


def _lookup(store, known, by_id, by_name, source: str, kind: str, item: str) -> ExperimentRef:
    as_id = by_id.get(item) if kind in ("id", "either") else None
    as_name = by_name.get(item) if kind in ("name", "either") else None
    if as_id is not None and as_name is not None and as_id is not as_name:
        raise ExperimentNotFoundError(
            f"{source}: {item!r} is ambiguous: {item!r} is the id of experiment {as_id.name!r} and "
            f"the name of experiment id {as_name.experiment_id}; say which with "
            f"option('experimentIds', {item!r}) or option('experimentNames', {item!r})"
        )
    experiment = as_id or as_name
    if experiment is None:
        what = {"id": "id", "name": "name", "either": "id or name"}[kind]
        raise ExperimentNotFoundError(
            f"{source}: no experiment with {what} {item!r} in the store at "
            f"{store.uri.display} ({_count(known)}){_suggestions(known, kind, item)}"
        )
    return experiment


def closest_experiments(known: list[ExperimentRef], item: str, by: str = "name", limit: int = 5) -> list[ExperimentRef]:
    """The experiments whose name (``by="name"``) or id (``by="id"``) is closest to ``item``, at
    most ``limit`` (:func:`~pyspark_experiments.suggest.closest_names`).

    Example::

        >>> known = [ExperimentRef("1", "/Users/me/train/", "active"), ExperimentRef("2", "tune", "active")]
        >>> [e.experiment_id for e in closest_experiments(known, "/users/me/train")]
        ['1']
        >>> [e.name for e in closest_experiments(known, "tuen")]
        ['tune']
    """
    by_key: dict[str, list[ExperimentRef]] = {}
    for experiment in known:
        by_key.setdefault(experiment.experiment_id if by == "id" else experiment.name, []).append(experiment)
    found = [e for key in closest_names(item, by_key, limit) for e in by_key[key]]
    return found[:limit]


def _count(known: list[ExperimentRef]) -> str:
    return f"{len(known):,} experiment" + ("" if len(known) == 1 else "s")


def _suggestions(known: list[ExperimentRef], kind: str, item: str) -> str:
    closest = closest_experiments(known, item, "id" if kind == "id" else "name")
    if kind == "either" and not closest:
        closest = closest_experiments(known, item, "id")
    if closest:
        return "; did you mean " + ", ".join(f"{e.name!r} (id {e.experiment_id})" for e in closest) + "?"
    if len(known) <= 5:  # a handful: all of them is the shortest answer
        return "; experiments there: " + (", ".join(f"{e.name!r} (id {e.experiment_id})" for e in known) or "none")
    return ("; no name is close to it (list them: spark.read.format('experiments')"
            ".option('table', 'experiments').load())")


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


__all__ = ["all_admitted", "closest_experiments", "resolve_experiments"]
