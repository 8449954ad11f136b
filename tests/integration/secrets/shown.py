"""Random secrets, every form they could be shown in, and the texts a user sees, for the
property tests of this folder.

A secret is a distinctive prefix and a random tail of any printable character: ASCII, unicode
letters, marks, digits, punctuation and symbols, spaces, and the characters that URLs, libpq
strings, shells, JSON and ``repr`` treat specially (``@ : / % + # ? & = ' " \\``). The prefix
keeps ordinary output (words, ids, base64 of other values) from holding a form of it by
chance: every form of a secret starts from the prefix or its encoding, and is at least
:data:`MIN_LENGTH` characters long (longer than :data:`redact.MIN_SECRET`, so the registry
searches for it in free text). Besides every encoded form, a piece of half a secret shows too
much of it (:func:`fragments`), unless texts shown for other secrets hold that piece too.

Example::

    >>> forms("bob", "Qx7-a b")["quote"]
    'Qx7-a%20b'
    >>> leaks("rejected Qx7-a%20b", "bob", "Qx7-a b")
    ['quote', 'quote /']
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st

from pyspark_experiments import redact

PREFIX = "Qx7-"
#: Characters with a meaning in URLs, libpq strings, shells, JSON or ``repr``: always in play.
SPECIAL = "@:/%+#?&=' \"\\;,[]{}<>!$*~^|`"
#: Shortest secret: the prefix and five more characters.
MIN_LENGTH = len(PREFIX) + 5
assert MIN_LENGTH > redact.MIN_SECRET

_CHARACTER = st.one_of(
    st.sampled_from(SPECIAL),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.characters(categories=("L", "M", "N", "P", "S")),
)


def secrets(min_size: int = MIN_LENGTH, max_size: int = 28):
    """Secrets of ``min_size`` characters or more: :data:`PREFIX` and a tail of any printable
    character, three of them different at least (a piece of "00000" could be anywhere), that
    ends in no space (options and variables are read stripped: a trailing space would change
    the password, not hide it)."""
    tail = st.text(alphabet=_CHARACTER, min_size=max(min_size, MIN_LENGTH) - len(PREFIX), max_size=max_size)
    return tail.filter(lambda t: t == t.rstrip() and len(set(t)) >= 3).map(lambda t: PREFIX + t)


#: What every test tries besides the random ones: one of each special character, and unicode.
EVERY_SPECIAL = PREFIX + SPECIAL + "ü€ß漢字😀é"


_HOST = r"(?:\[[^\]/?#@]*\]|[A-Za-z0-9\-._~%]*)(?::\d+)?"
_HOST_THEN_END = re.compile(rf"@{_HOST}(?:,{_HOST})*(?=[/?#])")


def ambiguous_raw(secret: str) -> bool:
    """Whether ``secret`` written raw (not percent-encoded) into a URL's userinfo reads as well as
    a shorter password and a host: an ``@`` before a ``?``, a host-like text between (``a@b?c``).
    No parser can tell which is meant; percent-encoded, as MLflow documents, it is clear.

    Example::

        >>> ambiguous_raw("Qx7-a@b?c"), ambiguous_raw("Qx7-a@:b?c"), ambiguous_raw("Qx7-a@b/c")
        (True, False, False)
    """
    head = secret.split("?", 1)[0]
    return "?" in secret and _HOST_THEN_END.search(head + "?") is not None


def _base64(raw: str) -> dict[str, str]:
    data = raw.encode("utf-8")
    standard, urlsafe = base64.standard_b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()
    return {"base64": standard, "base64 unpadded": standard.rstrip("="),
            "base64url": urlsafe, "base64url unpadded": urlsafe.rstrip("=")}


def forms(users: str | tuple[str, ...] | None, secret: str) -> dict[str, str]:
    """Every form of ``secret`` a text could show, by name: as it is; percent-encoded (``quote``
    with and without ``/`` kept, ``quote_plus``); escaped as ``repr`` and JSON (ASCII or not)
    escape it; base64 (standard and URL-safe, with and without padding) of the secret and, for
    each of ``users``, of ``user:secret`` (a Basic ``Authorization`` header's value).

    Example::

        >>> forms("bob", "Qx7-a b")["base64 of bob:secret"]
        'Ym9iOlF4Ny1hIGI='
    """
    shown = {
        "plain": secret,
        "quote": quote(secret, safe=""),
        "quote /": quote(secret),
        "quote_plus": quote_plus(secret, safe=""),
        "quote_plus /": quote_plus(secret),
        "repr": repr(secret)[1:-1],
        "json": json.dumps(secret)[1:-1],
        "json unicode": json.dumps(secret, ensure_ascii=False)[1:-1],
        **_base64(secret),
    }
    for user in (users,) if isinstance(users, str) else users or ():
        shown.update({f"{name} of {user}:secret": value for name, value in _base64(f"{user}:{secret}").items()})
    return shown


def fragments(secret: str) -> set[str]:
    """The pieces of ``secret`` that show too much of it: each run of half its characters (at
    least six). A secret cut in two by a wrong parse (its tail taken for a host) shows one.

    Example::

        >>> sorted(fragments("Qx7-a?b@c"))
        ['-a?b@c', '7-a?b@', 'Qx7-a?', 'x7-a?b']
    """
    size = max(6, (len(secret) + 1) // 2)
    return {secret[i:i + size] for i in range(len(secret) - size + 1)}


def leaks(text: str, users, secret: str, ordinary: str = "") -> list[str]:
    """The names of the forms of ``secret`` that ``text`` holds; ``fragment`` for a piece of it
    that ``ordinary`` (text shown for other secrets) does not hold."""
    found = sorted(name for name, form in forms(users, secret).items() if form in text)
    if not found and any(piece in text and piece not in ordinary for piece in fragments(secret)):
        found.append("fragment")
    return found


# What earlier checks were shown, with the secret of each: a piece of a secret that also shows
# where another secret was used ("http:/" of "Qx7-http:/") is ordinary text, not the secret.
_EARLIER: list[tuple[str, str]] = []
_EARLIER_KEPT = 12
_EARLIER_CHARACTERS = 400_000


def assert_hidden(texts: dict[str, object], users, secret: str) -> None:
    """No text of ``texts`` (what a user sees, by where it was seen) holds any form of ``secret``
    (``users``: the user names it may be paired with in a Basic header), nor a piece of it that
    texts shown for other secrets do not hold; the failure names each surface, the forms found
    and the first line that holds one."""
    shown = {where: str(text) for where, text in texts.items()}
    ordinary = "\n".join(text for earlier, text in _EARLIER if earlier != secret)
    found = {}
    for where, text in shown.items():
        names = leaks(text, users, secret, ordinary)
        if names:
            lines = [line for line in text.splitlines() if leaks(line, users, secret, ordinary)]
            found[where] = (names, (lines or [text])[0][:400])
    _EARLIER.append((secret, "\n".join(shown.values())[-_EARLIER_CHARACTERS:]))
    del _EARLIER[:-_EARLIER_KEPT]
    assert not found, f"secret {secret!r} shown: {found}"


def error_texts(error: BaseException) -> str:
    """``str`` and ``repr`` of ``error`` and of every exception a traceback of it shows: the one it
    was raised from, else the one it was raised while handling (unless ``raise ... from None``
    suppressed it, as tracebacks, logging and notebooks all honour)."""
    texts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts += [f"{type(error).__name__}: {error}", repr(error)]
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return "\n".join(texts)


@contextlib.contextmanager
def unknown_to_the_registry():
    """A block run as in a new process: the registry of this process knows no secret during it.

    Without this, a secret remembered by one step of a test would hide a leak of a later step
    that forgot to remember it (a user's process may take that later path first). The
    remembered secrets come back afterwards.
    """
    known, ordered = redact._known, redact._ordered
    redact._known, redact._ordered = set(), []
    try:
        yield
    finally:
        redact._known, redact._ordered = known, ordered


#: Our loggers and the HTTP stack's, read at DEBUG.
LOGGERS = ("pyspark_experiments", "urllib3", "requests")


def log_everything(caplog) -> None:
    """``caplog`` at DEBUG for :data:`LOGGERS`, and empty."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.clear()
