"""Parents and their nested runs in a cleanup, on the driver (pure: run dicts in, run dicts
out): a run is deleted after every run nested under it (:func:`deletion_order`), and never while
a run nested under it stays (:func:`keep_together`, :func:`hold_ancestors`). The runs nested
under a selected one are found by
:func:`~pyspark_experiments.analytics.cleanup.with_nested_runs`.

Example::

    >>> runs = [{"run_id": "p", "parent_run_id": None}, {"run_id": "c", "parent_run_id": "p"},
    ...         {"run_id": "g", "parent_run_id": "c"}]
    >>> [r["run_id"] for r in deletion_order(runs)]
    ['g', 'c', 'p']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping


def parents(runs: list[dict]) -> dict[str, str | None]:
    """``{run id: parent run id}`` of ``runs`` (dicts with ``run_id`` and ``parent_run_id``).

    Example::

        >>> parents([{"run_id": "c", "parent_run_id": "p"}, {"run_id": "p"}])
        {'c': 'p', 'p': None}
    """
    return {run["run_id"]: run.get("parent_run_id") for run in runs}


def ancestors(run_id: str, parent_of: Mapping[str, str | None]) -> Iterator[str]:
    """The runs above ``run_id`` that ``parent_of`` knows, nearest first; a loop of parent links
    ends where it comes back.

    Example::

        >>> list(ancestors("g", {"g": "c", "c": "p", "p": None})), list(ancestors("a", {"a": "b", "b": "a"}))
        (['c', 'p'], ['b'])
    """
    seen = {run_id}
    parent = parent_of.get(run_id)
    while parent is not None and parent not in seen and parent in parent_of:
        yield parent
        seen.add(parent)
        parent = parent_of.get(parent)


def depth(run_id: str, parent_of: Mapping[str, str | None]) -> int:
    """How many runs of ``parent_of`` are above ``run_id``.

    Example::

        >>> depth("g", {"g": "c", "c": "p", "p": None}), depth("x", {})
        (2, 0)
    """
    return sum(1 for _ in ancestors(run_id, parent_of))


def deletion_order(runs: list[dict]) -> list[dict]:
    """``runs`` with the deepest nested runs first, so that a parent is deleted after the runs
    under it (a cleanup stopped midway leaves no child without its parent); the order is kept
    among runs of one depth.

    Example::

        >>> [r["run_id"] for r in deletion_order([{"run_id": "p"}, {"run_id": "x"}, {"run_id": "c", "parent_run_id": "p"}])]
        ['c', 'p', 'x']
    """
    parent_of = parents(runs)
    return sorted(runs, key=lambda run: -depth(run["run_id"], parent_of))


def hold_ancestors(run_id: str, parent_of: Mapping[str, str | None], held: dict[str, str]) -> None:
    """Record in ``held`` (``{run id: the nested run it waits for}``) that the runs above
    ``run_id`` must not be deleted: ``run_id`` stays.

    Example::

        >>> held = {}; hold_ancestors("g", {"g": "c", "c": "p", "p": None}, held); held
        {'c': 'g', 'p': 'g'}
    """
    for ancestor in ancestors(run_id, parent_of):
        held.setdefault(ancestor, run_id)


def keep_together(chosen: list[dict], candidates: list[dict]) -> tuple[list[dict], list[tuple[dict, str]]]:
    """Of ``chosen`` (the runs about to be deleted), those that may be, and those that may not,
    with why: a run with a nested run among ``candidates`` (the selection with every run nested
    under a selected one) that is not chosen stays, and so do the runs above it.

    Example::

        >>> candidates = [{"run_id": "p"}, {"run_id": "c", "parent_run_id": "p"}, {"run_id": "x"}]
        >>> kept, skipped = keep_together([candidates[0], candidates[2]], candidates)
        >>> [r["run_id"] for r in kept], [(r["run_id"], why) for r, why in skipped]
        (['x'], [('p', 'its nested run c is not deleted')])
    """
    parent_of = parents(candidates)
    chosen_ids = {run["run_id"] for run in chosen}
    held: dict[str, str] = {}
    for run_id in parent_of:
        if run_id not in chosen_ids:
            hold_ancestors(run_id, parent_of, held)
    kept = [run for run in chosen if run["run_id"] not in held]
    skipped = [(run, f"its nested run {held[run['run_id']]} is not deleted") for run in chosen if run["run_id"] in held]
    return kept, skipped
