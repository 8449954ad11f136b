"""Where things are in the repository, for tests at any depth of the mirrored test tree."""

from __future__ import annotations

from pathlib import Path

#: The repository's root folder (holds pyproject.toml, conf/, notebooks/, tests/).
REPO = Path(__file__).resolve().parents[2]
#: Stores and targets committed as test data.
TEST_DATA = REPO / "tests" / "data"
