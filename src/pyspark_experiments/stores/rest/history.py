"""Metric histories over REST: many runs' series of one key per request where the server allows.

An open-source tracking server answers ``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk``
(``run_id`` repeated, up to 100; one ``metric_key``; ``max_results`` up to 25,000): every point
of that key of those runs, sorted by run id, then timestamp, step and value, cut at
``max_results`` without a page token. It is the endpoint MLflow's own UI charts use, and it does
not sample (unlike ``get-history-bulk-interval``, never used). An answer shorter than
``max_results`` is complete; a full one is complete for every run it names but the last, and the
rest are asked again; a run that fills an answer alone is read with ``metrics/get-history``
pages. Databricks workspaces, servers without the endpoint (a 404) and reads with
``bulkMetricHistory=false`` use ``metrics/get-history``, one request per series.

Example::

    >>> bulk_requests([("1", "r2", "loss"), ("1", "r1", "loss"), ("1", "r1", "acc")])
    [('acc', ('r1',)), ('loss', ('r1', 'r2'))]
"""

from __future__ import annotations

import logging
from collections import defaultdict

from ...errors import MalformedRecordError, StoreNotFoundError
from ..planning import chunk
from .settings import HISTORY_PAGE_SIZE

log = logging.getLogger("pyspark_experiments.rest")

#: The server's limits for one ``get-history-bulk`` request: run ids, and points in the answer.
BULK_RUNS = 100
BULK_POINTS = 25_000


def series_history(client, run_id: str, key: str) -> list[dict]:
    """Every point of one series, from ``metrics/get-history`` pages.

    Example::

        >>> series_history(client, "0a1b...", "loss")[:1]                      # doctest: +SKIP
        [{'key': 'loss', 'value': 0.5, 'timestamp': 1700000000000, 'step': 0}]
    """
    params = {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE_SIZE}
    return [point for page in client.pages("GET", "metrics/get-history", "metrics", params=params) for point in page]


def bulk_requests(series) -> list[tuple[str, tuple[str, ...]]]:
    """``(key, run ids)`` requests covering ``series`` (``(experiment_id, run_id, key)``
    triples): one key each, at most :data:`BULK_RUNS` runs, sorted as the server sorts."""
    runs_of_key: dict[str, set[str]] = defaultdict(set)
    for _, run_id, key in series:
        runs_of_key[key].add(run_id)
    return [(key, tuple(group)) for key in sorted(runs_of_key) for group in chunk(sorted(runs_of_key[key]), BULK_RUNS)]


def key_histories(client, key: str, run_ids: tuple[str, ...]) -> dict[str, list[dict]]:
    """Every point of metric ``key`` of each of ``run_ids`` (at most :data:`BULK_RUNS`):
    ``{run_id: points}``, one entry per run (empty when it has none).

    Raises :class:`StoreNotFoundError` when the server has no ``get-history-bulk`` endpoint.

    Example::

        >>> sorted(key_histories(client, "loss", ("r1", "r2")))               # doctest: +SKIP
        ['r1', 'r2']
    """
    found: dict[str, list[dict]] = {run_id: [] for run_id in run_ids}
    pending = sorted(run_ids)
    while pending:
        params = {"run_id": pending, "metric_key": key, "max_results": BULK_POINTS}
        answer = client.call("GET", "metrics/get-history-bulk", params=params, api="mlflow-ajax")
        points = answer.get("metrics", [])
        if not isinstance(points, list):
            raise MalformedRecordError(f"GET {client.url('metrics/get-history-bulk', 'mlflow-ajax')}: "
                                       f"expected a list in 'metrics', got {type(points).__name__}")
        by_run: dict[str, list[dict]] = defaultdict(list)
        for point in points:
            run_id = point.get("run_id") if isinstance(point, dict) else None
            if run_id not in found:
                raise MalformedRecordError(
                    f"GET {client.url('metrics/get-history-bulk', 'mlflow-ajax')}: a point of metric {key!r} of run "
                    f"{run_id!r}, which was not asked for (asked: {len(pending)} runs)"
                )
            by_run[run_id].append(point)
        if len(points) < BULK_POINTS:
            for run_id in pending:
                found[run_id] = by_run.get(run_id, [])
            return found
        cut = points[-1]["run_id"]  # its series may go on beyond the answer
        done = {run_id for run_id in by_run if run_id != cut}
        if done:
            found.update((run_id, by_run[run_id]) for run_id in done)
        else:
            found[cut] = series_history(client, cut, key)
            done = {cut}
        pending = [run_id for run_id in pending if run_id not in done]
    return found


def first_bulk_answer(client, key: str, run_ids: tuple[str, ...]) -> dict[str, list[dict]] | None:
    """The first bulk request of a read (:func:`key_histories`), or ``None`` when the server
    has no ``get-history-bulk`` endpoint or the read must not use it (a Databricks workspace,
    ``bulkMetricHistory=false``): then the read asks one series at a time.

    Example::

        >>> first_bulk_answer(client, "loss", ("r1",))                          # doctest: +SKIP
        {'r1': [{'key': 'loss', 'value': 0.5, 'timestamp': 1700000000000, 'step': 0, 'run_id': 'r1'}]}
    """
    if not client.connection.bulk_history:
        return None
    try:
        return key_histories(client, key, run_ids)
    except StoreNotFoundError:
        log.info("%s has no metrics/get-history-bulk endpoint: one request per series", client.connection.base_url)
        return None
