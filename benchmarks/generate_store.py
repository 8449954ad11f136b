"""Write large MLflow tracking stores fast, in MLflow's exact formats, without the mlflow client.

Real mlflow creates the store and its experiments (so the SQLite schema, its migrations, the
experiment rows and the file store's experiment ``meta.yaml`` files are mlflow's own); the runs
and everything under them are then written in bulk: ``sqlite3.executemany`` into ``runs``,
``params``, ``tags``, ``metrics`` and ``latest_metrics`` for SQLite, plain files for the
``mlruns/`` file store. ``--check`` reads a sample back through the real mlflow client and
compares it with what the generator meant to write.

Every run's content is a pure function of ``(seed, run index)``, so a check can recompute what
any run should hold without regenerating the store.

Usage::

    python -m benchmarks.generate_store --size S --kind both --out benchmarks/.stores/S
    python -m benchmarks.generate_store --runs 5000 --metrics 10 --steps 1 \\
        --big-run-points 1000000 --kind sqlite --out /tmp/uneven
    python -m benchmarks.generate_store --check --out benchmarks/.stores/S

Layout of ``--out``: ``mlflow.db`` (SQLite store), ``mlruns/`` (file store) and
``manifest.json`` (the parameters and the experiment ids of each store).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sqlite3
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field

#: 2024-01-01T00:00:00Z in epoch milliseconds: every generated time is offset from it.
BASE_MS = 1_704_067_200_000
#: Milliseconds between two logged steps of a run, and between the starts of two runs.
STEP_MS = 1_000
RUN_GAP_MS = 5_000
USERS = ("alice", "bob", "carol")
STATUSES_SQL = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}

#: Named sizes: S and L are the benchmark's two sizes (1M and 10M metric points).
SIZES = {
    "tiny": dict(runs=20, metrics=3, steps=5, params=3, experiments=2),
    "S": dict(runs=2_000, metrics=10, steps=50, params=10, experiments=4),
    "L": dict(runs=20_000, metrics=10, steps=50, params=10, experiments=10),
}


@dataclass(frozen=True)
class Spec:
    """What to generate. Every run's content follows from ``(seed, index)``."""

    runs: int = 2_000
    metrics: int = 10
    steps: int = 50
    params: int = 10
    experiments: int = 4
    seed: int = 0
    #: Points of one extra-large run (run index 0), spread over its metric keys; 0: none.
    big_run_points: int = 0
    #: Fraction of metric points logged as NaN.
    nan_rate: float = 0.001

    @property
    def points(self) -> int:
        """Total metric points of the store."""
        if self.runs <= 0:
            return 0
        return (self.run_steps(0) + (self.runs - 1) * self.steps) * self.metrics

    def run_steps(self, index: int) -> int:
        if index == 0 and self.big_run_points:
            return math.ceil(self.big_run_points / self.metrics)
        return self.steps

    def experiment_of(self, index: int) -> int:
        """Runs are split into contiguous blocks, one per experiment."""
        return index * self.experiments // self.runs


@dataclass
class RunData:
    """One run as the generator writes it and as mlflow must read it back."""

    index: int
    run_id: str
    experiment: int
    run_name: str
    user_id: str
    status: int
    start_time: int
    end_time: int
    params: dict[str, str]
    tags: dict[str, str]
    #: key -> values, one per step; step s is logged at ``start_time + (s + 1) * STEP_MS``.
    metrics: dict[str, list[float]] = field(repr=False)

    def timestamp(self, step: int) -> int:
        return self.start_time + (step + 1) * STEP_MS

    def latest(self) -> dict[str, float]:
        """Latest value per key as MLflow picks it: max by (step, timestamp, value)."""
        return {key: values[-1] for key, values in self.metrics.items() if values}


def metric_key(k: int) -> str:
    return f"metric_{k:02d}"


def param_key(j: int) -> str:
    return f"param_{j:02d}"


