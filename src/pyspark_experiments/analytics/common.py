"""Helpers shared by the analytics functions and the report built on them: argument checks,
UTC periods, ``now``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..errors import ConfigurationError

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
