"""The bulk metric-file parser (stores/file/metrics.py) against the per-line reader it replaces.

Every case writes real files and checks that :func:`read_metric_files` gives, file by file, the
exact points (bit for bit, NaN as NaN) and the exact skip messages of
:func:`pyspark_experiments.stores.file.metrics.read_metric_file`, alone and with the files mixed into
shared chunks; latest values against :func:`pyspark_experiments.stores.file.metrics._latest_point`.
"""

from __future__ import annotations

import math
import os
import random
import struct
import time

import pytest

from pyspark_experiments.stores.file import metrics as metric_files
from pyspark_experiments.stores.file.meta import key_files
from pyspark_experiments.stores.problems import Problems

# Lines as MLflow writes them, f"{timestamp} {value} {step}\n", with str(float) values.
EDGE_VALUES = [
    0.0, -0.0, 1.0, -1.5, math.nan, math.inf, -math.inf, 1e-300, 5e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, 0.1, 1 / 3, 2 / 3 * 1e17, 123456789.12345679, 1e16, 1e22, 9007199254740993.0,
]

EDGE_FILES = {
    "mlflow_values": "".join(f"{1700000000000 + i} {v} {i}\n" for i, v in enumerate(EDGE_VALUES)),
    "mlflow_short": "".join(f"{1700000000000 + i} {v} {i}\n" for i, v in enumerate(EDGE_VALUES[:7])),
    "spellings": "1 nan 0\n2 NaN 1\n3 Infinity 2\n4 -Infinity 3\n5 -nan 4\n6 +inf 5\n7 INF 6\n8 1E5 7\n9 .5 8\n10 5. 9\n",
    "duplicates": "1 0.5 0\n2 0.25 1\n1 0.5 0\n3 nan 2\n3 nan 2\n",
    "same_point_other_spelling": "1 0.5 0\n1 0.50 0\n2 0.0 1\n2 -0.0 1\n",
    "unterminated": "1 0.5 0\n2 0.25 1\n3 0.1",
    "only_partial": "1 0.",
    "two_fields": "1 0.5\n2 0.25\n",
    "five_fields": "1 0.5 0 train abc123\n2 0.25 1 train abc123\n",
    "mixed_fields": "1 0.5 0\n2 0.25\n3 0.1 2 eval d1\n",
    "malformed_mid": "1 0.5 0\n2 oops 1\n3 0.1 2\n",
    "refused_by_arrow_only": "1 0.5 0\n2 2.5 3.5\n3 1e 2\n4 0.1 3\n5 . 4\n6 - 5\n",
    "refused_late": "".join(f"{i} {i / 7} {i}\n" for i in range(300)) + "9 9.5 --\n",
    "hex_and_nan_payload": "0x10 0.5 0\n2 nan(1) 1\n3 0.1 2\n",
    "plus_sign_int": "+1 0.5 0\n2 0.5 +1\n",
    "underscore": "1_000 0.5 0\n2 1_0.5 1\n",
    "crlf": "1 0.5 0\r\n2 0.25 1\r\n",
    "lone_cr": "1 0.5 0\r2 0.25 1\n3 0.1 2\n",
    "empty_lines": "1 0.5 0\n\n2 0.25 1\n",
    "tabs": "1\t0.5\t0\n2 0.25 1\n",
    "trailing_space": "1 0.5 0 \n2 0.25 1\n",
    "bom": "\ufeff1 0.5 0\n2 0.25 1\n",
    "non_utf8": b"1 0.5 0\n2 \xff 1\n3 0.1 2\n",
    "empty": "",
    "newline_only": "\n",
    "int_overflow_step": "1 0.5 99999999999999999999\n",
    "ten_thousand": "".join(f"{1700000000000 + i} {random.Random(i).uniform(-1e6, 1e6)} {i}\n" for i in range(10_000)),
}


def _write(folder, name, content, stale=False):
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content if isinstance(content, bytes) else content.encode())
    if stale:
        old = time.time() - 3600
        os.utime(path, (old, old))
    return path


def _bits(values):
    return [("nan" if v != v else struct.pack("<d", v)) for v in values]


def _reference(path, after=0, upto=None):
    problems = Problems("PERMISSIVE")
    timestamps, values, steps = metric_files.read_metric_file(path, problems, after, upto)
    return timestamps, _bits(values), steps, problems.where


def _bulk(specs):
    """Per file: (timestamps, value bits, steps, skips) from one read_metric_files call."""
    problems = Problems("PERMISSIVE")
    found = []
    for chunk in metric_files.read_metric_files(specs, problems):
        offset = 0
        for count in chunk.counts:
            rows = chunk.points.slice(offset, count)
            offset += count
            found.append([rows["timestamp"].to_pylist(), _bits(rows["value"].to_pylist()), rows["step"].to_pylist()])
        assert offset == chunk.points.num_rows
    return found, problems.where


