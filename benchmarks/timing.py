"""What every benchmark times the same way: best-of-N timing and the reference mlflow loop
(``get_metric_history`` over every run and metric key of a store)."""

from __future__ import annotations

import time


def best_of(repeat: int, fn):
    """Run ``fn`` ``repeat`` times; return (best seconds, all seconds, last result).

    Example::

        >>> best, times, result = best_of(3, lambda: sum(range(1000)))
        >>> len(times), result
        (3, 499500)
    """
    times, result = [], None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), times, result


def history_loop(client, experiment_ids: list[str], repeat: int = 1, sample_runs: int | None = None) -> dict:
    """Time MLflow's way to get every metric history: ``client.get_metric_history`` for each
    (run, key) of the experiments. With ``sample_runs``, only that many runs spread evenly over
    the store are timed and the time is scaled to all calls (``extrapolated`` says so).

    Example::

        >>> history_loop(MlflowClient("sqlite:///mlflow.db"), ["1"], sample_runs=100)  # doctest: +SKIP
        {'runs_measured': 100, 'runs_total': 2000, 'calls': 1000, 'calls_total': 20000, ...}
    """
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, max_results=50_000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    work = sorted((r.info.run_id, sorted(r.data.metrics)) for r in runs)
    total_runs, total_calls = len(work), sum(len(keys) for _, keys in work)
    if sample_runs and sample_runs < total_runs:
        step = total_runs / sample_runs  # evenly spread over the store
        work = [work[int(i * step)] for i in range(sample_runs)]
    client.get_metric_history(work[0][0], work[0][1][0])  # warm

    def loop():
        points = 0
        for run_id, keys in work:
            for key in keys:
                points += len(client.get_metric_history(run_id, key))
        return points

    best, times, points = best_of(repeat, loop)
    calls = sum(len(keys) for _, keys in work)
    scale = total_calls / calls
    return {"runs_measured": len(work), "runs_total": total_runs, "calls": calls, "calls_total": total_calls,
            "points": points, "measured_s": best, "all_s": times, "extrapolated": scale != 1, "scale": scale,
            "history_s": best * scale}
