"""The file store's small files: ``meta.yaml`` (a fast path for MLflow's flat documents, PyYAML
for the rest, and the checks of its fields), and the one-value-a-file folders of params, tags
and metrics (keys holding ``/`` are nested folders), all read through :func:`read_local_file`.

Example::

    >>> flat_yaml("experiment_id: '1'\\nname: demo\\n")
    {'experiment_id': '1', 'name': 'demo'}
"""

from __future__ import annotations

import functools
import os
import re

from ..problems import Problems

META = "meta.yaml"


#: The bytes :func:`read_local_file` reads before it asks for the file's size.
_FIRST_READ = 1 << 16


def read_local_file(path: str, limit: int | None = None) -> bytes:
    """The bytes of a local file: the first ``limit`` of them, or up to its end however it grew
    meanwhile. Raises what ``open()`` and ``read()`` raise (``FileNotFoundError``,
    ``IsADirectoryError``, ...).

    It goes through ``os.open`` and ``os.read``, with no ``stat`` for a file that fits one read:
    a file store read opens some 26 small files a run, and ``open()``'s buffered file object
    takes three times as long as reading them (27 to 36 µs against 10 to 13 µs a file, measured).

    Example::

        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "loss")
        >>> _ = open(path, "wb").write(b"1 0.5 0\\n")
        >>> read_local_file(path), read_local_file(path, limit=3)
        (b'1 0.5 0\\n', b'1 0')
    """
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        pieces, remaining, size = [], limit, _FIRST_READ
        while remaining is None or remaining > 0:
            piece = os.read(descriptor, size if remaining is None else min(size, remaining))
            if not piece:
                break
            pieces.append(piece)
            if remaining is not None:
                remaining -= len(piece)
            if len(pieces) == 1 and len(piece) == size:  # a larger file: the rest in one read
                size = max(size, os.fstat(descriptor).st_size - len(piece) + 1)
        return b"".join(pieces)
    finally:
        os.close(descriptor)


def _yaml_loader():
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_FLAT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
# A plain scalar starting with one of these, or holding one of the others, is left to PyYAML.
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_OR_COMMENT = re.compile(r": | #|[\[\]{},]")
_STR, _INT, _NULL = (f"tag:yaml.org,2002:{name}" for name in ("str", "int", "null"))


@functools.lru_cache(maxsize=4096)
def _implicit_tag(value: str) -> str:
    """The tag PyYAML's resolver gives the plain scalar ``value`` (keys and common values
    repeat from one meta.yaml to the next)."""
    from yaml.nodes import ScalarNode
    from yaml.resolver import Resolver

    return Resolver().resolve(ScalarNode, value, (True, False))


def flat_yaml(text: str) -> dict | None:
    """``text`` parsed as PyYAML's safe loader parses it, where it is a flat mapping the way
    MLflow writes ``meta.yaml`` (``yaml.safe_dump``): one ``key: value`` a line, each value a
    plain or single-quoted string, a decimal integer, ``null`` or an empty ``[]`` / ``{}``. None
    for anything else (comments, continuation lines, other quoting, tags, non-ASCII text, a key
    twice, ...): the caller then lets PyYAML parse it. Plain values resolve through PyYAML's own
    resolver, so a value is a string, a number or a null exactly where PyYAML says so.

    PyYAML builds a Python object per node through its Python constructors (its C loader only
    parses): a run's meta.yaml was the largest single cost of the file store's runs table. This
    takes less than half as long (53 against 123 µs a document, measured on the L store).

    Example::

        >>> flat_yaml("run_id: 00a1\\nstart_time: 1700000000000\\nend_time: null\\nrun_name: 'it''s'\\ntags: []\\n")
        {'run_id': '00a1', 'start_time': 1700000000000, 'end_time': None, 'run_name': "it's", 'tags': []}
        >>> flat_yaml("run_name: yes\\n") is None, flat_yaml("a: 1 # note\\n") is None
        (True, True)
    """
    if not text.isascii() or not text.endswith("\n"):
        return None
    found: dict = {}
    for line in text[:-1].split("\n"):
        key, separator, value = line.partition(": ")
        if (not separator or not line.isprintable() or not _FLAT_KEY.fullmatch(key) or key in found
                or not value or value[0] == " " or value[-1] == " "
                or _implicit_tag(key) != _STR):  # "yes: 1" is {True: 1}
            return None
        if value[0] == "'":
            inner = value[1:-1]
            if len(value) < 2 or value[-1] != "'" or "'" in inner.replace("''", ""):
                return None
            found[key] = inner.replace("''", "'")
        elif value in ("[]", "{}"):
            found[key] = [] if value == "[]" else {}
        elif value[0] in _INDICATORS or value[-1] == ":" or _FLOW_OR_COMMENT.search(value):
            return None
        else:
            tag = _implicit_tag(value)
            if tag == _STR:
                found[key] = value
            elif tag == _INT and _DECIMAL.fullmatch(value):
                found[key] = int(value)
            elif tag == _NULL and value == "null":
                found[key] = None
            else:
                return None  # booleans, floats, dates, other integer forms: PyYAML's
    return found


