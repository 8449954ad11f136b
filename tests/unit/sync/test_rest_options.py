"""The sync's REST options: from ``[store.rest]``, ``--rest-option`` and ``rest_options=``,
checked and spelled as the data source takes them, secrets hidden from every job output."""

from __future__ import annotations

import pytest

from pyspark_experiments import redact
from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.sync import SyncConfig, config_from_args
from pyspark_experiments.sync.cli import _parse


def test_toml_rest_table_is_checked_and_canonical(tmp_path):
    path = tmp_path / "sync.toml"
    path.write_text('[store]\ntracking_uri = "http://127.0.0.1:5000"\n[store.rest]\nmaxconcurrentrequests = 4\n'
                    'insecureTls = true\nrequestTimeout = 2.5\n[target]\npath = "/tmp/d"\n')
    cfg = SyncConfig.from_toml(str(path))
    assert cfg.rest_options == {"maxConcurrentRequests": "4", "insecureTls": "true", "requestTimeout": "2.5"}
    assert "rest_options" not in repr(cfg)


@pytest.mark.parametrize("table, message", [
    ({"maxConcurency": 4}, "REST option 'maxConcurency': unknown; expected one of .*maxConcurrentRequests"),
    ({"maxRetries": [1]}, r"\[store\] rest = .*string, number or boolean values"),
])
def test_bad_rest_options_name_the_option(table, message):
    with pytest.raises(ConfigurationError, match=message):
        SyncConfig.from_dict({"target": {"path": "/d"}, "store": {"rest": table}})


def test_flags_add_to_the_file_and_win():
    cfg = SyncConfig(target_path="/d", rest_options={"maxRetries": "3", "requestTimeout": "9"})
    cfg = cfg.override(rest_options={"maxretries": 5})
    assert cfg.rest_options == {"maxRetries": "5", "requestTimeout": "9"}
    cfg, _ = config_from_args(["--target-path", "/d", "--rest-option", "maxRetries=2",
                               "--rest-option", "backoffFactor=0.5"])
    assert cfg.rest_options == {"maxRetries": "2", "backoffFactor": "0.5"}
    with pytest.raises(ConfigurationError, match="--rest-option 'maxRetries2': expected NAME=VALUE"):
        config_from_args(["--target-path", "/d", "--rest-option", "maxRetries2"])


def test_a_secret_flag_is_hidden_before_anything_prints_it():
    secret = "dapi-flag-Secret-771"
    settings = _parse(["--target-path", "/d", "--rest-option", f"token={secret}"])
    assert settings.cfg.rest_options["token"] == secret
    assert redact.hide(f"request failed with {secret}") == "request failed with ***"
    assert secret not in repr(settings.cfg)
