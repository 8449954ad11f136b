"""The error classes: one base, and each still the builtin it replaced."""

from __future__ import annotations

import pytest

from pyspark_experiments import errors


@pytest.mark.parametrize(
    "error_class, builtin",
    [
        (errors.ConfigurationError, ValueError),
        (errors.UnsupportedStoreError, ValueError),
        (errors.StoreNotFoundError, FileNotFoundError),
        (errors.ExperimentNotFoundError, LookupError),
        (errors.StoreConnectionError, ConnectionError),
        (errors.MissingDependencyError, ImportError),
        (errors.MalformedRecordError, ValueError),
        (errors.TargetLockedError, RuntimeError),
    ],
)
def test_each_error_is_an_experiments_error_and_its_builtin(error_class, builtin):
    error = error_class("what went wrong")
    assert isinstance(error, errors.ExperimentsError)
    assert isinstance(error, builtin)
    with pytest.raises(builtin, match="what went wrong"):
        raise error


def test_every_public_error_is_exported():
    public = {name for name in dir(errors) if name.endswith("Error") and not name.startswith("_")}
    assert public == set(errors.__all__)
