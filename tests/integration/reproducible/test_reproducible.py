"""Reproducible training inputs (pyspark_experiments.reproducible) on real Spark, Delta and mlflow.

The same data is built through different routes (1, 7 and 200 input partitions; a shuffled
order; Delta files appended in different orders; AQE on and off; different shuffle partition
counts) and every route must give the same rows in the same partitions in the same order.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from pyspark.sql import functions as F

from pyspark_experiments.reproducible import (
    TAG_PREFIX,
    PartitionFingerprint,
    assign_split,
    content_fingerprint,
    deterministic_layout,
    layout_fingerprint,
    log_training_input,
    partition_fingerprints,
    read_pinned,
    stable_shard,
    stable_split,
)
from support.paths import REPO

ROWS = 3000
KEYS = ["user_id"]
PARTITIONS = 5
ROOT = REPO


@contextlib.contextmanager
def conf(spark, **settings):
    """Set session settings and restore them afterwards: the session is shared with the other
    test modules."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    try:
        for key, value in settings.items():
            spark.conf.set(key, value)
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def settings(**kwargs):
    """Spark settings from keyword arguments: ``spark__sql__x="1"`` is ``spark.sql.x``."""
    return {key.replace("__", "."): value for key, value in kwargs.items()}


def make_data(spark, partitions: int = 4, rows: int = ROWS):
    """Deterministic data: a non-unique key (with nulls), exact duplicate rows, doubles with
    -0.0, 0.0, NaN and nulls, strings with nulls, a map, an array and a timestamp."""
    base = spark.range(0, rows, 1, partitions)
    dup = spark.range(0, rows, 50, partitions)  # every 50th row appears twice
    df = base.unionByName(dup)
    x = (
        F.when(F.col("id") % 17 == 0, F.lit(-0.0))
        .when(F.col("id") % 17 == 1, F.lit(0.0))
        .when(F.col("id") % 17 == 2, F.lit(float("nan")))
        .when(F.col("id") % 17 == 3, F.lit(None).cast("double"))
        .otherwise((F.col("id") % 23).cast("double") / 4)
    )
    return df.select(
        F.when(F.col("id") % 97 == 0, F.lit(None)).otherwise(F.col("id") % 41).alias("user_id"),
        (F.col("id") % 7).alias("item"),  # (user_id, item) repeats: the key is not unique
        x.alias("x"),
        F.when(F.col("id") % 5 == 0, F.lit(None))
        .otherwise(F.concat(F.lit("s"), (F.col("id") % 3).cast("string")))
        .alias("s"),
        F.create_map(F.lit("a"), F.col("id") % 2, F.lit("b"), F.col("id") % 3).alias("m"),
        F.array(F.col("id") % 2, F.lit(None).cast("long")).alias("arr"),
        F.timestamp_micros((F.col("id") % 11) * 1_000_003).alias("ts"),
        (F.col("id") % 2).cast("int").alias("label"),
    )


def rows_by_partition(df):
    """Every row with its partition id, in partition order then row order, as comparable text
    (repr tells -0.0 from 0.0 and makes NaN equal to NaN)."""
    tagged = df.select(F.spark_partition_id().alias("__p"), *[F.col(c) for c in df.columns])
    return [repr(tuple(r)) for r in tagged.collect()]


@pytest.fixture(scope="module")
def reference(spark):
    laid = deterministic_layout(make_data(spark, 4), KEYS, PARTITIONS)
    return {
        "partitions": partition_fingerprints(laid),
        "rows": rows_by_partition(laid),
        "content": content_fingerprint(make_data(spark, 4)),
    }


def check_route(df, reference):
    laid = deterministic_layout(df, KEYS, PARTITIONS)
    assert partition_fingerprints(laid) == reference["partitions"]
    assert rows_by_partition(laid) == reference["rows"]
    assert content_fingerprint(df) == reference["content"]


# ---------------------------------------------------------------------------------------------
# The layout
# ---------------------------------------------------------------------------------------------