def read_yaml(path: str, problems: Problems | None = None, required: bool = False) -> dict | None:
    """Parse one ``meta.yaml``; ``None`` if it is missing (a malformed record if ``required``).
    A file that is not UTF-8, not YAML, not a mapping, or a folder is a malformed record.

    Example::

        >>> read_yaml("/nonexistent/meta.yaml") is None
        True
    """
    import yaml

    try:
        text = read_local_file(path).decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        if required:
            _malformed(problems, f"{path}: missing")
        return None
    except IsADirectoryError:
        _malformed(problems, f"{path}: expected a file, found a folder")
        return None
    except UnicodeDecodeError as error:
        _malformed(problems, f"{path}: not valid UTF-8 (byte {error.start})")
        return None
    except OSError as error:
        _malformed(problems, f"{path}: cannot be read ({error.strerror or error})")
        return None
    content = flat_yaml(text)
    try:
        if content is None:
            content = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else path
        _malformed(problems, f"{where}: not valid YAML ({getattr(error, 'problem', error)})")
        return None
    if not isinstance(content, dict):
        _malformed(problems, f"{path}: expected a YAML mapping of MLflow metadata, got {type(content).__name__}")
        return None
    return content


def _malformed(problems: Problems | None, where: str) -> None:
    (problems or Problems("FAILFAST")).skip(where)


#: Fields of MLflow's meta.yaml files that must be integers (epoch milliseconds) when present.
_TIME_FIELDS = {
    "run": ("start_time", "end_time"),
    "experiment": ("creation_time", "last_update_time"),
}


def valid_meta(meta: dict, path: str, kind: str, problems: Problems | None) -> bool:
    """Whether ``meta``'s fields hold what MLflow writes; a malformed record otherwise."""
    folder = os.path.basename(os.path.dirname(path))
    experiment_folder = folder if kind == "experiment" else os.path.basename(os.path.dirname(os.path.dirname(path)))
    if str(meta.get("experiment_id")) != experiment_folder:
        _malformed(problems, f"{path}: experiment_id {meta.get('experiment_id')!r} does not match its folder {experiment_folder!r}")
        return False
    if kind == "experiment" and not isinstance(meta.get("name"), str):
        _malformed(problems, f"{path}: name {meta.get('name')!r} is not an experiment name")
        return False
    stage = meta.get("lifecycle_stage", "active")
    if stage not in ("active", "deleted"):
        _malformed(problems, f"{path}: lifecycle_stage {stage!r} is neither 'active' nor 'deleted'")
        return False
    for name in _TIME_FIELDS[kind]:
        value = meta.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            _malformed(problems, f"{path}: {name} {value!r} is not epoch milliseconds (an integer)")
            return False
    status = meta.get("status")
    if kind == "run" and status is not None and not isinstance(status, (int, str)):
        _malformed(problems, f"{path}: status {status!r} is not a run status")
        return False
    return True


def key_files(folder: str, problems: Problems | None = None, prefix: str = "") -> list[tuple[str, str]]:
    """(key, path) for every file under ``folder``; keys with ``/`` are nested folders.

    A missing folder holds no keys; a file where the folder belongs is a malformed record
    (reported when ``problems`` is given, as a read does; planning only looks)."""
    return [(key, entry.path) for key, entry in key_entries(folder, problems, prefix)]


def key_entries(folder: str, problems: Problems | None = None, prefix: str = "") -> list[tuple[str, os.DirEntry]]:
    """:func:`key_files` with each file's directory entry (its ``stat()`` is one call)."""
    found = []
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return found
    except NotADirectoryError:
        if problems is not None and not prefix:
            problems.skip(f"{folder}: expected a folder of {os.path.basename(folder)} files, found a file")
        return found
    with entries:
        for entry in entries:
            if entry.is_dir():
                nested = key_entries(entry.path, problems, f"{prefix}{entry.name}/")
                if not nested and problems is not None:
                    # MLflow writes a folder only for keys holding "/", never an empty one
                    problems.skip(f"{entry.path}: expected the file of key {prefix + entry.name!r}, found an empty folder")
                found.extend(nested)
            else:
                found.append((prefix + entry.name, entry))
    return sorted(found, key=lambda item: item[0])


def file_stats(folder: str, relative: str, lines: list[str]) -> None:
    """Append ``"<relative path> <size> <mtime ns>\\n"`` for every file under ``folder``: a
    folder's files by name, then its sub-folders by name (the order of a sorted ``os.walk``,
    so fingerprints taken before stay comparable). A missing folder adds nothing.

    Example::

        >>> lines = []; file_stats("/nonexistent", "params", lines); lines
        []
    """
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    folders = []
    for entry in entries:
        if entry.is_dir():
            if not entry.is_symlink():  # os.walk does not follow links to folders either
                folders.append(entry)
            continue
        try:
            stat = entry.stat()
        except FileNotFoundError:
            continue
        lines.append(f"{relative}/{entry.name} {stat.st_size} {stat.st_mtime_ns}\n")
    for entry in folders:
        file_stats(entry.path, f"{relative}/{entry.name}", lines)


def read_values(folder: str, problems: Problems) -> list[tuple[str, str]]:
    values = []
    for key, path in key_files(folder, problems):
        try:
            values.append((key, read_local_file(path).decode("utf-8")))
        except FileNotFoundError:
            continue  # deleted since the listing (MLflow deletes tags by removing the file)
        except UnicodeDecodeError as error:
            problems.skip(f"{path}: not valid UTF-8 (byte {error.start})")
        except OSError as error:
            problems.skip(f"{path}: cannot be read ({error.strerror or error})")
    return values
