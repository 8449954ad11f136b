"""Helpers shared by the analytics functions and the report built on them: argument checks (a
metric no run logged among them), UTC periods, ``now``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..errors import ConfigurationError
from ..suggest import closest_names

PERIODS = ("day", "week", "month")
MODES = ("max", "min")
ENDED_STATUSES = ("FINISHED", "FAILED", "KILLED")


def require_columns(df: DataFrame, columns: Iterable[str], argument: str, function: str) -> None:
    """Raise ``ConfigurationError`` unless ``df`` has every one of ``columns``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigurationError(
            f"{function}(): argument {argument!r} lacks the column(s) {', '.join(missing)}; "
            f"expected the '{argument}' table of the experiments source or its synced Delta table "
            f"(columns found: {', '.join(df.columns) or 'none'})"
        )


def metric_keys_of(table: DataFrame) -> Column:
    """The metric keys of a ``runs`` table (the keys of its ``metrics`` map, one row each) or
    of a ``metrics`` table (its ``key`` column)."""
    return F.col("key") if "key" in table.columns else F.explode(F.map_keys("metrics"))


def require_metrics(table: DataFrame, names: Iterable[str] | str | None, where: str) -> None:
    """Raise ``ConfigurationError`` for a metric in ``names`` that no row of ``table`` (a
    ``runs`` or ``metrics`` table) logged, naming ``where`` it was asked for and the closest
    keys that were logged. A table with no metric at all passes: empty results are its answer.
    One Spark query when every metric is there, a second one to suggest names when not.

    Example::

        >>> require_metrics(runs, ["rmse"], "metric_trend(): metric")          # doctest: +SKIP
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: metric_trend(): metric 'rmse': no run logged it; did you mean ...
    """
    wanted = [names] if isinstance(names, str) else list(dict.fromkeys(names or ()))
    if not wanted:
        return
    keys = table.select(metric_keys_of(table).alias("key"))
    found = {row.key for row in keys.where(F.col("key").isin(wanted)).distinct().collect()}
    missing = [name for name in wanted if name not in found]
    if not missing:
        return
    logged = sorted(row.key for row in keys.distinct().collect())
    if not logged:
        return
    count = f"{len(logged):,} metric key" + ("" if len(logged) == 1 else "s")
    name = missing[0]
    closest = closest_names(name, logged)
    hint = (f"did you mean {', '.join(map(repr, closest))}? ({count} are logged)" if closest
            else f"none of the {count} logged is close to it (the first: {', '.join(map(repr, logged[:5]))})")
    others = f" (nor {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else ""
    raise ConfigurationError(f"{where} {name!r}{others}: no run logged it; {hint}")


def check_choice(value: str, choices: tuple[str, ...], argument: str, function: str) -> str:
    """``value`` lower-cased if it is one of ``choices``, else ``ConfigurationError``."""
    canonical = str(value).strip().lower()
    if canonical not in choices:
        raise ConfigurationError(f"{function}(): {argument}={value!r} is not valid; expected one of {', '.join(choices)}")
    return canonical


def check_positive_int(value, argument: str, function: str, *, allow_zero: bool = False) -> int:
    """``value`` as an int if it is a positive (or, with ``allow_zero``, non-negative) integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        expected = "a non-negative integer" if allow_zero else "a positive integer"
        raise ConfigurationError(f"{function}(): {argument}={value!r} is not valid; expected {expected}")
    return value


def utc_period(ts: Column, period: str) -> Column:
    """The UTC calendar day, ISO week (Monday) or month containing ``ts``, as a date.

    Computed from epoch seconds, so the result does not depend on the session time zone.
    """
    day = F.date_from_unix_date(F.floor(F.unix_seconds(ts) / F.lit(86400)).cast("int"))
    if period == "day":
        return day
    return F.trunc(day, "week" if period == "week" else "month")


def to_micros(moment: dt.datetime) -> int:
    """Epoch microseconds of ``moment`` (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def now_micros(now: dt.datetime | None, function: str) -> Column:
    """``now`` (or the query's current time when ``None``) as epoch microseconds."""
    if now is None:
        return F.unix_micros(F.current_timestamp())
    if not isinstance(now, dt.datetime):
        raise ConfigurationError(f"{function}(): now={now!r} is not valid; expected a datetime or None")
    return F.lit(to_micros(now))


def to_timedelta(value, argument: str, function: str) -> dt.timedelta:
    """``value`` (a ``timedelta`` or a number of days) as a non-negative ``timedelta``."""
    if isinstance(value, dt.timedelta):
        delta = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        delta = dt.timedelta(days=value)
    else:
        raise ConfigurationError(f"{function}(): {argument}={value!r} is not valid; expected a timedelta or a number of days")
    if delta < dt.timedelta(0):
        raise ConfigurationError(f"{function}(): {argument}={value!r} is negative; expected a duration of zero or more")
    return delta


def seconds_between(start: Column, end: Column) -> Column:
    """``end - start`` in seconds (double)."""
    return (F.unix_micros(end) - F.unix_micros(start)) / F.lit(1e6)


def usable(value: Column) -> Column:
    """True where ``value`` is a number: neither null nor NaN."""
    return value.isNotNull() & ~F.isnan(value)
