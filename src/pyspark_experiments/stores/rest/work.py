"""What a REST partition carries to an executor: the connection and the items to fetch.

Example::

    >>> from pyspark_experiments.stores.rest.settings import Connection
    >>> len(RestWork(Connection("http://127.0.0.1:5000"), ("1", "2")))
    2
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .settings import Connection


@dataclass(frozen=True)
class RestWork:
    """A REST partition's work: the connection (with its credential) and what to fetch.

    ``items`` holds experiment JSON objects (``experiments``), :class:`~.store.RunQuery`\\ s (per-run
    tables) or ``(experiment_id, run_id, key)`` series (``metrics``).
    """

    connection: Connection = field(repr=False)
    items: tuple = ()

    def __len__(self) -> int:
        return len(self.items)
