"""Shared fixtures: small random-weight artifacts made in the test session, and a real photograph."""
import os
import tempfile
from pathlib import Path

import pytest

from bench.harness import make_artifact

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Official models install on first use into this folder: the tests' own, never the user's cache
os.environ["ESRGAN_OFFICIAL_MODELS_DIR"] = tempfile.mkdtemp(prefix="esrgan-official-")
# Compiled networks likewise: a test never starts from (or fills) the user's compiled-model cache
os.environ["ESRGAN_COMPILED_CACHE_DIR"] = tempfile.mkdtemp(prefix="esrgan-compiled-")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models folder with a tiny x2 and x4 RRDBNet (random weights)."""
    root = tmp_path_factory.mktemp("models")
    make_artifact(root, "tiny-x4", scale=4, default=True)
    make_artifact(root, "tiny-x2", scale=2, seed=1, default=True)
    return root


@pytest.fixture(scope="session")
def photo():
    """96x120 RGB uint8 of scikit-image's astronaut: real image content (face, hair, flat background)."""
    from skimage import data

    return data.astronaut()[100:196, 150:270]
