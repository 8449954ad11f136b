"""Credentials hidden from everything a job prints: :func:`redact`'s patterns, plus the values a
job registered with :func:`add_secret` (a password its configuration gave it).

Example::

    >>> add_secret(password_in("postgresql://me:Tiger-77@db/mlflow"))
    >>> hide("login failed for Tiger-77")
    'login failed for ***'
"""

from __future__ import annotations

import re
from urllib.parse import quote

from ..uri import redact

# Extra strings to hide in everything a job prints (say, a password the job was given that
# redact's patterns would not recognise in a driver's message).
_SECRETS: set[str] = set()


def add_secret(value: str | None) -> None:
    """Hide ``value`` (and its percent-encoded form) in everything jobs print from now on.

    Example::

        >>> add_secret("Hunter/Two22")
        >>> hide("password Hunter/Two22 rejected")
        'password *** rejected'
    """
    if value and len(value) >= 3:
        _SECRETS.update({value, quote(value, safe="")})


def hide(text: object) -> str:
    """``text`` with credentials hidden: :func:`redact`, then every :func:`add_secret` value.

    Example::

        >>> hide("postgresql://bob:pw@db/mlflow")
        'postgresql://bob:***@db/mlflow'
    """
    text = redact(str(text))
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def short_error(error: BaseException) -> str:
    """An error's message for a log line: no JVM stack trace, at most 12 lines, hidden secrets.

    Example::

        >>> short_error(RuntimeError("boom\\n\\tat org.apache.spark.X"))
        'boom'
    """
    text = str(error).strip() or type(error).__name__
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("at ")]
    return hide("\n".join(lines[:12]))


def password_in(location: str) -> str | None:
    """The password in a URI or libpq keyword string, to hide it even where
    :func:`~pyspark_experiments.uri.redact`'s patterns would miss it (say, in a driver's message).

    Example::

        >>> password_in("postgresql://me:s3cret@db/mlflow"), password_in("host=db password='a b'")
        ('s3cret', 'a b')
    """
    match = re.search(r"(?i)\bpassword\s*=\s*('[^']*'|\S+)", location)
    if match:
        return match.group(1).strip("'")
    _, sep, rest = location.partition("://")
    if sep:
        userinfo = rest.rpartition("@")[0]
        if userinfo:
            return userinfo.partition(":")[2] or None
    return None
