"""The scan: what the store holds now, cheaply (:func:`scan_store`): the selected experiments'
rows, a fingerprint per run and a position per metric series (and, where a trace table is
kept, a fingerprint per trace); then, once the state is read,
the positions where the store takes marks (:func:`positioned`) and the checks of the series
that moved where it checks them (:func:`checked`).

Example::

    >>> scan, experiments = scan_store(spark, scope, Skips())                # doctest: +SKIP
    >>> len(scan.fingerprints), experiments.num_rows                         # doctest: +SKIP
    (42, 3)
"""

from __future__ import annotations

import dataclasses
import logging

from .. import tables
from ..stores.fingerprints import fingerprint
from ..stores.resolve import resolve_experiments
from .plan import Scan, moved_series, moves_saved_positions, series_needed
from .reads import Reads, Skips
from .scope import SyncScope
from .state import SyncState, read_series

log = logging.getLogger("pyspark_experiments.sync")


def scan_store(spark, scope: SyncScope, skips: Skips):
    """Experiment rows (an Arrow table, read on the driver), run fingerprints and series
    positions, as a :class:`~.plan.Scan`. Where the store takes metric marks, the scan holds
    the mark and no positions yet (:func:`positioned`). Stores that report neither positions
    nor fingerprints are counted and hashed through the data source.

    Example::

        >>> scan, experiments = scan_store(spark, scope, Skips())            # doctest: +SKIP
    """
    import pyarrow as pa

    caps, store = scope.caps, scope.store
    experiment_ids = resolve_experiments(store, scope.cfg.experiments, "ALL", tables.RUNS, environ={})
    reads = Reads(spark, scope, experiment_ids, skips)
    selection = scope.metrics_selection(experiment_ids)
    # Positions first: whatever is read later is at least as new as they are. Where the
    # store takes marks, the mark comes first and the positions as of it later
    # (positioned()), from the saved state.
    state_key, positions_key, kind, exact = caps.state_key, caps.positions_key, caps.metric_positions, caps.exact_metric_ranges
    mark = None
    if not experiment_ids:
        positions = {}
    elif caps.metric_marks:
        mark, positions = store.metric_mark(), None
    elif caps.metric_positions != "none":
        positions = store.metric_positions(selection)
    else:
        positions = counted_positions(reads)
        kind, exact, positions_key = "count", False, f"{caps.state_key}:count:whole"
    run_selection = dataclasses.replace(selection, table=tables.RUNS)
    if not experiment_ids:
        fingerprints = {}
    elif caps.run_fingerprints:
        fingerprints = store.run_fingerprints(run_selection)
    else:
        fingerprints = hashed_fingerprints(reads)
        state_key = f"{caps.state_key}:hashed"
    traces = None
    if scope.keeps_traces:
        traces = store.trace_fingerprints(dataclasses.replace(selection, table=tables.TRACES)) if experiment_ids else {}
    # A handful of rows: read on the driver, through the store backend.
    selection = dataclasses.replace(selection, table=tables.EXPERIMENTS)
    batches = [b for p in store.plan(selection) for b in store.read(p)] if experiment_ids else []
    experiments = pa.Table.from_batches(batches, schema=tables.arrow_schema(tables.EXPERIMENTS))
    scan = Scan(experiment_ids, fingerprints, positions, state_key=state_key, positions_key=positions_key,
                position_kind=kind, exact_ranges=exact, metrics_mark=mark, traces=traces)
    return scan, experiments


