"""The analytics job's settings for the trace tables: ``[analytics] traces`` and the period of
the job's tables."""

from __future__ import annotations

import os

import pytest

from pyspark_experiments.analytics.config import AnalyticsConfig
from pyspark_experiments.errors import ConfigurationError
from support.paths import REPO


def test_trace_tables_are_on_unless_the_setting_says_false(tmp_path):
    assert AnalyticsConfig.from_toml(os.path.join(REPO, "conf", "analytics.toml")).trace_tables is True
    assert AnalyticsConfig().trace_tables is True
    path = tmp_path / "a.toml"
    path.write_text('[target]\npath = "/d"\n[analytics]\ntraces = false\n')
    assert AnalyticsConfig.from_toml(str(path)).validate().trace_tables is False


def test_a_setting_that_is_not_a_boolean_names_file_and_key(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('[analytics]\ntraces = "no"\n')
    with pytest.raises(ConfigurationError) as raised:
        AnalyticsConfig.from_toml(str(path))
    assert str(raised.value) == f"{path}: [analytics] traces = 'no': expected true or false"


@pytest.mark.parametrize("period, expected", [(None, "week"), ("auto", "week"), ("day", "day"), ("month", "month")])
def test_the_job_tables_period(period, expected):
    assert AnalyticsConfig(period=period).table_period() == expected
