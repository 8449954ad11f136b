"""Fuzz: the file-store reader on corrupted copies of a real store written by mlflow.

Each case corrupts one file or folder of a fresh copy (truncated, bit-flipped, deleted, made
non-UTF-8, a folder where a file belongs, a file where a folder belongs) and reads every table
in FAILFAST and in PERMISSIVE (with ``columnNameOfCorruptRecord``), in-process as Spark would.
Every outcome must be one of:

- exact data: the rows of every run the corruption did not touch equal the clean read's, and
  the touched run's rows are what its files now say (a metric file gives one row per distinct
  complete line that parses, a param or tag file one row holding its text);
- a clear error: an ``ExperimentsError`` naming a path inside the store;
- under PERMISSIVE, a reported skip: a ``_corrupt_record`` row for the touched run.

Never a bare Python exception, never a silently missing row.
"""

from __future__ import annotations

import os
import random
import shutil

import pytest

from pyspark_experiments.datasource import ExperimentsReader, ReadRequest
from pyspark_experiments.errors import ExperimentsError

TABLES = ("runs", "metrics", "params", "tags", "experiments")
KINDS = ("truncate", "bitflip", "delete", "non_utf8", "folder_for_file", "file_for_folder")
CASES = int(os.environ.get("FUZZ_CASES", "72"))
COLUMN = "_corrupt_record"


def read(root, table, mode):
    options = {"trackingUri": root, "table": table, "viewType": "ALL", "mode": mode}
    if mode == "PERMISSIVE":
        options["columnNameOfCorruptRecord"] = COLUMN
    reader = ExperimentsReader(ReadRequest.from_options(options, environ={}))
    found = []
    for partition in reader.partitions():
        for batch in reader.read(partition):
            found.extend(batch.to_pylist())
    return found


def key_of(row):
    return tuple(sorted((k, repr(v)) for k, v in row.items() if k != COLUMN))


@pytest.fixture(scope="module")
def clean(small_stores):
    root = small_stores["file"]
    return root, {table: read(root, table, "FAILFAST") for table in TABLES}


def _targets(root):
    files, folders = [], []
    for parent, dirs, names in os.walk(root):
        for name in names:
            files.append(os.path.join(parent, name))
        for name in dirs:
            if name != ".trash":
                folders.append(os.path.join(parent, name))
    return sorted(files), sorted(folders)


def _corrupt(path, kind, rng):
    """Apply ``kind`` to ``path``; return a short description."""
    if kind == "truncate":
        data = open(path, "rb").read()
        cut = rng.randrange(0, max(1, len(data)))
        open(path, "wb").write(data[:cut])
        return f"truncated to {cut} bytes"
    if kind == "bitflip":
        data = bytearray(open(path, "rb").read())
        if not data:
            return "empty: unchanged"
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
        open(path, "wb").write(bytes(data))
        return f"bit flipped at {at}"
    if kind == "delete":
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        return "deleted"
    if kind == "non_utf8":
        open(path, "ab").write(b"\xff\xfe\n")
        return "non-UTF-8 bytes appended"
    if kind == "folder_for_file":
        os.remove(path)
        os.mkdir(path)
        return "replaced by a folder"
    if kind == "file_for_folder":
        shutil.rmtree(path)
        open(path, "w").write("x\n")
        return "replaced by a file"
    raise AssertionError(kind)


def _run_of(root, path):
    """(experiment id, run id or None) of a path in the store."""
    parts = os.path.relpath(path, root).split(os.sep)
    experiment = parts[0]
    run = parts[1] if len(parts) > 1 and parts[1] not in ("meta.yaml", "tags", "datasets") else None
    return experiment, run


