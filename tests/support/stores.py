"""Reference MLflow stores, written by the real mlflow client, for the equivalence tests.

:func:`log_reference_data` logs the same content (experiment names, run names, values,
timestamps) into any tracking URI, so that a SQLite store and a file store can be compared
with each other and each with what mlflow itself answers.

The session-scoped fixtures write the stores once per test run, in a temporary folder:

- ``sqlite_store``: ``sqlite:///<tmp>/mlflow.db``
- ``file_store``: ``<tmp>/mlruns`` (a plain path; needs ``MLFLOW_ALLOW_FILE_STORE=true``)
- ``postgres_store``: ``postgresql+psycopg://...`` on a real PostgreSQL server on loopback
- ``mysql_store``: ``mysql+pymysql://...`` on a real MariaDB server on loopback (not part of
  ``reference_stores``: only the tests that ask for it start MariaDB)
- ``reference_stores``: ``{"sqlite": <uri>, "file": <path>, "postgres": <uri>}``

Load them in a test module with ``from support.stores import *  # noqa: F401,F403`` or
project-wide with ``pytest_plugins = ["support.stores"]`` in ``tests/conftest.py``.

What is logged (names are unique across the whole store, so runs can be matched by name):

- ``ref-alpha``: client runs ``a-01`` .. ``a-06`` (FINISHED, users alice/bob, start times spread
  over days, metric histories, params and tags with ``/`` keys), ``a-failed`` (FAILED),
  ``a-killed`` (KILLED), ``a-running`` (never terminated, no data at all), ``a-deleted``
  (deleted run), ``a-special`` (NaN, ±inf, several values at one step, an exact duplicate point,
  unicode and multi-line values, a 250-character key, a value at ``MAX_PARAM_VAL_LENGTH``, a tag
  value at ``MAX_TAG_VAL_LENGTH``, a deleted tag), ``a-nouser`` (no ``mlflow.user`` tag).
- ``ref-beta``: fluent runs ``b-parent`` with nested ``b-child-1`` / ``b-child-2`` (the latter
  deleted) created with ``mlflow.start_run(nested=True)`` as user carol (``LOGNAME``/``USER``),
  dataset inputs via ``mlflow.log_input`` (with and without context, with tags, one dataset
  shared by two runs; ``b-child-2`` logs a metric with ``dataset=``, which the file store writes
  as a 5-field metric line); client runs ``b-01`` .. ``b-03``.
- ``ref-gamma``: two runs (one deleted before), then the experiment is deleted with
  ``mlflow.delete_experiment``.
- Experiment tags on ``ref-alpha`` and ``ref-beta``.

Fluent runs get wall-clock start/end times (``mlflow.start_run`` takes no start time): they are
listed in :data:`WALL_CLOCK_RUNS`; every other time is explicit and identical in both stores.
"""

from __future__ import annotations

import contextlib
import math
import os

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

__all__ = [
    "ACTIVE_EXPERIMENTS",
    "BASE_MS",
    "DELETED_EXPERIMENT",
    "EXPERIMENT_NAMES",
    "LONG_KEY",
    "WALL_CLOCK_RUNS",
    "file_store",
    "log_reference_data",
    "mysql_server",
    "mysql_store",
    "reference_stores",
    "sqlite_store",
]

#: 2024-01-01T00:00:00Z in epoch milliseconds; every explicit time is offset from it.
BASE_MS = 1_704_067_200_000
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

ACTIVE_EXPERIMENTS = ("ref-alpha", "ref-beta")
DELETED_EXPERIMENT = "ref-gamma"
EXPERIMENT_NAMES = ACTIVE_EXPERIMENTS + (DELETED_EXPERIMENT,)

#: Runs created through the fluent API: their start and end times are the wall clock.
WALL_CLOCK_RUNS = frozenset({"b-parent", "b-child-1", "b-child-2"})

#: A param / tag key at MLflow's maximum entity key length (250).
LONG_KEY = "k" * 250

