"""The closest names suggested for a name that does not exist."""

from __future__ import annotations

from pyspark_experiments.suggest import closest_names


def test_the_same_name_up_to_case_and_a_trailing_slash_comes_first():
    names = ["/Shared/churn/", "/shared/churn-v2/", "/Shared/Churn"]
    assert closest_names("/shared/churn", names)[:2] == ["/Shared/churn/", "/Shared/Churn"]


def test_at_most_limit_names_out_of_a_thousand():
    names = [f"run-{i:04d}" for i in range(1000)]
    found = closest_names("run-042", names + ["other"], limit=5)
    assert len(found) == 5 and all(n.startswith("run-") and n.endswith("42") for n in found)


def test_typos_and_names_that_hold_it():
    assert closest_names("val_acurracy", ["val_accuracy", "loss"]) == ["val_accuracy"]
    assert closest_names("loss", ["val_loss", "train_loss", "acc"]) == ["val_loss", "train_loss"]
    assert closest_names("q", ["abc"]) == [] and closest_names("x", []) == []