def test_reference_layout_is_hash_partitioned_and_sorted(spark, reference):
    laid = deterministic_layout(make_data(spark, 4), KEYS, PARTITIONS)
    assert laid.rdd.getNumPartitions() == PARTITIONS
    assert laid.columns == make_data(spark, 1).columns
    assert [p.partition for p in reference["partitions"]] == list(range(PARTITIONS))
    assert sum(p.rows for p in reference["partitions"]) == ROWS + ROWS // 50
    # Partition = pmod(murmur3(keys), n), as repartition(n, *keys) places it.
    mismatched = laid.where(
        F.spark_partition_id() != F.expr(f"pmod(hash(user_id), {PARTITIONS})")
    ).count()
    assert mismatched == 0
    # Within a partition: sorted by the key (nulls first).
    rows = laid.select(F.spark_partition_id().alias("p"), "user_id").collect()
    for p in range(PARTITIONS):
        keys = [r["user_id"] for r in rows if r["p"] == p]
        assert keys == sorted(keys, key=lambda k: (k is not None, k))


@pytest.mark.parametrize("partitions", [1, 7, pytest.param(200, marks=pytest.mark.slow)])
def test_same_layout_from_1_7_200_input_partitions(spark, reference, partitions):
    check_route(make_data(spark, partitions), reference)


def test_same_layout_from_shuffled_input(spark, reference):
    shuffled = make_data(spark, 3).orderBy(F.rand(seed=11)).repartition(6)
    check_route(shuffled, reference)


@pytest.mark.parametrize(
    "session_settings",
    [
        settings(spark__sql__adaptive__enabled="true", spark__sql__shuffle__partitions="3"),
        settings(spark__sql__adaptive__enabled="false", spark__sql__shuffle__partitions="50"),
    ],
    ids=["aqe-on-3-shuffle-partitions", "aqe-off-50-shuffle-partitions"],
)
def test_same_layout_under_aqe_and_shuffle_partitions(spark, reference, session_settings):
    with conf(spark, **session_settings):
        # A route that itself shuffles under these settings (AQE may coalesce this one).
        shuffled = make_data(spark, 7).repartition("item", "s")
        check_route(shuffled, reference)


@pytest.mark.slow
def test_same_layout_from_delta_files_written_in_different_orders(spark, reference, tmp_path):
    chunk_of_row = F.pmod(F.xxhash64("user_id", "item", "x"), F.lit(3))
    df = make_data(spark, 4).withColumn("chunk", chunk_of_row)
    forward, backward = str(tmp_path / "forward"), str(tmp_path / "backward")
    for path, order in ((forward, range(3)), (backward, reversed(range(3)))):
        for chunk in order:
            part = df.where(F.col("chunk") == chunk).drop("chunk")
            part = part.repartition(1 + chunk) if path == forward else part.coalesce(1)
            part.write.format("delta").mode("append").save(path)
    with conf(spark, **settings(spark__sql__files__maxPartitionBytes="4096")):
        for path in (forward, backward):
            pinned, version = read_pinned(spark, path)
            assert version == 2
            check_route(pinned, reference)


def test_ties_between_minus_zero_and_zero_are_ordered(spark):
    rows = [(1, -0.0), (1, 0.0), (1, float("nan")), (1, None), (1, 0.0)]
    orders = [rows, list(reversed(rows)), rows[2:] + rows[:2]]
    results = []
    for order in orders:
        df = spark.createDataFrame(order, "k long, x double")
        laid = deterministic_layout(df.repartition(3), "k", 2)
        results.append([repr(r["x"]) for r in laid.collect()])
    assert results[0] == results[1] == results[2]
    assert results[0] == ["None", "-0.0", "0.0", "0.0", "nan"]


def test_collated_strings_and_unsortable_columns(spark):
    # 'A' and 'a' are equal under UTF8_LCASE; maps and variants cannot be sorted by Spark.
    query = (
        "SELECT * FROM VALUES "
        "('A' COLLATE UTF8_LCASE, map('b', 1, 'a', 2), parse_json('{\"z\": 1, \"y\": [1, 2]}')),"
        "('a' COLLATE UTF8_LCASE, map('a', 2, 'b', 1), parse_json('{\"z\": 2}')),"
        "('a' COLLATE UTF8_LCASE, map('a', 1), parse_json('[1, 2]'))"
        " AS t(s, m, v)"
    )
    df = spark.sql(query)
    results = set()
    for route in (df, df.repartition(3), df.orderBy(F.col("s").cast("binary").desc()).coalesce(1)):
        laid = deterministic_layout(route, ["s"], 2)
        results.add(tuple(repr((r["s"], r["m"], r["v"].toJson())) for r in laid.collect()))
    assert len(results) == 1
    # A map key is hashed and sorted by its sorted entries.
    laid_by_map = deterministic_layout(df, ["m", "v"], 2)
    assert laid_by_map.count() == 3
    assert content_fingerprint(laid_by_map) == content_fingerprint(df.repartition(2))


