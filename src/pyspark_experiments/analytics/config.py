"""Settings of the analytics job (:class:`AnalyticsConfig`), what it shares with the report
(:class:`MetricsConfig`) and, with the quota command too, where the runs are read and the
quota limits (:class:`QuotaSettings`, the ``[quota]`` keys :data:`QUOTA_KEYS`), on the job
layer's :class:`~pyspark_experiments.jobs.config.CommandConfig`.

``conf/analytics.toml`` is one file for four commands (``analytics``, ``report``, ``quota``,
``cleanup``): :data:`LAYOUT` declares every key of it, so that each command checks the whole
file, and each command's config keeps only its own settings.

Example::

    >>> cfg = AnalyticsConfig(target_path="/tmp/delta", metrics=("loss",))
    >>> cfg.mode_of("loss"), cfg.override(period="month").period
    ('min', 'month')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ..errors import ConfigurationError
from ..jobs.config import CommandConfig, Key, Layout, job_layout
from .common import PERIODS
from .leaderboard import default_mode
from .quota import QuotaLimits

_STRING = (str,)
_BOOL = (bool,)
_NUMBER = (int, float)
_INT = (int,)
_LIST = (list, str)


def _count(field: str) -> Key:
    return Key(field, _INT, "a positive integer", kind="integer", accepts=lambda n: n > 0)


#: The names of the quota limits (:class:`QuotaLimits`' fields), each a ``[quota]`` key and a setting.
LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(QuotaLimits))

#: The ``[quota]`` keys: the limits and the warning margin. The analytics job, the report and
#: the quota command read them; the quota command's flags are made from them too.
QUOTA_KEYS: dict[str, Key] = {
    **{name: _count(name) for name in LIMIT_NAMES},
    "margin": Key("margin", _NUMBER, "a fraction between 0 and 1, e.g. 0.8", kind="number", accepts=lambda x: 0 < x <= 1),
}

#: The TOML layout of ``conf/analytics.toml``: section -> key -> the setting it fills. The
#: ``[report]`` keys are the report's, the ``[cleanup]`` keys the cleanup command's.
LAYOUT: dict[str, dict[str, Key]] = job_layout(
    analytics={
        "source": Key("source", _STRING, '"target" or "store"', ("TARGET", "STORE"), kind="lower"),
        "metrics": Key("metrics", _LIST, "a list of metric keys", kind="list"),
        "lower_is_better": Key("lower_is_better", _LIST, "a list of metric keys", kind="list"),
        "higher_is_better": Key("higher_is_better", _LIST, "a list of metric keys", kind="list"),
        "period": Key("period", _STRING, '"day", "week", "month" (or "auto" for the report)',
                      ("DAY", "WEEK", "MONTH", "AUTO"), kind="lower"),
        "leaderboard_size": _count("leaderboard_size"),
        "stuck_hours": Key("stuck_hours", _NUMBER, "a number of hours", kind="number"),
        "exact_history_percentiles": Key("exact_history", _BOOL, "true or false", kind="bool"),
        "traces": Key("trace_tables", _BOOL, "true or false", kind="bool"),
    },
    quota=QUOTA_KEYS,
    report={
        "out": Key("out", _STRING, "a folder for report.html (string)"),
        "title": Key("title", _STRING, "a title (string)"),
    },
    cleanup={
        "experiments": Key("cleanup_experiments", _LIST, "a list of experiment ids", kind="list", nonempty=True),
        "statuses": Key("statuses", _LIST, 'a list of run statuses, e.g. ["FAILED", "KILLED"]', kind="upper_list", nonempty=True),
        "older_than_days": Key("older_than_days", _NUMBER, "a number of days", kind="number"),
        "users": Key("users", _LIST, "a list of user names", kind="list", nonempty=True),
        "tags": Key("tags", (dict,), "a table of tag = value", kind="table"),
        "where": Key("where", _STRING, "a SQL condition on the runs columns (string)", nonempty=True),
        "keep_newest": Key("keep_newest", _INT, "a non-negative integer", kind="integer", accepts=lambda n: n >= 0),
        "record_file": Key("record_file", _STRING, "a JSON-lines file (string)"),
        "keep_children": Key("keep_children", _BOOL, "true or false", kind="bool"),
    },
    job={
        "lock_timeout_minutes": Key("lock_timeout_minutes", _NUMBER, "a number of minutes", kind="number"),
    },
)


@dataclass(frozen=True)
class QuotaSettings(CommandConfig):
    """What the analytics job, the report and the quota command share: where the runs are read
    (``source``), the quota limits (:data:`LIMIT_NAMES`; Databricks' unless set) and the
    warning margin, from the ``[quota]`` keys (:data:`QUOTA_KEYS`).

    A config whose command takes the ``[quota]`` keys as flags too (``--margin``,
    ``--runs-per-experiment``...) sets :attr:`QUOTA_FLAGS`, and its errors name the flag.

    Example::

        >>> QuotaSettings(params_per_run=3).limits().params_per_run
        3
    """

    source: str | None = None  # None: "store" when a tracking URI is given, else "target"
    params_per_run: int | None = None
    tags_per_run: int | None = None
    metric_steps_per_run: int | None = None
    runs_per_experiment: int | None = None
    tags_per_experiment: int | None = None
    margin: float = 0.8

    LAYOUT: ClassVar[Layout] = LAYOUT
    #: Whether the command takes each ``[quota]`` key as a flag too.
    QUOTA_FLAGS: ClassVar[bool] = False

    def read_from(self) -> str:
        """``"store"`` or ``"target"``: the ``source`` setting, else the store when a tracking
        URI is given and the target otherwise.

        Example::

            >>> QuotaSettings(tracking_uri="sqlite:///m.db", target_path="/d").read_from()
            'store'
        """
        if self.source:
            return self.source
        return "store" if self.tracking_uri or not self.has_target else "target"

    def limits(self) -> QuotaLimits:
        """The quota limits: Databricks' unless set.

        Example::

            >>> QuotaSettings().limits().runs_per_experiment
            500000
        """
        return QuotaLimits(**{name: getattr(self, name) for name in LIMIT_NAMES if getattr(self, name) is not None})

    def quota_setting(self, key: str) -> str:
        """How errors name a ``[quota]`` key: the key, with its flag where the command has one.

        Example::

            >>> QuotaSettings().quota_setting("tags_per_run")
            '[quota] tags_per_run'
        """
        if self.QUOTA_FLAGS:
            return f"--{key.replace('_', '-')} ([quota] {key})"
        return f"[quota] {key}"

    def validate(self, *, need_target: bool = False):
        """Check the shared settings, the source, the margin and the limits; returns ``self``.

        Example::

            >>> QuotaSettings(runs_per_experiment=0).validate()
            Traceback (most recent call last):
            ...
            pyspark_experiments.errors.ConfigurationError: [quota] runs_per_experiment = 0: expected a positive integer
        """
        self.check_shared(need_target=need_target)
        if self.read_from() == "target" and not self.has_target:
            raise ConfigurationError("source 'target' needs --target-path or --target-schema")
        if not 0 < self.margin <= 1:
            raise ConfigurationError(f"{self.quota_setting('margin')} = {self.margin!r}: expected a fraction between 0 and 1, "
                                     f"e.g. 0.8")
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"{self.quota_setting(name)} = {value!r}: expected a positive integer")
        return self


@dataclass(frozen=True)
class MetricsConfig(QuotaSettings):
    """What the analytics job and the report share: where the runs are read and the quota
    limits (:class:`QuotaSettings`), and how runs are judged (metrics and their directions,
    period, leaderboard size).

    Example::

        >>> MetricsConfig(params_per_run=3).limits().params_per_run
        3
    """

    metrics: tuple[str, ...] | None = None
    lower_is_better: tuple[str, ...] | None = None
    higher_is_better: tuple[str, ...] | None = None
    period: str | None = None
    leaderboard_size: int = 10

    def mode_of(self, metric: str) -> str:
        """``"min"`` or ``"max"``: from ``lower_is_better`` / ``higher_is_better``, else guessed
        from the name (:func:`~pyspark_experiments.analytics.leaderboard.default_mode`).

        Example::

            >>> MetricsConfig(higher_is_better=("val_loss",)).mode_of("val_loss"), MetricsConfig().mode_of("val_loss")
            ('max', 'min')
        """
        if metric in (self.lower_is_better or ()):
            return "min"
        if metric in (self.higher_is_better or ()):
            return "max"
        return default_mode(metric)

    def modes(self) -> dict[str, str]:
        """``{metric: mode}`` for every metric named in the settings.

        Example::

            >>> MetricsConfig(metrics=("acc",), lower_is_better=("loss",)).modes()
            {'acc': 'max', 'loss': 'min'}
        """
        names = list(dict.fromkeys((self.metrics or ()) + (self.lower_is_better or ()) + (self.higher_is_better or ())))
        return {name: self.mode_of(name) for name in names}

    def validate(self, *, need_target: bool = False):
        """Check the settings together; returns ``self``.

        Example::

            >>> MetricsConfig(lower_is_better=("a",), higher_is_better=("a",)).validate()
            Traceback (most recent call last):
            ...
            pyspark_experiments.errors.ConfigurationError: metric(s) a listed as both lower and higher is better
        """
        super().validate(need_target=need_target)
        if self.period is not None and self.period not in PERIODS + ("auto",):
            raise ConfigurationError(f"period {self.period!r}: expected day, week, month or auto")
        if self.leaderboard_size < 1:
            raise ConfigurationError(f"[analytics] leaderboard_size = {self.leaderboard_size}: expected a positive integer")
        both = set(self.lower_is_better or ()) & set(self.higher_is_better or ())
        if both:
            raise ConfigurationError(f"metric(s) {', '.join(sorted(both))} listed as both lower and higher is better")
        return self


@dataclass(frozen=True)
class AnalyticsConfig(MetricsConfig):
    """What the analytics job reads, computes and writes (see ``conf/analytics.toml``).

    Example::

        >>> AnalyticsConfig.from_toml("conf/analytics.toml").target_path
        'mlflow-delta'
        >>> AnalyticsConfig(target_path="/d").validate().stuck_hours
        24.0
    """

    stuck_hours: float = 24.0
    exact_history: bool = False
    trace_tables: bool = True
    lock_timeout_minutes: float = 360.0

    def table_period(self) -> str:
        """The period of the job's tables: the ``period`` setting, or ``week`` when it is unset
        or ``auto`` (the report's).

        Example::

            >>> AnalyticsConfig(period="auto").table_period(), AnalyticsConfig(period="day").table_period()
            ('week', 'day')
        """
        return self.period if self.period in PERIODS else "week"

    def validate(self, *, need_target: bool = True) -> AnalyticsConfig:
        """Check the settings together (a target is needed: the job writes there); returns ``self``.

        Example::

            >>> AnalyticsConfig(target_path="/d").override(stuck_hours=0).validate()
            Traceback (most recent call last):
            ...
            pyspark_experiments.errors.ConfigurationError: [analytics] stuck_hours = 0.0: expected a positive number of hours
        """
        super().validate(need_target=True)
        if self.stuck_hours <= 0:
            raise ConfigurationError(f"[analytics] stuck_hours = {self.stuck_hours}: expected a positive number of hours")
        if self.lock_timeout_minutes <= 0:
            raise ConfigurationError(f"[job] lock_timeout_minutes = {self.lock_timeout_minutes}: expected a positive number")
        return self
