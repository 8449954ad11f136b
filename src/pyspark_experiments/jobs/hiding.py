"""An error as a job prints it: no JVM stack trace, a bounded length, every credential hidden
through the one registry (:mod:`pyspark_experiments.redact`).

Example::

    >>> short_error(RuntimeError("login failed for postgresql://me:Tiger-77@db/mlflow"))
    'login failed for postgresql://me:***@db/mlflow'
"""

from __future__ import annotations

from ..redact import hide


def short_error(error: BaseException) -> str:
    """An error's message for a log line: no JVM stack trace, at most 12 lines, hidden secrets.

    Example::

        >>> short_error(RuntimeError("boom\\n\\tat org.apache.spark.X"))
        'boom'
    """
    text = str(error).strip() or type(error).__name__
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("at ")]
    return hide("\n".join(lines[:12]))