# ---------------------------------------------------------------------------------------------
# Fingerprints
# ---------------------------------------------------------------------------------------------


def test_content_fingerprint_tells_values_apart(spark):
    def fp(rows, schema):
        return content_fingerprint(spark.createDataFrame(rows, schema))

    schema = "a long, b long"
    assert fp([(None, 1)], schema) != fp([(1, None)], schema)  # xxhash64 alone skips nulls
    assert fp([(1, 2), (3, 4)], schema) == fp([(3, 4), (1, 2)], schema)
    assert fp([(1, 2), (1, 2)], schema) != fp([(1, 2)], schema)  # a multiset: duplicates count
    assert fp([(1, 2)], schema) != fp([(1, 2)], "a long, c long")  # names count
    assert fp([(1, 2)], schema) != fp([(1, 2)], "a int, b long")  # types count
    assert fp([(-0.0,)], "x double") != fp([(0.0,)], "x double")
    assert fp([([None, 1],)], "v array<long>") != fp([([1, None],)], "v array<long>")
    assert fp([], schema) != fp([], "a long")
    # Column order does not matter; map entry order does not either.
    df = spark.createDataFrame([(1, 2)], schema)
    assert content_fingerprint(df) == content_fingerprint(df.select("b", "a"))
    maps = spark.sql("SELECT map('a', 1, 'b', 2) AS m")
    reordered = spark.sql("SELECT map('b', 2, 'a', 1) AS m")
    assert content_fingerprint(maps) == content_fingerprint(reordered)


def test_fingerprints_do_not_depend_on_the_session_time_zone(spark):
    df = spark.sql(
        "SELECT TIMESTAMP '2024-03-10 01:30:00.123456 UTC' AS t, "
        "TIMESTAMP_NTZ '2024-03-10 01:30:00.654321' AS n, "
        "array(named_struct('t', TIMESTAMP '2024-03-10 01:30:00.123456 UTC', "
        "'n', TIMESTAMP_NTZ '2024-03-10 01:30:00.000001', 'd', DATE '2024-03-10')) AS nested"
    )
    results = set()
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        with conf(spark, **{"spark.sql.session.timeZone": zone}):
            results.add((content_fingerprint(df), layout_fingerprint(df.coalesce(1))))
    assert len(results) == 1
    # Microseconds count (to_json alone would keep milliseconds only).
    other = df.withColumn(
        "nested",
        F.array(
            F.struct(
                F.lit("2024-03-10 01:30:00.123457").cast("timestamp").alias("t"),
                F.lit("2024-03-10 01:30:00.000001").cast("timestamp_ntz").alias("n"),
                F.lit("2024-03-10").cast("date").alias("d"),
            )
        ),
    )
    with conf(spark, **{"spark.sql.session.timeZone": "UTC"}):
        assert content_fingerprint(other) != content_fingerprint(df)


def test_partition_fingerprints_are_order_sensitive(spark):
    df = spark.range(0, 500, 1, 1).withColumn("x", F.col("id") * 2)
    ascending = df.sortWithinPartitions("id")
    descending = df.sortWithinPartitions(F.col("id").desc())
    a, d = partition_fingerprints(ascending), partition_fingerprints(descending)
    assert [(p.partition, p.rows) for p in a] == [(p.partition, p.rows) for p in d] == [(0, 500)]
    assert a[0].fingerprint != d[0].fingerprint
    assert layout_fingerprint(ascending) != layout_fingerprint(descending)
    assert content_fingerprint(ascending) == content_fingerprint(descending)
    assert isinstance(a[0], PartitionFingerprint) and len(a[0].fingerprint) == 32
    # Empty partitions are listed; Arrow batch size does not change a fingerprint.
    laid = deterministic_layout(df.limit(3), "id", 8)
    listed = partition_fingerprints(laid)
    assert [p.partition for p in listed] == list(range(8))
    assert sum(p.rows for p in listed) == 3
    with conf(spark, **{"spark.sql.execution.arrow.maxRecordsPerBatch": "7"}):
        assert partition_fingerprints(ascending) == a


