"""The torch backend's distillation terms that the tf backend had first: the grid, overshoot and chroma L1s and
the adversary (``training.torch_critic``), each the same as TensorFlow's on the same inputs; the critic learns;
an adversarial torch distillation runs end to end without TensorFlow and saves its discriminator."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from training.config import TrainConfig
from training.torch_critic import Critic, adversarial, build
from training import torch_distill


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def tf_term(name: str, *args):
    import tensorflow as tf

    from training import losses

    return float(getattr(losses, name)(*(tf.constant(a) if isinstance(a, np.ndarray) else a for a in args)))


@pytest.mark.parametrize("name, extra", [("grid_l1", (4,)), ("grid_l1", (2,)), ("overshoot_l1", ()),
                                         ("chroma_l1", ())])
def test_each_loss_term_is_tensorflows(name, extra):
    rng = np.random.default_rng(0)
    target = rng.random((2, 32, 24, 3), dtype=np.float32)
    sr = (target + 0.3 * rng.standard_normal(target.shape)).astype(np.float32)
    sr[:, ::extra[0] if extra else 4] += 0.2  # stripes on the grid too
    expected = tf_term(name, sr, target, *extra)
    got = getattr(torch_distill, name)(nchw(sr), nchw(target), *extra).item()
    assert expected > 1e-3 and abs(got - expected) < 1e-5, (got, expected)


@pytest.mark.parametrize("field, term", [("grid_weight", lambda sr, t: torch_distill.grid_l1(sr, t, 4)),
                                         ("overshoot_weight", torch_distill.overshoot_l1),
                                         ("chroma_weight", torch_distill.chroma_l1)])
def test_the_distillation_loss_holds_each_term_at_its_weight(tmp_path, field, term):
    sr, target, hr = (torch.rand(2, 3, 32, 32) for _ in range(3))
    base = dict(backend="torch", stage="distill", teacher="t.param", data=str(tmp_path), perceptual_weight=0.0)
    plain = torch_distill.distill_loss(TrainConfig(**base), "cpu")(sr, target, hr)
    weighted = torch_distill.distill_loss(TrainConfig(**base, **{field: 3.0}), "cpu")(sr, target, hr)
    assert abs((weighted - plain).item() - 3.0 * term(sr, target).item()) < 1e-5 and term(sr, target) > 1e-3


@pytest.mark.parametrize("kind, shape", [("vgg", (4, 1)), ("unet", (4, 8, 8, 1))])
def test_adversarial_losses_and_their_gradients_are_tensorflows(kind, shape):
    import tensorflow as tf

    from training import losses

    rng = np.random.default_rng(0)
    real, fake = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    tr, tfk = tf.Variable(real), tf.Variable(fake)
    with tf.GradientTape(persistent=True) as tape:
        expected = losses.adversarial(kind, tr, tfk)
    for k, loss in enumerate(expected):
        r, f = (torch.tensor(a, requires_grad=True) for a in (real, fake))
        got = adversarial(kind, r, f)[k]
        got.backward()
        assert abs(got.item() - float(loss)) < 1e-5
        for grad, tensor in zip(tape.gradient(loss, [tr, tfk]), (r, f)):
            want = np.zeros(shape, np.float32) if grad is None else grad.numpy()
            have = np.zeros(shape, np.float32) if tensor.grad is None else tensor.grad.numpy()
            assert np.abs(have - want).max() < 1e-6, (kind, k)


def test_vgg_discriminator_computes_what_the_keras_one_does():
    """The Keras discriminator's weights in the torch one: the same logits (BatchNorm on the batch's
    statistics, as in training)."""
    from model.archs.discriminator import build_discriminator

    keras_net, net = build_discriminator(64, 8), build("vgg", 64, 8)
    weights = [w.numpy() for w in keras_net.weights]  # conv kernel (+ bias), BN gamma, beta, mean, variance...
    params = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(weights) == len(params)
    with torch.no_grad():
        for w, (name, p) in zip(weights, params.items()):
            if w.ndim == 4:  # HWIO -> OIHW
                w = w.transpose(3, 2, 0, 1)
            elif name == "head.1.weight":  # the dense layer after Flatten: (h, w, c) inputs -> (c, h, w)
                w = w.reshape(2, 2, -1, 100).transpose(3, 2, 0, 1).reshape(100, -1)
            elif w.ndim == 2:
                w = w.T
            assert w.shape == p.shape, name
            p.copy_(torch.from_numpy(np.ascontiguousarray(w)))
    x = np.random.default_rng(0).random((3, 64, 64, 3), dtype=np.float32)
    expected = keras_net(x, training=True).numpy()
    got = net.train()(nchw(x)).detach().numpy()
    assert got.shape == expected.shape == (3, 1)
    assert np.abs(got - expected).max() < 1e-4 * max(1, np.abs(expected).max()), (got, expected)


def test_unet_discriminator_has_the_keras_ones_shape():
    from model.archs.discriminator import build_unet_discriminator

    keras_net, net = build_unet_discriminator(8), build("unet", 64, 8)
    trainable = sum(int(np.prod(w.shape)) for w in keras_net.trainable_weights)
    assert sum(p.numel() for p in net.parameters()) == trainable
    assert net(torch.rand(2, 3, 40, 48)).shape == (2, 1, 40, 48)
    from torch.nn.utils.parametrize import is_parametrized

    normed = sum(type(layer).__name__ == "SpectralNormalization" for layer in keras_net.layers)
    assert sum(map(is_parametrized, net.modules())) == normed == 8  # spectral norm on all convs but two


def crops(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Textured crops (noise on a random grey) and flat ones (the grey alone)."""
    gen = torch.Generator().manual_seed(seed)
    grey = torch.rand(n, 1, 1, 1, generator=gen) * 0.6 + 0.2
    return (grey + 0.2 * torch.randn(n, 3, 32, 32, generator=gen)).clamp(0, 1), grey.expand(n, 3, 32, 32)