def _check_files(specs):
    expected = [_reference(*spec) for spec in specs]
    found, skips = _bulk(specs)
    assert len(found) == len(specs)
    for spec, got, want in zip(specs, found, expected):
        assert got == list(want[:3]), spec
    assert skips == [s for want in expected for s in want[3]]


@pytest.fixture(params=[False, True], ids=["fresh", "stale"])
def edge_paths(request, tmp_path):
    return {name: _write(str(tmp_path), name, content, stale=request.param) for name, content in EDGE_FILES.items()}


def test_each_edge_file_alone_matches_the_per_line_reader(edge_paths):
    for path in edge_paths.values():
        _check_files([(path, 0, None)])


def test_edge_files_in_one_chunk_match_file_by_file(edge_paths):
    paths = [p for name, p in edge_paths.items() if name != "int_overflow_step"]
    _check_files([(p, 0, None) for p in paths])
    _check_files([(p, 0, None) for p in reversed(paths)])


def test_small_chunks_keep_every_file(edge_paths, monkeypatch):
    monkeypatch.setattr(metric_files, "CHUNK_FILES", 3)
    paths = [p for name, p in edge_paths.items() if name != "int_overflow_step"]
    specs = [(p, 0, None) for p in paths]
    _check_files(specs)
    chunks = list(metric_files.read_metric_files(specs, Problems("PERMISSIVE")))
    assert [c.first for c in chunks] == list(range(0, len(specs), 3))
    assert sum(len(c.counts) for c in chunks) == len(specs)


def test_the_stale_unterminated_line_is_reported_once_with_its_line_number(tmp_path):
    path = _write(str(tmp_path), "loss", EDGE_FILES["unterminated"], stale=True)
    found, skips = _bulk([(path, 0, None)])
    assert found[0][0] == [1, 2]
    assert len(skips) == 1 and skips[0].startswith(f"{path}, line 3: the last line has no final newline")


def test_missing_file_and_folder(tmp_path):
    folder = tmp_path / "metrics" / "nested"
    folder.mkdir(parents=True)
    good = _write(str(tmp_path), "good", "1 0.5 0\n")
    _check_files([(str(tmp_path / "gone"), 0, None), (str(folder), 0, None), (good, 0, None)])
    found, skips = _bulk([(str(folder), 0, None)])
    assert found == [[[], [], []]] and skips == [f"{folder}: expected a metric file, found a folder"]


@pytest.mark.parametrize("name", [
    "mlflow_short", "duplicates", "same_point_other_spelling", "unterminated", "mixed_fields", "malformed_mid",
    "two_fields", "crlf", "empty_lines", "lone_cr",
])
def test_byte_ranges_at_every_boundary(tmp_path, name):
    path = _write(str(tmp_path), name, EDGE_FILES[name], stale=True)
    size = os.path.getsize(path)
    other = _write(str(tmp_path), "other", EDGE_FILES["mlflow_values"])
    for after in range(0, size + 2):
        for upto in (None, size, after + 1, (after + size) // 2):
            _check_files([(path, after, upto)])
        if after % 5 == 0:
            _check_files([(other, 0, None), (path, after, None), (other, 7, None), (path, 0, after)])
    for upto in range(0, size + 1):
        _check_files([(path, 0, upto)])


def test_consecutive_ranges_give_every_distinct_point_once(tmp_path):
    path = _write(str(tmp_path), "loss", EDGE_FILES["duplicates"] + EDGE_FILES["mlflow_values"])
    size = os.path.getsize(path)
    whole = _bulk([(path, 0, None)])[0][0]
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, size), 4))
        bounds = list(zip([0, *cuts], [*cuts, size]))
        parts = _bulk([(path, a, b) for a, b in bounds])[0]
        assert [sum((p[i] for p in parts), []) for i in range(3)] == whole


def test_random_files_match(tmp_path):
    rng = random.Random(13)
    tokens = ["nan", "inf", "-inf", "-0.0", "0.0", "1e-300", "5e-324", "x", "", "1 2"]
    specs = []
    for n in range(200):
        lines = []
        for i in range(rng.randrange(0, 30)):
            value = rng.choice(tokens) if rng.random() < 0.2 else repr(rng.uniform(-1e3, 1e3))
            line = f"{rng.randrange(5)} {value} {rng.randrange(5)}"
            if rng.random() < 0.05:
                line = line.rsplit(" ", 1)[0]
            lines.append(line)
            if rng.random() < 0.1:
                lines.append(rng.choice(lines))
        text = "\n".join(lines) + ("\n" if rng.random() < 0.7 else "")
        path = _write(str(tmp_path), f"m{n}", text, stale=rng.random() < 0.5)
        size = os.path.getsize(path)
        after = rng.choice([0, 0, rng.randrange(size + 1)])
        specs.append((path, after, rng.choice([None, None, rng.randrange(after, size + 1)])))
    _check_files(specs)


