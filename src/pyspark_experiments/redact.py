"""The one credential registry: every secret the process learns is remembered here, and every
text the package shows (errors, log lines, summaries, JSON output, ``explain()``, ``repr``)
goes through :func:`hide`.

A secret is hidden in every form it may be shown in: as given, percent-encoded (also as an
HTML form encodes it, spaces as ``+``) and -decoded, escaped as ``repr`` and JSON escape it
(quotes, backslashes, non-ASCII characters), base64, and, for a user and password, the base64
of ``user:password`` that a Basic ``Authorization`` header carries. Besides the remembered
values, :func:`hide` recognises credentials by their shape: a URL's userinfo password,
``password=`` / ``token=`` / ``secret=`` arguments, and the value of an ``Authorization`` header.

Secrets shorter than :data:`MIN_SECRET` characters are not searched for in free text (they
would mangle every message); their shapes above are still hidden.

Example::

    >>> remember_uri("postgresql://bob:Hunter/Two22@db/mlflow")
    >>> hide("FATAL: password authentication failed (Hunter%2FTwo22)")
    'FATAL: password authentication failed (***)'
    >>> hide_uri("postgresql://bob:Hunter/Two22@db/mlflow")
    'postgresql://bob:***@db/mlflow'
"""

from __future__ import annotations

import base64
import json
import re
import threading
from urllib.parse import quote, quote_plus, unquote

#: Secrets shorter than this are not searched for in free text.
MIN_SECRET = 3
MASK = "***"
#: Object stores whose URIs never carry a user name that is not a credential (an access key id).
OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "gcs")

_lock = threading.Lock()
# Every form of every secret remembered by this process, longest first when applied.
_known: set[str] = set()
_ordered: list[str] = []

# In free text a URL's userinfo runs to the last "@" of its token: a raw "/", ":" or "@" in a
# password is still hidden. One to three slashes: "postgresql:/u:pw@h" is a typo users make.
_CREDENTIAL_IN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*:/{1,3})(?P<userinfo>[^\s'\"<>]*)@")
_CREDENTIAL_ARGUMENT = re.compile(
    r"(?i)((?:password|passwd|pwd|token|secret|sslpassword|client_secret|access_token)\s*=\s*)(?:'[^']*'|[^&\s]*)"
)
# An Authorization header's value, whatever its scheme, and a Basic / Bearer credential in free
# text (one with a digit in it: "Basic authentication" is prose, "Basic Ym9iOjE=" is not).
_AUTHORIZATION = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:basic|bearer|token)?\s*)[^\s\"',}]+"
    r"|(?-i:\b(Basic|Bearer)(\s+))(?=[A-Za-z0-9+/=._~\-]*\d)[A-Za-z0-9+/=._~\-]{8,}"
)


def _forms(secret: str) -> set[str]:
    decoded = unquote(secret)
    encoded = {quote(decoded, safe=""), quote(decoded), quote(secret, safe=""), quote_plus(decoded, safe=""),
               quote_plus(decoded)}
    # as repr() and JSON show it inside quotes: quotes and backslashes escaped, in JSON also non-ASCII
    escaped = {shown for text in (secret, decoded) for shown in (
        repr(text)[1:-1], json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1])}
    return {secret, decoded, *encoded, *escaped, *_base64_forms(secret)}


def _base64_forms(text: str) -> set[str]:
    raw = text.encode("utf-8", "surrogatepass")
    forms = {base64.standard_b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    return forms | {form.rstrip("=") for form in forms}


def remember(*secrets: str | None) -> None:
    """Hide each of ``secrets`` (a password, a token) in every later :func:`hide`, in every
    form: as given, percent-encoded and percent-decoded, escaped by ``repr`` and JSON, base64
    (standard and URL-safe).

    Example::

        >>> remember("s3cr t!")
        >>> hide("rejected 's3cr t!' (s3cr%20t%21, s3cr+t%21)")
        "rejected '***' (***, ***)"
        >>> remember("pässwörd")
        >>> hide(json.dumps({"password": "pässwörd"}))
        '{"password": "***"}'
    """
    forms = set()
    for secret in secrets:
        if secret:
            forms |= {form for form in _forms(str(secret)) if len(form) >= MIN_SECRET}
    _add(forms)


def remember_login(user: str | None, password: str | None) -> None:
    """Hide ``password`` and the base64 of ``user:password`` (a Basic ``Authorization``
    header's value, as a server may echo it back).

    Example::

        >>> remember_login("bob", "Tiger-77")
        >>> hide("credential Ym9iOlRpZ2VyLTc3 not accepted")
        'credential *** not accepted'
    """
    if not password:
        return
    remember(password)
    _add(_base64_forms(f"{user or ''}:{password}"))


def remember_uri(location: str | None) -> None:
    """Remember the credentials a tracking or artifact URI (or a libpq keyword string)
    carries: its userinfo password, with the base64 login, and its ``password=`` /
    ``token=`` arguments.

    Example::

        >>> remember_uri("host=db user=me password='a b c'")
        >>> hide("failed for a b c")
        'failed for ***'
    """
    if not location:
        return
    _, user, password, _ = split_userinfo(str(location))
    remember_login(unquote(user) if user else user, password)
    remember(*(match.group(0).split("=", 1)[1].strip().strip("'") for match in _CREDENTIAL_ARGUMENT.finditer(str(location))))


def _add(forms: set[str]) -> None:
    global _ordered
    new = forms - _known
    if new:
        with _lock:
            _known.update(new)
            _ordered = sorted(_known, key=len, reverse=True)


def hide(text: object) -> str:
    """``text`` with every credential hidden: every remembered secret in every form, URL
    userinfo passwords, ``password=``-style arguments and ``Authorization`` header values.

    Example::

        >>> hide("postgresql://u:pw@h/db?sslmode=require&password=x")
        'postgresql://u:***@h/db?sslmode=require&password=***'
        >>> hide("Authorization: Bearer dapi0123456789abcdef")
        'Authorization: Bearer ***'
    """
    text = str(text)
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)

    def userinfo(match: re.Match) -> str:
        user, colon, _ = match.group("userinfo").partition(":")
        return f"{match.group('scheme')}{user}:{MASK}@" if colon else match.group(0)

    text = _CREDENTIAL_IN_URL.sub(userinfo, text)
    text = _CREDENTIAL_ARGUMENT.sub(rf"\1{MASK}", text)
    return _AUTHORIZATION.sub(lambda m: f"{m.group(1)}{MASK}" if m.group(1) is not None else f"{m.group(2)}{m.group(3)}{MASK}", text)