# chance: RaGAN's loss is ln 2, the vanilla one 2 ln 2. The U-Net learns at 1e-3; at 2e-3 it fell back to chance.
@pytest.mark.parametrize("kind, lr, chance", [("vgg", 2e-3, np.log(2)), ("unet", 1e-3, 2 * np.log(2))])
def test_critic_learns_textured_from_flat_and_its_generator_loss_trains_no_critic(tmp_path, kind, lr, chance):
    torch.manual_seed(0)
    cfg = TrainConfig(backend="torch", stage="distill", teacher="t.param", data=str(tmp_path), adversarial_weight=0.1,
                      hr_crop=32, discriminator=kind, d_num_feat=8, d_lr=lr)
    critic = Critic(cfg, "cpu")
    losses = [critic.step(*crops(8, s), cfg.d_lr).item() for s in range(30)]
    assert np.mean(losses[:3]) > 0.85 * chance and np.mean(losses[-5:]) < 0.6 * chance, losses

    real, fake = crops(8, 99)
    fake = fake.clone().requires_grad_(True)
    critic.opt.zero_grad(set_to_none=True)
    loss = critic.generator_loss(real, fake)
    loss.backward()
    assert loss.item() > np.log(2)  # the critic that learnt calls the flat crops fake: above chance
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.net.parameters())  # nothing for the critic's next step
    assert all(p.requires_grad for p in critic.net.parameters())


def test_a_step_adds_the_weighted_adversarial_loss_to_the_students_then_steps_the_critic(tmp_path):
    import copy

    import torch.nn.functional as F

    from training.torch_archs import SRVGGNetCompact
    from training.torch_train import train_step

    torch.manual_seed(0)
    cfg = TrainConfig(backend="torch", stage="distill", teacher="t.param", data=str(tmp_path), adversarial_weight=0.5,
                      hr_crop=32, d_num_feat=8, lr=1e-3, d_lr=1e-3)
    model, critic = SRVGGNetCompact(scale=4, num_feat=4, num_conv=1), Critic(cfg, "cpu")
    alone, critic_before = copy.deepcopy(model), copy.deepcopy(critic.net.state_dict())
    x, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        sr = model(x)
        l1, adv = F.l1_loss(sr, target).item(), critic.generator_loss(target, sr).item()

    def step(net, with_critic):
        opt = torch.optim.SGD(net.parameters())
        return train_step(cfg, net, opt, (x, target), 1.0, "loss", F.l1_loss, critic if with_critic else None)

    terms = step(model, True)
    assert abs(terms["loss"].item() - (l1 + 0.5 * adv)) < 1e-5 and abs(terms["adversarial"].item() - adv) < 1e-5
    assert 0 < terms["d"].item() and not terms["loss"].requires_grad
    step(alone, False)  # the adversarial gradient moved the student elsewhere
    assert max((a - b).abs().max() for a, b in zip(model.parameters(), alone.parameters())) > 1e-6
    assert any(not torch.equal(v, critic.net.state_dict()[k]) for k, v in critic_before.items() if "weight" in k)


