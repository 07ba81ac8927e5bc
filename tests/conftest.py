"""Shared fixtures: small random-weight artifacts made in the test session."""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Official models install on first use into this folder: the tests' own, never the user's cache
os.environ["ESRGAN_OFFICIAL_MODELS_DIR"] = tempfile.mkdtemp(prefix="esrgan-official-")

TINY_RRDB = dict(num_block=2, num_feat=16, num_grow_ch=8)


def make_artifact(models_dir: Path, name: str, scale: int = 4, arch: str = "rrdbnet", seed: int = 0,
                  params: dict | None = None, **fields):
    """Build a random-weight generator and write it as an artifact; returns the manifest."""
    import keras

    from model.archs import build_generator
    from model.artifacts import model_weights, save_artifact

    keras.utils.set_random_seed(seed)
    params = {**(TINY_RRDB if arch == "rrdbnet" else {}), "scale": scale, **(params or {})}
    model = build_generator(arch, params)
    value_range = (-1.0, 1.0) if arch == "srresnet" else (0.0, 1.0)
    return save_artifact(models_dir / name, model_weights(model), name=name, arch=arch, params=params,
                         scale=scale, value_range=value_range, description=f"random test model {name}", **fields)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models folder with a tiny x2 and x4 RRDBNet (random weights)."""
    root = tmp_path_factory.mktemp("models")
    make_artifact(root, "tiny-x4", scale=4, default=True)
    make_artifact(root, "tiny-x2", scale=2, seed=1, default=True)
    return root
