"""``esrgan eval``, ``esrgan interpolate`` and ``esrgan prepare`` on artifacts and images made in the test."""
import json

import numpy as np
import pytest
from PIL import Image

from bench.harness import make_artifact
from model.artifacts import load_keras_model, model_weights, read_manifest, read_weights
from model.engine import Upscaler
from model.errors import ArtifactError
from tests.helpers import esrgan
from tests.test_data import benchmark, photos
from training.evaluate import engine_upscale, evaluate, find_pairs
from training.imresize import imresize
from training.interpolate import interpolate_artifacts
from training.metrics import evaluate_pair


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return benchmark(tmp_path_factory.mktemp("bench"), sizes=((40, 48), (37, 42)), scale=2)


def test_eval_matches_the_metric_functions(pairs, models_dir):
    result = evaluate(engine_upscale(models_dir / "tiny-x2"), pairs, 2)
    upscaler = Upscaler.from_artifact(models_dir / "tiny-x2", tile=0)
    assert [r["image"] for r in result["images"]] == ["img0", "img1"]
    for row, (name, lr_path, hr_path) in zip(result["images"], find_pairs(pairs)):
        lr, hr = np.asarray(Image.open(lr_path)), np.asarray(Image.open(hr_path))
        hr = hr[: lr.shape[0] * 2, : lr.shape[1] * 2]
        expected = evaluate_pair(upscaler.upscale(lr), hr, 2)
        bicubic = evaluate_pair(imresize(lr, 2), hr, 2)
        assert row["psnr"] == pytest.approx(expected["psnr"]) and row["ssim"] == pytest.approx(expected["ssim"])
        assert row["bicubic_psnr"] == pytest.approx(bicubic["psnr"])
        assert row["bicubic_psnr"] > row["psnr"]  # a random-weight model loses to bicubic
    assert result["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in result["images"]]))


def test_eval_cli_writes_table_and_json(pairs, models_dir, tmp_path):
    run = esrgan("eval", "--model", "tiny-x2", "--models-dir", models_dir, "--data", pairs, "--scale", 2,
                 "--json", tmp_path / "r.json")
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["model"] == "tiny-x2" and len(result["images"]) == 2
    assert f"{result['mean']['psnr']:.3f}" in run.stdout and "bicubic" in run.stdout
    same = evaluate(engine_upscale(models_dir / "tiny-x2"), pairs, 2)
    assert result["mean"]["psnr"] == pytest.approx(same["mean"]["psnr"])


def test_eval_cli_bad_input_is_a_message(pairs, models_dir, tmp_path):
    run = esrgan("eval", "--model", "nope", "--models-dir", models_dir, "--data", pairs, "--scale", 2)
    assert run.returncode == 2 and "unknown model 'nope'" in run.stderr and "Traceback" not in run.stderr
    run = esrgan("eval", "--model", "tiny-x2", "--models-dir", models_dir, "--data", tmp_path, "--scale", 2)
    assert run.returncode == 2 and "HR/ and LR/" in run.stderr
    run = esrgan("eval", "--model", "tiny-x4", "--models-dir", models_dir, "--data", pairs, "--scale", 4)
    assert run.returncode == 2 and "wrong --scale" in run.stderr


def test_interpolation_endpoints_are_the_two_models(tmp_path):
    make_artifact(tmp_path, "psnr", scale=2, seed=0)
    make_artifact(tmp_path, "gan", scale=2, seed=1)
    run = esrgan("interpolate", tmp_path / "psnr", tmp_path / "gan", "--name", "blend", "--models-dir", tmp_path,
                 "--default-strength", 0.7)
    assert run.returncode == 0, run.stderr
    manifest = read_manifest(tmp_path / "blend")
    assert manifest.interpolation.default_strength == 0.7
    gan = read_weights(tmp_path / "gan", read_manifest(tmp_path / "gan").weights)
    psnr = read_weights(tmp_path / "psnr", read_manifest(tmp_path / "psnr").weights)
    for strength, expected in ((1.0, gan), (0.0, psnr)):
        got = model_weights(load_keras_model(tmp_path / "blend", strength=strength))
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=0, atol=1e-7, err_msg=k)
    half = model_weights(load_keras_model(tmp_path / "blend", strength=0.5))
    k = "conv_first/kernel"
    np.testing.assert_allclose(half[k], (gan[k] + psnr[k]) / 2, atol=1e-7)
    lr = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    np.testing.assert_array_equal(Upscaler.from_artifact(tmp_path / "blend", strength=1.0, tile=0).upscale(lr),
                                  Upscaler.from_artifact(tmp_path / "gan", tile=0).upscale(lr))