# ---------------------------------------------------------------------------------------------
# Splits and shards
# ---------------------------------------------------------------------------------------------


def ids(df):
    return sorted(r["id"] for r in df.select("id").collect())


def test_random_split_changes_with_layout_and_stable_split_does_not(spark):
    data = spark.range(0, 2000, 1, 1).withColumn("v", F.col("id") % 13)
    one, seven = data, data.repartition(7)
    random_one = ids(one.randomSplit([0.7, 0.3], seed=11)[0])
    random_seven = ids(seven.randomSplit([0.7, 0.3], seed=11)[0])
    assert random_one != random_seven
    splits_one = stable_split(one, ["id"], [0.7, 0.2, 0.1], seed=11)
    splits_seven = stable_split(seven, ["id"], [0.7, 0.2, 0.1], seed=11)
    parts = [ids(s) for s in splits_one]
    assert parts == [ids(s) for s in splits_seven]
    # Disjoint, covering, about the weights; another seed gives another split.
    assert sorted(sum(parts, [])) == list(range(2000))
    assert [abs(len(p) / 2000 - w) < 0.05 for p, w in zip(parts, [0.7, 0.2, 0.1])] == [True] * 3
    assert ids(stable_split(one, ["id"], [0.7, 0.2, 0.1], seed=12)[0]) != parts[0]


def test_split_keeps_keys_together_and_names_splits(spark):
    df = make_data(spark, 7)
    marked = assign_split(df, ["user_id"], {"train": 0.8, "test": 0.2}, seed=3)
    per_key = marked.groupBy("user_id").agg(F.countDistinct("split").alias("n")).collect()
    assert {r["n"] for r in per_key} == {1}
    parts = stable_split(df, "user_id", {"train": 0.8, "test": 0.2}, seed=3)
    assert sorted(parts) == ["test", "train"]
    assert parts["train"].count() + parts["test"].count() == ROWS + ROWS // 50
    same = stable_split(make_data(spark, 200), "user_id", {"train": 0.8, "test": 0.2}, seed=3)
    assert content_fingerprint(same["test"]) == content_fingerprint(parts["test"])


@pytest.mark.parametrize("balanced", [False, True], ids=["hash", "balanced"])
def test_shards_are_disjoint_cover_and_stable(spark, balanced):
    world = 4
    routes = [spark.range(0, 1001, 1, 1), spark.range(0, 1001, 1, 9).orderBy(F.rand(seed=5))]
    results = []
    for route in routes:
        with conf(spark, **settings(spark__sql__adaptive__enabled="false" if results else "true")):
            shards = [stable_shard(route, "id", r, world, balanced=balanced) for r in range(world)]
            results.append([[r["id"] for r in s.collect()] for s in shards])
    first, second = results
    if balanced:
        assert first == second  # same rows, same order
    else:
        assert [sorted(s) for s in first] == [sorted(s) for s in second]
    flat = sorted(sum(first, []))
    assert flat == list(range(1001))  # disjoint and covering
    sizes = [len(s) for s in first]
    if balanced:
        assert max(sizes) - min(sizes) <= 1
    else:
        assert min(sizes) > 150


# ---------------------------------------------------------------------------------------------
# Argument errors
# ---------------------------------------------------------------------------------------------


