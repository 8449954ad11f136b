"""The record file's lock: one cleanup at a time records into one JSON-lines file."""

from __future__ import annotations

import datetime as dt

import pytest

from pyspark_experiments.cleanup.records import INTENT, Records
from pyspark_experiments.errors import TargetLockedError
from pyspark_experiments.jobs.config import CommandConfig


def test_a_second_holder_of_the_record_file_is_refused_until_the_first_lets_go(tmp_path):
    path = str(tmp_path / "records" / "cleanup.jsonl")
    first, second = Records(None, CommandConfig(), path), Records(None, CommandConfig(), path)
    with first.held():
        with pytest.raises(TargetLockedError, match="another cleanup is recording into"):
            with second.held():
                pass
    with second.held():  # released
        pass


def test_each_append_is_on_disk_as_one_line(tmp_path):
    path = tmp_path / "cleanup.jsonl"
    records = Records(None, CommandConfig(), str(path))
    row = {"batch_id": "b", "action": INTENT, "run_id": "r", "experiment_id": "1", "run_name": None, "status": "FAILED",
           "reason": None, "at": dt.datetime(2026, 12, 7, tzinfo=dt.UTC), "by": "u@h", "tracking_uri": "s"}
    records.append([row])
    records.append([{**row, "action": "delete"}])
    assert [r["action"] for r in records.read()] == [INTENT, "delete"]