def positioned(scope: SyncScope, target, state_version: int, scan: Scan, state: SyncState,
               recovering: bool) -> tuple[Scan, SyncState]:
    """The scan with its positions, where the store takes marks: the saved positions moved by
    the points logged between the saved mark and this scan's, when the last completed sync
    saved a mark for the same experiments and left no series unsynced
    (:func:`~.plan.moves_saved_positions`); else a full scan. Only series of the scanned runs
    are kept (a run created after the fingerprints were taken has points past the mark: the
    next sync reads them).

    And the state (at ``state_version`` of ``target``) with the series this sync needs, where
    it was read without them: those of the runs that moved when the positions were moved and
    the state is not due for a rewrite, else all of them (:func:`~.plan.series_needed`).

    Example::

        >>> scan, state = positioned(scope, target, 7, scan, state, recovering=False)  # doctest: +SKIP
    """
    if scan.positions is not None:
        return scan, read_series(target, state_version, state)
    store = scope.store
    selection = scope.metrics_selection(scan.experiment_ids)
    moved = None
    if moves_saved_positions(scan, state, scope.cfg.full, recovering):
        saved = state.meta["metrics_mark"]
        moved = store.metric_positions_since(selection, saved["mark"], scan.metrics_mark)
        if moved is None:
            log.info("metric rows were removed since the last sync: scanning every series")
    state = read_series(target, state_version, state, series_needed(moved, scan, state))
    positions = store.metric_positions(selection) if moved is None else {**state.series, **moved}
    positions = {pair: position for pair, position in positions.items() if pair[0] in scan.fingerprints}
    return dataclasses.replace(scan, positions=positions), state


def checked(scope: SyncScope, scan: Scan, state: SyncState) -> Scan:
    """Where positions are bytes of append-only files, the checks of the series that moved:
    a digest of the line before the current position (saved with it) and of the line
    before the saved position as the file holds it now (compared with the saved one).

    Example::

        >>> checked(scope, scan, state).checks                              # doctest: +SKIP
        {('r', 'loss'): '9f2c...'}
    """
    if scope.caps.metric_positions != "bytes" or not scan.positions:
        return scan
    moved = moved_series(scan, state)
    if not moved:
        return scan
    found = scope.store.metric_positions(scope.metrics_selection(scan.experiment_ids, metric_ranges=moved))
    checks = {pair: p.check for pair, p in found.items() if getattr(p, "check", None)
              and int(p) == scan.positions[pair]}  # a file still being appended to: checked next time
    after = {pair: p.check_after for pair, p in found.items() if getattr(p, "check_after", None)}
    return dataclasses.replace(scan, checks=checks, checks_after=after)


def counted_positions(reads: Reads) -> dict[tuple[str, str], int]:
    """Points per series, counted through the data source: the positions of a store that
    reports none.

    Example::

        >>> counted_positions(reads)[("r", "loss")]                          # doctest: +SKIP
        96
    """
    log.info("%s reports no metric positions: counting points per series", reads.scope.uri.display)
    counts = reads.executor_read(tables.METRICS).groupBy("run_id", "key").count().collect()
    return {(r["run_id"], r["key"]): int(r["count"]) for r in counts}


def hashed_fingerprints(reads: Reads) -> dict[str, tuple[str, str]]:
    """Run fingerprints hashed through the data source (one digest for the run's row, params
    and tags included, one for its inputs): those of a store that takes none.

    Example::

        >>> hashed_fingerprints(reads)["r"][0]                               # doctest: +SKIP
        '1'
    """
    from pyspark.sql import functions as F

    log.info("%s reports no run fingerprints: hashing the runs and inputs tables", reads.scope.uri.display)
    columns = [c for c in tables.spark_schema(tables.RUNS).fieldNames() if c != "metrics"]
    runs = reads.executor_read(tables.RUNS).select(
        "run_id", "experiment_id", F.sha2(F.to_json(F.struct(*columns)), 256).alias("h"))
    inputs = reads.executor_read(tables.INPUTS).groupBy("run_id").agg(
        F.sha2(F.to_json(F.sort_array(F.collect_list(F.to_json(F.struct("*"))))), 256).alias("i"))
    rows = runs.join(inputs, "run_id", "left").collect()
    return {
        r["run_id"]: (r["experiment_id"], fingerprint(
            {"run": r["h"], "params": r["h"], "tags": r["h"], "inputs": str(r["i"])}))
        for r in rows
    }
