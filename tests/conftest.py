"""Test-wide set-up: Keras 2 before any TensorFlow import, Beam in-memory, shared paths."""
import os
import pathlib

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Read-only data beside the checkout (not shipped): movielens (research licence) and the byterec sample.
SHARED_DATA = pathlib.Path(os.environ.get("DRGRAD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data_dir():
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT
