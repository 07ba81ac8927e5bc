"""Training on tiny data: the loss falls, GAN steps run with both perceptual losses, a killed run
resumes exactly, exports are loadable artifacts."""
import signal
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench.harness import TINY_RRDB
from model.artifacts import load_keras_model, read_manifest
from tests.helpers import start_esrgan
from tests.test_data import benchmark, photos
from training.config import TrainConfig
from training.data import make_dataset
from training.evaluate import evaluate, keras_upscale
from training.train import train

TINY = dict(num_block=1, num_feat=TINY_RRDB["num_feat"], num_grow_ch=TINY_RRDB["num_grow_ch"])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_images")
    photos(folder, sizes=((80, 96), (72, 72), (96, 64)))
    return folder


def tiny_config(images, out, **kw):
    return TrainConfig(**{**dict(data=str(images), out=str(out), name="tiny", scale=2, hr_crop=32, batch_size=4,
                                 steps=40, lr=1e-3, checkpoint_every=1000, log_every=5, progress=False, **TINY), **kw})


def l1_on(model, batch):
    lr, hr = batch
    return float(tf.reduce_mean(tf.abs(model(lr, training=False) - hr)))


def test_psnr_stage_reduces_l1_and_exports_the_ema_generator(images, tmp_path):
    val = benchmark(tmp_path / "Set" / "x2", sizes=((36, 40),), scale=2)
    cfg = tiny_config(images, tmp_path / "run", val=str(val))
    batch = next(iter(make_dataset(images, scale=2, crop=32, batch_size=8, seed=99)))
    keras.utils.set_random_seed(cfg.seed)  # the same initial weights train() starts from
    from model.archs import build_generator

    before = l1_on(build_generator("rrdbnet", cfg.generator_params), batch)
    folder = train(cfg)
    manifest = read_manifest(folder)
    after = l1_on(load_keras_model(folder), batch)
    assert after < 0.6 * before, (before, after)
    assert manifest.scale == 2 and manifest.params == cfg.generator_params
    assert manifest.training["steps"] == 40 and manifest.training["stage"] == "psnr"
    assert manifest.training["final_losses"]["l1"] < before
    assert (tmp_path / "run/checkpoints/checkpoint").is_file()
    # validation scores of the exported model, by the same evaluator as `esrgan eval`
    assert manifest.metrics["Set_x2"]["psnr"] == pytest.approx(
        evaluate(keras_upscale(load_keras_model(folder)), val, 2)["mean"]["psnr"], abs=1e-4)
    assert list((tmp_path / "run/logs").iterdir())  # TensorBoard events


@pytest.mark.parametrize("option", [dict(precision="float16"), dict(precision="bfloat16"), dict(multi_gpu=True)])
def test_mixed_precision_and_mirrored_strategy_options_train(images, tmp_path, option):
    """On this CPU-only machine MirroredStrategy has one replica, and float16 runs on the CPU: the
    code paths (loss scaling, distributed dataset, replica reduction) run, not the GPU speed-ups."""
    folder = train(tiny_config(images, tmp_path / "run", steps=2, **option))
    losses = read_manifest(folder).training["final_losses"]
    assert np.isfinite(losses["l1"])
    assert keras.mixed_precision.global_policy().name == "float32"  # not leaked to later models
    assert all(w.dtype == np.float32 for w in load_keras_model(folder).get_weights())


