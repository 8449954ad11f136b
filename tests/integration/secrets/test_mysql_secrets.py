"""MariaDB (slow tier: its server and MLflow's schema on it take a while): random passwords never
show in what a read shows, without Spark and through it: errors, their causes, log records at
DEBUG, ``explain()``, reprs, Spark's log. The user's password is set to the secret for real, so
the secret reaches real connection attempts: right password, wrong password (another user), an
unknown database, no server.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings

from .conftest import EXPERIMENT
from .shown import EVERY_SPECIAL, assert_hidden, error_texts, log_everything, secrets, unknown_to_the_registry
from .test_reads_through_spark import explained, failure
from .test_reads_without_spark import attempt

pytestmark = pytest.mark.slow


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_mysql_passwords_never_shown(secret_mysql, caplog, secret):
    db = secret_mysql
    db.set_password(secret)
    log_everything(caplog)
    shown: list = []
    table = {"table": "metrics", "path": EXPERIMENT}
    rows = attempt({"trackingUri": db.uri(secret), **table}, shown, "right password")
    assert [r["value"] for r in rows or []] == [0.5], shown[-1]
    for outcome, uri in {"wrong password": db.uri(secret, user=db.decoy),
                         "unknown database": db.uri(secret, database="no_such_database"),
                         "no server": db.uri(secret, port=9)}.items():
        assert attempt({"trackingUri": uri, **table}, shown, outcome) is None, outcome
    with unknown_to_the_registry():
        from pyspark_experiments.stores.sql.mysql import connect_mysql

        try:
            connect_mysql(db.uri(secret, user=db.decoy), "mysql://decoy:***@db/mlflow")
        except Exception as error:
            shown.append(error_texts(error))
    assert any("access denied" in text for text in shown)
    assert_hidden({**{f"shown {i}": text for i, text in enumerate(shown)}, "log": caplog.text},
                  (db.reader, db.decoy), secret)


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secrets())
@example(secret=EVERY_SPECIAL)
def test_mysql_passwords_never_shown_by_spark(spark, secret_mysql, caplog, capfd, secret):
    db = secret_mysql
    db.set_password(secret)
    log_everything(caplog)
    capfd.readouterr()

    def load(uri: str):
        return spark.read.format("experiments").option("trackingUri", uri).option("table", "metrics").load(EXPERIMENT)

    shown = {"wrong password": failure(load(db.uri(secret, user=db.decoy)).collect),
             "no server": failure(load(db.uri(secret, port=9)).count)}
    df = load(db.uri(secret))
    assert [row.value for row in df.collect()] == [0.5]
    explained(df, shown, "right password")
    output = capfd.readouterr()
    assert_hidden({**shown, "stdout": output.out, "stderr": output.err, "log": caplog.text}, (db.reader, db.decoy), secret)
