import json

import numpy as np
import pytest

from bench.harness import make_artifact
from model.artifacts import find_model, interpolate, list_models, load_keras_model, read_manifest
from model.errors import ArtifactError, ModelNotFound


def test_roundtrip_loads_identical_weights(tmp_path):
    manifest = make_artifact(tmp_path, "m", scale=4)
    assert manifest.weights.sha256 and manifest.framework["tensorflow"]
    model = load_keras_model(tmp_path / "m")
    x = np.random.rand(1, 8, 8, 3).astype("float32")
    again = load_keras_model(tmp_path / "m")
    np.testing.assert_array_equal(model(x), again(x))
    assert read_manifest(tmp_path / "m").training["num_params"] == model.count_params()


def test_corrupt_weights_fail_with_checksum_message(tmp_path):
    make_artifact(tmp_path, "m")
    path = tmp_path / "m" / "weights.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_keras_model(tmp_path / "m")


def test_missing_weights_and_bad_manifest(tmp_path):
    make_artifact(tmp_path, "m")
    (tmp_path / "m" / "weights.npz").unlink()
    with pytest.raises(ArtifactError, match="weights file missing"):
        load_keras_model(tmp_path / "m")
    (tmp_path / "m" / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="invalid manifest"):
        read_manifest(tmp_path / "m")
    with pytest.raises(ArtifactError, match="no manifest.json"):
        read_manifest(tmp_path / "nothing")


def test_manifest_mismatching_weights_names_the_problem(tmp_path):
    make_artifact(tmp_path, "m")
    path = tmp_path / "m" / "manifest.json"
    doc = json.loads(path.read_text())
    doc["params"]["num_block"] = 3  # the weights hold 2 blocks
    path.write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="do not match the architecture: missing"):
        load_keras_model(tmp_path / "m")
    doc["params"]["num_block"], doc["params"]["num_feat"] = 2, 24
    path.write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="has shape"):
        load_keras_model(tmp_path / "m")


def test_registry_lists_and_resolves_defaults(models_dir):
    names = [m.name for m in list_models(models_dir)]
    assert names == ["tiny-x2", "tiny-x4"]
    assert find_model(models_dir, scale=2)[1].name == "tiny-x2"
    assert find_model(models_dir, scale=4)[1].name == "tiny-x4"
    assert find_model(models_dir, "tiny-x2")[1].scale == 2
    with pytest.raises(ModelNotFound, match="unknown model 'nope'.*tiny-x2"):
        find_model(models_dir, "nope")
    with pytest.raises(ModelNotFound):
        find_model(models_dir, "../tiny-x2")
    with pytest.raises(ModelNotFound, match="is x2, not x4"):
        find_model(models_dir, "tiny-x2", scale=4)


def test_interpolation_blends_linearly():
    a = {"w": np.ones(3, np.float32)}
    b = {"w": np.zeros(3, np.float32)}
    np.testing.assert_allclose(interpolate(a, b, 0.25)["w"], 0.25)
    with pytest.raises(ArtifactError):
        interpolate(a, {"v": np.zeros(3)}, 0.5)
