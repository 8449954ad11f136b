"""Malformed records: raised at once (FAILFAST), or skipped and reported (PERMISSIVE).

A store reports each malformed record it meets to a :class:`Problems`; the Spark adapter
collects the skips of a partition's read with :func:`collect_skipped` and hands them to the
caller as rows.

Example::

    >>> with collect_skipped() as skipped:
    ...     Problems("PERMISSIVE").skip("mlruns/1/r/meta.yaml: not valid YAML", run_id="r")
    >>> [record.run_id for record in skipped]
    ['r']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import MalformedRecordError

log = logging.getLogger("pyspark_experiments")


@dataclass(frozen=True)
class SkippedRecord:
    """One record a PERMISSIVE read skipped: where and why, and whose it was where known."""

    where: str
    experiment_id: str | None = None
    run_id: str | None = None


_collecting = threading.local()


@contextmanager
def collect_skipped() -> Iterator[list[SkippedRecord]]:
    """Collect every record that :class:`Problems` skips in this thread while the block runs.

    The Spark adapter wraps each partition's read in it to hand the skips to the caller as rows
    (option ``columnNameOfCorruptRecord``); a store needs no part in it.

    Example::

        >>> with collect_skipped() as skipped:
        ...     Problems("PERMISSIVE").skip("/m/1/r/meta.yaml: not valid YAML", run_id="r")
        >>> skipped
        [SkippedRecord(where='/m/1/r/meta.yaml: not valid YAML', experiment_id=None, run_id='r')]
    """
    stack = _collecting.__dict__.setdefault("stack", [])
    found: list[SkippedRecord] = []
    stack.append(found)
    try:
        yield found
    finally:
        stack.remove(found)


class Problems:
    """Collects malformed records under ``mode``: raise at once (FAILFAST) or skip and report.

    PERMISSIVE never drops silently: every skip goes to the caller as a row of the
    ``columnNameOfCorruptRecord`` column when the read asked for one (see
    :func:`collect_skipped`), and :meth:`report` logs how many records were skipped and where,
    once per partition. ``locate`` turns a place into (experiment id, run id) where a store can.

    Example::

        >>> problems = Problems("PERMISSIVE")
        >>> problems.skip("mlruns/1/abc/metrics/loss, line 3: expected 'timestamp value step'")
        >>> problems.count
        1
    """

    def __init__(self, mode: str, context: str = "", locate=None) -> None:
        self.mode = mode
        self.context = context
        self.locate = locate
        self.where: list[str] = []

    def skip(self, where: str, experiment_id: str | None = None, run_id: str | None = None) -> None:
        if self.mode == "FAILFAST":
            raise MalformedRecordError(
                f"malformed record at {where} (mode FAILFAST; use option('mode', 'PERMISSIVE') "
                f"to skip malformed records and report them)"
            )
        self.where.append(where)
        if self.locate is not None and (experiment_id is None or run_id is None):
            found_experiment, found_run = self.locate(where)
            experiment_id, run_id = experiment_id or found_experiment, run_id or found_run
        for found in getattr(_collecting, "stack", ()):
            found.append(SkippedRecord(where, experiment_id, run_id))

    @property
    def count(self) -> int:
        return len(self.where)

    def report(self) -> None:
        if self.where:
            shown = "; ".join(self.where[:20])
            more = f" (and {len(self.where) - 20} more)" if len(self.where) > 20 else ""
            log.warning(
                "PERMISSIVE: skipped %d malformed record(s)%s: %s%s",
                len(self.where), f" in {self.context}" if self.context else "", shown, more,
            )