_MULTILINE = "first line\nsecond line: ünïcødé ✓\n\tthird line, tabbed\n"
_UNICODE = "naïve café — 学习率 — Ελληνικά — 🚀"


@contextlib.contextmanager
def mlflow_tracking_uri(uri: str):
    """Point mlflow's global tracking URI at ``uri`` for the block, then restore it, and the
    experiment variables ``mlflow.set_experiment`` sets in the environment: a later test
    resolving ``MLFLOW_EXPERIMENT_ID`` must not see a store written here."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri  # None when never set: restores the default
    environment = {name: os.environ.get(name) for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        while mlflow.active_run() is not None:  # never leak an active run
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def environ(**values: str):
    """Set environment variables for a block, then put back what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _os_user(name: str):
    """Make ``getpass.getuser()`` (mlflow's source for ``mlflow.user``) return ``name``."""
    return environ(**{key: name for key in ("LOGNAME", "USER", "LNAME", "USERNAME")})


def _max_param_value_length() -> int:
    from mlflow.utils import validation

    return int(getattr(validation, "MAX_PARAM_VAL_LENGTH", 6000))


def _max_tag_value_length() -> int:
    from mlflow.utils import validation

    return int(getattr(validation, "MAX_TAG_VAL_LENGTH", 8000))


def _datasets():
    import mlflow.data
    import pandas as pd

    train = pd.DataFrame(
        {"x1": [0.5, 1.5, 2.5, 3.5], "x2": ["a", "b", "c", "d"], "y": [0.0, 1.0, 0.0, 1.0]}
    )
    test = pd.DataFrame({"x1": [9.0, 8.0], "x2": ["z", "y"], "y": [1.0, 0.0]})
    train_ds = mlflow.data.from_pandas(
        train, source="https://example.com/data/train.csv", name="train-set", targets="y"
    )
    test_ds = mlflow.data.from_pandas(
        test, source="https://example.com/data/test.csv", name="test-set", targets="y"
    )
    return train_ds, test_ds


