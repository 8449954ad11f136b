"""Reading damaged stores through Spark: streaming errors, PERMISSIVE reports reaching a notebook
user, and passwords that never show (reads, failed connections, explain(), worker logs)."""

from __future__ import annotations

import shutil
from urllib.parse import quote

import pytest

from pyspark_experiments.datasource import plan_read


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from support.small import write_small_stores

    return write_small_stores(tmp_path_factory.mktemp("hardening"))


def test_read_stream_of_a_batch_only_table_headlines_our_message(spark, small):
    with pytest.raises(Exception) as error:
        (spark.readStream.format("experiments").option("trackingUri", small["sqlite"]).option("table", "params")
         .load().writeStream.format("memory").queryName("params_stream").start().awaitTermination(60))
    text = str(error.value)
    assert "UnboundLocalError" not in text.splitlines()[0]
    assert "streaming reads support 'metrics', 'runs', 'traces' and 'assessments', not 'params'" in text


def test_permissive_read_reports_skips_as_rows_a_notebook_user_sees(spark, small, tmp_path):
    root = tmp_path / "mlruns"
    shutil.copytree(small["file"], root)
    metric = sorted(root.glob("*/*/metrics/loss"))[0]
    metric.write_text(metric.read_text() + "1700000000000 oops 3\n")
    df = (spark.read.format("experiments").option("trackingUri", str(root)).option("table", "metrics")
          .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_corrupt_record").load())
    assert df.columns[-1] == "_corrupt_record"
    bad = df.where("_corrupt_record IS NOT NULL").collect()
    assert len(bad) == 1 and bad[0].run_id == metric.parent.parent.name
    assert f"{metric}, line 2" in bad[0]._corrupt_record
    assert df.where("_corrupt_record IS NULL").count() == 6


# -- passwords ------------------------------------------------------------------------------------

SECRETS = ["a/b@c:d%e f ü€", "Hunter/Two22"]


@pytest.fixture(scope="module")
def special_roles(postgres_server):
    """A small MLflow store on the real PostgreSQL server and, per password, a role that can read it."""
    import psycopg
    from psycopg import sql

    from support.postgres import create_database

    host, port, user, password = postgres_server
    uri = create_database(host, port, user, password, "mlflow_secrets")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("secret-exp"))
    client.log_metric(run.info.run_id, "loss", 0.5)
    roles = {}
    with psycopg.connect(host=host, port=port, user=user, password=password, dbname="postgres", autocommit=True) as conn:
        for i, secret in enumerate(SECRETS):
            role = f"reader{i}"
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(role), sql.Literal(secret)))
            roles[secret] = role
    return host, port, roles


def _forms(role, secret, host, port, database="mlflow_secrets"):
    return {
        "raw": f"postgresql://{role}:{secret}@{host}:{port}/{database}",
        "encoded": f"postgresql+psycopg://{role}:{quote(secret, safe='')}@{host}:{port}/{database}",
        "query": f"postgresql://{role}@{host}:{port}/{database}?password={quote(secret, safe='')}",
    }


def _leaks(secret: str, text: str) -> list[str]:
    forms = {secret, quote(secret, safe=""), quote(secret)}
    return [form for form in forms if form in text]


@pytest.mark.parametrize("secret", SECRETS)
def test_passwords_never_shown_by_reads_failures_or_explain(spark, special_roles, secret, capfd):
    host, port, roles = special_roles
    shown = []
    for name, uri in _forms(roles[secret], secret, host, port).items():
        df = spark.read.format("experiments").option("trackingUri", uri).option("table", "metrics").load("secret-exp")
        assert [r.value for r in df.collect()] == [0.5], name  # the read works with the password as given
        df.explain(True)
        shown.append(repr(df))
        # env var form (the driver's planning, without Spark)
        selection, parts = plan_read({}, environ={"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "secret-exp"})
        assert len(parts) == 1
        for failing in (uri.replace(f":{port}/", ":9/"), uri.replace("reader", "nobody")):
            with pytest.raises(Exception) as error:
                spark.read.format("experiments").option("trackingUri", failing).load("secret-exp").count()
            shown.append(str(error.value))
    keyword = f"host={host} port={port} user={roles[secret]} password={secret} dbname=mlflow_secrets"
    with pytest.raises(Exception) as error:
        spark.read.format("experiments").option("trackingUri", keyword).load().count()
    shown.append(str(error.value))
    captured = capfd.readouterr()
    text = "\n".join(shown) + captured.out + captured.err
    assert "password authentication failed" in text or "authentication" in text
    assert not _leaks(secret, text), [line for line in text.splitlines() if _leaks(secret, line)][:5]