def test_latest_values_replay_mlflows_max(tmp_path):
    rng = random.Random(5)
    values = ["nan", "0.0", "-0.0", "1.0", "2.0", "-inf", "inf"]
    paths = []
    for n in range(300):
        lines = {f"{rng.randrange(3)} {rng.choice(values)} {rng.randrange(3)}" for _ in range(rng.randrange(0, 12))}
        ordered = list(lines)
        rng.shuffle(ordered)
        paths.append(_write(str(tmp_path), f"m{n}", "".join(line + "\n" for line in ordered)))
    paths.append(_write(str(tmp_path), "zero_first", "1 -0.0 5\n1 0.0 5\n"))
    paths.append(_write(str(tmp_path), "nan_last_point", "1 0.5 5\n2 nan 5\n2 0.7 5\n"))
    paths.append(_write(str(tmp_path), "nan_after", "2 0.5 5\n2 nan 5\n2 0.7 5\n2 0.6 5\n"))
    expected = [metric_files._latest_point(p, Problems("PERMISSIVE")) for p in paths]
    assert any(v is not None and math.isnan(v) for v in expected) and None in expected
    found = []
    for chunk in metric_files.read_metric_files([(p, 0, None) for p in paths], Problems("PERMISSIVE")):
        found.extend(metric_files.latest_values(chunk))
    assert _bits([math.inf if v is None else v for v in found]) == _bits([math.inf if v is None else v for v in expected])
    assert [v is None for v in found] == [v is None for v in expected]
    assert struct.pack("<d", found[-3]) == struct.pack("<d", -0.0)
    assert found[-1] == 0.7 and math.isnan(found[-2])


def _store_with_nested_key(small_stores, tmp_path):
    import shutil

    root = str(tmp_path / "mlruns")
    shutil.copytree(small_stores["file"].removeprefix("file://"), root)
    for parent, dirs, _names in os.walk(root):
        if os.path.basename(parent) == "metrics" and ".trash" not in parent:
            _write(parent, "eval/loss/top", "1 0.5 0\n2 nan 1\n2 0.25 1\n")
            _write(parent, "dupes", "1 0.5 0\n1 0.5 0\n3 -0.0 2\n")
            break
    return root


def test_file_store_tables_equal_the_per_line_reader(small_stores, tmp_path):
    """The metrics and runs tables of a real mlflow store (plus a nested key and duplicates) equal
    a read through the per-line reader."""
    from pyspark_experiments.datasource import ExperimentsReader, ReadRequest

    root = _store_with_nested_key(small_stores, tmp_path)

    def read(table):
        reader = ExperimentsReader(ReadRequest.from_options({"trackingUri": root, "table": table, "viewType": "ALL"}, environ={}))
        return [row for partition in reader.partitions() for batch in reader.read(partition) for row in batch.to_pylist()]

    metrics, runs = read("metrics"), read("runs")
    expected_metrics, expected_latest = [], {}
    for row in runs:
        run_dirs = [os.path.join(p, row["run_id"]) for p, _, _ in os.walk(root) if os.path.isdir(os.path.join(p, row["run_id"], "metrics"))]
        metrics_dir = os.path.join(run_dirs[0], "metrics")
        latest = {}
        for key, path in key_files(metrics_dir):
            timestamps, values, steps = metric_files.read_metric_file(path, Problems("FAILFAST"))
            expected_metrics += [(row["run_id"], key, *point) for point in zip(_bits(values), steps, timestamps)]
            point = metric_files._latest_point(path, Problems("FAILFAST"))
            if point is not None:
                latest[key] = _bits([point])[0]
        expected_latest[row["run_id"]] = latest
    assert any("/" in key for _, key, *_ in expected_metrics)
    found = [
        (r["run_id"], r["key"], _bits([r["value"]])[0], r["step"], int(r["timestamp"].timestamp() * 1000)) for r in metrics
    ]
    assert sorted(found, key=repr) == sorted(expected_metrics, key=repr)
    assert {r["run_id"]: {k: _bits([v])[0] for k, v in dict(r["metrics"]).items()} for r in runs} == expected_latest


def test_read_local_file_reads_what_open_reads(tmp_path):
    """The file store's reads go through ``os.open``/``os.read`` (:func:`read_local_file`): the
    same bytes as ``open().read()``, whole or the first ``limit``, and the same errors."""
    from pyspark_experiments.stores.file.meta import read_local_file

    rng = random.Random(7)
    for size in (0, 1, 4096, 65535, 65536, 65537, (1 << 21) + 3):
        path = tmp_path / f"f{size}"
        block = bytes(rng.getrandbits(8) for _ in range(4096))
        path.write_bytes((block * (size // 4096 + 1))[:size])
        with open(path, "rb") as handle:
            whole = handle.read()
        assert read_local_file(str(path)) == whole
        for limit in (0, 1, size // 2, size, size + 10):
            assert read_local_file(str(path), limit) == whole[:limit]
    with pytest.raises(FileNotFoundError):
        read_local_file(str(tmp_path / "missing"))
    with pytest.raises(IsADirectoryError):
        read_local_file(str(tmp_path))
    with pytest.raises(NotADirectoryError):
        read_local_file(str(tmp_path / "f1" / "below-a-file"))