def log_reference_data(tracking_uri: str) -> dict:
    """Log the reference content into the store at ``tracking_uri``.

    Returns a manifest: ``{"experiments": {name: id}, "runs": {run_name: run_id}}``.
    Calling it twice on the same store fails (experiment names are taken).
    """
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiments: dict[str, str] = {}
    runs: dict[str, str] = {}

    for name in EXPERIMENT_NAMES:
        experiments[name] = client.create_experiment(name)
    alpha, beta, gamma = (experiments[n] for n in EXPERIMENT_NAMES)

    # Experiment tags: a "/" key, unicode and multi-line values.
    client.set_experiment_tag(alpha, "team", "vision")
    client.set_experiment_tag(alpha, "project/phase", "exploration")
    client.set_experiment_tag(alpha, "note", _MULTILINE)
    client.set_experiment_tag(beta, "team", _UNICODE)

    def new_run(experiment_id, run_name, start_ms, user=None, tags=None):
        all_tags = dict(tags or {})
        if user is not None:
            all_tags["mlflow.user"] = user
        run = client.create_run(
            experiment_id, start_time=start_ms, tags=all_tags, run_name=run_name
        )
        runs[run_name] = run.info.run_id
        return run.info.run_id

    # ---- ref-alpha: ordinary finished runs, two users, start times spread over days ----
    for i in range(1, 7):
        start = BASE_MS + i * DAY_MS + i * 137  # ms offsets: millisecond precision matters
        user = "alice" if i % 2 else "bob"
        run_id = new_run(alpha, f"a-{i:02d}", start, user=user, tags={"team/owner": user})
        client.log_batch(
            run_id,
            params=[
                Param("lr", str(0.1 / i)),
                Param("depth", str(i)),
                Param("optimizer/name", "adam" if i % 3 else "sgd"),
            ],
            tags=[RunTag("stage", "baseline" if i < 4 else "tuned")],
            metrics=[
                Metric("loss", 1.0 / (step + i), start + 1000 * (step + 1), step)
                for step in range(5)
            ]
            + [
                Metric("val/acc", 0.5 + 0.05 * step + 0.01 * i, start + 1000 * (step + 1) + 7, step)
                for step in range(5)
            ],
        )
        client.set_terminated(run_id, "FINISHED", end_time=start + 10 * 60_000 + i)

    # FAILED and KILLED runs with a bit of data.
    start = BASE_MS + 10 * DAY_MS
    failed = new_run(alpha, "a-failed", start, user="alice")
    client.log_metric(failed, "loss", 3.25, timestamp=start + 500, step=0)
    client.log_param(failed, "lr", "10.0")
    client.set_terminated(failed, "FAILED", end_time=start + 2_000)

    start = BASE_MS + 11 * DAY_MS + 3 * HOUR_MS
    killed = new_run(alpha, "a-killed", start, user="bob")
    client.log_metric(killed, "loss", 0.75, timestamp=start + 500, step=0)
    client.log_metric(killed, "loss", 0.70, timestamp=start + 900, step=1)
    client.set_terminated(killed, "KILLED", end_time=start + 60_000)

    # RUNNING: never terminated, no params, no metrics (empty maps, null end_time).
    new_run(alpha, "a-running", BASE_MS + 12 * DAY_MS, user="alice")

    # A deleted run in an active experiment.
    start = BASE_MS + 12 * DAY_MS + 5 * HOUR_MS
    deleted = new_run(alpha, "a-deleted", start, user="bob")
    client.log_metric(deleted, "loss", 0.9, timestamp=start + 10, step=0)
    client.log_param(deleted, "lr", "0.5")
    client.set_tag(deleted, "reason", "bad seed")
    client.set_terminated(deleted, "FINISHED", end_time=start + 1_000)
    client.delete_run(deleted)

    # The edge cases, all in one run.
    start = BASE_MS + 13 * DAY_MS + 321
    special = new_run(alpha, "a-special", start, user="alice", tags={"mlflow.note.content": _MULTILINE})
    t = start + 1_000
    points = [
        # NaN in the middle of a history, and as the latest value of another key.
        ("nan_mid", 1.0, t, 0),
        ("nan_mid", float("nan"), t + 1, 1),
        ("nan_mid", 2.0, t + 2, 2),
        ("nan_last", 1.0, t, 0),
        ("nan_last", float("nan"), t + 1, 1),
        # ±inf, as histories and as latest values.
        ("pos_inf", 1.0, t, 0),
        ("pos_inf", float("inf"), t + 1, 1),
        ("neg_inf", 1.0, t, 0),
        ("neg_inf", float("-inf"), t + 1, 1),
        ("mixed_inf", float("-inf"), t, 0),
        ("mixed_inf", float("inf"), t + 1, 1),
        ("mixed_inf", 5.0, t + 2, 2),
        # Same step, different timestamps: the latest timestamp wins.
        ("same_step", 10.0, t, 3),
        ("same_step", 30.0, t + 20, 3),
        ("same_step", 20.0, t + 10, 3),
        # Same step and timestamp, different values: the largest value wins.
        ("same_step_ts", 1.5, t, 2),
        ("same_step_ts", 4.5, t, 2),
        ("same_step_ts", -2.0, t, 2),
        # An exact duplicate point (logged twice below), and a lower step logged later.
        ("dup", 7.0, t + 5, 1),
        ("dup", 6.0, t + 50, 0),
        # A key with "/" (nested folders in the file store), several steps.
        ("train/loss/epoch", 0.9, t, 0),
        ("train/loss/epoch", 0.6, t + 100, 1),
        ("train/loss/epoch", 0.4, t + 200, 2),
        ("train/loss/epoch", 0.3, t + 300, 3),
        # Negative and very large steps, zero and negative values.
        ("odd_steps", 0.0, t, -5),
        ("odd_steps", -1.25, t + 1, 2**40),
    ]
    for key, value, timestamp, step in points:
        client.log_metric(special, key, value, timestamp=timestamp, step=step)
    client.log_metric(special, "dup", 7.0, timestamp=t + 5, step=1)  # exact duplicate

    long_param = ("0123456789abcdef" * 1000)[: _max_param_value_length()]
    long_tag = ("ünï-" * 5000)[: _max_tag_value_length()]
    client.log_batch(
        special,
        params=[
            Param(LONG_KEY, "value of the longest key"),
            Param("long_value", long_param),
            Param("unicode", _UNICODE),
            Param("multi line", _MULTILINE),
            Param("model/encoder/layers", "12"),
            Param("empty", ""),
        ],
        tags=[
            RunTag(LONG_KEY, "tag of the longest key"),
            RunTag("long_tag", long_tag),
            RunTag("unicode", _UNICODE),
            RunTag("multi/line", _MULTILINE),
            RunTag("to_delete", "gone soon"),
        ],
    )
    client.delete_tag(special, "to_delete")
    client.set_tag(special, "unicode", _UNICODE + " (updated)")  # tags may be overwritten
    client.set_terminated(special, "FINISHED", end_time=start + 3_600_000)

    # A run created without any mlflow.user tag: the client reports user_id "unknown".
    start = BASE_MS + 14 * DAY_MS
    nouser = new_run(alpha, "a-nouser", start)
    client.log_metric(nouser, "loss", 0.5, timestamp=start + 1, step=0)
    client.set_terminated(nouser, "FINISHED", end_time=start + 2)

    # A run renamed after creation, and a run deleted then restored.
    start = BASE_MS + 15 * DAY_MS
    renamed = new_run(alpha, "a-tmpname", start, user="bob")
    client.update_run(renamed, name="a-renamed")
    runs["a-renamed"] = runs.pop("a-tmpname")
    client.set_terminated(renamed, "FINISHED", end_time=start + 5)
    restored = new_run(alpha, "a-restored", start + HOUR_MS, user="alice")
    client.log_param(restored, "lr", "0.2")
    client.delete_run(restored)
    client.restore_run(restored)

    # A longer history: 1500 points of one key, 300 of another (log_batch takes 1000 at most).
    start = BASE_MS + 16 * DAY_MS
    long_run = new_run(alpha, "a-long", start, user="alice")
    history = [Metric("loss", 1.0 / (1 + step), start + step * 10, step) for step in range(1500)]
    history += [Metric("lr", 0.1 * 0.99**step, start + step * 50, step * 5) for step in range(300)]
    for i in range(0, len(history), 1000):
        client.log_batch(long_run, metrics=history[i:i + 1000])
    client.set_terminated(long_run, "FINISHED", end_time=start + 20_000)

    # ---- ref-beta: fluent nested runs with dataset inputs, then client runs ----
    train_ds, test_ds = _datasets()
    with mlflow_tracking_uri(tracking_uri), _os_user("carol"):
        t = BASE_MS + 20 * DAY_MS
        with mlflow.start_run(experiment_id=beta, run_name="b-parent") as parent:
            runs["b-parent"] = parent.info.run_id
            mlflow.log_param("search", "grid")
            mlflow.log_metric("best/score", 0.8, step=0, timestamp=t)
            mlflow.log_metric("best/score", 0.9, step=1, timestamp=t + 1)
            mlflow.log_input(train_ds, context="training", tags={"split": "train", "ver": "1"})
            mlflow.log_input(test_ds)  # no context, no tags
            with mlflow.start_run(experiment_id=beta, run_name="b-child-1", nested=True) as c1:
                runs["b-child-1"] = c1.info.run_id
                mlflow.log_params({"lr": "0.01", "depth": "3"})
                for step in range(4):
                    mlflow.log_metric("loss", 1.0 - 0.2 * step, step=step, timestamp=t + step)
                mlflow.log_input(train_ds, context="training", tags={"split": "train"})
                mlflow.log_input(test_ds, context="evaluation")
            with mlflow.start_run(experiment_id=beta, run_name="b-child-2", nested=True) as c2:
                runs["b-child-2"] = c2.info.run_id
                mlflow.log_params({"lr": "0.1", "depth": "5"})
                mlflow.log_metric("loss", 0.33, step=0, timestamp=t + 10)
                # A metric linked to a dataset: the file store writes a 5-field line
                # ("timestamp value step dataset_name dataset_digest"), and mlflow also logs
                # the dataset as an input of the run (no context, no tags).
                mlflow.log_metric("eval/score", 0.7, step=0, timestamp=t + 11, dataset=train_ds)
                mlflow.log_metric("eval/score", 0.75, step=1, timestamp=t + 12)
                mlflow.set_tag("note", "diverged")
        client.delete_run(runs["b-child-2"])

    for i in range(1, 4):
        start = BASE_MS + (20 + i) * DAY_MS + i * 11
        run_id = new_run(beta, f"b-{i:02d}", start, user="bob" if i != 2 else "alice")
        for step in range(6):
            client.log_metric(run_id, "val/acc", 0.6 + 0.03 * step * i, timestamp=start + step * 60_000, step=step)
        client.log_param(run_id, "seed", str(40 + i))
        client.set_terminated(run_id, "FINISHED", end_time=start + 7 * 60_000)

    # ---- ref-gamma: a run, a deleted run, then the experiment itself is deleted ----
    for i, run_name in enumerate(("g-01", "g-02")):
        start = BASE_MS + 30 * DAY_MS + i * HOUR_MS
        run_id = new_run(gamma, run_name, start, user="alice")
        client.log_metric(run_id, "loss", 0.1 * (i + 1), timestamp=start + 5, step=0)
        client.log_param(run_id, "kind", "discarded")
        client.set_tag(run_id, "gamma/tag", f"g{i}")
        client.set_terminated(run_id, "FINISHED", end_time=start + 1_000)
    client.delete_run(runs["g-02"])
    with mlflow_tracking_uri(tracking_uri):
        mlflow.delete_experiment(gamma)

    return {"experiments": experiments, "runs": runs}


