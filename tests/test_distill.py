"""Distillation: the teacher cache (deterministic, resumable, refuses another teacher), the x2 target, and a
tiny student that learns a tiny teacher through ``esrgan train --teacher``."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from model.artifacts import read_manifest
from model.engine import Upscaler
from bench.harness import make_artifact
from training.config import TrainConfig
from training.teacher import CacheConfig, TeacherCache, load_pair

CFG = CacheConfig(lr_size=16, scale=4, seed=3, second_order_prob=0.5, edge=4)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("images")
    for name, img in (("astronaut", data.astronaut()), ("chelsea", data.chelsea()), ("coffee", data.coffee())):
        Image.fromarray(img[:160, :200]).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    make_artifact(root, "tiny-teacher", scale=4, seed=7)
    return root / "tiny-teacher"


def test_cache_is_deterministic_resumable_and_tied_to_its_teacher(tmp_path, images, teacher):
    up = Upscaler.from_artifact(teacher, precision="float32")
    cache = TeacherCache(tmp_path / "cache", CFG, images, "tiny-teacher")
    assert cache.fill(up, 6, batch=4) == 6
    files = cache.done()
    assert len(files) == 6 and all(f.name.startswith(f"{i:06d}-") for i, f in enumerate(files))
    pair = load_pair(files[2])
    assert pair["lr"].shape == (16, 16, 3) and pair["teacher"].shape == pair["hr"].shape == (64, 64, 3)
    # The cached target is what the engine's teacher makes of that LR crop (mirrored context, one pass).
    alone = Upscaler.from_artifact(teacher, precision="float32", tile=0, edge_pad=CFG.edge).upscale(pair["lr"])
    assert np.abs(alone.astype(int) - pair["teacher"]).max() <= 1

    files[4].unlink()  # a fill killed before this pair was written
    again = TeacherCache(tmp_path / "cache", CFG, images, "tiny-teacher")
    assert again.fill(up, 6) == 1 and again.fill(up, 6) == 0
    redo = TeacherCache(tmp_path / "redo", CFG, images, "tiny-teacher")
    assert redo.fill(up, 6, batch=2, workers=2) == 6  # pairs made by a process pool, in order
    assert len(redo.done()) == 6
    for a, b in zip(again.done(), redo.done()):  # the same key gives the same crop, degradation and target
        assert a.name == b.name and all(np.array_equal(load_pair(a)[k], load_pair(b)[k]) for k in ("lr", "hr"))

    with pytest.raises(ValueError, match="another teacher"):
        TeacherCache(tmp_path / "cache", CFG, images, "other-teacher")


def test_x2_student_target_is_the_x4_teacher_output_halved(tmp_path, images, teacher):
    from training.distill import Pairs

    up = Upscaler.from_artifact(teacher, precision="float32")
    cache = TeacherCache(tmp_path / "cache", CFG, images, "tiny-teacher")
    cache.fill(up, 2)
    cfg = TrainConfig(stage="distill", teacher=str(teacher), data=str(images), scale=2, hr_crop=32, batch_size=2)
    pairs = Pairs(cache, cfg)
    raw = load_pair(cache.done()[0])
    halved = pairs.loaded[cache.done()[0].name]
    assert halved["teacher"].shape == (32, 32, 3)
    assert np.array_equal(halved["teacher"], cv2.resize(raw["teacher"], (32, 32), interpolation=cv2.INTER_AREA))
    lr, target, hr = pairs.batch()
    assert lr.shape == (2, 16, 16, 3) and target.shape == hr.shape == (2, 32, 32, 3)


def test_student_learns_the_teacher_from_the_command_line(tmp_path, images, teacher):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "esrgan", "train", str(images), "--teacher", str(teacher),
            "--teacher-cache", str(tmp_path / "cache"), "--teacher-samples", "8", "--teacher-crop", "16", "--out", str(out),
            "--name", "student", "--steps", "60", "--batch-size", "4", "--hr-crop", "32", "--num-block", "1",
            "--num-feat", "16", "--num-grow-ch", "8", "--lr", "1e-3", "--log-every", "10",
            "--checkpoint-every", "30", "--ema-decay", "0.5", "--no-progress"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50, 60]
    assert np.mean([r["l1"] for r in log[-2:]]) < 0.7 * np.mean([r["l1"] for r in log[:2]])
    manifest = read_manifest(out / "student")
    assert manifest.training["distill"]["teacher"] == str(teacher) and manifest.scale == 4
    # The exported student is closer to the teacher than a fresh network of its shape.
    pair = load_pair(sorted((tmp_path / "cache").glob("0*.npz"))[0])
    student = Upscaler.from_artifact(out / "student", precision="float32").upscale(pair["lr"]).astype(float)
    make_artifact(tmp_path, "fresh", scale=4, params={"num_block": 1, "num_feat": 16, "num_grow_ch": 8}, seed=5)
    fresh = Upscaler.from_artifact(tmp_path / "fresh", precision="float32").upscale(pair["lr"]).astype(float)
    assert np.abs(student - pair["teacher"]).mean() < 0.7 * np.abs(fresh - pair["teacher"]).mean()

    # Resumed, the schedule goes on and the exported average starts from the weights, not from zeros.
    resumed = subprocess.run([*args[:3], "train", "--resume", "--out", str(out), "--steps", "80",
                              "--ema-decay", "0.99", "--no-progress"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()][-2:] == [70, 80]
    again = Upscaler.from_artifact(out / "student", precision="float32").upscale(pair["lr"]).astype(float)
    assert np.abs(again - pair["teacher"]).mean() < 0.7 * np.abs(fresh - pair["teacher"]).mean()

    bad = subprocess.run([*args[:5], "--teacher", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "esrgan train: error:" in bad.stderr and "Traceback" not in bad.stderr


def test_srvgg_student_starts_from_an_srvgg_artifact_and_exports_one(tmp_path, images, teacher, capsys):
    """--arch srvgg: the compact student starts from an SRVGG artifact's weights (e.g. an official compact
    model), learns the teacher, and is exported as an SRVGG artifact the engine runs; an init of another
    shape is refused by name before any work."""
    from esrgan.main import main as esrgan_main

    params = {"num_feat": 8, "num_conv": 2}
    make_artifact(tmp_path, "compact", scale=4, arch="srvgg", params=params, seed=5)
    out, cache = tmp_path / "run", tmp_path / "cache"
    common = ["train", str(images), "--teacher", str(teacher), "--teacher-cache", str(cache), "--teacher-samples",
              "8", "--teacher-crop", "16", "--arch", "srvgg", "--num-feat", "8", "--num-conv", "2", "--hr-crop", "32",
              "--batch-size", "4", "--lr", "2e-3", "--ema-decay", "0.5", "--log-every", "20", "--no-progress"]
    assert esrgan_main([*common, "--init", str(tmp_path / "compact"), "--steps", "80", "--out", str(out),
                        "--name", "student"]) == 0
    manifest = read_manifest(out / "student")
    assert manifest.arch == "srvgg" and manifest.params == {"scale": 4, **params}
    pair = load_pair(sorted(cache.glob("0*.npz"))[0])
    err = {name: np.abs(Upscaler.from_artifact(folder, precision="float32", backend="openvino").upscale(pair["lr"])
                        .astype(float) - pair["teacher"]).mean()
           for name, folder in (("student", out / "student"), ("init", tmp_path / "compact"))}
    assert err["student"] < 0.7 * err["init"], err

    # From a model whose ends are different networks (a shipped real model's shape): the student replaces the
    # sharp end, the RRDBNet restoration end stays, under its own network, and strength still blends the two.
    from training.interpolate import interpolate_artifacts

    interpolate_artifacts(teacher, tmp_path / "compact", tmp_path / "blended", "blended", default_strength=0.6)
    assert esrgan_main([*common, "--init", str(tmp_path / "blended"), "--steps", "2", "--out", str(tmp_path / "b"),
                        "--name", "student-b"]) == 0
    blended = read_manifest(tmp_path / "b" / "student-b")
    assert blended.networks() == [("srvgg", {"scale": 4, **params}), (read_manifest(teacher).arch,
                                                                       read_manifest(teacher).params)]
    smooth = Upscaler.from_artifact(tmp_path / "b" / "student-b", precision="float32", strength=0.0)
    assert np.abs(smooth.upscale(pair["lr"]).astype(int)
                  - Upscaler.from_artifact(teacher, precision="float32").upscale(pair["lr"])).max() <= 1

    # The x2 student starts from the x4 one, exactly halved (tests/test_archs.py), and trains toward the x2 target.
    assert esrgan_main([*common, "--init", str(out / "student"), "--scale", "2", "--steps", "4", "--out",
                        str(tmp_path / "x2"), "--name", "student-x2"]) == 0
    assert read_manifest(tmp_path / "x2" / "student-x2").params == {"scale": 2, **params}

    capsys.readouterr()
    other = [*common, "--init", str(teacher), "--steps", "2", "--out", str(tmp_path / "x"), "--teacher-cache",
             str(tmp_path / "empty-cache")]
    assert esrgan_main(other) == 2
    assert "is rrdbnet" in capsys.readouterr().err and not list((tmp_path / "empty-cache").glob("0*.npz"))


def test_adversarial_distillation_trains_a_discriminator_on_teacher_against_student(tmp_path, images, teacher):
    """--adversarial-weight: a discriminator learns to tell the teacher's outputs ("real") from the student's;
    the student's loss has the adversarial term; a resumed run goes on with the discriminator it saved."""
    from esrgan.main import main as esrgan_main
    from training.distill import CRITIC

    out = tmp_path / "run"
    common = ["train", str(images), "--teacher", str(teacher), "--teacher-cache", str(tmp_path / "cache"),
              "--teacher-samples", "8", "--teacher-crop", "16", "--arch", "srvgg", "--num-feat", "8", "--num-conv",
              "2", "--hr-crop", "32", "--batch-size", "4", "--lr", "2e-3", "--log-every", "10", "--no-progress",
              "--out", str(out), "--name", "student"]
    assert esrgan_main([*common, "--adversarial-weight", "0.1", "--discriminator", "unet", "--d-num-feat", "8",
                        "--steps", "60", "--checkpoint-every", "30"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # Untrained, the discriminator scores both alike: its loss is about 2 ln 2; trained, it tells them apart.
    assert all("adversarial" in r and "d" in r for r in log)
    assert np.mean([r["d"] for r in log[-2:]]) < 0.9 * 2 * np.log(2), log
    for r in log:  # the student's loss holds the adversarial term at its weight
        assert r["loss"] >= r["l1"] + 0.1 * r["adversarial"] - 1e-4
    saved = dict(np.load(out / CRITIC))
    head = next(k for k in saved if "conv9" in k and saved[k].ndim == 1)  # the logit's bias
    np.savez(out / CRITIC, **{**saved, head: saved[head] + 5.0})  # a mark no fresh discriminator has
    assert esrgan_main(["train", "--resume", "--out", str(out), "--steps", "70", "--no-progress"]) == 0
    resumed = dict(np.load(out / CRITIC))  # went on from the marked weights, and trained them
    assert resumed.keys() == saved.keys() and abs(resumed[head] - saved[head] - 5.0).max() < 0.5
    assert max(np.abs(resumed[k] - saved[k]).max() for k in saved if k != head) > 0

    # the torch backend has one too (tests/test_torch_distill.py)
    assert TrainConfig(backend="torch", stage="distill", teacher="x", data=str(images), adversarial_weight=0.1).adversary
    assert TrainConfig(stage="distill", teacher="x", data=str(images)).adversarial_weight == 0
    assert TrainConfig(stage="gan", init="x", data=str(images)).adversarial_weight == 5e-3
    assert TrainConfig(stage="distill", teacher="x", data=str(images), lr=3e-4).d_lr == 3e-4  # default: --lr


def test_grid_loss_wants_no_stripes_and_leaves_texture_alone():
    import tensorflow as tf

    from training.losses import grid_l1

    rng = np.random.default_rng(0)
    target = rng.random((2, 64, 64, 3)).astype(np.float32)
    texture = target + 0.1 * rng.standard_normal(target.shape).astype(np.float32)  # other grain, same amount
    striped = target.copy()
    striped[:, ::4] += 0.05  # every 4th row brighter: the x4 grid's stripes, at a sixth of texture's L1
    cost = {name: float(grid_l1(tf.constant(x), tf.constant(target), 4)) for name, x in
            (("texture", texture), ("striped", striped), ("same", target))}
    assert cost["same"] == 0 and cost["striped"] > cost["texture"], cost
    assert np.abs(striped - target).mean() < np.abs(texture - target).mean() / 5


def test_overshoot_loss_costs_halos_not_texture_within_range():
    import tensorflow as tf

    from training.losses import overshoot_l1

    checker = (np.indices((32, 32)).sum(axis=0) % 2).astype(np.float32)[None, :, :, None]
    target = 0.6 + 0.3 * checker  # a fine texture on a light ground...
    target[:, :, 14:18] = 0.1  # ...with a dark stroke
    halo = target.copy()
    halo[:, :, 12:14] = halo[:, :, 18:20] = 1.0  # bright rims beside the stroke: ringing
    texture = np.where(target > 0.5, 1.5 - target, target)  # the texture in the opposite phase
    cost = {name: float(overshoot_l1(tf.constant(x), tf.constant(target))) for name, x in
            (("halo", halo), ("texture", texture), ("same", target))}
    assert cost["same"] == 0 and cost["texture"] < 1e-6 and cost["halo"] > 0.01, cost
    assert np.abs(texture - target).mean() > np.abs(halo - target).mean()  # though further off, pixel by pixel


def test_texture_energy_wants_texture_not_its_exact_phase():
    """The energy term is what keeps a student from averaging texture away: it scores a shifted copy of the
    texture as (nearly) right and a flat image as wrong, where L1 scores the flat image better."""
    import tensorflow as tf

    from training.distill import texture_energy

    rng = np.random.default_rng(0)
    texture = 0.5 + 0.2 * rng.standard_normal((1, 64, 64, 3)).astype(np.float32)
    shifted = np.roll(texture, 1, axis=2)
    flat = np.full_like(texture, 0.5)

    def energy(a, b):
        return float(tf.reduce_mean(tf.abs(texture_energy(tf.constant(a)) - texture_energy(tf.constant(b)))))

    assert energy(texture, texture) == 0
    assert energy(shifted, texture) < 0.1 * energy(flat, texture)
    assert np.abs(flat - texture).mean() < np.abs(shifted - texture).mean()  # what plain L1 prefers


def test_torch_backend_distils_an_ncnn_teacher_into_a_checkpoint(tmp_path, images):
    """`esrgan train --backend torch --teacher model.param`: the ncnn teacher runs in PyTorch as the converted
    artifact runs in the engine, fills the shared cache, and the student moves towards it."""
    import torch

    from esrgan.main import main as esrgan_main
    from model.architectures import architecture
    from model.convert import convert_ncnn
    from tests import ncnn_factory as nf
    from training.torch_distill import load_teacher

    param = nf.rrdbnet(tmp_path / "tiny-t.param", blocks=1, feat=8, grow=4, seed=3)
    name, teacher = load_teacher(str(param), "cpu")
    convert_ncnn(param, tmp_path / "m", "tiny-t")
    engine = Upscaler.from_artifact(tmp_path / "m" / "tiny-t", precision="float32", backend="openvino")
    x = np.random.default_rng(0).random((1, 24, 20, 3), dtype=np.float32)
    assert name == "tiny-t" and teacher.scale == 4
    assert np.abs(np.clip(teacher.runner(x), 0, 1) - engine.runner(x)).max() < 1e-4  # the engine's runner clips

    out, cache = tmp_path / "run", tmp_path / "cache"
    assert esrgan_main(["train", str(images), "--backend", "torch", "--teacher", str(param), "--teacher-cache",
                        str(cache), "--teacher-samples", "8", "--teacher-crop", "16", "--hr-crop", "32", "--steps",
                        "60", "--batch-size", "4", "--num-block", "1", "--num-feat", "16", "--num-grow-ch", "8",
                        "--lr", "1e-3", "--ema-decay", "0.5", "--log-every", "20", "--out", str(out),
                        "--no-progress"]) == 0
    assert len(list(cache.glob("0*.npz"))) == 8 and json.loads((cache / "cache.json").read_text())["teacher"] == "tiny-t"
    assert json.loads((out / "result.json").read_text())["steps"] == 60

    params = {"scale": 4, "num_block": 1, "num_feat": 16, "num_grow_ch": 8}
    student, fresh = (architecture("rrdbnet").torch(**params).eval() for _ in range(2))
    student.load_state_dict(torch.load(out / "rrdbnet_x4.pth", weights_only=True)["params_ema"])
    pair = load_pair(sorted(cache.glob("0*.npz"))[0])
    lr = torch.from_numpy(pair["lr"][None].astype(np.float32) / 255).permute(0, 3, 1, 2)
    target = pair["teacher"].astype(float) / 255
    with torch.no_grad():
        err = [np.abs(net(lr)[0].permute(1, 2, 0).numpy() - target).mean() for net in (student, fresh)]
    assert err[0] < 0.7 * err[1]


def test_torch_teacher_by_official_name_keys_the_cache_as_the_tf_backend_does():
    """The package's file is REALESRGAN_X4PLUS_UP4X.param; the cache must be keyed realesrgan-x4plus, as the
    engine's teacher keys it, so one cache serves both backends."""
    from training.torch_distill import load_teacher

    name, teacher = load_teacher("realesrgan-x4plus", "cpu")
    assert name == "realesrgan-x4plus" and teacher.scale == 4
    assert sum(p.numel() for p in teacher.module.parameters()) > 16_000_000


def test_feature_matching_distillation_asks_for_the_teachers_discriminator_features(tmp_path, images, teacher):
    """--perceptual feature-matching: with no adversarial weight, a discriminator is still trained, and the
    student's loss holds the L1 between its features of the student's and the teacher's outputs (paired)."""
    from esrgan.main import main as esrgan_main
    from training.distill import CRITIC

    out = tmp_path / "run"
    assert esrgan_main(["train", str(images), "--teacher", str(teacher), "--teacher-cache", str(tmp_path / "cache"),
                        "--teacher-samples", "8", "--teacher-crop", "16", "--arch", "srvgg", "--num-feat", "8",
                        "--num-conv", "2", "--hr-crop", "32", "--batch-size", "4", "--lr", "2e-3", "--log-every",
                        "10", "--no-progress", "--out", str(out), "--name", "student", "--hf-weight", "0",
                        "--perceptual", "feature-matching", "--perceptual-weight", "1", "--discriminator", "vgg",
                        "--d-num-feat", "8", "--steps", "40"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert (out / CRITIC).is_file() and all("d" in r for r in log)
    # the loss is L1 plus the feature term (the adversarial one has weight 0): strictly more than L1
    assert all(r["loss"] > r["l1"] + 1e-3 for r in log), log
    with pytest.raises(ValueError, match="feature-matching"):
        TrainConfig(backend="torch", stage="distill", teacher="x", data=str(images), perceptual="feature-matching")
    assert TrainConfig(stage="distill", teacher="x", data=str(images), perceptual="feature-matching").adversary
    assert not TrainConfig(stage="distill", teacher="x", data=str(images), perceptual="random").adversary


def test_conditional_discriminator_sees_the_image_beside_its_lr_input(tmp_path, images, teacher):
    """--d-condition: the discriminator takes 6 channels (the image and its LR input, upsampled), trains, and
    the run resumes with it; the torch backend refuses the option."""
    from esrgan.main import main as esrgan_main
    from training.distill import CRITIC

    out = tmp_path / "run"
    assert esrgan_main(["train", str(images), "--teacher", str(teacher), "--teacher-cache", str(tmp_path / "cache"),
                        "--teacher-samples", "8", "--teacher-crop", "16", "--arch", "srvgg", "--num-feat", "8",
                        "--num-conv", "2", "--hr-crop", "32", "--batch-size", "4", "--lr", "2e-3", "--log-every",
                        "10", "--no-progress", "--out", str(out), "--name", "student", "--adversarial-weight", "0.1",
                        "--discriminator", "vgg", "--d-num-feat", "8", "--d-condition", "--steps", "40"]) == 0
    first = dict(np.load(out / CRITIC))["conv0_0/kernel"]
    assert first.shape[2] == 6  # RGB of the image + RGB of the upsampled LR input
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert np.mean([r["d"] for r in log[-2:]]) < 0.95 * np.log(2), log  # RaGAN's chance is ln 2: it learns
    assert esrgan_main(["train", "--resume", "--out", str(out), "--steps", "50", "--no-progress"]) == 0
    with pytest.raises(ValueError, match="d-condition"):
        TrainConfig(backend="torch", stage="distill", teacher="x", data=str(images), d_condition=True)
    with pytest.raises(ValueError, match="d-condition"):  # no discriminator to condition: not silently ignored
        TrainConfig(stage="distill", teacher="x", data=str(images), d_condition=True)


def test_exported_name_defaults_to_the_network_and_scale(images):
    assert TrainConfig(stage="distill", teacher="x", data=str(images), arch="srvgg", scale=2).name == "srvgg-x2"
    assert TrainConfig(data=str(images)).name == "rrdbnet-x4"
    assert TrainConfig(data=str(images), name="mine").name == "mine"
