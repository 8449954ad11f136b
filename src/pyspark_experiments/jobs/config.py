"""Config files and settings every command shares: the key table (:class:`Key`: the setting a
TOML key fills, the types it accepts, and how any value, from TOML, a flag or a keyword, becomes
the setting), TOML loading (:func:`load_config`), and :class:`CommandConfig`, the base of every
command's config with the shared settings (store, target, Spark, logging).

Unknown sections or keys, wrong types, a missing file, a folder, invalid TOML are
:class:`~pyspark_experiments.errors.ConfigurationError`\\ s naming the key and the file.

Example::

    >>> layout = job_layout(sync={"full": Key("full", (bool,), "true or false", kind="bool")})
    >>> parse_config({"sync": {"full": True}, "logging": {"progress": "always"}}, layout, "f.toml")
    {'full': True, 'progress': 'always'}
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigurationError
from ..redact import hide
from .output import LOG_LEVELS
from .target import DeltaTarget

# ------------------------------------------------------------------------------------------------
# Coercion: how a value (TOML, flag text, keyword argument) becomes a setting
# ------------------------------------------------------------------------------------------------


def as_list(value: Any) -> tuple[str, ...] | None:
    """A list or a comma-separated string as a tuple of stripped strings; ``None`` when empty.

    Example::

        >>> as_list("a, b,"), as_list([7, "x"]), as_list([])
        (('a', 'b'), ('7', 'x'), None)
    """
    if isinstance(value, str):
        value = value.split(",")
    items = tuple(str(v).strip() for v in value if str(v).strip())
    return items or None


def as_bool(value: Any) -> bool:
    """``true`` / ``false`` (a boolean, or the words in any case).

    Example::

        >>> as_bool("True"), as_bool(False)
        (True, False)
    """
    if isinstance(value, str):
        value = {"true": True, "false": False}[value.strip().lower()]
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


#: The words a ``progress`` setting takes: ``None`` shows progress when stderr is a terminal.
PROGRESS_WORDS = {"auto": None, "always": True, "never": False, "true": True, "false": False}


def as_progress(value: Any) -> bool | None:
    """A ``progress`` setting: ``true``, ``false``, or one of :data:`PROGRESS_WORDS`.

    Example::

        >>> as_progress("always"), as_progress("Auto"), as_progress(False)
        (True, None, False)
    """
    if isinstance(value, str):
        return PROGRESS_WORDS[value.strip().lower()]
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


def as_number(value: Any) -> float:
    """A number (not a boolean) as a float.

    Example::

        >>> as_number(30), as_number("0.5")
        (30.0, 0.5)
    """
    if isinstance(value, bool):
        raise TypeError(value)
    return float(value)


def as_integer(value: Any) -> int:
    """A whole number (not a boolean) as an int.

    Example::

        >>> as_integer(5), as_integer(5.0)
        (5, 5)
    """
    if isinstance(value, bool) or float(value) != int(value):
        raise TypeError(value)
    return int(value)


def as_table(value: Any) -> dict[str, str]:
    """A table of settings as ``{str: str}``, booleans spelled ``true`` / ``false``.

    Example::

        >>> as_table({"spark.x": 8, "spark.y": True})
        {'spark.x': '8', 'spark.y': 'true'}
    """
    if not isinstance(value, dict):
        raise TypeError(value)
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}


#: How each kind of :class:`Key` turns a value into its setting.
COERCIONS: dict[str, Callable[[Any], Any]] = {
    "text": str,
    "lower": lambda value: str(value).strip().lower(),
    "upper": lambda value: str(value).strip().upper(),
    "list": as_list,
    "upper_list": lambda value: tuple(item.upper() for item in as_list(value) or ()) or None,
    "bool": as_bool,
    "progress": as_progress,
    "number": as_number,
    "integer": as_integer,
    "table": as_table,
}


@dataclass(frozen=True)
class Key:
    """One key of a config layout: the setting it fills (``field``), the TOML types it accepts,
    what a user should be told is expected, the values allowed (``choices``, strings upper-case;
    ``accepts``, a test of the value, say a range), and how any value becomes the setting
    (``kind``: a name of :data:`COERCIONS`, or a function raising ``ConfigurationError`` itself).

    Example::

        >>> Key("full", (bool,), "true or false").check(True, "f.toml", "sync", "full")
        True
        >>> Key("size", (int,), "a positive integer", accepts=lambda n: n > 0).check(0, "f.toml", "a", "size")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: f.toml: [a] size = 0: expected a positive integer
        >>> Key("margin", (int, float), "a fraction", kind="number").coerce("0.5")
        0.5
    """

    field: str
    types: tuple[type, ...]
    expected: str
    choices: tuple[Any, ...] | None = None
    kind: str | Callable[[Any], Any] = "text"
    accepts: Callable[[Any], bool] | None = None
    #: An empty value (``[]``, ``""``, ``","``) is an error, not "no setting": for a condition
    #: that an empty list would drop, widening what it selects.
    nonempty: bool = False

    def check(self, value: Any, source: str, section: str, key: str) -> Any:
        if self.nonempty and isinstance(value, (list, str)) and as_list(value) is None:
            raise ConfigurationError(f"{source}: [{section}] {key} = {shown(value)} is empty: expected {self.expected} "
                                     f"(leave the key out for no condition)")
        ok = isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)
        if ok and isinstance(value, list):
            ok = all(isinstance(item, (str, int)) and not isinstance(item, bool) for item in value)
        if ok and isinstance(value, dict):
            ok = all(isinstance(v, (str, int, float, bool)) for v in value.values())
        if ok and self.choices is not None:
            ok = (value.upper() if isinstance(value, str) else value) in self.choices
        if ok and self.accepts is not None:
            ok = self.accepts(value)
        if not ok:
            raise ConfigurationError(
                f"{source}: [{section}] {key} = {shown(value)}: expected {self.expected}"
            )
        return value

    def coerce(self, value: Any) -> Any:
        convert = COERCIONS[self.kind] if isinstance(self.kind, str) else self.kind
        try:
            return convert(value)
        except ConfigurationError:
            raise
        except (KeyError, TypeError, ValueError):
            raise ConfigurationError(f"setting {self.field!r}: invalid value {shown(value)}") from None


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, at most 60 characters, secrets hidden.

    Example::

        >>> shown("mysql://u:pw@h/db"), len(shown("x" * 100))
        ("'mysql://u:***@h/db'", 60)
    """
    text = repr(value)
    return hide(text if len(text) <= 60 else text[:57] + "...")