# One store of each kind per test process, even when these fixtures are registered twice (by
# tests/conftest.py and by a test module's own import): tests only read the stores.
_STORES: dict[str, str] = {}


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory) -> str:
    """URI of a SQLite MLflow store holding the reference data."""
    if "sqlite" not in _STORES:
        folder = tmp_path_factory.mktemp("sqlite-store")
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        log_reference_data(uri)
        _STORES["sqlite"] = uri
    return _STORES["sqlite"]


@pytest.fixture(scope="session")
def file_store(tmp_path_factory) -> str:
    """Path of an ``mlruns`` file store holding the reference data."""
    if "file" not in _STORES:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        folder = tmp_path_factory.mktemp("file-store") / "mlruns"
        log_reference_data(str(folder))
        _STORES["file"] = str(folder)
    return _STORES["file"]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL server on loopback: ``(host, port, user, password)``."""
    from support.postgres import running_postgres

    with running_postgres(str(tmp_path_factory.mktemp("postgres"))) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_store(postgres_server) -> str:
    """URI (``postgresql+psycopg://``) of a PostgreSQL MLflow store holding the reference data."""
    if "postgres" not in _STORES:
        from support.postgres import create_database

        uri = create_database(*postgres_server, "mlflow_reference")
        log_reference_data(uri)
        _STORES["postgres"] = uri
    return _STORES["postgres"]


@pytest.fixture(scope="session")
def mysql_server(tmp_path_factory):
    """A real MariaDB server on loopback: ``(host, port, user, password)``."""
    from support.mysql import running_mariadb

    with running_mariadb(str(tmp_path_factory.mktemp("mysql"))) as server:
        yield server


@pytest.fixture(scope="session")
def mysql_store(mysql_server) -> str:
    """URI (``mysql+pymysql://``) of a MariaDB MLflow store holding the reference data."""
    if "mysql" not in _STORES:
        from support.mysql import create_database

        uri = create_database(*mysql_server, "mlflow_reference")
        log_reference_data(uri)
        _STORES["mysql"] = uri
    return _STORES["mysql"]


@pytest.fixture(scope="session")
def reference_stores(sqlite_store, file_store, postgres_store) -> dict:
    """Every reference store: ``{"sqlite": uri, "file": path, "postgres": uri}``."""
    return {"sqlite": sqlite_store, "file": file_store, "postgres": postgres_store}


def new_store(kind: str, tmp_path, reference: bool = True) -> tuple[str, dict]:
    """A new "sqlite" or "file" store under ``tmp_path`` with the reference content (or three
    small runs): ``(tracking URI, manifest)``."""
    folder = tmp_path / f"store-{kind}"
    folder.mkdir()
    uri = f"sqlite:///{folder / 'mlflow.db'}" if kind == "sqlite" else str(folder / "mlruns")
    if reference:
        manifest = log_reference_data(uri)
    else:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment("small")
        manifest = {"experiments": {"small": experiment}, "runs": {}}
        for i in range(3):
            run = client.create_run(experiment, start_time=BASE_MS + i, run_name=f"s-{i}")
            client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1), timestamp=BASE_MS + 10, step=0)
            client.log_param(run.info.run_id, "i", str(i))
            client.set_terminated(run.info.run_id, "FINISHED", end_time=BASE_MS + 100)
            manifest["runs"][f"s-{i}"] = run.info.run_id
    return uri, manifest


