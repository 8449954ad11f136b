"""The error a job reports: the package's own error that Spark wrapped, found again.

An error raised in the data source's planning or reads reaches the driver wrapped by Spark: an
``AnalysisException`` (``[PYTHON_DATA_SOURCE_ERROR] ... SQLSTATE: 38000``) or a
``PythonException``, whose text holds the Python traceback and JVM stack lines, with our message
last. :func:`innermost_error` finds the last ``pyspark_experiments.errors.<Class>: message`` of
that text and rebuilds the error of that class, so that a job prints our message (the option,
file, run or URL at fault) and exits with the code of its class.

Example::

    >>> wrapped = RuntimeError(
    ...     "[PYTHON_DATA_SOURCE_ERROR] Failed to generate Python data source read partitions: "
    ...     "Traceback (most recent call last):\\n  File \\"x.py\\", line 1, in plan\\n"
    ...     "pyspark_experiments.errors.StoreNotFoundError: no SQLite database at '/tmp/m.db'\\n"
    ...     " SQLSTATE: 38000")
    >>> error = innermost_error(wrapped)
    >>> type(error).__name__, str(error)
    ('StoreNotFoundError', "no SQLite database at '/tmp/m.db'")
"""

from __future__ import annotations

import re

from .. import errors
from ..errors import ExperimentsError
from ..session import worker_python_error

# The last line of a Python traceback that ended in one of our errors.
_OUR_ERROR = re.compile(r"^pyspark_experiments\.errors\.(?P<name>[A-Za-z]+): ?(?P<message>.*)$", re.MULTILINE)
# What follows our message in Spark's wrapping: the error's SQLSTATE, the JVM's stack.
_AFTER_MESSAGE = re.compile(r"^(\s*SQLSTATE: \w+\s*$|JVM stacktrace:|\s*at [\w$.<>]+\(|(org|java|scala|py4j)\.\w)")
_INLINE_SQLSTATE = re.compile(r"\s*SQLSTATE: \w+\s*$")


def wrapped_error(text: str) -> ExperimentsError | None:
    """The package's error at the end of a Python traceback in ``text`` (Spark's wrapping of an
    error raised in the data source), rebuilt with its class and message; ``None`` when
    ``text`` holds none.

    Example::

        >>> wrapped_error("Traceback ...\\npyspark_experiments.errors.ConfigurationError: option 'x'\\n")
        ConfigurationError("option 'x'")
        >>> wrapped_error("java.lang.OutOfMemoryError") is None
        True
    """
    found = None
    for found in _OUR_ERROR.finditer(text):
        pass
    if found is None:
        return None
    kind = getattr(errors, found.group("name"), None)
    if not (isinstance(kind, type) and issubclass(kind, ExperimentsError)):
        return None
    lines = [found.group("message")]
    for line in text[found.end():].splitlines()[1:]:
        if _AFTER_MESSAGE.match(line):
            break
        lines.append(line)
    message = _INLINE_SQLSTATE.sub("", "\n".join(lines).rstrip())
    return kind(message)


def innermost_error(error: BaseException) -> BaseException:
    """The error a job reports for ``error``: the workers' missing module explained
    (:func:`~pyspark_experiments.session.worker_python_error`), else the package's own error
    that Spark wrapped (:func:`wrapped_error`, its ``__cause__`` the wrapper, so a traceback
    still shows Spark's text), else ``error`` itself.

    Example::

        >>> innermost_error(RuntimeError("boom"))
        RuntimeError('boom')
    """
    if isinstance(error, ExperimentsError) or not isinstance(error, Exception):
        return error
    explained = worker_python_error(error)
    if explained is not None:
        return explained
    ours = wrapped_error(str(error))
    if ours is None:
        return error
    ours.__cause__ = error
    if hasattr(error, "skipped_records"):  # PERMISSIVE skips counted before the failure
        ours.skipped_records = error.skipped_records
    return ours
