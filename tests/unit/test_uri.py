"""Tracking-URI resolution (MLflow's order and defaults) and credential redaction."""

from __future__ import annotations

import pytest

from pyspark_experiments.errors import ConfigurationError, UnsupportedStoreError
from pyspark_experiments.redact import hide as redact
from pyspark_experiments.uri import holds_file_store_experiments, resolve_tracking_uri


def test_resolution_order(tmp_path):
    env = {"MLFLOW_TRACKING_URI": "sqlite:///from-env.db"}
    assert resolve_tracking_uri("sqlite:///opt.db", env, str(tmp_path)).location == f"sqlite:///{tmp_path}/opt.db"
    from_env = resolve_tracking_uri(None, env, str(tmp_path))
    assert (from_env.source, from_env.location) == ("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/from-env.db")
    assert resolve_tracking_uri("  ", env, str(tmp_path)).source == "MLFLOW_TRACKING_URI"
    assert resolve_tracking_uri(None, {}, str(tmp_path)).location == f"sqlite:///{tmp_path}/mlflow.db"


def test_mlruns_wins_only_where_it_holds_experiments(tmp_path):
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    assert not holds_file_store_experiments(str(tmp_path / "mlruns"))
    assert resolve_tracking_uri(None, {}, str(tmp_path)).kind == "sql"
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    default = resolve_tracking_uri(None, {}, str(tmp_path))
    assert (default.kind, default.location) == ("file", str(tmp_path / "mlruns"))
    assert default.source.startswith("default")


@pytest.mark.parametrize(
    "uri, kind, scheme, location",
    [
        ("file:///data/x", "file", "file", "/data/x"),
        ("file://localhost/data/x", "file", "file", "/data/x"),
        ("rel/mlruns", "file", "file", "/base/rel/mlruns"),
        ("~/mlruns", "file", "file", None),
        ("sqlite:////abs/m.db", "sql", "sqlite", "sqlite:////abs/m.db"),
        ("sqlite:///rel.db", "sql", "sqlite", "sqlite:////base/rel.db"),
        ("sqlite:///rel.db?timeout=5", "sql", "sqlite", "sqlite:////base/rel.db?timeout=5"),
        ("postgresql+psycopg://u:p@h/db", "sql", "postgresql", "postgresql+psycopg://u:p@h/db"),
        ("mysql://u@h/db", "sql", "mysql", "mysql://u@h/db"),
        ("https://mlflow.example", "rest", "https", "https://mlflow.example"),
    ],
)
def test_uri_forms(uri, kind, scheme, location):
    resolved = resolve_tracking_uri(uri, {}, "/base")
    assert (resolved.kind, resolved.scheme) == (kind, scheme)
    if location is not None:
        assert resolved.location == location


def test_bad_uris_are_configuration_errors():
    with pytest.raises(UnsupportedStoreError, match="unsupported tracking URI scheme 'ftp'"):
        resolve_tracking_uri("ftp://ann:hunter2@host/x", {}, "/")
    with pytest.raises(ConfigurationError, match="in-memory SQLite database holds no store"):
        resolve_tracking_uri("sqlite://", {}, "/")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
        ("https://h/x?token=abc&x=1", "https://h/x?token=***&x=1"),
        ("postgresql://h/db?sslmode=require&password=x", "postgresql://h/db?sslmode=require&password=***"),
        ("error at mysql+pymysql://root:toor@db:3306/m: refused", "error at mysql+pymysql://root:***@db:3306/m: refused"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_credentials_never_shown_by_a_resolved_uri():
    uri = resolve_tracking_uri("postgresql://ann:hunter2@db.example:5432/mlflow?password=hunter2", {}, "/")
    for text in (uri.display, repr(uri), str(uri), redact(uri.location)):
        assert "hunter2" not in text
    assert "ann:***@db.example" in uri.display