def test_clear_errors(spark, tmp_path):
    df = spark.range(10).withColumn("v", F.col("id") % 2)
    with pytest.raises(ValueError, match="unknown key column 'nope'"):
        deterministic_layout(df, ["nope"], 2)
    with pytest.raises(ValueError, match="num_partitions must be >= 1"):
        deterministic_layout(df, ["id"], 0)
    with pytest.raises(TypeError, match="num_partitions must be an int"):
        deterministic_layout(df, ["id"], 2.0)
    with pytest.raises(ValueError, match="more than once"):
        deterministic_layout(df, ["id", "ID"], 2)
    with pytest.raises(ValueError, match="at least one column"):
        deterministic_layout(df, [], 2)
    with pytest.raises(ValueError, match="duplicate column names"):
        deterministic_layout(df.select("id", F.col("v").alias("id")), ["id"], 2)
    assert deterministic_layout(df, ["ID"], 2).count() == 10  # case-insensitive match
    with pytest.raises(ValueError, match=r"weights must be positive.*weights\[1\] = 0"):
        stable_split(df, "id", [0.5, 0], seed=1)
    with pytest.raises(ValueError, match=r"weights\['test'\] = -1"):
        stable_split(df, "id", {"train": 1, "test": -1})
    with pytest.raises(TypeError, match="seed must be an int"):
        stable_split(df, "id", [1, 1], seed=1.5)
    with pytest.raises(ValueError, match="already exists"):
        assign_split(df, "id", [1, 1], column="v")
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size=4\), got rank=4"):
        stable_shard(df, "id", 4, 4)
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        stable_shard(df, "id", 0, 0)
    with pytest.raises(ValueError, match="not a readable Delta table"):
        read_pinned(spark, str(tmp_path / "missing"))
    path = str(tmp_path / "t")
    df.write.format("delta").save(path)
    with pytest.raises(ValueError, match="version=3 does not exist.*latest version is 0"):
        read_pinned(spark, path, version=3)
    with pytest.raises(ValueError, match="version must be >= 0"):
        read_pinned(spark, path, version=-1)


# ---------------------------------------------------------------------------------------------
# Pinned inputs, mlflow, and a model trained twice
# ---------------------------------------------------------------------------------------------


