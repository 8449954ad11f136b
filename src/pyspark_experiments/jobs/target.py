"""A Delta target: a folder of Delta tables or a catalog schema, through SQL only.

Every writer of synced tables (the sync, the analytics job and the cleanup command) goes
through :class:`DeltaTarget`. It uses only SparkSession SQL and DataFrame APIs, so it works the
same from a classic session and from a Spark Connect session (Delta's Python ``DeltaTable`` API
does not work over Connect).

The rule for a target is explicit: :meth:`DeltaTarget.at_path` (``<folder>/<table>``) or
:meth:`DeltaTarget.in_schema` (``<schema>.<table>``, or ``<catalog>.<schema>.<table>``). For a
single table given as one string, :func:`is_table_path` is the rule.

Example::

    >>> target = DeltaTarget.at_path(spark, "/data/mlflow")                 # doctest: +SKIP
    >>> target.sql_name("runs")                                              # doctest: +SKIP
    'delta.`/data/mlflow/runs`'
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid

from ..errors import ConfigurationError, TargetError, TargetLockedError
from ..redact import hide

# Error markers of a Delta commit that lost a race against another writer.
_CONFLICT_MARKERS = (
    "DELTA_CONCURRENT", "ConcurrentAppend", "ConcurrentDelete", "ConcurrentTransaction",
    "ConcurrentWrite", "ProtocolChanged", "MetadataChanged", "DELTA_PROTOCOL_CHANGED",
    "DELTA_METADATA_CHANGED", "FileAlreadyExistsException",
)
# Two writers creating one table at once: the loser finds a folder that is not a table yet.
_CREATE_RACE_MARKERS = (
    "DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION", "TABLE_OR_VIEW_ALREADY_EXISTS",
    "DELTA_TABLE_ALREADY_EXISTS", "already exists",
)
_NOT_A_TABLE_MARKERS = (
    "DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_NOT_FOUND", "TABLE_OR_VIEW_NOT_FOUND", "PATH_NOT_FOUND",
    "is not a Delta table", "DELTA_PATH_DOES_NOT_EXIST", "doesn't exist", "does not exist",
)
# Characters that make a Hadoop path a glob pattern.
_GLOB_MARKS = ("*", "?", "[", "]", "{", "}", "\\")
# The columns of DeltaTarget.history's rows (a commit read from the log gets the same keys).
_HISTORY_COLUMNS = ("version", "operation", "operationParameters", "operationMetrics", "readVersion", "userMetadata")
# Table properties (and features) of tables whose commits a coordinator or catalog owns.
_COMMIT_OWNER_MARKS = ("coordinatedcommits", "catalogowned", "catalogmanaged")

log = logging.getLogger(__name__)


def is_table_path(reference: str) -> bool:
    """Whether a table reference string is a path (``True``) or a catalog table name (``False``).

    THE rule, used wherever one string names a Delta table: a reference that holds a ``/``, a
    ``\\`` or a ``:`` (a scheme such as ``s3a://`` or ``file:``, a Windows drive) is a path;
    anything else (``table``, ``schema.table``, ``catalog.schema.table``, backquoted parts) is a
    catalog name. ``delta.`/p``` is a path. A relative folder must therefore be written with a
    slash (``./events``).

    Example::

        >>> is_table_path("/data/events"), is_table_path("s3a://b/t"), is_table_path("./events")
        (True, True, True)
        >>> is_table_path("main.ml.events"), is_table_path("events")
        (False, False)
    """
    if not isinstance(reference, str) or not reference.strip():
        raise ConfigurationError(f"table must be a Delta table path or name, got {reference!r}")
    text = reference.strip()
    if text.lower().startswith("delta.`") and text.endswith("`"):
        return True
    return any(mark in text for mark in ("/", "\\", ":"))


def table_path(reference: str) -> str:
    """The path of a path reference (``delta.`/p``` unwrapped).

    Example::

        >>> table_path("delta.`/data/events`")
        '/data/events'
    """
    text = reference.strip()
    if text.lower().startswith("delta.`") and text.endswith("`"):
        return text[len("delta.`"):-1]
    return text


def table_sql_name(reference: str) -> str:
    """How SQL names the table of a reference (by :func:`is_table_path`): ``delta.`<path>``` or
    the backquoted catalog name.

    Example::

        >>> table_sql_name("/data/events"), table_sql_name("main.ml.events")
        ('delta.`/data/events`', '`main`.`ml`.`events`')
    """
    if is_table_path(reference):
        return "delta.`{}`".format(table_path(reference).replace("`", "``"))
    return quote_name(reference.strip())


def latest_table_version(spark, reference: str) -> int:
    """The latest version of the Delta table a reference names (``DESCRIBE HISTORY``: works from
    classic and Spark Connect sessions). A reference that names no readable Delta table is a
    :class:`~pyspark_experiments.errors.ConfigurationError` naming it.

    Example::

        >>> latest_table_version(spark, "/data/events")                       # doctest: +SKIP
        3
    """
    try:
        return int(spark.sql(f"DESCRIBE HISTORY {table_sql_name(reference)} LIMIT 1").collect()[0]["version"])
    except Exception as error:  # AnalysisException, classic or Connect
        raise ConfigurationError(f"table {reference!r} is not a readable Delta table: {error}") from error


def sql_string(value: str) -> str:
    """A SQL string literal.

    Example::

        >>> sql_string("it's")
        "'it\\\\'s'"
    """
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_name(name: str) -> str:
    """A dotted catalog name with each part backquoted.

    Example::

        >>> quote_name("main.ml")
        '`main`.`ml`'
    """
    return ".".join("`{}`".format(part.strip("`").replace("`", "``")) for part in name.split("."))


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a Delta commit conflict (another writer committed first).

    Example::

        >>> is_conflict(RuntimeError("[DELTA_CONCURRENT_APPEND] ..."))
        True
    """
    text = f"{type(error).__name__}: {error}"
    return any(marker in text for marker in _CONFLICT_MARKERS)


def _ddl(fields) -> str:
    return ", ".join(
        "`{}` {}{}".format(f.name.replace("`", "``"), f.dataType.simpleString(), "" if f.nullable else " NOT NULL")
        for f in fields
    )


class DeltaTarget:
    """A folder of Delta tables (``<path>/<table>``) or a catalog schema (``<schema>.<table>``).

    Build it with :meth:`at_path` or :meth:`in_schema` (or the constructor with exactly one of
    ``path`` and ``schema``). A local path is made absolute; ``display`` never shows credentials.

    Example::

        >>> target = DeltaTarget.at_path(spark, "/data/mlflow")               # doctest: +SKIP
        >>> target.write(df, "runs", "append")                               # doctest: +SKIP
        >>> target.read("runs").count()                                      # doctest: +SKIP
    """

    def __init__(self, spark, path: str | None = None, schema: str | None = None) -> None:
        if bool(path) == bool(schema):
            raise ConfigurationError("a Delta target is a folder (path) or a catalog schema (schema): give exactly one")
        self.spark = spark
        self.schema = schema.strip() if schema else None
        if path is not None and "://" not in path and not path.startswith("file:"):
            path = os.path.abspath(os.path.expanduser(path))
        self.path = path.rstrip("/") if path else None
        self._locations: dict[str, str] = {}
        self._plain_logs: dict[str, bool] = {}  # table -> whether its log holds every commit

    @classmethod
    def at_path(cls, spark, path: str) -> DeltaTarget:
        """A folder of Delta tables, any Hadoop path (``/data``, ``s3a://bucket/mlflow``).

        Example::

            >>> DeltaTarget.at_path(None, "s3a://bucket/mlflow").name("runs")
            's3a://bucket/mlflow/runs'
        """
        return cls(spark, path=path)

    @classmethod
    def in_schema(cls, spark, schema: str) -> DeltaTarget:
        """A catalog schema (``schema`` or ``catalog.schema``); tables are created in it.

        Example::

            >>> DeltaTarget.in_schema(None, "main.ml").sql_name("runs")
            '`main`.`ml`.`runs`'
        """
        return cls(spark, schema=schema)

    def __repr__(self) -> str:
        return f"DeltaTarget({self.display!r})"

    @property
    def display(self) -> str:
        """The target for logs and summaries, credentials hidden.

        Example::

            >>> DeltaTarget.at_path(None, "s3a://key:secret@bucket/m").display
            's3a://key:***@bucket/m (folder of Delta tables)'
        """
        if self.path:
            return f"{hide(self.path)} (folder of Delta tables)"
        return f"{self.schema} (catalog schema)"

    # -- names -------------------------------------------------------------------------------

    def name(self, table: str) -> str:
        """The table's path (folder targets) or its quoted catalog name.

        Example::

            >>> DeltaTarget.at_path(None, "/d").name("runs")
            '/d/runs'
        """
        if self.path:
            return f"{self.path}/{table}"
        return quote_name(f"{self.schema}.{table}")

    def sql_name(self, table: str) -> str:
        """The table as SQL names it (``delta.`<path>``` or ``schema.table``).

        Example::

            >>> DeltaTarget.at_path(None, "/d").sql_name("runs")
            'delta.`/d/runs`'
        """
        if self.path:
            return "delta.`{}`".format(self.name(table).replace("`", "``"))
        return self.name(table)

    # -- tables ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the catalog schema if it does not exist (folders need nothing)."""
        if self.schema:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {quote_name(self.schema)}")

    def exists(self, table: str) -> bool:
        """Whether ``table`` is a Delta table of the target (its properties: metadata only;
        measured after a commit: 0.06 s, where ``DESCRIBE HISTORY`` took 0.4 s and ``DESCRIBE
        DETAIL``, which lists the table's files, 1.5 s).

        Example::

            >>> target.exists("runs")                                        # doctest: +SKIP
            True
        """
        if self.schema:
            return bool(self.spark.catalog.tableExists(self.name(table).replace("`", "")))
        try:
            self.spark.sql(f"SHOW TBLPROPERTIES {self.sql_name(table)}").collect()
            return True
        except Exception as error:  # AnalysisException, classic or Connect
            if any(marker in str(error) for marker in _NOT_A_TABLE_MARKERS):
                return False
            raise

    def create(self, table: str, schema, attempts: int = 8) -> bool:
        """Create ``table`` with ``schema`` unless it exists; ``True`` if this call created it.

        Two writers creating one table at once end with one table: the loser's commit conflict
        (or Delta's ``DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION``, when it sees the winner's
        folder before its first commit) is retried until the table is there. If it never
        appears: :class:`TargetLockedError` after a conflict (another job is creating it; retry
        later), :class:`TargetError` for a folder that holds something else than a Delta table.

        Example::

            >>> target.create("runs", tables.spark_schema("runs"))            # doctest: +SKIP
            True
        """
        statement = f"CREATE TABLE IF NOT EXISTS {self.sql_name(table)} ({_ddl(schema.fields)}) USING delta"
        last: BaseException | None = None
        for attempt in range(attempts):
            if attempt and self._exists_now(table):
                return False
            try:
                self.spark.sql(statement).collect()
                return True
            except Exception as error:
                if not (is_conflict(error) or any(marker in str(error) for marker in _CREATE_RACE_MARKERS)):
                    raise
                last = error
                time.sleep(0.25 * (attempt + 1))
        if self._exists_now(table):
            return False
        first_line = hide(str(last).strip().splitlines()[0]) if last else ""
        if last is not None and is_conflict(last):
            raise TargetLockedError(
                f"another job is creating the table {table} of {self.display} at the same moment; "
                f"try again when it has finished ({first_line})"
            )
        raise TargetError(f"cannot create the Delta table {table} of {self.display}: {first_line}")

    def ensure(self, table: str, schema) -> bool:
        """Create ``table`` if it is not a table yet (:meth:`create`); ``True`` if created.

        Example::

            >>> target.ensure("_sync_state", state_schema())                   # doctest: +SKIP
            False
        """
        if self._exists_now(table):
            return False
        return self.create(table, schema)

    def add_missing_columns(self, table: str, schema) -> list[str]:
        """Add to ``table`` the columns of ``schema`` that it lacks, at its end and in
        ``schema``'s order (``ALTER TABLE ... ADD COLUMNS``: one metadata-only commit, no data
        file rewritten; existing rows read null there). Returns the names added, ``[]`` when
        none was missing (then nothing is committed). A column added so must be nullable.

        Example::

            >>> target.add_missing_columns("runs", tables.spark_schema("runs"))     # doctest: +SKIP
            ['parent_run_id']
        """
        present = {name.lower() for name in self.read(table).columns}
        missing = [f for f in schema.fields if f.name.lower() not in present]
        if not missing:
            return []
        if any(not f.nullable for f in missing):
            raise TargetError(
                f"the table {table} of {self.display} lacks the non-nullable column(s) "
                f"{', '.join(f.name for f in missing if not f.nullable)}: it was not written by this package"
            )
        self.spark.sql(f"ALTER TABLE {self.sql_name(table)} ADD COLUMNS ({_ddl(missing)})").collect()
        return [f.name for f in missing]

    def _exists_now(self, table: str) -> bool:
        # While another job creates the table, reading it may fail in other ways than "not a
        # table" (a log folder without its first commit): then it is not a table yet.
        try:
            return self.exists(table)
        except Exception:
            return False

    def read(self, table: str, version: int | None = None):
        """The table as a DataFrame, at its latest or a given version.

        Example::

            >>> target.read("runs", version=3).count()                         # doctest: +SKIP
        """
        if version is not None:
            return self.spark.sql(f"SELECT * FROM {self.sql_name(table)} VERSION AS OF {int(version)}")
        if self.path:
            return self.spark.read.format("delta").load(self.name(table))
        return self.spark.read.table(self.name(table))

    def write(self, df, table: str, mode: str, user_metadata: str | None = None, *,
              overwrite_schema: bool = False) -> None:
        """Write ``df`` to ``table`` in one commit: ``append`` or ``overwrite``;
        ``user_metadata`` is kept with the commit (``userMetadata`` in :meth:`history`);
        ``overwrite_schema`` lets an overwrite replace the table's columns too (a table that is
        recomputed whole, such as an analytics table).

        Example::

            >>> target.write(df, "runs", "append")                             # doctest: +SKIP
            >>> target.write(df, "analytics_total_runs", "overwrite", overwrite_schema=True)   # doctest: +SKIP
        """
        if mode not in ("append", "overwrite"):
            raise TargetError(f"write mode {mode!r}: expected append or overwrite")
        writer = df.write.format("delta").mode(mode)
        if overwrite_schema:
            writer = writer.option("overwriteSchema", "true")
        if user_metadata is not None:
            writer = writer.option("userMetadata", user_metadata)
        if self.path:
            writer.save(self.name(table))
        else:
            writer.saveAsTable(self.name(table).replace("`", ""))

    def merge(self, table: str, source, on: str, *, update_when: str | None = None, update: bool = True,
              delete_when: str | None = None) -> dict[str, int]:
        """``MERGE INTO table t USING source s ON <on>``: update matched rows (where
        ``update_when`` holds), insert the others, and delete target rows with no source row
        where ``delete_when`` holds. Returns Delta's counts (``num_inserted_rows``, ...).

        Example::

            >>> target.merge("tags", df, "t.run_id <=> s.run_id AND t.key <=> s.key")   # doctest: +SKIP
            {'num_affected_rows': 3, 'num_updated_rows': 1, 'num_deleted_rows': 0, 'num_inserted_rows': 2}
        """
        view = f"_pyspark_experiments_merge_{uuid.uuid4().hex}"
        source.createOrReplaceTempView(view)
        try:
            clauses = []
            if update:
                clauses.append(f"WHEN MATCHED{f' AND ({update_when})' if update_when else ''} THEN UPDATE SET *")
            clauses.append("WHEN NOT MATCHED THEN INSERT *")
            if delete_when:
                clauses.append(f"WHEN NOT MATCHED BY SOURCE AND ({delete_when}) THEN DELETE")
            rows = self.spark.sql(
                f"MERGE INTO {self.sql_name(table)} t USING {view} s ON {on} " + " ".join(clauses)
            ).collect()
        finally:
            self.spark.catalog.dropTempView(view)
        return {k: int(v or 0) for k, v in (rows[0].asDict() if rows else {}).items()}

    def update(self, table: str, assignments: str, condition: str) -> int:
        """``UPDATE table SET <assignments> WHERE <condition>``; returns the rows updated.

        Example::

            >>> target.update("runs", "status = 'KILLED'", "status = 'RUNNING'")   # doctest: +SKIP
            3
        """
        rows = self.spark.sql(f"UPDATE {self.sql_name(table)} SET {assignments} WHERE {condition}").collect()
        return int((rows[0].asDict().get("num_affected_rows") if rows else 0) or 0)

    def delete(self, table: str, condition: str) -> None:
        """``DELETE FROM table WHERE condition``.

        Example::

            >>> target.delete("runs", "run_id IN ('a')")                       # doctest: +SKIP
        """
        self.spark.sql(f"DELETE FROM {self.sql_name(table)} WHERE {condition}").collect()

    def optimize(self, table: str) -> None:
        """Compact the table's small files (``OPTIMIZE``)."""
        self.spark.sql(f"OPTIMIZE {self.sql_name(table)}").collect()

    # -- metadata: no Spark job --------------------------------------------------------------

    def properties(self, table: str) -> dict[str, str]:
        """The table's properties (``SHOW TBLPROPERTIES``: metadata only).

        Example::

            >>> target.properties("_sync_lock")                                  # doctest: +SKIP
            {'delta.minReaderVersion': '1', ...}
        """
        return {row["key"]: row["value"] for row in self.spark.sql(f"SHOW TBLPROPERTIES {self.sql_name(table)}").collect()}

    def set_property(self, table: str, key: str, value: str) -> None:
        """Set one table property (a metadata-only commit)."""
        self.spark.sql(f"ALTER TABLE {self.sql_name(table)} SET TBLPROPERTIES ({sql_string(key)} = {sql_string(value)})")

    def unset_property(self, table: str, key: str) -> None:
        """Remove one table property if present (a metadata-only commit)."""
        self.spark.sql(f"ALTER TABLE {self.sql_name(table)} UNSET TBLPROPERTIES IF EXISTS ({sql_string(key)})")

    def history(self, table: str, limit: int | None = None) -> list:
        """The table's latest commits, newest first (``DESCRIBE HISTORY``): rows with
        ``version``, ``operation``, ``operationParameters``, ``operationMetrics``, ``readVersion``,
        ``userMetadata``.

        Example::

            >>> target.history("runs", 1)[0]["version"]                          # doctest: +SKIP
            7
        """
        limit_sql = f" LIMIT {int(limit)}" if limit else ""
        return self.spark.sql(f"DESCRIBE HISTORY {self.sql_name(table)}{limit_sql}").select(*_HISTORY_COLUMNS).collect()

    def commits(self, table: str, versions) -> dict[int, dict] | None:
        """The ``commitInfo`` (``operation``, ``operationMetrics``, ``readVersion``,
        ``userMetadata``, ...) of each of ``versions`` that the table's log holds as a file, by
        version (``{}`` for a commit without one): the ones not committed yet are left out.
        None where the log cannot be read from here, or holds none of them (a table whose
        commits are kept elsewhere, as catalog-managed ones may be, too).

        Where the versions are known, this costs a third of the JVM CPU of :meth:`history`
        (measured alternately in one session: 0.35 to 0.38 s against 0.93 to 1.14 s; Delta's
        ``DESCRIBE HISTORY`` derives its rows' encoder through Scala reflection at every call).

        Example::

            >>> target.commits("runs", [7, 8])                                   # doctest: +SKIP
            {7: {'operation': 'WRITE', 'operationMetrics': {'numOutputRows': '200', ...}, ...}}
        """
        try:
            folder = self._log_folder(table)
            if folder is None:
                return None
            # One pattern matching the versions' files: those missing are not listed. Given
            # twice, since Spark logs a stack trace for a single path that does not exist.
            pattern = "{}/{{{}}}.json".format(folder, ",".join(f"{int(v):020d}" for v in versions))
            rows = (self.spark.read.text([pattern, pattern], wholetext=True)
                    .select("value", "_metadata.file_name").collect())
        except Exception as error:  # none of them (PATH_NOT_FOUND), no access: the caller falls back
            log.debug("commits %s of %s not read from the log: %s", list(versions), table, hide(str(error)))
            return None
        found: dict[int, dict] = {}
        for text, file_name in rows:
            commit = found.setdefault(int(file_name.split(".")[0]), {})
            for line in text.splitlines():
                action = json.loads(line) if line.strip() else {}
                if "commitInfo" in action:
                    commit.update(action["commitInfo"])
        return found

    def is_latest_version(self, table: str, version: int | None) -> bool:
        """Whether ``version`` is the table's latest: its log holds that commit and none after
        it (:meth:`commits`: a third of the CPU of :meth:`latest_version`). False where a
        commit follows, or where the log cannot tell: a catalog's table, or one whose commits a
        commit coordinator or catalog owns (they may keep a commit before it reaches the log).

        Example::

            >>> target.is_latest_version("_sync_state", 12)                       # doctest: +SKIP
            True
        """
        if version is None or not self._log_holds_every_commit(table):
            return False
        return set(self.commits(table, [version, version + 1]) or {}) == {version}

    def _log_holds_every_commit(self, table: str) -> bool:
        """Whether every commit of ``table`` is a file of its log as soon as it is made: a table
        at a path, unless a commit coordinator or a catalog owns its commits (they keep them
        in ``_staged_commits`` until they are copied to the log)."""
        if not self.path:
            return False
        if table not in self._plain_logs:
            try:
                keys = " ".join(self.properties(table)).lower()
            except Exception:  # not a table (yet): nothing to say
                return False
            self._plain_logs[table] = not any(mark in keys for mark in _COMMIT_OWNER_MARKS)
        return self._plain_logs[table]

    def _log_folder(self, table: str) -> str | None:
        """The folder of ``table``'s log, where Spark reads it as a path: None where the table's
        folder holds glob characters (Spark would read a pattern)."""
        location = self._location(table)
        return None if any(mark in location for mark in _GLOB_MARKS) else f"{location}/_delta_log"

    def _location(self, table: str) -> str:
        """The folder of ``table`` (a catalog table's, from ``DESCRIBE DETAIL``: metadata only)."""
        if self.path:
            return self.name(table)
        if table not in self._locations:
            self._locations[table] = self.spark.sql(f"DESCRIBE DETAIL {self.sql_name(table)}").collect()[0]["location"]
        return self._locations[table]

    def latest_write(self, table: str) -> tuple[int, object]:
        """The table's latest version, and its latest commit that wrote data (a :meth:`history`
        row): an ``OPTIMIZE``, such as Delta's auto compaction, may follow a write.

        Example::

            >>> version, commit = target.latest_write("runs")                    # doctest: +SKIP
            >>> commit["operation"], commit["operationMetrics"]["numOutputRows"]  # doctest: +SKIP
            ('WRITE', '200')
        """
        commits = self._latest_commits_in_log(table) or self.history(table, 3)
        return int(commits[0]["version"]), next((c for c in commits if c["operation"] != "OPTIMIZE"), commits[0])

    def _latest_commits_in_log(self, table: str) -> list[dict] | None:
        """The table's last three commits, newest first, as :meth:`history` gives them, from the
        table's log where it holds every commit: its files listed (no Spark job), the commits
        read (:meth:`commits`); a third of the CPU of the table's history. None where the log
        cannot tell."""
        if not self._log_holds_every_commit(table):
            return None
        try:
            folder = self._log_folder(table)
            if folder is None:
                return None
            files = self.spark.read.format("binaryFile").load("{}/{}.json".format(folder, "[0-9]" * 20)).inputFiles()
        except Exception as error:  # no commit file (PATH_NOT_FOUND), no access
            log.debug("the log of %s not listed: %s", table, hide(str(error)))
            return None
        if not files:
            return None
        latest = max(int(file.rstrip("/").rsplit("/", 1)[-1][:20]) for file in files)
        versions = [v for v in (latest, latest - 1, latest - 2) if v >= 0]
        found = self.commits(table, versions) or {}
        if any(v not in found for v in versions):  # cleaned up after a checkpoint: ask Delta
            return None
        return [{**dict.fromkeys(_HISTORY_COLUMNS), **found[v], "version": v} for v in versions]

    def latest_version(self, table: str) -> int:
        """The table's latest version.

        Example::

            >>> target.latest_version("runs")                                    # doctest: +SKIP
            7
        """
        return int(self.history(table, 1)[0]["version"])
