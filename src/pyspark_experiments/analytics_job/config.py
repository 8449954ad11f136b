"""Settings of the ``analytics``, ``report`` and ``cleanup`` commands: one :class:`JobConfig`,
from a TOML file (``conf/analytics.toml``, the job layer's loader), flags or keyword arguments.

Example::

    >>> cfg = JobConfig(target_path="/tmp/delta", metrics=("loss",))
    >>> cfg.mode_of("loss"), cfg.override(period="month").period
    ('min', 'month')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..analytics import QuotaLimits
from ..analytics._common import PERIODS
from ..errors import ConfigurationError
from ..jobs import Key, job_layout, load_config

_STRING = (str,)
_BOOL = (bool,)
_NUMBER = (int, float)
_INT = (int,)
_LIST = (list, str)

#: The TOML layout of ``conf/analytics.toml``: section -> key -> the setting it fills.
LAYOUT: dict[str, dict[str, Key]] = job_layout(
    analytics={
        "source": Key("source", _STRING, '"target" or "store"', ("TARGET", "STORE")),
        "metrics": Key("metrics", _LIST, "a list of metric keys"),
        "lower_is_better": Key("lower_is_better", _LIST, "a list of metric keys"),
        "higher_is_better": Key("higher_is_better", _LIST, "a list of metric keys"),
        "period": Key("period", _STRING, '"day", "week", "month" (or "auto" for the report)', ("DAY", "WEEK", "MONTH", "AUTO")),
        "leaderboard_size": Key("leaderboard_size", _INT, "a positive integer"),
        "stuck_hours": Key("stuck_hours", _NUMBER, "a number of hours"),
        "exact_history_percentiles": Key("exact_history", _BOOL, "true or false"),
    },
    quota={
        "params_per_run": Key("params_per_run", _INT, "a positive integer"),
        "tags_per_run": Key("tags_per_run", _INT, "a positive integer"),
        "metric_steps_per_run": Key("metric_steps_per_run", _INT, "a positive integer"),
        "runs_per_experiment": Key("runs_per_experiment", _INT, "a positive integer"),
        "tags_per_experiment": Key("tags_per_experiment", _INT, "a positive integer"),
        "margin": Key("margin", _NUMBER, "a fraction between 0 and 1, e.g. 0.8"),
    },
    report={
        "out": Key("out", _STRING, "a folder for report.html (string)"),
        "title": Key("title", _STRING, "a title (string)"),
    },
    cleanup={
        "experiments": Key("cleanup_experiments", _LIST, "a list of experiment ids"),
        "statuses": Key("statuses", _LIST, 'a list of run statuses, e.g. ["FAILED", "KILLED"]'),
        "older_than_days": Key("older_than_days", _NUMBER, "a number of days"),
        "users": Key("users", _LIST, "a list of user names"),
        "tags": Key("tags", (dict,), "a table of tag = value"),
        "where": Key("where", _STRING, "a SQL condition on the runs columns (string)"),
        "keep_newest": Key("keep_newest", _INT, "a non-negative integer"),
        "record_file": Key("record_file", _STRING, "a JSON-lines file (string)"),
    },
    job={
        "lock_timeout_minutes": Key("lock_timeout_minutes", _NUMBER, "a number of minutes"),
    },
)

_TUPLES = ("experiments", "metrics", "lower_is_better", "higher_is_better", "cleanup_experiments", "statuses", "users")
_LIMITS = tuple(f.name for f in dataclasses.fields(QuotaLimits))
#: The cleanup conditions (at least one is needed to select anything).
CLEANUP_CONDITIONS = ("cleanup_experiments", "statuses", "older_than_days", "users", "tags", "where", "keep_newest")


@dataclass(frozen=True)
class JobConfig:
    """What the analytics job, the report and the cleanup read, compute and write.

    Example::

        >>> JobConfig(params_per_run=3).limits().params_per_run
        3
    """

    tracking_uri: str | None = None
    experiments: tuple[str, ...] | None = None
    target_path: str | None = None
    target_schema: str | None = None
    source: str | None = None  # None: "store" when a tracking URI is given, else "target"
    metrics: tuple[str, ...] | None = None
    lower_is_better: tuple[str, ...] | None = None
    higher_is_better: tuple[str, ...] | None = None
    period: str | None = None
    leaderboard_size: int = 10
    stuck_hours: float = 24.0
    exact_history: bool = False
    params_per_run: int | None = None
    tags_per_run: int | None = None
    metric_steps_per_run: int | None = None
    runs_per_experiment: int | None = None
    tags_per_experiment: int | None = None
    margin: float = 0.8
    out: str | None = None
    title: str = "MLflow runs report"
    cleanup_experiments: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    older_than_days: float | None = None
    users: tuple[str, ...] | None = None
    tags: dict | None = None
    where: str | None = None
    keep_newest: int | None = None
    record_file: str | None = None
    lock_timeout_minutes: float = 360.0
    master: str | None = None
    spark_conf: dict = field(default_factory=dict)
    spark_log_level: str = "ERROR"
    log_level: str = "INFO"
    progress: bool | None = None

    @classmethod
    def from_toml(cls, path: str) -> JobConfig:
        """Load a config file (see ``conf/analytics.toml``); errors name the key and the file.

        Example::

            >>> JobConfig.from_toml("conf/analytics.toml").target_path
            'mlflow-delta'
        """
        return cls().override(**load_config(path, LAYOUT))

    def override(self, **changes) -> JobConfig:
        """A copy with ``changes`` applied; ``None`` values leave a setting as it is.

        Example::

            >>> JobConfig(target_path="/a").override(target_path=None, period="week").target_path
            '/a'
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items() if v is not None})

    # -- derived -----------------------------------------------------------------------------

    @property
    def has_target(self) -> bool:
        return bool(self.target_path or self.target_schema)

    def read_from(self) -> str:
        """``"store"`` or ``"target"``: the ``source`` setting, else the store when a tracking
        URI is given and the target otherwise.

        Example::

            >>> JobConfig(tracking_uri="sqlite:///m.db", target_path="/d").read_from()
            'store'
        """
        if self.source:
            return self.source
        return "store" if self.tracking_uri or not self.has_target else "target"

    def mode_of(self, metric: str) -> str:
        """``"min"`` or ``"max"``: from ``lower_is_better`` / ``higher_is_better``, else guessed
        from the name (:func:`pyspark_experiments.report.default_mode`).

        Example::

            >>> JobConfig(higher_is_better=("val_loss",)).mode_of("val_loss"), JobConfig().mode_of("val_loss")
            ('max', 'min')
        """
        from ..report.build import default_mode

        if metric in (self.lower_is_better or ()):
            return "min"
        if metric in (self.higher_is_better or ()):
            return "max"
        return default_mode(metric)

    def modes(self) -> dict[str, str]:
        """``{metric: mode}`` for every metric named in the settings.

        Example::

            >>> JobConfig(metrics=("acc",), lower_is_better=("loss",)).modes()
            {'acc': 'max', 'loss': 'min'}
        """
        names = list(dict.fromkeys((self.metrics or ()) + (self.lower_is_better or ()) + (self.higher_is_better or ())))
        return {name: self.mode_of(name) for name in names}

    def limits(self) -> QuotaLimits:
        """The quota limits: Databricks' unless set.

        Example::

            >>> JobConfig().limits().runs_per_experiment
            500000
        """
        return QuotaLimits(**{name: getattr(self, name) for name in _LIMITS if getattr(self, name) is not None})

    def cleanup_criteria(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~pyspark_experiments.analytics.cleanup_candidates`.

        Example::

            >>> JobConfig().override(statuses="failed", older_than_days=30).cleanup_criteria()
            {'statuses': ['FAILED'], 'older_than': 30.0}
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
        return criteria

    def validate(self, *, need_target: bool = False) -> JobConfig:
        """Check the settings together; returns ``self``.

        Example::

            >>> JobConfig(target_path="/d").validate(need_target=True).margin
            0.8
        """
        if self.target_path and self.target_schema:
            raise ConfigurationError("set at most one target: --target-path ([target] path) or --target-schema ([target] schema)")
        if need_target and not self.has_target:
            raise ConfigurationError(
                "no target: set a folder of Delta tables (--target-path, [target] path) or a catalog schema "
                "(--target-schema, [target] schema)"
            )
        if self.read_from() == "target" and not self.has_target:
            raise ConfigurationError("source 'target' needs --target-path or --target-schema")
        if self.period is not None and self.period not in PERIODS + ("auto",):
            raise ConfigurationError(f"period {self.period!r}: expected day, week, month or auto")
        if not 0 < self.margin <= 1:
            raise ConfigurationError(f"[quota] margin = {self.margin!r}: expected a fraction between 0 and 1, e.g. 0.8")
        if self.leaderboard_size < 1:
            raise ConfigurationError(f"[analytics] leaderboard_size = {self.leaderboard_size}: expected a positive integer")
        if self.stuck_hours <= 0 or self.lock_timeout_minutes <= 0:
            raise ConfigurationError("stuck_hours and lock_timeout_minutes must be positive")
        if self.keep_newest is not None and self.keep_newest < 0:
            raise ConfigurationError(f"[cleanup] keep_newest = {self.keep_newest}: expected a non-negative integer")
        both = set(self.lower_is_better or ()) & set(self.higher_is_better or ())
        if both:
            raise ConfigurationError(f"metric(s) {', '.join(sorted(both))} listed as both lower and higher is better")
        self.limits()  # raises for a limit that is not a positive integer
        return self


def _coerce(name: str, value: Any):
    try:
        if name in _TUPLES:
            if isinstance(value, str):
                value = value.split(",")
            items = tuple(str(v).strip() for v in value if str(v).strip())
            if name == "statuses":
                items = tuple(item.upper() for item in items)
            return items or None
        if name == "progress":
            if isinstance(value, str):
                value = {"auto": None, "true": True, "false": False}[value.strip().lower()]
            return value
        if name == "exact_history":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if name in ("stuck_hours", "lock_timeout_minutes", "margin", "older_than_days"):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if name in _LIMITS + ("leaderboard_size", "keep_newest"):
            if isinstance(value, bool) or float(value) != int(value):
                raise TypeError
            return int(value)
        if name in ("spark_conf", "tags"):
            if not isinstance(value, dict):
                raise TypeError
            return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}
        if name in ("source", "period"):
            return str(value).strip().lower()
        if name in ("log_level", "spark_log_level"):
            return str(value).strip().upper()
        return str(value)
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(f"setting {name!r}: invalid value {value!r}") from None