@pytest.fixture()
def tracking(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # restored by monkeypatch afterwards
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment(
        "repro", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    try:
        yield mlflow, experiment
    finally:
        mlflow.set_tracking_uri(previous)


def write_training_table(spark, path, rows=2400):
    df = spark.range(0, rows, 1, 3).select(
        F.col("id").alias("sample_id"),
        *[((F.xxhash64("id", F.lit(i)) % 1000) / 250.0).alias(f"f{i}") for i in range(4)],
    )
    df = df.withColumn("label", ((F.col("f0") + F.col("f1") - F.col("f2")) > 0).cast("int"))
    for chunk in range(3):  # several files
        df.where(F.col("sample_id") % 3 == chunk).write.format("delta").mode("append").save(path)


def train_and_score(spark, path, version, route, session_settings):
    """One training run: pinned read, a route-specific input layout, the stable split, the
    deterministic layout, an order-sensitive model (SGD without shuffling)."""
    import numpy as np
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score, log_loss

    with conf(spark, **session_settings):
        df, pinned_version = read_pinned(spark, path, version)
        df = route(df)
        train, test = stable_split(df, ["sample_id"], [0.75, 0.25], seed=5)
        train = deterministic_layout(train, ["sample_id"], 4)
        test = deterministic_layout(test, ["sample_id"], 4)
        features = ["f0", "f1", "f2", "f3"]
        train_pd, test_pd = train.toPandas(), test.toPandas()
        fingerprints = partition_fingerprints(train)
    model = SGDClassifier(loss="log_loss", shuffle=False, random_state=0, max_iter=5, tol=None)
    model.fit(train_pd[features].to_numpy(), train_pd["label"].to_numpy())
    probabilities = model.predict_proba(test_pd[features].to_numpy())
    metrics = {
        "accuracy": accuracy_score(test_pd["label"], probabilities.argmax(axis=1)),
        "log_loss": log_loss(test_pd["label"], probabilities, labels=[0, 1]),
        "coef": tuple(np.asarray(model.coef_).ravel().tolist()),
    }
    return pinned_version, train, fingerprints, metrics


@pytest.mark.slow
def test_model_trained_twice_from_pinned_input_gets_identical_metrics(spark, tmp_path, tracking):
    from delta.tables import DeltaTable

    mlflow, experiment = tracking
    path = str(tmp_path / "training")
    write_training_table(spark, path)

    runs = [
        (
            lambda d: d.repartition(7),
            settings(spark__sql__adaptive__enabled="true", spark__sql__shuffle__partitions="4"),
        ),
        (
            lambda d: d.orderBy(F.rand(seed=9)).coalesce(1),
            settings(
                spark__sql__adaptive__enabled="false",
                spark__sql__shuffle__partitions="31",
                spark__sql__files__maxPartitionBytes="2048",
            ),
        ),
    ]
    results, run_ids = [], []
    for route, session_settings in runs:
        version, train, fingerprints, metrics = train_and_score(
            spark, path, None, route, session_settings
        )
        with mlflow.start_run(experiment_id=experiment) as run:
            tags = log_training_input(
                train, path, version, keys=["sample_id"], num_partitions=4,
                layout={"split": {"weights": [0.75, 0.25], "seed": 5, "part": 0}},
            )
            mlflow.log_metrics({"accuracy": metrics["accuracy"], "log_loss": metrics["log_loss"]})
        results.append((version, fingerprints, metrics, tags))
        run_ids.append(run.info.run_id)

    (v1, fp1, m1, tags1), (v2, fp2, m2, tags2) = results
    assert v1 == v2 == 2
    assert fp1 == fp2
    assert m1 == m2  # exact: same rows in the same order
    assert tags1 == tags2
    assert 0.5 < m1["accuracy"] <= 1.0

    # The tracking store says exactly what each run trained on.
    client = mlflow.MlflowClient()
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.data.tags[f"{TAG_PREFIX}.table"] == path
        assert run.data.tags[f"{TAG_PREFIX}.version"] == "2"
        assert run.data.tags[f"{TAG_PREFIX}.fingerprint"] == tags1[f"{TAG_PREFIX}.fingerprint"]
        assert int(run.data.tags[f"{TAG_PREFIX}.rows"]) == sum(p.rows for p in fp1)
        assert '"keys": ["sample_id"]' in run.data.tags[f"{TAG_PREFIX}.layout"]
        (dataset_input,) = run.inputs.dataset_inputs
        assert dataset_input.dataset.digest == tags1[f"{TAG_PREFIX}.fingerprint"]
        assert dataset_input.dataset.source_type == "delta_table"
        assert '"delta_table_version": 2' in dataset_input.dataset.source
        input_tags = {t.key: t.value for t in dataset_input.tags}
        assert input_tags["mlflow.data.context"] == "training"
        assert input_tags[f"{TAG_PREFIX}.version"] == "2"

    # Changing one value makes a new version with another fingerprint; the pinned version
    # still reads the old data.
    pinned_fingerprint = content_fingerprint(read_pinned(spark, path, 2).df)
    DeltaTable.forPath(spark, path).update("sample_id = 17", {"f3": "f3 + 0.001"})
    latest, latest_version = read_pinned(spark, path)
    assert latest_version == 3
    assert content_fingerprint(latest) != pinned_fingerprint
    assert content_fingerprint(read_pinned(spark, path, 2).df) == pinned_fingerprint
    # The training input (the train split, laid out) changes too: the updated sample is in it
    # or not, and the fingerprint says which.
    changed_train = deterministic_layout(
        stable_split(latest, ["sample_id"], [0.75, 0.25], seed=5)[0], ["sample_id"], 4
    )
    in_train = changed_train.where("sample_id = 17").count() == 1
    assert (partition_fingerprints(changed_train) != fp1) == in_train


def test_log_training_input_needs_a_run(spark, tmp_path, tracking):
    df = spark.range(3)
    with pytest.raises(ValueError, match="active MLflow run or run_id"):
        log_training_input(df, str(tmp_path / "t"), 0)


def test_read_pinned_by_table_name(spark, tmp_path):
    name = "repro_pinned_by_name"
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    try:
        writer = spark.range(5).write.format("delta").option("path", str(tmp_path / "named"))
        writer.saveAsTable(name)
        spark.range(8).write.format("delta").mode("overwrite").saveAsTable(name)
        df, version = read_pinned(spark, name)
        assert (version, df.count()) == (1, 8)
        assert read_pinned(spark, name, 0).df.count() == 5
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name}")


# ---------------------------------------------------------------------------------------------
# The notebook
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_notebook_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / "reproducibility.ipynb"
    notebook = nbformat.read(path, as_version=4)
    source_dir = str(ROOT / "src")
    python_path = [source_dir, os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, python_path)))
    monkeypatch.chdir(tmp_path)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = "\n".join(
        output.get("text", "") or "".join(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    output_types = {o.get("output_type") for c in notebook.cells for o in c.get("outputs", [])}
    assert "error" not in output_types
    assert "randomSplit runs identical: False" in outputs
    assert "deterministic runs identical: True" in outputs
    assert not list(tmp_path.glob("mlruns"))  # the notebook keeps its files in a temp dir