#: A config layout: ``{section: {key: Key}}``.
Layout = Mapping[str, Mapping[str, Key]]


def read_toml(path: str) -> dict:
    """Read a TOML file; a missing file, a folder, an unreadable file or invalid TOML is a
    :class:`ConfigurationError` naming the file.

    Example::

        >>> read_toml("conf")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: config file 'conf' is a folder, not a TOML file
    """
    name = hide(path)
    if os.path.isdir(path):
        raise ConfigurationError(f"config file {name!r} is a folder, not a TOML file")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"config file {name!r} not found") from None
    except IsADirectoryError:
        raise ConfigurationError(f"config file {name!r} is a folder, not a TOML file") from None
    except PermissionError:
        raise ConfigurationError(f"config file {name!r} cannot be read (permission denied)") from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(f"config file {name!r}: not UTF-8 text ({error.reason})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"config file {name!r}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigurationError(f"config file {name!r} cannot be read: {error.strerror or error}") from None


def parse_config(data: Mapping, layout: Layout, source: str = "config") -> dict[str, Any]:
    """Check ``data`` (a parsed TOML document) against ``layout``; returns ``{field: value}``.

    Example::

        >>> layout = {"target": {"path": Key("target_path", (str,), "a folder")}}
        >>> parse_config({"target": {"path": "/d"}}, layout, "f.toml")
        {'target_path': '/d'}
        >>> parse_config({"target": {"folder": "/d"}}, layout, "f.toml")
        Traceback (most recent call last):
        ...
        pyspark_experiments.errors.ConfigurationError: f.toml: unknown key 'folder' in [target]; expected one of path
    """
    values: dict[str, Any] = {}
    sections = ", ".join(f"[{s}]" for s in layout)
    for section, content in data.items():
        if section not in layout:
            if not isinstance(content, dict):
                raise ConfigurationError(f"{source}: key {section!r} outside a section; expected sections {sections}")
            raise ConfigurationError(f"{source}: unknown section [{section}]; expected {sections}")
        if not isinstance(content, dict):
            raise ConfigurationError(f"{source}: [{section}] must be a table of keys, got {shown(content)}")
        for key, value in content.items():
            if key not in layout[section]:
                raise ConfigurationError(
                    f"{source}: unknown key {key!r} in [{section}]; expected one of {', '.join(layout[section])}"
                )
            spec = layout[section][key]
            values[spec.field] = spec.check(value, source, section, key)
    return values


def load_config(path: str, layout: Layout) -> dict[str, Any]:
    """Read the TOML file at ``path`` and check it against ``layout`` (:func:`parse_config`).

    Example::

        >>> load_config("conf/sync.toml", SHARED_LAYOUT | {"store": {}, "sync": {}})  # doctest: +SKIP
    """
    return parse_config(read_toml(path), layout, source=hide(path))


_STRING = (str,)

#: The TOML sections every command shares; :func:`job_layout` adds a command's own keys to them.
SHARED_LAYOUT: dict[str, dict[str, Key]] = {
    "store": {
        "tracking_uri": Key("tracking_uri", _STRING, "a tracking URI (string)"),
        "experiments": Key("experiments", (list, str), "a list of experiment ids or names", kind="list"),
    },
    "target": {
        "path": Key("target_path", _STRING, "a folder of Delta tables (string)"),
        "schema": Key("target_schema", _STRING, "a catalog schema (string)"),
    },
    "spark": {
        "master": Key("master", _STRING, "a Spark master URL (string)"),
        "conf": Key("spark_conf", (dict,), "a table of Spark settings", kind="table"),
        "log_level": Key("spark_log_level", _STRING, "a Spark log level (string)", kind="upper"),
    },
    "logging": {
        "level": Key("log_level", _STRING, "DEBUG, INFO, WARNING or ERROR", LOG_LEVELS, kind="upper"),
        "progress": Key("progress", (bool, str), '"auto", "always", "never", true or false',
                        ("AUTO", "ALWAYS", "NEVER", True, False), kind="progress"),
    },
}


def job_layout(**sections: Mapping[str, Key]) -> dict[str, dict[str, Key]]:
    """A command's TOML layout: :data:`SHARED_LAYOUT` with the command's own keys and sections
    added (keys given for a shared section join it).

    Example::

        >>> layout = job_layout(store={"read_mode": Key("read_mode", (str,), "a mode")})
        >>> sorted(layout["store"]), list(layout)
        (['experiments', 'read_mode', 'tracking_uri'], ['store', 'target', 'spark', 'logging'])
    """
    layout = {name: dict(keys) for name, keys in SHARED_LAYOUT.items()}
    for name, keys in sections.items():
        layout.setdefault(name, {}).update(keys)
    return layout


@dataclass(frozen=True)
class CommandConfig:
    """The settings every command shares (store, target, Spark, logging) and the rules that
    fill them: a command's config subclasses it, adds its own fields and sets :attr:`LAYOUT`
    (its TOML layout, :func:`job_layout`). Every value, from TOML, a flag or a keyword, is
    coerced by its :class:`Key`, so a setting means the same in every command.

    A layout may hold keys of a file other commands share: they are checked, and a config
    keeps only the fields it has.

    Example::

        >>> cfg = CommandConfig().override(progress="always", experiments="1, 2")
        >>> cfg.progress, cfg.experiments
        (True, ('1', '2'))
    """

    tracking_uri: str | None = None
    experiments: tuple[str, ...] | None = None
    target_path: str | None = None
    target_schema: str | None = None
    master: str | None = None
    spark_conf: dict = field(default_factory=dict)
    spark_log_level: str = "ERROR"
    log_level: str = "INFO"
    progress: bool | None = None  # None: when stderr is a terminal

    #: The command's TOML layout.
    LAYOUT: ClassVar[Layout] = SHARED_LAYOUT

    @classmethod
    def from_toml(cls, path: str):
        """Load a config file; errors name the key and the file.

        Example::

            >>> CommandConfig.from_toml("conf/sync.toml")                     # doctest: +SKIP
        """
        return cls().with_file_values(load_config(path, cls.LAYOUT))

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "config"):
        """A config from a parsed TOML document (sections ``store``, ``target``, ...).

        Example::

            >>> CommandConfig.from_dict({"target": {"path": "/tmp/delta"}}).target_path
            '/tmp/delta'
        """
        return cls().with_file_values(parse_config(data, cls.LAYOUT, source))

    def with_file_values(self, values: Mapping[str, Any]):
        """A copy with a file's ``{field: value}`` applied, keeping the fields this config has
        (a shared file also holds other commands' keys).

        Example::

            >>> CommandConfig().with_file_values({"target_path": "/d", "title": "x"}).target_path
            '/d'
        """
        fields = {f.name for f in dataclasses.fields(self)}
        return self.override(**{name: value for name, value in values.items() if name in fields})

    @classmethod
    def keys(cls) -> dict[str, Key]:
        """``{field: Key}`` of :attr:`LAYOUT`.

        Example::

            >>> CommandConfig.keys()["target_path"].expected
            'a folder of Delta tables (string)'
        """
        return {key.field: key for keys in cls.LAYOUT.values() for key in keys.values()}

    def coerce_changes(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``changes`` coerced by their keys (:meth:`Key.coerce`), ``None`` values left out;
        an unknown setting is a :class:`ConfigurationError`.

        Example::

            >>> CommandConfig().coerce_changes({"log_level": "debug", "master": None})
            {'log_level': 'DEBUG'}
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
        keys = self.keys()
        return {name: keys[name].coerce(value) if name in keys else value
                for name, value in changes.items() if value is not None}

    def override(self, **changes):
        """A copy with ``changes`` applied; ``None`` values leave a setting as it is.

        Example::

            >>> CommandConfig(target_path="/a").override(target_path=None, master="local[2]").target_path
            '/a'
        """
        return dataclasses.replace(self, **self.coerce_changes(changes))

    @property
    def has_target(self) -> bool:
        return bool(self.target_path or self.target_schema)

    def target(self, spark) -> DeltaTarget:
        """The Delta target the settings name (a folder or a catalog schema).

        Example::

            >>> CommandConfig(target_path="/d").target(None).display
            '/d (folder of Delta tables)'
        """
        return DeltaTarget(spark, path=self.target_path, schema=self.target_schema)

    def check_shared(self, *, need_target: bool = False) -> None:
        """Check the shared settings: at most one target (exactly one with ``need_target``),
        a known log level.

        Example::

            >>> CommandConfig().check_shared(need_target=True)
            Traceback (most recent call last):
            ...
            pyspark_experiments.errors.ConfigurationError: no target: set exactly one target, ...
        """
        if self.target_path and self.target_schema:
            raise ConfigurationError(
                f"set {'exactly' if need_target else 'at most'} one target, not both: --target-path ([target] path) "
                f"or --target-schema ([target] schema)"
            )
        if need_target and not self.has_target:
            raise ConfigurationError(
                "no target: set exactly one target, a folder of Delta tables (--target-path, [target] path) "
                "or a catalog schema (--target-schema, [target] schema)"
            )
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigurationError(f"log level {self.log_level!r}: expected DEBUG, INFO, WARNING or ERROR")
