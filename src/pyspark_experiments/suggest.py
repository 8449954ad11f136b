"""The one way the package suggests what a user may have meant: the closest of the names that
exist (an experiment, a metric), never a list of all of them.

Example::

    >>> closest_names("val_los", ["val_loss", "train_loss", "rmse"])
    ['val_loss']
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_names(name: str, candidates: Iterable[str], limit: int = 5) -> list[str]:
    """At most ``limit`` of ``candidates`` closest to ``name``: first those equal to it up to
    case and a trailing ``/``, then the closest by :func:`difflib.get_close_matches`, then
    those that hold it (case ignored throughout).

    Example::

        >>> closest_names("/users/me/train", ["/Users/me/train/", "tune", "/Users/me/test/"])
        ['/Users/me/train/', '/Users/me/test/']
        >>> closest_names("r2", ["test_r2", "training_r2_score", "rmse"])
        ['test_r2', 'training_r2_score']
        >>> closest_names("zzz", ["tune"])
        []
    """
    candidates = list(dict.fromkeys(candidates))
    folded = name.casefold().rstrip("/")
    same = [c for c in candidates if c != name and c.casefold().rstrip("/") == folded]
    by_folded: dict[str, list[str]] = {}
    for candidate in candidates:
        by_folded.setdefault(candidate.casefold(), []).append(candidate)
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=limit, cutoff=0.6)
    holding = [text for text in by_folded if folded and folded in text] if len(folded) >= 2 else []
    found = dict.fromkeys(same + [c for text in close + holding for c in by_folded[text] if c != name])
    return list(found)[:limit]


__all__ = ["closest_names"]