def run_data(spec: Spec, index: int) -> RunData:
    """The content of run ``index``: deterministic in ``(spec.seed, index)``."""
    rng = random.Random(spec.seed * 1_000_003 + index)
    run_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
    steps = spec.run_steps(index)
    start = BASE_MS + index * RUN_GAP_MS
    user = USERS[index % len(USERS)]
    run_name = f"run-{index:06d}"
    status = 4 if index % 50 == 49 else 3  # a few FAILED among FINISHED
    params = {param_key(j): f"{rng.random():.6g}" for j in range(spec.params)}
    tags = {
        "mlflow.runName": run_name,
        "mlflow.user": user,
        "mlflow.source.name": "train.py",
        "mlflow.source.type": "LOCAL",
        "team": f"team-{index % 4}",
    }
    nan_rate = spec.nan_rate
    rand = rng.random
    metrics = {}
    for k in range(spec.metrics):
        values = [rand() for _ in range(steps)]
        if nan_rate:
            for s in range(steps):
                if rand() < nan_rate:
                    values[s] = math.nan
        metrics[metric_key(k)] = values
    return RunData(
        index=index,
        run_id=run_id,
        experiment=spec.experiment_of(index),
        run_name=run_name,
        user_id=user,
        status=status,
        start_time=start,
        end_time=start + (steps + 1) * STEP_MS,
        params=params,
        tags=tags,
        metrics=metrics,
    )


def experiment_name(e: int) -> str:
    return f"bench-{e:03d}"


# -- SQLite ----------------------------------------------------------------------------------


def mlflow_env() -> None:
    """Quiet mlflow's and alembic's logs and allow the file store (which mlflow 3 deprecates).

    Example::

        >>> mlflow_env()
        >>> os.environ["MLFLOW_ALLOW_FILE_STORE"]
        'true'
    """
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def create_experiments(uri: str, names: list[str], artifact_root: str) -> list[dict]:
    """Let real mlflow create the store (its schema, for a database) and the experiments
    ``names``; return each one's ``{"id", "artifact_location"}``. A database store's experiments
    keep their artifacts in ``<artifact_root>/<n>`` (mlflow's default, ``./mlruns`` of the
    current folder, would scatter them).

    Example::

        >>> create_experiments("sqlite:////tmp/s/mlflow.db", ["bench-000"], "/tmp/s/artifacts")  # doctest: +SKIP
        [{'id': '1', 'artifact_location': '/tmp/s/artifacts/1'}]
    """
    mlflow_env()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments()  # creates the schema (database) or the Default experiment (file)
    experiments = []
    for e, name in enumerate(names):
        location = os.path.join(artifact_root, str(e + 1)) if "://" in uri else None
        experiment_id = client.create_experiment(name, artifact_location=location)
        experiment = client.get_experiment(experiment_id)
        experiments.append({"id": experiment_id, "artifact_location": experiment.artifact_location})
    return experiments


def drop_secondary_indexes(connection: sqlite3.Connection, tables: tuple[str, ...]) -> list[tuple[str, str]]:
    """Drop the secondary indexes of SQLite ``tables`` before a bulk insert (much faster than
    maintaining them row by row under random ids); return ``(name, sql)`` of each, for
    :func:`recreate_indexes` with mlflow's own SQL afterwards.

    Example::

        >>> connection = sqlite3.connect(":memory:")
        >>> _ = connection.execute("CREATE TABLE t (a)"); _ = connection.execute("CREATE INDEX i ON t (a)")
        >>> dropped = drop_secondary_indexes(connection, ("t",)); dropped
        [('i', 'CREATE INDEX i ON t (a)')]
        >>> recreate_indexes(connection, dropped)
    """
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ({})".format(", ".join("?" * len(tables))),
        tables,
    ).fetchall()
    for name, _ in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    connection.commit()
    return indexes


def recreate_indexes(connection: sqlite3.Connection, indexes: list[tuple[str, str]]) -> None:
    """Create again the indexes :func:`drop_secondary_indexes` dropped."""
    for _, sql in indexes:
        connection.execute(sql)
    connection.commit()


