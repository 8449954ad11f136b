"""Settings of ``pyspark-experiments cleanup``: :class:`CleanupConfig`, the shared settings
(:class:`~pyspark_experiments.jobs.config.CommandConfig`) and the ``[cleanup]`` and ``[job]``
keys of ``conf/analytics.toml`` (the file's layout:
:data:`pyspark_experiments.analytics.config.LAYOUT`).

Example::

    >>> CleanupConfig().override(statuses="failed", older_than_days=30).criteria()
    {'statuses': ['FAILED'], 'older_than': 30.0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..analytics.config import LAYOUT
from ..errors import ConfigurationError
from ..jobs.config import CommandConfig, Layout


def no_condition_error() -> ConfigurationError:
    """The error of a selection with no condition: selecting every run is never a default.

    Example::

        >>> str(no_condition_error()).startswith("cleanup: no condition given")
        True
    """
    return ConfigurationError(
        "cleanup: no condition given; pass at least one of --experiment-ids, --statuses, --older-than-days, --users, "
        "--tag, --where, --keep-newest (selecting every run is never a default)"
    )


@dataclass(frozen=True)
class CleanupConfig(CommandConfig):
    """Which runs the cleanup selects, and where it records what it did.

    Example::

        >>> CleanupConfig.from_toml("conf/analytics.toml").criteria()
        {'statuses': ['FAILED', 'KILLED'], 'older_than': 30.0}
    """

    cleanup_experiments: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    older_than_days: float | None = None
    users: tuple[str, ...] | None = None
    tags: dict | None = None
    where: str | None = None
    keep_newest: int | None = None
    record_file: str | None = None
    keep_children: bool = False
    lock_timeout_minutes: float = 360.0

    LAYOUT: ClassVar[Layout] = LAYOUT

    def criteria(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~pyspark_experiments.analytics.cleanup_candidates`:
        the conditions, and ``keep_children`` when set (nested runs of a selected run left out).

        Example::

            >>> CleanupConfig(cleanup_experiments=("7",), keep_newest=5).criteria()
            {'experiment_ids': ['7'], 'keep_newest': 5}
            >>> CleanupConfig(statuses=("FAILED",), keep_children=True).criteria()
            {'statuses': ['FAILED'], 'keep_children': True}
        """
        criteria: dict[str, Any] = {}
        if self.cleanup_experiments:
            criteria["experiment_ids"] = list(self.cleanup_experiments)
        if self.statuses:
            criteria["statuses"] = list(self.statuses)
        if self.older_than_days is not None:
            criteria["older_than"] = self.older_than_days
        if self.users:
            criteria["users"] = list(self.users)
        if self.tags:
            criteria["tags"] = dict(self.tags)
        if self.where:
            criteria["where"] = self.where
        if self.keep_newest is not None:
            criteria["keep_newest"] = self.keep_newest
        if self.keep_children:
            criteria["keep_children"] = True
        return criteria

    def has_condition(self) -> bool:
        """Whether a condition is given (``keep_children`` is none: it only leaves runs out).

        Example::

            >>> CleanupConfig(keep_children=True).has_condition(), CleanupConfig(users=("ann",)).has_condition()
            (False, True)
        """
        return bool(set(self.criteria()) - {"keep_children"})

    def validate(self) -> CleanupConfig:
        """Check the settings together; returns ``self``.

        Example::

            >>> CleanupConfig(keep_newest=-1).validate()
            Traceback (most recent call last):
            ...
            pyspark_experiments.errors.ConfigurationError: [cleanup] keep_newest = -1: expected a non-negative integer
        """
        self.check_shared()
        if self.older_than_days is not None and not math.isfinite(self.older_than_days):
            raise ConfigurationError(f"--older-than-days ([cleanup] older_than_days) = {self.older_than_days}: "
                                     f"expected a finite number of days")
        if self.where is not None and not self.where.strip():
            raise ConfigurationError("--where ([cleanup] where) is empty: expected a SQL condition on the runs columns")
        if self.keep_newest is not None and self.keep_newest < 0:
            raise ConfigurationError(f"[cleanup] keep_newest = {self.keep_newest}: expected a non-negative integer")
        if self.lock_timeout_minutes <= 0:
            raise ConfigurationError(f"[job] lock_timeout_minutes = {self.lock_timeout_minutes}: expected a positive number")
        return self
