"""An experiment whose meta.yaml names another id than its folder: MLflow's file store ignores it
(and its runs with it, a warning aside); the source refuses it, naming the file and both ids."""

from __future__ import annotations

import pytest

from pyspark_experiments.errors import MalformedRecordError
from pyspark_experiments.stores import open_store
from pyspark_experiments.uri import resolve_tracking_uri


def write_experiment(root, folder: str, recorded: str) -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "meta.yaml").write_text(
        f"artifact_location: {root}/{folder}\ncreation_time: 1\nexperiment_id: '{recorded}'\n"
        f"last_update_time: 1\nlifecycle_stage: active\nname: exp-{folder}\n"
    )


def test_an_experiment_id_that_is_not_its_folders_name_is_a_clear_error(tmp_path):
    write_experiment(tmp_path, "212882557939743825", "212882553939743825")  # one digit flipped
    store = open_store(resolve_tracking_uri(str(tmp_path)))
    with pytest.raises(MalformedRecordError) as refused:
        store.list_experiments("ALL")
    message = str(refused.value)
    assert "212882557939743825/meta.yaml" in message
    assert "'212882553939743825' is not its folder's name '212882557939743825'" in message


def test_experiments_whose_ids_match_their_folders_are_listed(tmp_path):
    write_experiment(tmp_path, "7", "7")
    write_experiment(tmp_path, "12", "12")
    store = open_store(resolve_tracking_uri(str(tmp_path)))
    assert [e.experiment_id for e in store.list_experiments("ALL")] == ["7", "12"]