def log_changes(uri: str, manifest: dict, *, over_rest: bool = False) -> None:
    """More logging with real mlflow into the reference store: new runs and points, tag changes,
    deletions, renames.

    ``over_rest``: the variant the tracking-server tests log through a server, without what
    REST cannot show a sync (a history point below a run's latest value, an exact duplicate
    point) and without the ``layers/n`` param and the experiment tag.
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = manifest["runs"]
    alpha = manifest["experiments"]["ref-alpha"]
    # A new run with history, params, tags.
    start = BASE_MS + 40 * 86_400_000
    new = client.create_run(alpha, start_time=start, run_name="a-new", tags={"mlflow.user": "dave"}).info.run_id
    client.log_batch(
        new,
        metrics=[Metric("loss", 1.0 / (s + 1), start + s, s) for s in range(20)] + [Metric("nan", math.nan, start, 0)],
        params=[Param("lr", "0.3")] + ([] if over_rest else [Param("layers/n", "4")]),
        tags=[RunTag("stage", "new")],
    )
    client.set_terminated(new, "FINISHED", end_time=start + 50)
    # The running run gets points (a lower step after a higher one, a NaN), then finishes.
    running = runs["a-running"]
    t = BASE_MS + 12 * 86_400_000
    for value, step, ts in ((0.5, 3, t + 1), (0.7, 1, t + 2), (math.nan, 4, t + 3)):
        client.log_metric(running, "loss", value, timestamp=ts, step=step)
    if not over_rest:
        client.log_metric(running, "loss", 0.5, timestamp=t + 1, step=3)  # exact duplicate point
    client.log_param(running, "late", "yes")
    client.set_terminated(running, "FAILED", end_time=t + 10)
    if not over_rest:  # an existing finished run: a point that does not change its latest value
        client.log_metric(runs["a-01"], "loss", 9.0, timestamp=BASE_MS + 1, step=-1)
    # Tags: changed, added, deleted.
    client.set_tag(runs["a-02"], "stage", "retuned")
    client.set_tag(runs["a-03"], "extra", "x")
    client.delete_tag(runs["a-04"], "stage")
    # Lifecycle: a run deleted, a deleted run restored.
    client.delete_run(runs["a-05"])
    client.restore_run(runs["a-deleted"])
    # Experiments: renamed, tagged, a new one.
    client.rename_experiment(manifest["experiments"]["ref-beta"], "ref-beta-renamed")
    if not over_rest:
        client.set_experiment_tag(alpha, "team", "vision-2")
    other = client.create_experiment("ref-delta")
    r = client.create_run(other, start_time=start, run_name="d-01").info.run_id
    client.log_metric(r, "acc", 0.1, timestamp=start, step=0)