@pytest.fixture(scope="module")
def psnr_artifact(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("psnr_run")
    return train(tiny_config(images, out, steps=3))


def test_mse_fine_tune_starts_from_an_artifact_and_lowers_mse(images, tmp_path, psnr_artifact):
    """The PSNR-targeted final fine-tune: --init a stage-1 artifact, --pixel-loss mse."""
    batch = next(iter(make_dataset(images, scale=2, crop=32, batch_size=8, seed=7)))

    def mse(model):
        lr, hr = batch
        return float(tf.reduce_mean(tf.square(model(lr, training=False) - hr)))

    before = mse(load_keras_model(psnr_artifact))
    folder = train(tiny_config(images, tmp_path / "ft", init=str(psnr_artifact), pixel_loss="mse", steps=30, lr=5e-4))
    assert set(read_manifest(folder).training["final_losses"]) == {"mse"}
    assert mse(load_keras_model(folder)) < 0.9 * before
    with pytest.raises(ValueError, match="pixel_loss"):
        tiny_config(images, tmp_path / "bad", pixel_loss="l2")


def gan_config(images, out, psnr_artifact, **kw):
    return tiny_config(images, out, **{**dict(stage="gan", init=str(psnr_artifact), steps=2, d_num_feat=8, lr=None), **kw})


def test_gan_stage_with_feature_matching(images, tmp_path, psnr_artifact):
    folder = train(gan_config(images, tmp_path / "gan", psnr_artifact, perceptual="feature-matching"))
    losses = read_manifest(folder).training["final_losses"]
    assert set(losses) == {"l1", "perceptual", "adversarial", "g", "d"}
    assert all(np.isfinite(v) for v in losses.values()) and losses["perceptual"] > 0
    # it started from the PSNR weights and moved away from them
    start, end = load_keras_model(psnr_artifact).get_weights(), load_keras_model(folder).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(start, end))


def test_gan_stage_real_esrgan_recipe_needs_no_pretrained_file(images, tmp_path, psnr_artifact):
    """Real-world GAN stage: U-Net discriminator with spectral norm, random-conv perceptual loss, LDL
    artifact loss, USM-sharpened targets on second-order degraded pairs."""
    folder = train(gan_config(images, tmp_path / "gan", psnr_artifact, discriminator="unet", perceptual="random",
                              artifact_weight=1.0, degradation="realworld", usm_gt=True, adversarial_weight=0.1,
                              l1_weight=1.0, lowfreq_weight=1.0, chroma_weight=1.0, steps=3))
    losses = read_manifest(folder).training["final_losses"]
    assert set(losses) == {"l1", "perceptual", "adversarial", "artifact", "lowfreq", "chroma", "g", "d"}
    assert all(np.isfinite(v) for v in losses.values()) and losses["perceptual"] > 0 and losses["artifact"] >= 0
    start, end = load_keras_model(psnr_artifact).get_weights(), load_keras_model(folder).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(start, end))
    with pytest.raises(ValueError, match="feature-matching"):
        gan_config(images, tmp_path / "bad", psnr_artifact, discriminator="unet", perceptual="feature-matching")
    with pytest.raises(ValueError, match="usm"):
        tiny_config(images, tmp_path / "bad", usm_gt=True)


def test_unet_discriminator_judges_every_pixel_and_random_features_are_fixed():
    from model.archs.discriminator import build_unet_discriminator
    from training.losses import artifact_map, random_conv_features

    d = build_unet_discriminator(8)
    x = np.random.default_rng(0).random((2, 40, 24, 3)).astype(np.float32)
    assert d(x).shape == (2, 40, 24, 1)
    a, b = random_conv_features(0), random_conv_features(0)
    fa, fb = a(x), b(x)
    assert [f.shape[1:3] for f in fa] == [(40, 24), (20, 12), (10, 6)]
    for u, v in zip(fa, fb):
        np.testing.assert_array_equal(u.numpy(), v.numpy())  # the same loss on every run and resume
    assert not a.trainable_weights
    # artifact map: zero where the generator beats its EMA, positive where it draws irregular residuals
    hr = np.zeros((1, 16, 16, 3), np.float32)
    noisy = hr + np.random.default_rng(1).random(hr.shape).astype(np.float32) * 0.5
    assert float(tf.reduce_max(artifact_map(hr, noisy, hr))) > 0
    assert float(tf.reduce_max(artifact_map(hr, hr, noisy))) == 0