def hide_uri(uri: str) -> str:
    """A URI as it may be shown: the password of its userinfo (however it is spelled) and
    every known secret replaced by ``***``; on object stores (``s3://``, ``gs://``) the whole
    userinfo, since an access key id is a credential too. An ``abfs://container@account``
    has no password and stays as it is.

    Example::

        >>> hide_uri("mysql+pymysql://me:p@ss:w/rd@db:3306/mlflow")
        'mysql+pymysql://me:***@db:3306/mlflow'
        >>> hide_uri("s3://AKIAXXXX:SECRET@bucket/mlruns/1")
        's3://***@bucket/mlruns/1'
        >>> hide_uri("abfss://container@account.dfs.core.windows.net/mlruns")
        'abfss://container@account.dfs.core.windows.net/mlruns'
    """
    prefix, user, password, rest = split_userinfo(str(uri))
    if user is not None and prefix.split(":", 1)[0].lower() in OBJECT_STORE_SCHEMES:
        uri = f"{prefix}{MASK}@{rest}"
    elif password is not None:
        uri = f"{prefix}{user}:{MASK}@{rest}"
    return hide(uri)


def password_of(location: str) -> str | None:
    """The password in a URI or a libpq keyword string, or None.

    Example::

        >>> password_of("postgresql://me:s3cret@db/mlflow"), password_of("host=db password='a b'")
        ('s3cret', 'a b')
    """
    match = re.search(r"(?i)\bpassword\s*=\s*('[^']*'|\S+)", location)
    if match:
        return match.group(1).strip("'")
    return split_userinfo(location)[2] or None


def split_userinfo(uri: str) -> tuple[str, str | None, str | None, str]:
    """Split ``scheme://user:password@rest`` into (prefix, user, password, rest), as MLflow's
    URLs are meant: the userinfo ends at the last ``@`` before the query, so a raw ``/``, ``:``,
    ``@`` or space in a password stays in the password. Where what follows that ``@`` is no
    host (``:/x``), or no ``@`` comes before the query, a raw ``?`` was part of the password: the
    userinfo ends at the first later ``@`` that a host follows. ``(uri, None, None, "")``
    without one.

    Example::

        >>> split_userinfo("postgresql://bob:Hunter/Two22@db:5432/mlflow")
        ('postgresql://', 'bob', 'Hunter/Two22', 'db:5432/mlflow')
        >>> split_userinfo("s3://KEY:a@:b?c@bucket/x")
        ('s3://', 'KEY', 'a@:b?c', 'bucket/x')
        >>> split_userinfo("sqlite:///m.db")
        ('sqlite:///m.db', None, None, '')
    """
    match = re.match(r"^(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*:/{0,3})(?P<rest>.*)$", uri, re.DOTALL)
    if not match:
        return uri, None, None, ""
    rest = match.group("rest")
    at = _userinfo_end(rest)
    if at is None:
        return uri, None, None, ""
    userinfo, after = rest[:at], rest[at + 1:]
    user, colon, password = userinfo.partition(":")
    return match.group("prefix"), user, password if colon else None, after


# What follows a userinfo: a host (a name, an IPv4 or a bracketed IPv6 address; libpq's URLs
# may list several, comma separated), each with an optional port, then the path, query or end.
_HOST = r"(?:\[[^\]/?#@]*\]|[A-Za-z0-9\-._~%]*)(?::\d+)?"
_AUTHORITY = re.compile(rf"{_HOST}(?:,{_HOST})*(?=$|[/?#])")


def _userinfo_end(rest: str) -> int | None:
    """Where the userinfo of ``rest`` (a URL after its scheme) ends: see :func:`split_userinfo`."""
    at = rest.split("?", 1)[0].rfind("@")
    if at >= 0 and _AUTHORITY.match(rest, at + 1):
        return at
    for later in range(at + 1, len(rest)):
        if rest[later] == "@" and _AUTHORITY.match(rest, later + 1):
            user, colon, _ = rest[:later].partition(":")
            if colon and not any(c in user for c in "/?#"):
                return later
    return at if at >= 0 else None
