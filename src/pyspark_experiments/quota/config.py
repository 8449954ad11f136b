"""Settings of ``pyspark-experiments quota``: :class:`QuotaConfig`, the settings every command
shares, where the runs are read and the ``[quota]`` keys of ``conf/analytics.toml`` (the limits
and the margin, one definition with the analytics job and the report:
:class:`~pyspark_experiments.analytics.config.QuotaSettings`), and how many runs to list.

Example::

    >>> QuotaConfig(tracking_uri="sqlite:///m.db").override(margin="0.5", runs_per_experiment=10).limits().runs_per_experiment
    10
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..analytics.config import QuotaSettings
from ..errors import ConfigurationError

#: Runs listed per run quota unless ``--top`` says otherwise.
DEFAULT_TOP = 10


@dataclass(frozen=True)
class QuotaConfig(QuotaSettings):
    """What the quota command reads and checks: the source (the store, or the synced tables of
    a target), the limits and the margin, and ``top``, the heaviest runs listed per run quota.

    Example::

        >>> cfg = QuotaConfig.from_toml("conf/analytics.toml")
        >>> cfg.limits().params_per_run, cfg.margin, cfg.top
        (1600, 0.8, 10)
        >>> QuotaConfig(tracking_uri="sqlite:///m.db", margin=2).validate()
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: --margin ([quota] margin) = 2: expected a fraction between 0 and 1, e.g. 0.8
    """

    top: int = DEFAULT_TOP

    QUOTA_FLAGS: ClassVar[bool] = True

    def validate(self, *, need_target: bool = False) -> QuotaConfig:
        """Check the settings together; returns ``self``.

        Example::

            >>> QuotaConfig(tracking_uri="sqlite:///m.db", top=-1).validate()
            Traceback (most recent call last):
            ...
            pyspark_experiments.errors.ConfigurationError: --top -1: expected a number of runs (0 or more)
        """
        super().validate(need_target=need_target)
        if isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 0:
            raise ConfigurationError(f"--top {self.top!r}: expected a number of runs (0 or more)")
        return self
