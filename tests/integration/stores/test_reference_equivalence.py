"""The ``experiments`` source answers as mlflow does, on real stores written by mlflow.

The reference stores (tests/support/stores.py) hold the same content in a SQLite store and in a
file store. Every table is compared, for both stores and every view type, with what the mlflow
client answers for the same store:

- ``runs`` with ``MlflowClient.search_runs`` (latest metrics, params, tags, run info),
- ``metrics`` with ``MlflowClient.get_metric_history`` for every run and key,
- ``experiments`` with ``MlflowClient.search_experiments``,
- ``params``, ``tags`` and ``inputs`` with ``MlflowClient.get_run``,

and then the two stores with each other (experiments matched by name, runs by run name).
``runs.parent_run_id`` must equal each run's ``mlflow.parentRunId`` tag as mlflow returns it:
on the reference stores (``b-parent`` and its ``mlflow.start_run(nested=True)`` children) and
on the nested runs of tests/support/nested_runs.py (a parameter search's parent and children,
three levels of nesting, a parent tag set or deleted afterwards) in a SQLite, file,
PostgreSQL and MariaDB store and over a tracking server's REST API.

Times: our columns are UTC timestamps; they are read back with ``unix_micros`` (independent of
the session time zone) and must be whole milliseconds equal to mlflow's epoch milliseconds.
NaN compares equal to NaN. Where the stores differ (±inf, experiment ids, duplicate metric
points) the difference is asserted explicitly, not skipped.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict

import pytest

from support.nested_runs import *  # noqa: F401,F403  (the session fixtures)
from support.nested_runs import PARENTS
from support.stores import (
    ACTIVE_EXPERIMENTS,
    DELETED_EXPERIMENT,
    EXPERIMENT_NAMES,
    LONG_KEY,
    WALL_CLOCK_RUNS,
)

# MariaDB: every comparison with mlflow in the slow tier; the SQLite comparison in the default one.
STORES = ("sqlite", "file", "postgres", pytest.param("mysql", marks=pytest.mark.slow))
SQL_STORES = ("sqlite", "postgres", "mysql")
VIEWS = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
SQL_MAX = 1.7976931348623157e308  # what SQL stores write for +inf (and its negative for -inf)
CONTEXT_TAG = "mlflow.data.context"
PARENT_TAG = "mlflow.parentRunId"

# The columns DESIGN.md fixes, in order.
COLUMNS = {
    "runs": ["run_id", "experiment_id", "metrics", "params", "tags", "start_time", "end_time",
             "status", "artifact_uri", "run_name", "user_id", "lifecycle_stage", "parent_run_id"],
    "metrics": ["experiment_id", "run_id", "key", "value", "step", "timestamp"],
    "params": ["experiment_id", "run_id", "key", "value"],
    "tags": ["experiment_id", "run_id", "key", "value"],
    "experiments": ["experiment_id", "name", "artifact_location", "lifecycle_stage",
                    "creation_time", "last_update_time", "tags"],
    "inputs": ["experiment_id", "run_id", "dataset_name", "dataset_digest", "dataset_source_type",
               "dataset_source", "dataset_schema", "dataset_profile", "context", "tags"],
}
TIME_COLUMNS = {"start_time", "end_time", "timestamp", "creation_time", "last_update_time"}


# --------------------------------------------------------------------------------------------
# helpers


class _NaN:
    """A hashable stand-in for NaN, equal to itself, so NaN points match in sets and dicts."""

    def __eq__(self, other):
        return isinstance(other, _NaN)

    def __hash__(self):
        return hash("NaN")

    def __repr__(self):
        return "NaN"


NAN = _NaN()


def nv(value):
    """Normalize a metric value for comparison: NaN becomes the matching sentinel."""
    if isinstance(value, float) and math.isnan(value):
        return NAN
    return value


def nmap(metrics: dict | None) -> dict:
    return {key: nv(value) for key, value in (metrics or {}).items()}


def to_ms(micros):
    """Our timestamp, read as epoch microseconds, in whole epoch milliseconds."""
    if micros is None:
        return None
    assert micros % 1000 == 0, f"timestamp {micros} us is not a whole millisecond"
    return micros // 1000


@pytest.fixture(scope="module", params=STORES)
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def uri(request, kind):
    return store_uri(request, kind)


def store_uri(request, kind: str) -> str:
    """The reference store of ``kind``; MariaDB only starts for the tests that ask for it."""
    if kind == "mysql":
        return request.getfixturevalue("mysql_store")
    return request.getfixturevalue("reference_stores")[kind]


@pytest.fixture(scope="module")
def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module", autouse=True)
def _no_experiment_env():
    # The no-path reads fall back on these (DESIGN): they must not be set for these tests.
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        assert not os.environ.get(name), f"{name} is set; unset it to run these tests"


def view_type(view: str):
    from mlflow.entities import ViewType

    return getattr(ViewType, view)


_READS: dict = {}


def read(spark, uri, table, view="ACTIVE_ONLY", path=None, **options):
    """Read ``table`` through the source (with further ``options``); rows as dicts, timestamps
    as epoch ms. Cached."""
    key = (uri, table, view, path, tuple(sorted(options.items())))
    if key not in _READS:
        from pyspark.sql import functions as F

        reader = (
            spark.read.format("experiments")
            .option("trackingUri", uri)
            .option("table", table)
            .option("viewType", view)
            .options(**options)
        )
        df = reader.load(path) if path is not None else reader.load()
        assert df.columns == COLUMNS[table], f"{table}: columns {df.columns}"
        selected = [
            F.unix_micros(F.col(c)).alias(c) if c in TIME_COLUMNS else F.col(c) for c in df.columns
        ]
        rows = []
        for row in df.select(*selected).collect():
            record = row.asDict(recursive=True)
            for column in TIME_COLUMNS & record.keys():
                record[column] = to_ms(record[column])
            rows.append(record)
        _READS[key] = rows
    return [dict(r) for r in _READS[key]]


def mlflow_experiments(client, view):
    out, token = [], None
    while True:
        page = client.search_experiments(view_type=view_type(view), max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def mlflow_runs(client, experiment_ids, view):
    out, token = [], None
    while True:
        page = client.search_runs(
            list(experiment_ids), run_view_type=view_type(view), max_results=1000, page_token=token
        )
        out.extend(page)
        token = page.token
        if not token:
            return out


def experiment_ids(client, view="ALL"):
    return [e.experiment_id for e in mlflow_experiments(client, view)]


def ids_by_name(client) -> dict:
    return {e.name: e.experiment_id for e in mlflow_experiments(client, "ALL")}


def all_runs(client):
    return mlflow_runs(client, experiment_ids(client, "ALL"), "ALL")


def expected_run(run) -> dict:
    info = run.info
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "metrics": nmap(run.data.metrics),
        "params": dict(run.data.params),
        "tags": dict(run.data.tags),
        "start_time": info.start_time,
        "end_time": info.end_time,
        "status": info.status,
        "artifact_uri": info.artifact_uri,
        "run_name": info.run_name,
        "user_id": info.user_id,
        "lifecycle_stage": info.lifecycle_stage,
        "parent_run_id": run.data.tags.get(PARENT_TAG),
    }


def actual_run(row) -> dict:
    row = dict(row)
    row["metrics"] = nmap(row["metrics"])
    row["params"] = dict(row["params"] or {})
    row["tags"] = dict(row["tags"] or {})
    return row


def assert_runs_equal(rows, runs, what):
    actual = [actual_run(r) for r in rows]
    ids = [r["run_id"] for r in actual]
    assert len(ids) == len(set(ids)), f"{what}: duplicate run ids {Counter(ids).most_common(3)}"
    expected = {r.info.run_id: expected_run(r) for r in runs}
    names = {r.info.run_id: r.info.run_name for r in runs}
    got = {r["run_id"]: r for r in actual}
    assert set(got) == set(expected), (
        f"{what}: runs differ; missing {sorted(names.get(i, i) for i in set(expected) - set(got))}, "
        f"extra {sorted(got[i]['run_name'] or i for i in set(got) - set(expected))}"
    )
    for run_id, want in expected.items():
        have = got[run_id]
        for column in COLUMNS["runs"]:
            assert have[column] == want[column], (
                f"{what}: run {names[run_id]!r} column {column}: got {have[column]!r}, "
                f"mlflow {want[column]!r}"
            )


# --------------------------------------------------------------------------------------------
# the reference data is what we think it is (guards the fixtures themselves)


@pytest.mark.parametrize("kind_", STORES)
def test_reference_stores_hold_the_cases(request, kind_):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store_uri(request, kind_))
    exps = {e.name: e for e in mlflow_experiments(client, "ALL")}
    assert set(EXPERIMENT_NAMES) <= set(exps)
    assert exps[DELETED_EXPERIMENT].lifecycle_stage == "deleted"
    runs = {r.info.run_name: r for r in all_runs(client)}
    assert {r.info.status for r in runs.values()} >= {"FINISHED", "FAILED", "KILLED", "RUNNING"}
    assert runs["a-running"].info.end_time is None
    assert {r.info.lifecycle_stage for r in runs.values()} == {"active", "deleted"}
    assert {r.info.user_id for r in runs.values()} >= {"alice", "bob", "carol", "unknown"}
    assert runs["b-child-1"].data.tags["mlflow.parentRunId"] == runs["b-parent"].info.run_id
    assert len(runs["a-special"].data.params["long_value"]) >= 6000
    assert LONG_KEY in runs["a-special"].data.params and len(LONG_KEY) == 250
    assert math.isnan(runs["a-special"].data.metrics["nan_last"])
    assert client.get_run(runs["b-parent"].info.run_id).inputs.dataset_inputs
    assert runs["a-renamed"].data.tags["mlflow.runName"] == "a-renamed"
    assert runs["a-restored"].info.lifecycle_stage == "active"
    assert len(client.get_metric_history(runs["a-long"].info.run_id, "loss")) == 1500
    # Deleting an experiment deletes its runs too, in both stores.
    assert {runs["g-01"].info.lifecycle_stage, runs["g-02"].info.lifecycle_stage} == {"deleted"}


# --------------------------------------------------------------------------------------------
# runs == search_runs


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("by", ["id", "name"])
def test_runs_by_experiment_equal_search_runs(spark, uri, client, view, by):
    ids = ids_by_name(client)
    wanted = [ids[name] for name in ACTIVE_EXPERIMENTS]
    path = ",".join(wanted) if by == "id" else ",".join(ACTIVE_EXPERIMENTS)
    rows = read(spark, uri, "runs", view, path)
    expected = mlflow_runs(client, wanted, view)
    assert expected, "the reference data has runs in every view type"
    assert_runs_equal(rows, expected, f"runs {view} load({path!r})")


@pytest.mark.parametrize("view", VIEWS)
def test_runs_without_path_equal_search_runs_over_admitted_experiments(spark, uri, client, view):
    # DESIGN: with no load path, every experiment the view type admits. For the run tables a
    # deleted run may sit in an active experiment, so DELETED_ONLY (like ALL) searches every
    # experiment; ACTIVE_ONLY searches the active ones. (mlflow.search_runs(
    # search_all_experiments=True) always searches only ACTIVE experiments, whatever the run
    # view type: it would miss g-01/g-02 under DELETED_ONLY and ALL.)
    searched = experiment_ids(client, "ACTIVE_ONLY" if view == "ACTIVE_ONLY" else "ALL")
    expected = mlflow_runs(client, searched, view)
    # Both stores mark an experiment's runs deleted when it is deleted, so this is also
    # mlflow's answer over every experiment of the store.
    assert {r.info.run_id for r in expected} == {
        r.info.run_id for r in mlflow_runs(client, experiment_ids(client, "ALL"), view)
    }
    assert_runs_equal(read(spark, uri, "runs", view), expected, f"runs {view} load()")


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("by", ["id", "name"])
def test_runs_of_deleted_experiment_equal_search_runs(spark, uri, client, view, by):
    # A deleted experiment is not unknown: named explicitly, it is read like mlflow's
    # search_runs(experiment_ids=[its id]) does.
    gamma = ids_by_name(client)[DELETED_EXPERIMENT]
    expected = mlflow_runs(client, [gamma], view)
    # mlflow: a deleted experiment's runs are all deleted; ACTIVE_ONLY finds none.
    assert len(expected) == (0 if view == "ACTIVE_ONLY" else 2)
    path = gamma if by == "id" else DELETED_EXPERIMENT
    if view == "ACTIVE_ONLY":
        # mlflow silently answers nothing; we say why
        with pytest.raises(Exception, match=r"is deleted and option 'viewType' is ACTIVE_ONLY"):
            read(spark, uri, "runs", view, path).collect()
        return
    assert_runs_equal(read(spark, uri, "runs", view, path), expected, f"runs {view} load({path!r})")


@pytest.mark.parametrize("view", VIEWS)
def test_runs_named_by_id_equal_search_runs_narrowed_to_them(spark, uri, client, view):
    # runIds (what an incremental sync reads): a few runs named are looked up by id; the answer
    # is mlflow's for the same experiments and view type, narrowed to those ids.
    ids = ids_by_name(client)
    wanted = [ids[name] for name in ACTIVE_EXPERIMENTS]
    by_name = {r.info.run_name: r.info.run_id for r in all_runs(client)}
    # live, deleted, deleted then restored, in the deleted experiment, and no run at all
    named = [by_name[n] for n in ("a-running", "b-child-2", "a-restored", "g-01")] + ["0" * 32]
    expected = [r for r in mlflow_runs(client, wanted, view) if r.info.run_id in named]
    assert expected, "the named runs hold some of every view type"
    rows = read(spark, uri, "runs", view, ",".join(wanted), runIds=",".join(named))
    assert_runs_equal(rows, expected, f"runs {view} runIds={len(named)} names")


def test_runs_by_mixed_id_and_name(spark, uri, client):
    ids = ids_by_name(client)
    path = f"{ids['ref-alpha']},ref-beta"
    expected = mlflow_runs(client, [ids["ref-alpha"], ids["ref-beta"]], "ALL")
    assert_runs_equal(read(spark, uri, "runs", "ALL", path), expected, f"runs ALL load({path!r})")


def test_runs_edge_values(spark, uri, kind, client):
    """The edge cases, spelled out (the generic comparisons above would pass on empty data)."""
    rows = {r["run_name"]: actual_run(r) for r in read(spark, uri, "runs", "ALL")}
    running = rows["a-running"]
    assert running["status"] == "RUNNING" and running["end_time"] is None
    assert running["metrics"] == {} and running["params"] == {}
    assert rows["a-failed"]["status"] == "FAILED" and rows["a-killed"]["status"] == "KILLED"
    assert rows["a-nouser"]["user_id"] == "unknown" and "mlflow.user" not in rows["a-nouser"]["tags"]
    assert rows["a-01"]["user_id"] == "alice" and rows["a-02"]["user_id"] == "bob"
    assert rows["b-parent"]["user_id"] == "carol"  # fluent run: LOGNAME/USER
    assert rows["b-child-1"]["tags"]["mlflow.parentRunId"] == rows["b-parent"]["run_id"]
    assert rows["b-child-1"]["parent_run_id"] == rows["b-child-2"]["parent_run_id"] == rows["b-parent"]["run_id"]
    assert rows["b-parent"]["parent_run_id"] is None and rows["a-01"]["parent_run_id"] is None
    special = rows["a-special"]
    # Latest value per key, as MLflow picks it: max by (step, timestamp, value).
    assert special["metrics"]["nan_mid"] == 2.0
    assert special["metrics"]["nan_last"] == NAN
    assert special["metrics"]["same_step"] == 30.0  # same step: latest timestamp
    assert special["metrics"]["same_step_ts"] == 4.5  # same step and timestamp: largest value
    assert special["metrics"]["dup"] == 7.0  # highest step wins over a later timestamp
    assert special["metrics"]["odd_steps"] == -1.25
    assert special["metrics"]["mixed_inf"] == 5.0
    inf = SQL_MAX if kind in SQL_STORES else math.inf
    assert special["metrics"]["pos_inf"] == inf and special["metrics"]["neg_inf"] == -inf
    assert len(special["params"]["long_value"]) == len(
        client.get_run(special["run_id"]).data.params["long_value"]
    ) >= 6000
    assert special["params"][LONG_KEY] == "value of the longest key"
    assert special["params"]["multi line"].count("\n") == 3
    assert special["params"]["empty"] == ""
    assert "to_delete" not in special["tags"]  # a deleted tag is gone
    assert special["tags"]["unicode"].endswith("🚀 (updated)")
    assert special["end_time"] - special["start_time"] == 3_600_000
    assert rows["a-01"]["start_time"] % 1000 == 137  # milliseconds survive
    assert rows["a-renamed"]["tags"]["mlflow.runName"] == "a-renamed"  # update_run(name=)
    assert rows["a-restored"]["lifecycle_stage"] == "active"
    assert rows["a-long"]["metrics"] == {"loss": 1.0 / 1500, "lr": 0.1 * 0.99**299}


# --------------------------------------------------------------------------------------------
# parent_run_id == the parent tag, on nested runs

NESTED_STORES = ("sqlite", "file", "postgres", "rest", pytest.param("mysql", marks=pytest.mark.slow))


@pytest.mark.parametrize("nested", NESTED_STORES)
def test_parent_run_id_equals_the_parent_tag_of_nested_runs(spark, request, nested):
    from mlflow.tracking import MlflowClient

    uri, ids = request.getfixturevalue("nested_server" if nested == "rest" else f"nested_{nested}_store")
    client = MlflowClient(tracking_uri=uri)
    runs = mlflow_runs(client, experiment_ids(client), "ALL")
    assert {r.info.run_name for r in runs} == set(PARENTS)
    rows = read(spark, uri, "runs", "ALL")
    # Every column as mlflow answers, parent_run_id being the run's mlflow.parentRunId tag.
    assert_runs_equal(rows, runs, f"nested runs ({nested})")
    # And what was logged: autologging-style children, three levels, a tag set and one deleted.
    names = {run_id: name for name, run_id in ids.items()}
    assert {r["run_name"]: names.get(r["parent_run_id"]) for r in rows} == PARENTS
    active = read(spark, uri, "runs", "ACTIVE_ONLY")
    assert sorted(r["run_name"] for r in active if r["parent_run_id"] == ids["grid-search"]) == ["grid-0", "grid-1", "grid-2"]


# --------------------------------------------------------------------------------------------
# metrics == get_metric_history


def metric_points(rows):
    """Our metrics rows grouped by (run_id, key) as a list of (step, timestamp, value)."""
    grouped = defaultdict(list)
    for r in rows:
        grouped[(r["run_id"], r["key"])].append((r["step"], r["timestamp"], nv(r["value"])))
    return grouped


@pytest.mark.parametrize("view", VIEWS)
def test_metrics_equal_metric_history(spark, uri, client, view):
    rows = read(spark, uri, "metrics", view)
    runs = {r.info.run_id: r for r in all_runs(client)}
    admitted = {r.info.run_id for r in mlflow_runs(client, experiment_ids(client, "ALL"), view)}
    for r in rows:
        assert r["run_id"] in admitted, f"metrics {view}: run {r['run_id']} is not in the view"
        assert r["experiment_id"] == runs[r["run_id"]].info.experiment_id
    got = metric_points(rows)
    expected = {}
    for run_id in admitted:
        for key in runs[run_id].data.metrics:
            history = client.get_metric_history(run_id, key)
            expected[(run_id, key)] = {(m.step, m.timestamp, nv(m.value)) for m in history}
    assert set(got) == set(expected), (
        f"metrics {view}: (run, key) pairs differ; missing "
        f"{sorted((runs[r].info.run_name, k) for r, k in set(expected) - set(got))}, extra "
        f"{sorted((runs[r].info.run_name, k) for r, k in set(got) - set(expected))}"
    )
    for (run_id, key), want in expected.items():
        have = got[(run_id, key)]
        name = runs[run_id].info.run_name
        dups = [p for p, n in Counter(have).items() if n > 1]
        assert not dups, f"metrics {view}: run {name!r} key {key!r}: duplicate points {dups}"
        assert set(have) == want, (
            f"metrics {view}: run {name!r} key {key!r}: got {sorted(have, key=str)}, "
            f"mlflow {sorted(want, key=str)}"
        )


def test_metrics_by_experiment_path(spark, uri, client):
    alpha = ids_by_name(client)["ref-alpha"]
    rows = read(spark, uri, "metrics", "ACTIVE_ONLY", "ref-alpha")
    runs = mlflow_runs(client, [alpha], "ACTIVE_ONLY")
    expected = Counter()
    for run in runs:
        for key in run.data.metrics:
            expected[(run.info.run_id, key)] += len(
                {(m.step, m.timestamp, nv(m.value)) for m in client.get_metric_history(run.info.run_id, key)}
            )
    assert {r["experiment_id"] for r in rows} == {alpha}
    assert Counter((r["run_id"], r["key"]) for r in rows) == expected


def test_metric_duplicates_nan_and_inf(spark, uri, kind, client):
    """Duplicates appear once; NaN kept; ±inf as the store holds them."""
    runs = {r.info.run_name: r.info.run_id for r in all_runs(client)}
    special = runs["a-special"]
    got = metric_points(r for r in read(spark, uri, "metrics", "ALL") if r["run_id"] == special)
    history = client.get_metric_history(special, "dup")
    # The file store keeps both lines of an exact duplicate and mlflow returns both; the SQL
    # store's primary key keeps one. Our table has it once for both stores.
    assert len(history) == (3 if kind == "file" else 2)
    assert len(got[(special, "dup")]) == 2
    assert [p[2] for p in sorted(got[(special, "nan_mid")])] == [1.0, NAN, 2.0]
    inf = SQL_MAX if kind in SQL_STORES else math.inf
    assert sorted(got[(special, "mixed_inf")]) == [
        (0, sorted(got[(special, "mixed_inf")])[0][1], -inf),
        (1, sorted(got[(special, "mixed_inf")])[1][1], inf),
        (2, sorted(got[(special, "mixed_inf")])[2][1], 5.0),
    ]
    assert sorted(v for _, _, v in got[(special, "same_step_ts")]) == [-2.0, 1.5, 4.5]
    assert {s for s, _, _ in got[(special, "odd_steps")]} == {-5, 2**40}
    assert len(got[(special, "train/loss/epoch")]) == 4
    everything = metric_points(read(spark, uri, "metrics", "ALL"))
    assert len(everything[(runs["a-long"], "loss")]) == 1500
    assert len(everything[(runs["a-long"], "lr")]) == 300
    # Logged with dataset=: a 5-field line in the file store, a plain row in SQL.
    assert sorted(v for _, _, v in everything[(runs["b-child-2"], "eval/score")]) == [0.7, 0.75]


# --------------------------------------------------------------------------------------------
# experiments == search_experiments


def expected_experiment(e) -> dict:
    return {
        "experiment_id": e.experiment_id,
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": dict(e.tags),
    }


def assert_experiments_equal(rows, experiments, what):
    got = {r["experiment_id"]: {**r, "tags": dict(r["tags"] or {})} for r in rows}
    assert len(got) == len(rows), f"{what}: duplicate experiment ids"
    want = {e.experiment_id: expected_experiment(e) for e in experiments}
    assert set(got) == set(want), f"{what}: ids {sorted(got)} != mlflow {sorted(want)}"
    for experiment_id, expected in want.items():
        for column in COLUMNS["experiments"]:
            assert got[experiment_id][column] == expected[column], (
                f"{what}: experiment {expected['name']!r} column {column}: got "
                f"{got[experiment_id][column]!r}, mlflow {expected[column]!r}"
            )


@pytest.mark.parametrize("view", VIEWS)
def test_experiments_equal_search_experiments(spark, uri, client, view):
    expected = mlflow_experiments(client, view)
    assert expected
    assert_experiments_equal(read(spark, uri, "experiments", view), expected, f"experiments {view}")


@pytest.mark.parametrize("view", VIEWS)
def test_experiments_by_path(spark, uri, client, view):
    # A load path narrows the table to the named experiments that the view type admits.
    path = f"ref-alpha,{DELETED_EXPERIMENT}"
    expected = [e for e in mlflow_experiments(client, view) if e.name in ("ref-alpha", DELETED_EXPERIMENT)]
    if view == "ACTIVE_ONLY":
        # naming a deleted experiment under the default view type is an error that says so
        with pytest.raises(Exception, match=r"is deleted and option 'viewType' is ACTIVE_ONLY"):
            read(spark, uri, "experiments", view, path).collect()
        return
    assert_experiments_equal(
        read(spark, uri, "experiments", view, path), expected, f"experiments {view} load({path!r})"
    )


# --------------------------------------------------------------------------------------------
# params, tags == get_run


@pytest.mark.parametrize("table", ["params", "tags"])
@pytest.mark.parametrize("view", VIEWS)
def test_params_and_tags_equal_get_run(spark, uri, client, table, view):
    admitted = mlflow_runs(client, experiment_ids(client, "ALL"), view)
    rows = read(spark, uri, table, view)
    pairs = Counter((r["run_id"], r["key"]) for r in rows)
    assert all(n == 1 for n in pairs.values()), f"{table} {view}: duplicate keys"
    got = defaultdict(dict)
    for r in rows:
        got[r["run_id"]][r["key"]] = r["value"]
    by_id = {r.info.run_id: r for r in admitted}
    assert set(got) <= set(by_id), f"{table} {view}: rows of runs outside the view"
    for run_id, run in by_id.items():
        data = client.get_run(run_id).data
        want = dict(data.params if table == "params" else data.tags)
        assert got.get(run_id, {}) == want, f"{table} {view}: run {run.info.run_name!r} differs"
    for r in rows:
        assert r["experiment_id"] == by_id[r["run_id"]].info.experiment_id
    assert rows, f"{table} {view}: the reference data has {table} in every view"


# --------------------------------------------------------------------------------------------
# inputs == get_run(...).inputs.dataset_inputs


def input_record(name, digest, source_type, source, schema, profile, context, tags) -> tuple:
    tags = dict(tags or {})
    # DESIGN puts the mlflow.data.context tag in its own column; whether the tags map repeats
    # it is not part of the contract, but if it does it must agree with the column.
    if CONTEXT_TAG in tags:
        assert tags.pop(CONTEXT_TAG) == context
    return (name, digest, source_type, source, schema, profile, context, frozenset(tags.items()))


@pytest.mark.parametrize("view", VIEWS)
def test_inputs_equal_get_run(spark, uri, client, view):
    admitted = {r.info.run_id: r for r in mlflow_runs(client, experiment_ids(client, "ALL"), view)}
    rows = read(spark, uri, "inputs", view)
    got = defaultdict(Counter)
    for r in rows:
        assert r["run_id"] in admitted
        assert r["experiment_id"] == admitted[r["run_id"]].info.experiment_id
        got[r["run_id"]][input_record(
            r["dataset_name"], r["dataset_digest"], r["dataset_source_type"], r["dataset_source"],
            r["dataset_schema"], r["dataset_profile"], r["context"], r["tags"],
        )] += 1
    expected = {}
    for run_id in admitted:
        inputs = client.get_run(run_id).inputs.dataset_inputs
        if not inputs:
            continue
        counter = Counter()
        for di in inputs:
            tags = {t.key: t.value for t in di.tags}
            d = di.dataset
            counter[input_record(d.name, d.digest, d.source_type, d.source, d.schema, d.profile,
                                 tags.get(CONTEXT_TAG), tags)] += 1
        expected[run_id] = counter
    assert {admitted[r].info.run_name for r in got} == {admitted[r].info.run_name for r in expected}
    for run_id, want in expected.items():
        assert got[run_id] == want, f"inputs {view}: run {admitted[run_id].info.run_name!r}"
    # The cases: with context and tags, without context, a dataset shared by two runs, and
    # (b-child-2, deleted) the input mlflow logs for a metric logged with dataset=.
    contexts = Counter(r["context"] for r in rows)
    expected_contexts = {
        "ACTIVE_ONLY": {"training": 2, "evaluation": 1, None: 1},
        "DELETED_ONLY": {None: 1},
        "ALL": {"training": 2, "evaluation": 1, None: 2},
    }[view]
    assert contexts == expected_contexts


# --------------------------------------------------------------------------------------------
# SQLite store vs file store: the same content, read through the source


def _names(spark, uri):
    experiments = {r["experiment_id"]: r["name"] for r in read(spark, uri, "experiments", "ALL")}
    runs = {r["run_id"]: r["run_name"] for r in read(spark, uri, "runs", "ALL")}
    return experiments, runs


def _normalized(spark, uri, table, kind):
    """Rows of ``table`` with ids replaced by names, store-specific values made comparable.

    Returns (rows as a Counter of hashable tuples, number of ±inf values mapped).
    """
    experiments, runs = _names(spark, uri)
    inf_mapped = 0

    def value(v):
        nonlocal inf_mapped
        v = nv(v)
        # Deliberate difference: the file store keeps ±inf, SQL stores write ±SQL_MAX. Map the
        # file store's to the SQL value and count them, so the difference is asserted.
        if kind == "file" and isinstance(v, float) and math.isinf(v):
            inf_mapped += 1
            return math.copysign(SQL_MAX, v)
        return v

    out = Counter()
    for r in read(spark, uri, table, "ALL"):
        r = dict(r)
        if "experiment_id" in r:
            r["experiment_id"] = experiments[r["experiment_id"]]
        if "run_id" in r:
            r["run_id"] = runs[r["run_id"]]
        if table == "runs":
            r["metrics"] = tuple(sorted((k, value(v)) for k, v in (r["metrics"] or {}).items()))
            tags = dict(r["tags"] or {})
            if "mlflow.parentRunId" in tags:
                tags["mlflow.parentRunId"] = runs[tags["mlflow.parentRunId"]]
            if r["parent_run_id"] is not None:
                r["parent_run_id"] = runs[r["parent_run_id"]]
            r["tags"] = tuple(sorted(tags.items()))
            r["params"] = tuple(sorted((r["params"] or {}).items()))
            r["artifact_uri"] = r["artifact_uri"] is not None  # paths differ: presence only
            if r["run_id"] in WALL_CLOCK_RUNS:  # fluent runs: wall-clock times, presence only
                r["start_time"] = r["start_time"] is not None
                r["end_time"] = r["end_time"] is not None
        elif table == "metrics":
            r["value"] = value(r["value"])
        elif table == "tags":
            if r["key"] == "mlflow.parentRunId":
                r["value"] = runs[r["value"]]
        elif table == "experiments":
            r["experiment_id"] = r["name"]
            r["artifact_location"] = r["artifact_location"] is not None
            r["creation_time"] = r["creation_time"] is not None  # wall clock at creation
            r["last_update_time"] = r["last_update_time"] is not None
            r["tags"] = tuple(sorted((r["tags"] or {}).items()))
        elif table == "inputs":
            r["tags"] = tuple(sorted((r["tags"] or {}).items()))
        out[tuple(r[c] for c in COLUMNS[table])] += 1
    return out, inf_mapped


@pytest.mark.parametrize("other", ["file", "postgres", "mysql"])
@pytest.mark.parametrize("table", ["runs", "metrics", "params", "tags", "experiments", "inputs"])
def test_every_store_reads_the_same_as_sqlite(spark, request, table, other):
    sqlite_rows, sqlite_inf = _normalized(spark, store_uri(request, "sqlite"), table, "sqlite")
    other_rows, other_inf = _normalized(spark, store_uri(request, other), table, other)
    assert sqlite_rows, f"{table}: no rows"
    assert sqlite_inf == 0
    if table in ("runs", "metrics") and other == "file":
        # a-special: pos_inf, neg_inf latest (runs); pos_inf, neg_inf, mixed_inf x2 (metrics)
        assert other_inf == (2 if table == "runs" else 4)
    only_sqlite = sqlite_rows - other_rows
    only_other = other_rows - sqlite_rows
    assert not only_sqlite and not only_other, (
        f"{table}: only in sqlite {list(only_sqlite)[:5]}; only in {other} {list(only_other)[:5]}"
    )


def test_experiment_ids_differ_by_store(spark, reference_stores):
    """Deliberate difference: SQL ids count up from 0; file-store ids are 18-digit strings."""
    sqlite_ids = {r["name"]: r["experiment_id"] for r in read(spark, reference_stores["sqlite"], "experiments", "ALL")}
    file_ids = {r["name"]: r["experiment_id"] for r in read(spark, reference_stores["file"], "experiments", "ALL")}
    assert set(sqlite_ids) == set(file_ids) == {"Default", *EXPERIMENT_NAMES}
    assert sqlite_ids["Default"] == file_ids["Default"] == "0"
    assert sorted(sqlite_ids[n] for n in EXPERIMENT_NAMES) == ["1", "2", "3"]
    for name in EXPERIMENT_NAMES:
        assert file_ids[name].isdigit() and len(file_ids[name]) == 18, file_ids[name]


def test_infinity_differs_by_store(spark, reference_stores):
    """Deliberate difference: the file store keeps ±inf, SQL stores clamp to ±1.797e308."""
    for kind, expected in (("sqlite", SQL_MAX), ("postgres", SQL_MAX), ("file", math.inf)):
        rows = read(spark, reference_stores[kind], "metrics", "ALL")
        values = {r["value"] for r in rows if r["key"] in ("pos_inf", "neg_inf", "mixed_inf")}
        assert expected in values and -expected in values, (kind, values)
        other = math.inf if kind in SQL_STORES else SQL_MAX
        assert other not in values and -other not in values, (kind, values)
