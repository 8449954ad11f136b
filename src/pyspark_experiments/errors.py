"""The package's errors: one base class, one subclass per kind of failure.

Every error the package raises on purpose is an :class:`ExperimentsError`. Each subclass also
subclasses the builtin exception it replaces, so ``except ValueError`` and the like written
against earlier versions keep working. Jobs map them to exit codes in one place
(:func:`pyspark_experiments.jobs.exit_code_for`).

Example::

    >>> from pyspark_experiments.errors import ConfigurationError, ExperimentsError
    >>> error = ConfigurationError("option 'table': unknown value 'foo'")
    >>> isinstance(error, ExperimentsError), isinstance(error, ValueError)
    (True, True)
"""

from __future__ import annotations


class ExperimentsError(Exception):
    """Base class of every error pyspark-experiments raises on purpose.

    Example::

        >>> try:
        ...     raise StoreNotFoundError("no SQLite database at '/tmp/x.db'")
        ... except ExperimentsError as error:
        ...     print(error)
        no SQLite database at '/tmp/x.db'
    """


class ConfigurationError(ExperimentsError, ValueError):
    """An option, setting, flag or config file that is not valid; the message names it and what
    was expected.

    Example::

        >>> raise ConfigurationError("option 'viewType': unknown value 'x'")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: option 'viewType': unknown value 'x'
    """


class UnsupportedStoreError(ConfigurationError):
    """A tracking URI of a kind this version cannot read (the message says what it can)."""


class StoreNotFoundError(ExperimentsError, FileNotFoundError):
    """The tracking URI points where no tracking store is (no file, no folder, no MLflow schema)."""


class ExperimentNotFoundError(ExperimentsError, LookupError):
    """An experiment id or name that the store does not hold (or names two experiments)."""


class StoreConnectionError(ExperimentsError, ConnectionError):
    """The store could not be reached or opened (server down, locked database, no permission)."""


class MissingDependencyError(ExperimentsError, ImportError):
    """An optional dependency a store or feature needs is not installed; names the extra."""


class MalformedRecordError(ExperimentsError, ValueError):
    """A record in the store that does not parse; the message names the file, line or run."""


class TargetError(ExperimentsError, RuntimeError):
    """A Delta target that cannot be used as asked (not a Delta table, wrong layout)."""


class TargetLockedError(TargetError):
    """Another job (sync, cleanup, analytics) holds the target's lock; retry later."""


class JobError(ExperimentsError, RuntimeError):
    """A scheduled job that cannot go on; the message says why and what to do."""


__all__ = [
    "ConfigurationError",
    "ExperimentNotFoundError",
    "ExperimentsError",
    "JobError",
    "MalformedRecordError",
    "MissingDependencyError",
    "StoreConnectionError",
    "StoreNotFoundError",
    "TargetError",
    "TargetLockedError",
    "UnsupportedStoreError",
]