def write_sqlite(path: str, spec: Spec, progress=print) -> list[dict]:
    """Write the SQLite store ``path`` (which must not exist); returns its experiments."""
    if os.path.exists(path):
        raise FileExistsError(path)
    started = time.perf_counter()
    artifact_root = os.path.join(os.path.dirname(os.path.abspath(path)), "sqlite-artifacts")
    names = [experiment_name(e) for e in range(spec.experiments)]
    experiments = create_experiments(f"sqlite:///{os.path.abspath(path)}", names, artifact_root)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA journal_mode = MEMORY")
    connection.execute("PRAGMA cache_size = -262144")  # 256 MB
    indexes = drop_secondary_indexes(connection, ("runs", "params", "tags", "metrics", "latest_metrics"))

    run_rows, param_rows, tag_rows, metric_rows, latest_rows = [], [], [], [], []

    def flush() -> None:
        connection.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
            "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
            "experiment_id, deleted_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_rows,
        )
        connection.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", param_rows)
        connection.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
        connection.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
            metric_rows,
        )
        connection.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
            latest_rows,
        )
        for rows in (run_rows, param_rows, tag_rows, metric_rows, latest_rows):
            rows.clear()

    points = 0
    for index in range(spec.runs):
        run = run_data(spec, index)
        experiment = experiments[run.experiment]
        run_id = run.run_id
        run_rows.append((
            run_id, run.run_name, "UNKNOWN", "", "", run.user_id, STATUSES_SQL[run.status],
            run.start_time, run.end_time, "", "active",
            f"{experiment['artifact_location']}/{run_id}/artifacts", int(experiment["id"]), None,
        ))
        param_rows.extend((k, v, run_id) for k, v in run.params.items())
        tag_rows.extend((k, v, run_id) for k, v in run.tags.items())
        # As a training loop logs them: step by step, every key at each step.
        keys = list(run.metrics)
        columns = [run.metrics[k] for k in keys]
        steps = len(columns[0]) if columns else 0
        for s in range(steps):
            timestamp = run.start_time + (s + 1) * STEP_MS
            for key, values in zip(keys, columns):
                value = values[s]
                if value != value:
                    metric_rows.append((key, 0.0, timestamp, run_id, s, 1))
                else:
                    metric_rows.append((key, value, timestamp, run_id, s, 0))
        points += steps * len(keys)
        for key, values in zip(keys, columns):
            if values:
                value = values[-1]
                nan = value != value
                latest_rows.append((key, 0.0 if nan else value, run.timestamp(len(values) - 1), len(values) - 1, int(nan), run_id))
        if len(metric_rows) >= 500_000 or len(run_rows) >= 2_000:
            flush()
        if index and index % 5_000 == 0:
            progress(f"  sqlite: {index:,} runs, {points:,} points, {time.perf_counter() - started:.0f} s")
    flush()
    connection.commit()
    recreate_indexes(connection, indexes)
    connection.close()
    progress(f"  sqlite: {spec.runs:,} runs, {points:,} points in {time.perf_counter() - started:.1f} s -> {path}")
    return experiments


# -- file store ------------------------------------------------------------------------------

_RUN_META = (
    "artifact_uri: {artifact_uri}\n"
    "end_time: {end_time}\n"
    "entry_point_name: ''\n"
    "experiment_id: '{experiment_id}'\n"
    "lifecycle_stage: active\n"
    "run_id: {run_id}\n"
    "run_name: {run_name}\n"
    "source_name: ''\n"
    "source_type: 4\n"
    "source_version: ''\n"
    "start_time: {start_time}\n"
    "status: {status}\n"
    "tags: []\n"
    "user_id: {user_id}\n"
)


def _run_meta_dict(run: RunData, experiment_id: str, artifact_uri: str) -> dict:
    """The run meta.yaml content exactly as mlflow's file store persists a terminated run."""
    return {
        "artifact_uri": artifact_uri,
        "end_time": run.end_time,
        "entry_point_name": "",
        "experiment_id": experiment_id,
        "lifecycle_stage": "active",
        "run_id": run.run_id,
        "run_name": run.run_name,
        "source_name": "",
        "source_type": 4,
        "source_version": "",
        "start_time": run.start_time,
        "status": run.status,
        "tags": [],
        "user_id": run.user_id,
    }


def _yaml_dump(data: dict) -> str:
    import yaml

    # As mlflow.utils.yaml_utils.write_yaml dumps it.
    return yaml.dump(data, default_flow_style=False, allow_unicode=True, sort_keys=True, Dumper=yaml.SafeDumper)


def _format_value(value: float) -> str:
    # mlflow writes f"{metric.value}": Python's str of a float ("nan", "inf" included).
    return str(value)