def _expected_from_file(path, table):
    """What a touched data file now says: the rows it gives (key, value) or None to skip the check."""
    parts = path.split(os.sep)
    folder = next((p for p in ("metrics", "params", "tags") if p in parts[-4:]), None)
    if folder is None or not os.path.isfile(path):
        return None
    data = open(path, "rb").read()
    if folder == "metrics" and table == "metrics":
        lines = data.split(b"\n")[:-1]
        good = set()
        for line in lines:
            fields = line.split()
            try:
                if len(fields) not in (2, 3, 5):
                    return "bad"
                good.add((int(fields[0]), float(fields[1]), int(fields[2]) if len(fields) > 2 else 0))
            except ValueError:
                return "bad"
        return ("count", len({(t, s, v if v == v else "nan") for t, v, s in good}))
    if folder in ("params", "tags") and table == folder:
        try:
            return ("value", data.decode("utf-8"))
        except UnicodeDecodeError:
            return "bad"
    return None


@pytest.mark.parametrize("case", range(CASES))
def test_corrupted_store_gives_exact_data_a_clear_error_or_a_reported_skip(clean, tmp_path, case):
    source_root, clean_rows = clean
    rng = random.Random(case)
    root = str(tmp_path / "mlruns")
    shutil.copytree(source_root, root)
    files, folders = _targets(root)
    kind = KINDS[case % len(KINDS)]
    pool = folders if kind == "file_for_folder" else files
    path = rng.choice(pool)
    what = _corrupt(path, kind, rng)
    experiment, run = _run_of(root, path)
    context = f"{os.path.relpath(path, root)} {what}"
    if kind == "file_for_folder" and os.path.dirname(path) == root:
        kind = "delete"  # an experiment folder gone: the store no longer holds the experiment

    for table in TABLES:
        for mode in ("FAILFAST", "PERMISSIVE"):
            try:
                rows = read(root, table, mode)
            except ExperimentsError as error:
                assert root in str(error), f"{context}: {table}/{mode}: error names no path: {error}"
                continue
            except Exception as error:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{context}: {table}/{mode}: bare {type(error).__name__}: {error}")
            skipped = [r for r in rows if r.get(COLUMN)]
            good = [r for r in rows if not r.get(COLUMN)]
            before = clean_rows[table]
            if table == "experiments":
                touched = lambda r: r["experiment_id"] == experiment  # noqa: E731
            elif run is None:
                touched = lambda r: r["experiment_id"] == experiment  # noqa: E731
            else:
                touched = lambda r: r["run_id"] == run  # noqa: E731
            # exact data for everything the corruption did not touch
            assert sorted(map(key_of, (r for r in good if not touched(r)))) == sorted(
                map(key_of, (r for r in before if not touched(r)))
            ), f"{context}: {table}/{mode}: untouched rows differ"
            mine_before = sorted(map(key_of, (r for r in before if touched(r))))
            mine_now = sorted(map(key_of, (r for r in good if touched(r))))
            if mine_now == mine_before or skipped:
                if skipped:
                    assert mode == "PERMISSIVE"
                    assert all(root in r[COLUMN] for r in skipped), f"{context}: skip names no path"
                continue
            # the touched rows changed with no report: only as the touched file now says
            expected = _expected_from_file(path, table)
            assert expected not in (None, "bad") or kind == "delete" or (
                table in ("runs", "experiments") and len(mine_now) == len(mine_before)
            ), f"{context}: {table}/{mode}: rows changed with no report: {len(mine_before)} -> {len(mine_now)}"
            if isinstance(expected, tuple) and expected[0] == "count":
                key = os.path.basename(path)
                assert sum(1 for r in good if touched(r) and r["key"] == key) == expected[1], context
            if isinstance(expected, tuple) and expected[0] == "value":
                key = os.path.basename(path)
                assert [r["value"] for r in good if touched(r) and r["key"] == key] == [expected[1]], context
            if kind == "delete" and expected is None and table in ("metrics", "params", "tags"):
                # a deleted data file: its rows are gone, the others of the run stay
                gone = os.path.basename(path)
                assert all(r["key"] != gone for r in good if touched(r)) or os.path.isdir(path), context