def test_fidelity_losses_ignore_texture_and_catch_halos_and_colour():
    """lowfreq_l1 hardly sees zero-mean texture but sees a halo beside an edge; chroma_l1 ignores any change
    of luma and sees a colour fringe."""
    from training.losses import chroma_l1, lowfreq_l1

    rng = np.random.default_rng(0)
    flat = np.full((1, 48, 48, 3), 0.5, np.float32)
    texture = flat + rng.choice([-0.1, 0.1], flat.shape[:3] + (1,)).astype(np.float32)  # gray, zero-mean
    halo = flat.copy()
    halo[:, :, 20:26] += 0.1  # a bright band as wide as a GAN halo at x4

    def seen(image):  # share of the plain L1 error that the low-frequency loss still sees
        return float(lowfreq_l1(image, flat, sigma=2.0)) / float(np.abs(image - flat).mean())

    assert seen(texture) < 0.2 and seen(halo) > 0.8
    assert float(chroma_l1(texture, flat)) < 1e-6
    fringe = flat.copy()
    fringe[:, :, 20:22, 0] += 0.1  # red-only: a colour fringe
    assert float(chroma_l1(fringe, flat)) > 1e-3


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """Random VGG19 weights in the legacy HDF5 layout of Keras's download (same name, same format)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from training.losses import KERAS_VGG19_FILE

    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path_factory.mktemp("vgg") / KERAS_VGG19_FILE
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, vgg)
    return path, vgg


def test_vgg19_conv54_loads_a_local_file_and_stops_before_the_relu(vgg_file):
    from training.losses import vgg19_conv54

    path, reference = vgg_file
    features = vgg19_conv54(path)
    img = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    ours = features(img).numpy()
    theirs = keras.Model(reference.input, reference.get_layer("block5_conv4").output)(
        keras.applications.vgg19.preprocess_input(img * 255.0)).numpy()
    assert ours.shape == (1, 2, 2, 512) and ours.min() < 0  # pre-activation features
    np.testing.assert_allclose(np.maximum(ours, 0), theirs, rtol=1e-4, atol=1e-4)


def test_gan_stage_with_vgg_perceptual_loss(images, tmp_path, psnr_artifact, vgg_file):
    folder = train(gan_config(images, tmp_path / "gan", psnr_artifact, vgg19_weights=str(vgg_file[0])))
    losses = read_manifest(folder).training["final_losses"]
    assert np.isfinite(losses["g"]) and losses["perceptual"] > 0


def test_missing_vgg_weights_says_what_to_do(images, tmp_path, psnr_artifact, monkeypatch):
    from training.losses import MissingVGGWeights

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ESRGAN_VGG19_WEIGHTS", raising=False)
    with pytest.raises(MissingVGGWeights, match="feature-matching"):
        train(gan_config(images, tmp_path / "gan", psnr_artifact))


def esrgan(*args, **kw):
    return start_esrgan(*args, env={"TF_DETERMINISTIC_OPS": "1"}, **kw)


def checkpoint_values(run: Path) -> dict:
    reader = tf.train.load_checkpoint(str(run / "checkpoints"))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "save_counter" not in k and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_killed_run_resumes_exactly(images, tmp_path):
    """A run killed (SIGTERM) mid-way and resumed ends with the same step, weights, EMA and Adam state as
    an uninterrupted run: same checkpoint values to float precision."""
    common = ["train", images, "--scale", 2, "--hr-crop", 32, "--batch-size", 2, "--steps", 60, "--lr", 1e-3,
              "--num-block", 1, "--num-feat", 8, "--num-grow-ch", 4, "--checkpoint-every", 2, "--no-progress"]
    full = esrgan(*common, "--out", tmp_path / "full")
    killed = esrgan(*common, "--out", tmp_path / "killed")
    deadline = time.time() + 120
    while not (tmp_path / "killed/checkpoints/ckpt-4.index").exists():
        assert killed.poll() is None and time.time() < deadline, killed.communicate()[0]
        time.sleep(0.05)
    killed.send_signal(signal.SIGTERM)
    out = killed.communicate(timeout=60)[0]
    assert killed.returncode == 130, out
    stopped = int(out.split("interrupted at step ")[1].split(";")[0])
    assert 4 <= stopped < 60
    resumed = esrgan("train", "--resume", "--out", tmp_path / "killed")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert f"resumed {tmp_path / 'killed/checkpoints/ckpt-'}{stopped} at step {stopped}" in out
    assert full.communicate(timeout=300)[0] and full.returncode == 0

    a, b = checkpoint_values(tmp_path / "full"), checkpoint_values(tmp_path / "killed")
    assert a.keys() == b.keys()
    assert a["step/.ATTRIBUTES/VARIABLE_VALUE"] == 60
    ema = [k for k in a if k.startswith("ema/")]
    adam = [k for k in a if k.startswith("g_opt/")]
    assert ema and adam
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