def write_file_store(root: str, spec: Spec, progress=print) -> list[dict]:
    """Write the file store ``root`` (which must not exist); returns its experiments."""
    if os.path.exists(root):
        raise FileExistsError(root)
    started = time.perf_counter()
    root = os.path.abspath(root)
    experiments = create_experiments(root, [experiment_name(e) for e in range(spec.experiments)], root)
    points = 0
    checked_meta = False
    for index in range(spec.runs):
        run = run_data(spec, index)
        experiment = experiments[run.experiment]
        experiment_dir = os.path.join(root, experiment["id"])
        run_dir = os.path.join(experiment_dir, run.run_id)
        artifact_uri = f"{experiment['artifact_location']}/{run.run_id}/artifacts"
        os.mkdir(run_dir)
        for sub in ("artifacts", "metrics", "params", "tags"):
            os.mkdir(os.path.join(run_dir, sub))
        meta = _RUN_META.format(
            artifact_uri=artifact_uri, end_time=run.end_time, experiment_id=experiment["id"],
            run_id=run.run_id, run_name=run.run_name, start_time=run.start_time,
            status=run.status, user_id=run.user_id,
        )
        if not checked_meta:
            expected = _yaml_dump(_run_meta_dict(run, experiment["id"], artifact_uri))
            if meta != expected:
                raise AssertionError(f"run meta.yaml template differs from mlflow's:\n{meta}\n---\n{expected}")
            checked_meta = True
        with open(os.path.join(run_dir, "meta.yaml"), "w", encoding="utf-8") as handle:
            handle.write(meta)
        for folder, values in (("params", run.params), ("tags", run.tags)):
            base = os.path.join(run_dir, folder)
            for key, value in values.items():
                with open(os.path.join(base, key), "w", encoding="utf-8") as handle:
                    handle.write(value)
        base = os.path.join(run_dir, "metrics")
        start = run.start_time + STEP_MS
        for key, values in run.metrics.items():
            lines = [f"{start + s * STEP_MS} {v} {s}\n" for s, v in enumerate(values)]
            with open(os.path.join(base, key), "w", encoding="utf-8") as handle:
                handle.write("".join(lines))
            points += len(values)
        if index and index % 5_000 == 0:
            progress(f"  file: {index:,} runs, {points:,} points, {time.perf_counter() - started:.0f} s")
    progress(f"  file: {spec.runs:,} runs, {points:,} points in {time.perf_counter() - started:.1f} s -> {root}")
    return experiments


# -- manifest, generation --------------------------------------------------------------------

MANIFEST = "manifest.json"


def store_paths(out: str) -> dict[str, str]:
    """Tracking URIs of the stores under ``out``."""
    out = os.path.abspath(out)
    return {"sqlite": f"sqlite:///{os.path.join(out, 'mlflow.db')}", "file": os.path.join(out, "mlruns")}


def load_manifest(out: str) -> dict:
    with open(os.path.join(out, MANIFEST), encoding="utf-8") as handle:
        return json.load(handle)


