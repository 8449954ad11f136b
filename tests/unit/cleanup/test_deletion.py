"""Where Databricks' bulk delete goes: the workspace of the profile ``databricks://<profile>``
names, its host reduced as the REST store reduces a URL copied from the browser."""

from __future__ import annotations

import pytest

from pyspark_experiments.cleanup.deletion import databricks_host_creds
from pyspark_experiments.uri import resolve_tracking_uri


@pytest.fixture
def two_profiles(tmp_path, monkeypatch):
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE",
                 "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".databrickscfg").write_text(
        "[DEFAULT]\nhost = https://dbc-default.cloud.databricks.com\ntoken = dapi-default\n\n"
        "[team]\nhost = https://adb-123.4.azuredatabricks.net/?o=123#ml/experiments/5\ntoken = dapi-team\n"
    )


@pytest.mark.usefixtures("two_profiles")
def test_the_profile_in_the_uri_names_the_workspace_and_token():
    creds = databricks_host_creds(resolve_tracking_uri("databricks://team"))
    assert creds.host == "https://adb-123.4.azuredatabricks.net"  # the browser URL's query and fragment dropped
    assert creds.token == "dapi-team"


@pytest.mark.usefixtures("two_profiles")
def test_databricks_without_a_profile_is_the_default_profile():
    creds = databricks_host_creds(resolve_tracking_uri("databricks"))
    assert (creds.host, creds.token) == ("https://dbc-default.cloud.databricks.com", "dapi-default")
