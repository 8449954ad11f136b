"""Settings of ``pyspark-experiments report``: :class:`ReportConfig`, the settings it shares
with the analytics job (:class:`~pyspark_experiments.analytics.config.MetricsConfig`) and its
own ``[report]`` keys of ``conf/analytics.toml``.

Example::

    >>> ReportConfig(out="/tmp/report").title
    'MLflow runs report'
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analytics.config import MetricsConfig
from ..errors import ConfigurationError


@dataclass(frozen=True)
class ReportConfig(MetricsConfig):
    """What the report reads and where it writes ``report.html``.

    Example::

        >>> ReportConfig.from_toml("conf/analytics.toml").override(out="/tmp/r").validate().title
        'MLflow runs report'
    """

    out: str | None = None
    title: str = "MLflow runs report"

    def validate(self, *, need_target: bool = False) -> ReportConfig:
        """Check the settings together (an output folder is needed); returns ``self``.

        Example::

            >>> ReportConfig(tracking_uri="sqlite:///m.db").validate()
            Traceback (most recent call last):
            ...
            pyspark_experiments.errors.ConfigurationError: no output folder: give --out DIR (or [report] out in the config)
        """
        super().validate(need_target=need_target)
        if not self.out:
            raise ConfigurationError("no output folder: give --out DIR (or [report] out in the config)")
        return self