def logged(log: str, key: str) -> list[float]:
    return [float(v) for v in re.findall(rf"\b{key}=([0-9.e+-]+)", log)]


def test_adversarial_torch_distillation_runs_without_tensorflow_and_saves_its_discriminator(tmp_path):
    """`esrgan train --backend torch --teacher T.param --adversarial-weight W` with TensorFlow unimportable: the
    student learns, the log has the adversarial and discriminator losses, the checkpoint the discriminator,
    which a run from that checkpoint continues."""
    from skimage import data

    from tests import ncnn_factory as nf
    from tests.test_torch_psnr import NO_TENSORFLOW, run_without
    from training.torch_archs import SRVGGNetCompact

    images = tmp_path / "images"
    images.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()[:96, :128]).save(images / f"{name}.png")
    param = nf.srvgg(tmp_path / "tiny-t.param", convs=2, feat=8, scale=4)
    out = tmp_path / "run"
    common = ["train", images, "--backend", "torch", "--teacher", param, "--teacher-cache", tmp_path / "cache",
              "--teacher-samples", "4", "--teacher-crop", "16", "--arch", "srvgg", "--num-feat", "8", "--num-conv",
              "2", "--hr-crop", "32", "--batch-size", "4", "--lr", "2e-3", "--ema-decay", "0.5", "--workers", "1",
              "--adversarial-weight", "0.1", "--discriminator", "vgg", "--d-num-feat", "8", "--no-progress"]
    proc = run_without(NO_TENSORFLOW, "esrgan", *common, "--steps", "60", "--log-every", "10", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]

    log = (out / "log.txt").read_text()
    loss, adv, d = (logged(log, k) for k in ("loss", "adversarial", "d"))
    assert len(loss) == len(adv) == len(d) == 6, log
    assert np.mean(loss[-2:]) < 0.85 * loss[0], loss
    assert all(0 < v < 5 for v in adv + d), log
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 60 and {"loss", "adversarial", "d"} <= result.keys()

    ckpt = torch.load(out / "srvgg_x4.pth", weights_only=True)
    fresh = build("vgg", 32, 8).state_dict()
    saved = ckpt["discriminator"]
    assert saved.keys() == fresh.keys() and all(saved[k].shape == fresh[k].shape for k in fresh)
    student = SRVGGNetCompact(scale=4, num_feat=8, num_conv=2)
    student.load_state_dict(ckpt["params_ema"])  # the student's own weights, beside the discriminator's

    # From that checkpoint, the discriminator goes on from its saved weights (marked) and trains them
    head = "head.3.bias"
    torch.save({**ckpt, "discriminator": {**saved, head: saved[head] + 5.0}}, tmp_path / "marked.pth")
    again = tmp_path / "again"
    proc = run_without(NO_TENSORFLOW, "esrgan", *common, "--steps", "3", "--log-every", "1", "--out", again,
                       "--init", tmp_path / "marked.pth")
    assert proc.returncode == 0, proc.stderr[-3000:]
    went_on = torch.load(again / "srvgg_x4.pth", weights_only=True)["discriminator"]
    assert abs(went_on[head] - saved[head] - 5.0).max() < 0.5
    weights = [k for k in saved if k != head and "running" not in k and "batches" not in k]  # BatchNorm's stats
    assert max((went_on[k] - saved[k]).abs().max() for k in weights) > 0  # move without a step
    assert "discriminator from" in (again / "log.txt").read_text()
    cfg = TrainConfig(**{**json.loads((again / "config.json").read_text()), "discriminator": "unet"})
    assert cfg.init == str(tmp_path / "marked.pth")
    with open(tmp_path / "unet.txt", "w") as note:  # another discriminator's weights start none
        unet = Critic(cfg, "cpu", note)
    assert "not a unet of this size; a fresh one" in (tmp_path / "unet.txt").read_text()
    assert unet.net.state_dict().keys() == build("unet", 32, 8).state_dict().keys()
