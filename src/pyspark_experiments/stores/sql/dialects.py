"""What differs between the SQL databases MLflow stores its runs in (SQLite, PostgreSQL,
MySQL/MariaDB), declared once for the SQL store.

Example::

    >>> DIALECTS["postgresql"].placeholder, IN_LIST
    ('%s', 900)
"""

from __future__ import annotations

from dataclasses import dataclass

# Bound on bound parameters per statement (SQLite allows 32,766).
IN_LIST = 900
# Values per IN list given as one JSON array (Dialect.json_list).
JSON_LIST = 20_000


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases MLflow stores its runs in.

    - ``placeholder``: the DB-API driver's bind-parameter mark (the SQL is written with ``?``;
      ADBC connections translate it themselves).
    - ``rowid``: rows carry an id in commit order (SQLite's ``rowid``), so a metric position
      is exact; elsewhere a position is a point count.
    - ``key_hint``: how to write a metric's ``key`` (table alias ``m``) in a key filter (SQLite:
      ``+m.key`` keeps the planner on the run's index; MySQL: compare bytes, since its default
      collations ignore case and trailing spaces).
    - ``exact_key_match``: ``=`` / ``IN`` on a plain ``key`` compare exactly (not on MySQL).
    - ``group_key``: how to group by ``key`` so that keys differing in case or trailing spaces
      stay apart (MySQL: ``BINARY key``).
    - ``arrow_points``: metric points may come from a second, Arrow-native driver without bind
      parameters (MySQL: connectorx, see :mod:`.mysql`); elsewhere the connection's own driver
      is Arrow-native (ADBC).
    - ``missing_table``: text of the driver's error for a table that does not exist.
    - ``json_list``: a subquery expanding one parameter holding a JSON array of strings, used
      for ``IN`` lists through ADBC (whose Python layer converts bound values one by one).

    Example::

        >>> DIALECTS["mysql"].placeholder, DIALECTS["mysql"].rowid, DIALECTS["sqlite"].key_hint
        ('%s', False, '+m.key')
    """

    placeholder: str
    rowid: bool = False
    key_hint: str = "m.key"
    exact_key_match: bool = True
    group_key: str = "key"
    arrow_points: bool = False
    missing_table: tuple[str, ...] = ("does not exist",)
    json_list: str | None = None


DIALECTS = {
    "sqlite": Dialect("?", rowid=True, key_hint="+m.key", missing_table=("no such table",),
                      json_list="SELECT value FROM json_each(?)"),
    "postgresql": Dialect("%s", json_list="SELECT jsonb_array_elements_text(CAST(? AS jsonb))"),
    "mysql": Dialect("%s", key_hint="CAST(m.key AS BINARY)", exact_key_match=False, group_key="BINARY key",
                     arrow_points=True, missing_table=("doesn't exist",)),
}


def numbered_placeholders(sql: str) -> str:
    """``sql`` with each ``?`` turned into PostgreSQL's numbered ``$1``, ``$2``, ...

    Example::

        >>> numbered_placeholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)")
        'SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)'
    """
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
