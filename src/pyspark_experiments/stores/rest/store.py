"""An MLflow tracking server (``http(s)://``) or Databricks workspace, read over MLflow's REST API.

Endpoints used, and only these: ``experiments/search`` (pages of 50,000; 3,000 on Databricks),
``runs/search`` (pages of 50,000, filtered by ``attributes.start_time >=`` and
``attributes.run_id IN (...)``, with the view type), ``metrics/get-history-bulk`` (one key of up
to 100 runs per request, on open-source servers; see :mod:`.history`) else ``metrics/get-history``
(pages of 25,000 with ``page_token``). ``metrics/get-history-bulk-interval`` is never used: it samples.

Planning (driver): experiments are listed once (and the ``experiments`` table is built from that
listing, with no further request). The per-run tables (``runs``, ``params``, ``tags``,
``inputs``) are planned as groups of experiments (or of ``runIds``), each read on an executor
with ``runs/search`` pages, so the ``runs`` table costs no more requests than
``mlflow.search_runs`` (which pages 10,000 runs at a time). For ``metrics`` the driver lists
the selected runs with ``runs/search`` (their latest metrics name every series) and packs the
series into partitions; each executor fetches its series' histories with at most
``maxConcurrentRequests`` requests in flight. Every narrowing option narrows the requests:
experiments and view type go into ``runs/search``, ``startTimeAfter`` and ``runIds`` into its
filter, ``metricKeys`` selects which histories are fetched.

Change detection (for the sync and the stream reader): positions are digests
(``metric_positions="digest"``) of a series' latest value, step and timestamp and its run's
status and end time; a changed digest means "re-read the series".

Example::

    >>> from pyspark_experiments.uri import resolve_tracking_uri
    >>> store = RestStore(resolve_tracking_uri("http://127.0.0.1:5000"))
    >>> store.capabilities.kind
    'rest'
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from ... import tables
from ...errors import ConfigurationError, MalformedRecordError
from ..base import ExperimentRef, Partition, Selection, Store, StoreCapabilities, lifecycle_stages
from ..fingerprints import fingerprint
from ..planning import chunk, pack_partitions
from ..problems import Problems
from . import convert, history
from .models import plan_model_tables, read_model_tables
from .settings import HISTORY_PAGE_SIZE, REST_OPTIONS, RUNS_PAGE_SIZE, Connection
from .traces import plan_trace_tables, read_trace_tables, trace_fingerprints
from .work import RestWork

# Experiments per runs/search request, run ids per `attributes.run_id IN (...)` filter.
EXPERIMENTS_PER_SEARCH = 100
RUN_IDS_PER_FILTER = 100
DEFAULT_POINTS_PER_PARTITION = 250_000
# The estimate of a series' points when planning: its latest step + 1, within these bounds.
_MAX_POINTS_ESTIMATE = HISTORY_PAGE_SIZE
_RUN_ID = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class RunQuery:
    """One ``runs/search`` query: experiments, and optionally run ids (an ``IN`` filter)."""

    experiment_ids: tuple[str, ...]
    run_ids: tuple[str, ...] | None = None


def _escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("'", "\\'")


def run_filter(selection: Selection, run_ids: tuple[str, ...] | None = None) -> str:
    """The ``runs/search`` filter for a selection's start time and a chunk of run ids.

    Example::

        >>> run_filter(Selection("runs", ("1",), min_start_time_ms=5), ("a", "b"))
        "attributes.start_time >= 5 AND attributes.run_id IN ('a', 'b')"
    """
    clauses = []
    if selection.min_start_time_ms is not None:
        clauses.append(f"attributes.start_time >= {int(selection.min_start_time_ms)}")
    if run_ids is not None:
        clauses.append("attributes.run_id IN ({})".format(", ".join(f"'{_escape(r)}'" for r in run_ids)))
    return " AND ".join(clauses)


def run_queries(selection: Selection, groups: int | None = None) -> list[RunQuery]:
    """The ``runs/search`` queries that cover a selection: experiment groups x run-id chunks.

    Run ids that cannot be MLflow run ids (MLflow's are letters, digits, ``-`` and ``_``)
    match no run, as in the direct stores, and are left out of the filter.

    Example::

        >>> [q.run_ids for q in run_queries(Selection("runs", ("1", "2"), run_ids=("a", "b")))]
        [('a', 'b')]
    """
    experiments = list(selection.experiment_ids)
    if not experiments:
        return []
    size = EXPERIMENTS_PER_SEARCH
    if groups:
        size = max(1, min(size, math.ceil(len(experiments) / groups)))
    experiment_groups = [tuple(g) for g in chunk(experiments, size)]
    if selection.run_ids is None:
        return [RunQuery(g) for g in experiment_groups]
    ids = sorted({r for r in selection.run_ids if _RUN_ID.match(r)})
    return [RunQuery(g, tuple(c)) for g in experiment_groups for c in chunk(ids, RUN_IDS_PER_FILTER)]


def _digest(*parts) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def series_digest(run: dict, key: str) -> int:
    """A number that changes whenever series ``key`` of ``run`` may have changed (63 bits).

    Example::

        >>> run = {"info": {"run_id": "r", "experiment_id": "1", "status": "RUNNING"},
        ...        "data": {"metrics": [{"key": "loss", "value": 1.0, "step": 3, "timestamp": 9}]}}
        >>> series_digest(run, "loss") > 0
        True
    """
    info = convert.run_info(run)
    latest = {k: (repr(v), s, t) for k, v, s, t in convert.latest_metrics(run, info["run_id"])}
    return int(_digest(latest.get(key), info["status"], info["end_time"], info["lifecycle_stage"])[:15], 16) or 1


@contextmanager
def _pool(work: RestWork):
    """At most ``maxConcurrentRequests`` threads; on failure, queued fetches are cancelled."""
    pool = ThreadPoolExecutor(max(1, min(work.connection.max_concurrent_requests, len(work.items))),
                              thread_name_prefix="experiments-rest")
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)


class RestStore(Store):
    """Reads a tracking server or a Databricks workspace over MLflow's REST API.

    ``options`` are the read's options (credentials, TLS, retry policy, concurrency; see
    :mod:`.settings`); the connection is resolved on first use, on the driver, and carried to
    the executors inside each partition.
    """

    def __init__(self, uri, options: dict | None = None) -> None:
        super().__init__(uri)
        self._options = {k: v for k, v in dict(options or {}).items() if str(k).lower() in {o.lower() for o in REST_OPTIONS}}
        self._connection: Connection | None = None
        self._experiments_json: list[dict] | None = None
        self._client = None
        # The runs listed by metric_positions, for the run_fingerprints call that follows it on
        # the same selection (a sync's scan): one runs/search pass instead of two, one snapshot.
        self._scanned: tuple[tuple, list[dict]] | None = None

    # -- connection (driver) -----------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            from .auth import resolve_connection

            self._connection = resolve_connection(self.uri, self._options)
        return self._connection

    def client(self):
        if self._client is None:
            from .client import RestClient

            self._client = RestClient(self.connection)
        return self._client

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(
            kind="rest",
            state_key="rest",
            metric_positions="digest",
            exact_metric_ranges=False,
            position_units_per_point=1,
            run_fingerprints=True,
            trace_fingerprints=True,
            tables=tables.ALL_TABLE_NAMES,
            active_only_tables=(tables.MODELS, tables.MODEL_VERSIONS),
        )

    # -- listing (driver) --------------------------------------------------------------------------

    def _all_experiments(self) -> list[dict]:
        if self._experiments_json is None:
            client = self.client()
            found: dict[str, dict] = {}
            for page in client.pages("POST", "experiments/search", "experiments",
                                     body={"max_results": self.connection.experiments_page_size, "view_type": "ALL"}):
                for experiment in page:
                    try:
                        row = convert.experiment_row(experiment)  # checked: id and name present
                    except convert.BadRecord as error:
                        raise MalformedRecordError(f"POST {client.url('experiments/search')}: {error}") from None
                    found[row["experiment_id"]] = experiment
            self._experiments_json = list(found.values())
        return self._experiments_json

    def list_experiments(self, view_type: str = "ALL") -> list[ExperimentRef]:
        stages = lifecycle_stages(view_type)
        refs = [ExperimentRef(str(e["experiment_id"]), e["name"], e.get("lifecycle_stage", "active"))
                for e in self._all_experiments()]
        refs = [r for r in refs if r.lifecycle_stage in stages]
        return sorted(refs, key=lambda r: (not r.experiment_id.isdigit(), int(r.experiment_id) if r.experiment_id.isdigit() else 0,
                                           r.experiment_id))

    def _search_runs(self, client, selection: Selection, query: RunQuery) -> Iterator[list[dict]]:
        if query.run_ids is not None and not query.run_ids:
            return
        body = {
            "experiment_ids": list(query.experiment_ids),
            "run_view_type": selection.view_type,
            "max_results": RUNS_PAGE_SIZE,
        }
        text = run_filter(selection, query.run_ids)
        if text:
            body["filter"] = text
        yield from client.pages("POST", "runs/search", "runs", body=body)

    def list_runs(self, selection: Selection) -> list[dict]:
        """Every selected run's JSON (driver side), each run once, in run-id order.

        Example::

            >>> [run["info"]["run_id"] for run in store.list_runs(Selection("runs", ("1",)))]  # doctest: +SKIP
            ['0b1f...', '3f2a...']
        """
        client = self.client()
        found: dict[str, dict] = {}
        for query in run_queries(selection):
            for page in self._search_runs(client, selection, query):
                for run in page:
                    info = convert.run_info(run)
                    if selection.admits_run(info["run_id"], info["lifecycle_stage"] or "", info["start_time"]):
                        found[info["run_id"]] = run
        return [found[r] for r in sorted(found)]

    # -- planning (driver) -------------------------------------------------------------------------

    def plan(self, selection: Selection) -> list[Partition]:
        connection = self.connection
        if selection.table in tables.MODEL_TABLE_NAMES:
            return plan_model_tables(self, selection)
        if selection.table in tables.TRACE_TABLE_NAMES:
            return plan_trace_tables(self, selection)
        if selection.table == tables.EXPERIMENTS:
            wanted = set(selection.experiment_ids)
            chosen = tuple(e for e in self._all_experiments() if str(e["experiment_id"]) in wanted)
            return [Partition(0, selection, RestWork(connection, chosen))]
        if selection.table != tables.METRICS:
            queries = run_queries(selection, selection.num_partitions)
            if not queries:
                return []
            size = max(1, math.ceil(len(queries) / selection.num_partitions)) if selection.num_partitions else 1
            return [Partition(i, selection, RestWork(connection, tuple(group))) for i, group in enumerate(chunk(queries, size))]
        units = []
        if selection.metric_ranges is not None:
            wanted = {(run_id, key) for run_id, key, after, upto in selection.metric_ranges if upto != after}
        for run in self.list_runs(selection):
            info = convert.run_info(run)
            for key, _, step, _ in convert.latest_metrics(run, info["run_id"]):
                if not selection.admits_metric_key(key):
                    continue
                if selection.metric_ranges is not None and (info["run_id"], key) not in wanted:
                    continue
                estimate = max(1, min(_MAX_POINTS_ESTIMATE, (step or 0) + 1))
                units.append(((info["experiment_id"], info["run_id"], key), estimate))
        packed = pack_partitions(selection, units, DEFAULT_POINTS_PER_PARTITION)
        return [Partition(p.index, selection, RestWork(connection, tuple(p.work))) for p in packed]

    # -- change detection (driver) -----------------------------------------------------------------

    def metric_positions(self, selection: Selection) -> dict[tuple[str, str], int]:
        """``{(run_id, key): digest}``: changes when the series' latest point or its run's status,
        end time or lifecycle stage changes (a change means: re-read the whole series)."""
        positions = {}
        runs = self.list_runs(selection)
        self._scanned = (self._scan_key(selection), runs)
        for run in runs:
            run_id = convert.run_info(run)["run_id"]
            for key, _, _, _ in convert.latest_metrics(run, run_id):
                if selection.admits_metric_key(key):
                    positions[(run_id, key)] = series_digest(run, key)
        return positions

    @staticmethod
    def _scan_key(selection: Selection) -> tuple:
        return (selection.experiment_ids, selection.view_type, selection.run_ids, selection.min_start_time_ms)

    def run_fingerprints(self, selection: Selection) -> dict[str, tuple[str, str]]:
        """One ``runs/search`` pass: digests of each run's info, params, tags and dataset inputs.

        Right after :meth:`metric_positions` on the same runs, its listing is used (once): a
        sync's scan costs one pass, and its positions and fingerprints are of one moment."""
        found = {}
        scanned, self._scanned = self._scanned, None
        runs = scanned[1] if scanned is not None and scanned[0] == self._scan_key(selection) else self.list_runs(selection)
        for run in runs:
            info = convert.run_info(run)
            rid = info["run_id"]
            digests = {
                "run": _digest(info),
                "params": _digest(convert.key_values((run.get("data") or {}).get("params"), "params")),
                "tags": _digest(convert.key_values((run.get("data") or {}).get("tags"), "tags")),
                "inputs": _digest(convert.dataset_inputs(run, rid)),
            }
            found[rid] = (info["experiment_id"], fingerprint(digests))
        return found

    def trace_fingerprints(self, selection: Selection) -> dict[str, tuple[str, str]]:
        """One ``traces/search`` pass over the selected experiments (every page): digests of
        each trace's info, of its state and duration (for its spans), of its assessments."""
        return trace_fingerprints(self.client().call, selection.experiment_ids)

    # -- reading (executor) ------------------------------------------------------------------------

    def read(self, partition: Partition) -> Iterator[pa.RecordBatch]:
        work = partition.work
        if not isinstance(work, RestWork):
            raise ConfigurationError(f"{self.uri.display}: partition {partition.index} was not planned by the REST store")
        selection = partition.selection
        problems = Problems(selection.mode, f"partition {partition.index} of {self.uri.display}")
        if selection.table == tables.EXPERIMENTS:
            yield from convert.experiments_batches(work.items, problems)
            problems.report()
            return
        from .client import RestClient

        client = RestClient(work.connection)
        try:
            if selection.table in tables.MODEL_TABLE_NAMES:
                yield from read_model_tables(client, partition)
                return
            if selection.table in tables.TRACE_TABLE_NAMES:
                yield from read_trace_tables(client, partition, problems)
            elif selection.table == tables.METRICS:
                yield from self._read_metrics(client, work, problems)
            else:
                yield from self._read_runs(client, selection, work, problems)
        finally:
            client.close()
        problems.report()

    def _read_runs(self, client, selection: Selection, work: RestWork, problems: Problems) -> Iterator[pa.RecordBatch]:
        def fetch(query: RunQuery) -> list[dict]:
            return [run for page in self._search_runs(client, selection, query) for run in page]

        with _pool(work) as pool:
            for runs in pool.map(fetch, work.items):
                admitted = []
                for run in runs:
                    try:
                        info = convert.run_info(run)
                    except convert.BadRecord as error:
                        problems.skip(f"run from the tracking server: {error}")
                        continue
                    if selection.admits_run(info["run_id"], info["lifecycle_stage"] or "", info["start_time"]):
                        admitted.append(run)
                if selection.table == tables.RUNS:
                    yield from convert.runs_batches(admitted, problems)
                elif selection.table in (tables.PARAMS, tables.TAGS):
                    yield from convert.key_value_batches(selection.table, admitted, problems)
                elif selection.table == tables.INPUTS:
                    yield from convert.inputs_batches(admitted, problems)

    def _read_metrics(self, client, work: RestWork, problems: Problems) -> Iterator[pa.RecordBatch]:
        batcher = convert.MetricBatcher(problems)
        requests = history.bulk_requests(work.items)
        first = history.first_bulk_answer(client, *requests[0]) if requests else None
        if first is None:
            with _pool(work) as pool:
                answers = pool.map(lambda series: history.series_history(client, series[1], series[2]), work.items)
                for (experiment_id, run_id, key), points in zip(work.items, answers):
                    batcher.add(experiment_id, run_id, key, points)
                    if batcher.full():
                        yield from batcher.flush()
            yield from batcher.flush()
            return
        experiment_of = {run_id: experiment_id for experiment_id, run_id, _ in work.items}
        with _pool(work) as pool:
            answers = itertools.chain([first], pool.map(lambda request: history.key_histories(client, *request), requests[1:]))
            for (key, _), histories in zip(requests, answers):
                for run_id, points in histories.items():
                    batcher.add(experiment_of[run_id], run_id, key, points)
                if batcher.full():
                    yield from batcher.flush()
        yield from batcher.flush()
