"""Random passwords and tokens never show in what a Spark read shows: ``explain()`` in every
mode, the plans' strings, ``repr`` of the DataFrame, the errors of failed reads (with the
Python workers' tracebacks in them), Spark's own log on the process's stdout and stderr (where
executors report failed tasks), our log records at DEBUG, and the rows PERMISSIVE reports.

Failed reads come first in each example: Spark's Python workers live on between tasks, and a
worker that has read with the right password knows it already.

Store kinds: PostgreSQL (the URL's userinfo), a REST tracking server and a Databricks workspace
(the loopback server of conftest.py, answering 401 with the credential echoed back: Basic
options, a token, the URL's userinfo), SQLite and the file store (an artifact URI with
credentials). The process's own environment (``PGPASSWORD``, ``MLFLOW_TRACKING_*``) does not reach
the Python workers of a running session: test_reads_without_spark.py and the commands' tests
cover it.
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings

from .conftest import EXPERIMENT, set_artifact_uri
from .shown import EVERY_SPECIAL, ambiguous_raw, assert_hidden, error_texts, log_everything, secrets

# Each example runs several Spark jobs: few examples (and the one with every special character).
FEW = settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def explained(df, plans: dict, name: str) -> None:
    """``explain`` printed (extended and formatted) (captured from stdout) and the plans' strings, into ``plans``."""
    for mode in ("extended", "formatted"):
        df.explain(mode=mode)
    execution = df._jdf.queryExecution()
    plans[f"{name} plans"] = "\n".join([execution.toString(), execution.logical().toString(), repr(df),
                                        df.schema.simpleString()])


def failure(action) -> str:
    """The texts of the error ``action`` raises (it must raise)."""
    try:
        action()
    except Exception as error:  # whatever Spark raises is shown to the user
        return error_texts(error)
    raise AssertionError("the read did not fail")


@FEW
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_postgresql_passwords_never_shown_by_spark(spark, secret_postgres, caplog, capfd, secret):
    pg = secret_postgres
    pg.set_password(secret)
    log_everything(caplog)
    capfd.readouterr()

    def load(uri: str):
        return spark.read.format("experiments").option("trackingUri", uri).option("table", "metrics").load(EXPERIMENT)

    shown = {
        "wrong password": failure(load(pg.uri(secret, role=pg.decoy)).collect),
        "no server": failure(load(pg.uri(secret, port=9)).count),
    }
    if not ambiguous_raw(secret):
        raw = f"postgresql://{pg.decoy}:{secret}@{pg.host}:{pg.port}/{pg.database}"
        shown["raw userinfo, wrong password"] = failure(load(raw).collect)
    df = load(pg.uri(secret))
    assert [row.value for row in df.collect()] == [0.5]
    explained(df, shown, "right password")
    explained(load(pg.uri(secret, scheme="postgresql+psycopg")).where("value > 0"), shown, "driver suffix")
    output = capfd.readouterr()
    assert "password authentication failed" in shown["wrong password"]
    assert "PythonDataSource" in output.out or "experiments" in output.out.lower()
    assert_hidden({**shown, "stdout": output.out, "stderr": output.err, "log": caplog.text}, (pg.reader, pg.decoy), secret)


@FEW
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_tracking_server_and_databricks_credentials_never_shown_by_spark(spark, echo_server, caplog, capfd, secret):
    echo_server.status = 401
    log_everything(caplog)
    capfd.readouterr()
    user = "alice"
    host = echo_server.url.split("://", 1)[1]
    fast = {"maxRetries": "0", "requestTimeout": "10"}
    reads = {
        "options username/password": {"trackingUri": echo_server.url, "username": user, "password": secret},
        "userinfo": {"trackingUri": f"http://{user}:{quote(secret, safe='')}@{host}"},
        "option token": {"trackingUri": echo_server.url, "token": secret},
        "Databricks token": {"trackingUri": "databricks", "databricksHost": echo_server.url, "token": secret},
    }
    shown = {}
    for name, options in reads.items():
        df = spark.read.format("experiments").options(**options, **fast).option("table", "runs").load()
        shown[name] = failure(df.collect)
        if name == "userinfo":
            explained(df, shown, name)
    output = capfd.readouterr()
    assert "HTTP 401" in shown["options username/password"]
    if secret.isascii():  # a token beyond Latin-1 is refused before it is sent
        assert "HTTP 401" in shown["option token"]
    assert_hidden({**shown, "stdout": output.out, "stderr": output.err, "log": caplog.text}, (user,), secret)


@FEW
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_artifact_uri_credentials_never_shown_by_spark(spark, small_stores, caplog, capfd, secret):
    log_everything(caplog)
    capfd.readouterr()
    key = "AKIAEXAMPLEKEY"
    shown = {}
    for kind, store in small_stores.items():
        run_id = set_artifact_uri(kind, store, f"s3://{key}:{quote(secret, safe='')}@bucket/runs/x")

        def read(mode: str, **options):
            return (spark.read.format("experiments").option("trackingUri", store).option("table", "artifacts")
                    .option("mode", mode).options(**options).load())

        shown[f"{kind} FAILFAST"] = failure(read("FAILFAST").collect)
        rows = read("PERMISSIVE", columnNameOfCorruptRecord="_bad").where("_bad IS NOT NULL").collect()
        shown[f"{kind} PERMISSIVE rows"] = repr(rows)
        assert any(row.run_id == run_id and "carries credentials" in row._bad for row in rows)
    output = capfd.readouterr()
    assert_hidden({**shown, "stdout": output.out, "stderr": output.err, "log": caplog.text}, (key,), secret)