def test_ends_of_different_networks_blend_by_output(tmp_path):
    """A compact SRVGG sharp end with an RRDBNet restoration end: strength blends the two networks' outputs
    (each end alone at 0 and 1), on both backends; an interpolated artifact gives its restoration end."""
    make_artifact(tmp_path, "psnr", scale=2, seed=0)
    make_artifact(tmp_path, "gan", scale=2, seed=1, arch="srvgg", params={"num_feat": 8, "num_conv": 2})
    run = esrgan("interpolate", tmp_path / "psnr", tmp_path / "gan", "--name", "blend", "--models-dir", tmp_path)
    assert run.returncode == 0, run.stderr
    manifest = read_manifest(tmp_path / "blend")
    assert manifest.blends_outputs and manifest.networks() == [("srvgg", {"scale": 2, "num_feat": 8, "num_conv": 2}),
                                                               ("rrdbnet", read_manifest(tmp_path / "psnr").params)]
    x = np.random.default_rng(0).random((1, 12, 10, 3), dtype=np.float32)

    def out(folder, backend, strength=None):
        return Upscaler.from_artifact(folder, strength=strength, backend=backend, precision="float32").runner(x)

    for backend in ("openvino", "tensorflow"):
        ends = {s: out(tmp_path / "blend", backend, s) for s in (0.0, 0.3, 1.0)}
        np.testing.assert_allclose(ends[1.0], out(tmp_path / "gan", backend), atol=1e-6)
        np.testing.assert_allclose(ends[0.0], out(tmp_path / "psnr", backend), atol=1e-6)
        assert np.abs(ends[1.0] - ends[0.0]).mean() > 0.01  # two different networks, or the next line proves nothing
        inside = (ends[1.0] > 0) & (ends[1.0] < 1) & (ends[0.0] > 0) & (ends[0.0] < 1)  # the networks' raw outputs
        assert inside.mean() > 0.3  # blended before the one final clip, as weights are interpolated before it
        np.testing.assert_allclose(ends[0.3][inside], (0.3 * ends[1.0] + 0.7 * ends[0.0])[inside], atol=1e-5)

    # Re-blending takes the blend's restoration end (an RRDBNet) as the smooth end, not its SRVGG weights.
    run = esrgan("interpolate", tmp_path / "blend", tmp_path / "gan", "--name", "again", "--models-dir", tmp_path)
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(out(tmp_path / "again", "openvino", 0.0), out(tmp_path / "psnr", "openvino"), atol=1e-6)
    # ... and that end's record, not the blend's nested one
    assert read_manifest(tmp_path / "again").training["psnr"] == read_manifest(tmp_path / "psnr").training


def test_interpolation_refuses_different_scales(tmp_path):
    make_artifact(tmp_path, "a", scale=2)
    make_artifact(tmp_path, "b", scale=4)
    with pytest.raises(ArtifactError, match="different scale"):
        interpolate_artifacts(tmp_path / "a", tmp_path / "b", tmp_path / "c", "c")
    run = esrgan("interpolate", tmp_path / "a", tmp_path / "b", "--name", "c", "--models-dir", tmp_path)
    assert run.returncode == 2 and "different scale" in run.stderr


def test_prepare_cli(tmp_path):
    photos(tmp_path / "src", sizes=((64, 80),))
    run = esrgan("prepare", tmp_path / "src", tmp_path / "out", "--scale", 4, "--crops", 2, "--crop", 32)
    assert run.returncode == 0, run.stderr
    assert "wrote 1 HR/LR images and 2 patch pairs" in run.stdout
    assert Image.open(tmp_path / "out/LR/img0.png").size == (20, 16)
    assert len(list((tmp_path / "out/patches/LR").iterdir())) == 2
    run = esrgan("prepare", tmp_path / "nowhere", tmp_path / "out")
    assert run.returncode == 2 and "not a folder of images" in run.stderr


def test_train_cli_errors_are_messages(tmp_path):
    run = esrgan("train", tmp_path / "missing", "--out", tmp_path / "run")
    assert run.returncode == 2 and "not a folder of images" in run.stderr and "Traceback" not in run.stderr
    run = esrgan("train", tmp_path, "--stage", "gan", "--out", tmp_path / "run")
    assert run.returncode == 2 and "--init" in run.stderr
    run = esrgan("train", "--resume", "--out", tmp_path / "never")
    assert run.returncode == 2 and "no run to resume" in run.stderr