def generate(out: str, spec: Spec, kinds=("sqlite", "file"), force: bool = False, progress=print) -> dict:
    """Generate the stores of ``kinds`` under ``out`` and write its manifest; return the manifest.

    An existing store of the same spec is kept (unless ``force``); one of another spec is an
    error unless ``force``.
    """
    os.makedirs(out, exist_ok=True)
    manifest_path = os.path.join(out, MANIFEST)
    manifest = {"spec": asdict(spec), "stores": {}}
    if os.path.exists(manifest_path):
        old = load_manifest(out)
        if old["spec"] == asdict(spec) and not force:
            manifest = old
        elif not force:
            raise FileExistsError(f"{out} holds stores of another spec {old['spec']}; use --force")
        else:
            for name in ("mlflow.db", "mlruns", "sqlite-artifacts", MANIFEST):
                path = os.path.join(out, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.exists(path):
                    os.remove(path)
    paths = store_paths(out)
    for kind in kinds:
        if kind in manifest["stores"]:
            progress(f"  {kind}: already generated in {out}")
            continue
        if kind == "sqlite":
            experiments = write_sqlite(os.path.join(out, "mlflow.db"), spec, progress)
        else:
            experiments = write_file_store(paths["file"], spec, progress)
        manifest["stores"][kind] = {"uri": paths[kind], "experiments": experiments}
        with open(manifest_path, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)
    return manifest


# -- check -----------------------------------------------------------------------------------


def _same(a: float, b: float) -> bool:
    return (a != a and b != b) or a == b


def check_store(uri: str, spec: Spec, experiments: list[dict], sample: int = 5, keys: int = 3,
                seed: int = 1) -> list[str]:
    """Read a sample of runs back through the real mlflow client and compare with the spec.

    Uses ``search_runs`` (info, latest metrics, params, tags) and ``get_metric_history`` (full
    history of a few keys). Returns the differences found (empty: identical).
    """
    mlflow_env()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    rng = random.Random(seed)
    indices = sorted({0, spec.runs - 1, *rng.sample(range(spec.runs), min(sample, spec.runs))})
    expected = {run.run_id: run for run in (run_data(spec, i) for i in indices)}
    ids = ", ".join(f"'{r}'" for r in expected)
    found = client.search_runs(
        [e["id"] for e in experiments], filter_string=f"attributes.run_id IN ({ids})", max_results=1000
    )
    problems = []
    if len(found) != len(expected):
        problems.append(f"{uri}: search_runs found {len(found)} of {len(expected)} sampled runs")
    status_names = {3: "FINISHED", 4: "FAILED"}
    for run in found:
        want = expected[run.info.run_id]
        where = f"{uri}, run {want.index} ({want.run_id})"
        info = run.info
        for name, got, exp in (
            ("experiment_id", info.experiment_id, experiments[want.experiment]["id"]),
            ("run_name", info.run_name, want.run_name),
            ("user_id", info.user_id, want.user_id),
            ("status", info.status, status_names[want.status]),
            ("start_time", info.start_time, want.start_time),
            ("end_time", info.end_time, want.end_time),
            ("lifecycle_stage", info.lifecycle_stage, "active"),
            ("params", run.data.params, want.params),
            ("tags", run.data.tags, want.tags),
        ):
            if got != exp:
                problems.append(f"{where}: {name} {got!r} != expected {exp!r}")
        latest = want.latest()
        got_latest = run.data.metrics
        if set(got_latest) != set(latest) or not all(_same(got_latest[k], latest[k]) for k in latest):
            problems.append(f"{where}: latest metrics differ")
        for key in sorted(want.metrics)[:keys]:
            history = sorted(client.get_metric_history(want.run_id, key), key=lambda m: (m.step, m.timestamp))
            values = want.metrics[key]
            got = [(m.step, m.timestamp, m.value) for m in history]
            exp = [(s, want.timestamp(s), v) for s, v in enumerate(values)]
            if len(got) != len(exp) or not all(
                g[0] == e[0] and g[1] == e[1] and _same(g[2], e[2]) for g, e in zip(got, exp)
            ):
                problems.append(f"{where}: metric history of {key!r} differs ({len(got)} vs {len(exp)} points)")
    return problems


def check(out: str, sample: int = 5, keys: int = 3, progress=print) -> list[str]:
    """Check every store under ``out`` (see :func:`check_store`)."""
    manifest = load_manifest(out)
    spec = Spec(**manifest["spec"])
    problems = []
    for kind, store in manifest["stores"].items():
        found = check_store(store["uri"], spec, store["experiments"], sample, keys)
        progress(f"  check {kind}: {'OK' if not found else f'{len(found)} difference(s)'}")
        problems.extend(found)
    return problems


# -- command line ----------------------------------------------------------------------------


def spec_from_args(args) -> Spec:
    base = dict(SIZES[args.size]) if args.size else dict(SIZES["S"])
    for name in ("runs", "metrics", "steps", "params", "experiments"):
        value = getattr(args, name)
        if value is not None:
            base[name] = value
    return Spec(**base, seed=args.seed, big_run_points=args.big_run_points, nan_rate=args.nan_rate)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), help="a named size (default S); flags below override it")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--metrics", type=int, help="metric keys per run")
    parser.add_argument("--steps", type=int, help="points per metric key")
    parser.add_argument("--params", type=int, help="params per run")
    parser.add_argument("--experiments", type=int)
    parser.add_argument("--big-run-points", type=int, default=0,
                        help="give run 0 this many points (spread over its keys): an uneven store")
    parser.add_argument("--nan-rate", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=("sqlite", "file", "both"), default="both")
    parser.add_argument("--out", required=True, help="folder for mlflow.db, mlruns/ and manifest.json")
    parser.add_argument("--force", action="store_true", help="replace stores already in --out")
    parser.add_argument("--check", action="store_true",
                        help="only check the stores in --out against the real mlflow client")
    parser.add_argument("--sample", type=int, default=5, help="runs to check (plus first and last)")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out, sample=args.sample)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    spec = spec_from_args(args)
    kinds = ("sqlite", "file") if args.kind == "both" else (args.kind,)
    print(f"generating {spec} into {args.out}")
    generate(args.out, spec, kinds, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
