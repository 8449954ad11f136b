"""The end-to-end demo: a tracking store -> ``spark.read.format("experiments")`` -> Delta -> summary.

With no tracking URI it first creates a sample store by training real scikit-learn models on
the diabetes data that ships with scikit-learn, with mlflow autologging, across two
experiments and two users (this needs the ``mlflow`` and ``scikit-learn`` packages; reading a
store never does).

Example::

    $ pyspark-experiments demo                                  # sample store in ./demo-output
    $ pyspark-experiments demo --tracking-uri sqlite:///mlflow.db --output /tmp/demo
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import MissingDependencyError

USERS = ("alice", "bob")
EXPERIMENTS = {
    "diabetes-linear": [("ridge", {"alpha": a}) for a in (0.01, 0.1, 1.0, 10.0)]
    + [("lasso", {"alpha": a}) for a in (0.01, 0.1, 1.0)],
    "diabetes-trees": [("random_forest", {"n_estimators": n, "max_depth": d}) for n, d in ((20, 3), (50, 5), (100, None))]
    + [("gradient_boosting", {"n_estimators": n, "learning_rate": lr}) for n, lr in ((50, 0.1), (100, 0.05))],
}


def create_sample_store(tracking_uri: str, artifact_root: str) -> None:
    """Train small scikit-learn regressors with mlflow autologging into ``tracking_uri``.

    Example::

        >>> create_sample_store("sqlite:////tmp/demo/mlflow.db", "/tmp/demo/artifacts")  # doctest: +SKIP
    """
    try:
        import mlflow
        from sklearn.datasets import load_diabetes
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import Lasso, Ridge
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise MissingDependencyError(
            f"the demo's sample store needs mlflow and scikit-learn ({error.name} is missing): "
            f"pip install 'pyspark-experiments[test]', or pass --tracking-uri to read your own store"
        ) from None

    models = {
        "ridge": Ridge, "lasso": Lasso,
        "random_forest": RandomForestRegressor, "gradient_boosting": GradientBoostingRegressor,
    }
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(features, target, test_size=0.25, random_state=7)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.sklearn.autolog(log_models=False, log_datasets=True, silent=True)
    run_number = 0
    client = mlflow.MlflowClient(tracking_uri)
    for experiment, candidates in EXPERIMENTS.items():
        if client.get_experiment_by_name(experiment) is None:
            client.create_experiment(experiment, artifact_location=os.path.join(artifact_root, experiment))
        mlflow.set_experiment(experiment)
        for model_name, params in candidates:
            user = USERS[run_number % len(USERS)]
            run_number += 1
            extra = {"random_state": 7} if model_name in ("random_forest", "gradient_boosting") else {}
            with mlflow.start_run(run_name=f"{model_name}-{run_number}", tags={"mlflow.user": user}):
                model = models[model_name](**params, **extra).fit(x_train, y_train)
                # Scored on held-out data, logged by name so every run has the same key.
                mlflow.log_metric("test_r2", model.score(x_test, y_test))
    mlflow.sklearn.autolog(disable=True)


def summarize(spark, delta_path: str, experiment_names: dict[str, str] | None = None) -> str:
    """A short, readable summary of the runs Delta table at ``delta_path``.

    Example::

        >>> print(summarize(spark, "demo-output/delta/runs"))  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    runs = spark.read.format("delta").load(delta_path)
    experiment_names = experiment_names or {}
    lines = []
    total = runs.count()
    lines.append(f"{total} runs in {runs.select('experiment_id').distinct().count()} experiment(s)")
    scored = runs.where(F.col("metrics").getItem("test_r2").isNotNull())
    if scored.take(1):
        lines.append("")
        lines.append("Best runs by test_r2 (held-out R^2, higher is better):")
        best = (
            scored.select("run_name", "user_id", "experiment_id", F.col("metrics")["test_r2"].alias("test_r2"))
            .orderBy(F.desc("test_r2"), "run_name")
            .limit(5)
            .collect()
        )
        for rank, row in enumerate(best, start=1):
            name = experiment_names.get(row.experiment_id, row.experiment_id)
            lines.append(f"  {rank}. {row.run_name:<28} {row.test_r2:8.4f}  by {row.user_id}  (experiment {name})")
    lines.append("")
    lines.append("Runs per user:")
    per_user = runs.groupBy("user_id").agg(
        F.count("*").alias("runs"), F.sum(F.when(F.col("status") == "FINISHED", 1).otherwise(0)).alias("finished")
    )
    for row in per_user.orderBy(F.desc("runs"), "user_id").collect():
        lines.append(f"  {row.user_id or '(unknown)':<16} {row.runs:5d} runs, {row.finished} finished")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code.

    Example::

        >>> main(["--output", "/tmp/demo"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(prog="pyspark-experiments demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", help="read this store instead of creating a sample one")
    parser.add_argument("--experiments", default="", help="experiment ids or names, comma separated (default: all)")
    parser.add_argument("--output", default="demo-output", help="folder for the sample store and Delta tables")
    parser.add_argument("--master", default=None, help="Spark master (default local[*])")
    parser.add_argument(
        "--remote", default=None,
        help="a Spark Connect session instead: 'local[2]' starts a local Connect server, 'sc://host:port' connects (default: SPARK_REMOTE)",
    )
    parser.add_argument("--debug", action="store_true", help="on failure, also show the full traceback")
    args = parser.parse_args(argv)

    started = time.monotonic()
    output = os.path.abspath(args.output)
    os.makedirs(output, exist_ok=True)
    tracking_uri = args.tracking_uri
    if not tracking_uri:
        tracking_uri = f"sqlite:///{os.path.join(output, 'mlflow.db')}"
        if not os.path.exists(os.path.join(output, "mlflow.db")):
            print(f"Creating a sample store at {tracking_uri} (scikit-learn on the diabetes data, mlflow autologging)...", flush=True)
            saved = {k: os.environ.get(k) for k in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
            create_sample_store(tracking_uri, os.path.join(output, "artifacts"))
            # mlflow.set_experiment() exports the active experiment; the read must see all.
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    from .jobs.failures import innermost_error
    from .jobs.hiding import short_error
    from .jobs.run import exit_code_for
    from .session import session
    from .uri import resolve_tracking_uri

    print(f"Reading {resolve_tracking_uri(tracking_uri).display} with spark.read.format('experiments')...", flush=True)
    # Spark's own INFO/WARN lines would bury the summary; errors still show.
    spark = session(app_name="pyspark-experiments-demo", master=args.master, remote=args.remote,
                    config={"spark.log.level": "ERROR"})
    try:
        runs = spark.read.format("experiments").option("trackingUri", tracking_uri).load(args.experiments)
        delta_path = os.path.join(output, "delta", "runs")
        runs.write.format("delta").mode("overwrite").save(delta_path)
        print(f"Wrote the runs table to the Delta table {delta_path}\n")
        names = {
            row.experiment_id: row.name
            for row in spark.read.format("experiments").option("trackingUri", tracking_uri)
            .option("table", "experiments").option("viewType", "ALL").load().collect()
        }
        print(summarize(spark, delta_path, names))
        print(f"\nDone in {time.monotonic() - started:.1f} s.")
    except Exception as error:
        reported = innermost_error(error)
        if reported is error or args.debug:
            raise
        print(f"pyspark-experiments demo: {short_error(reported)}", file=sys.stderr)
        return exit_code_for(reported)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
