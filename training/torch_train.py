"""The torch backend of ``esrgan train`` (``--backend torch``): the psnr and distill stages in PyTorch, for lent GPU
machines that carry PyTorch but not TensorFlow. Imports neither TensorFlow nor pydantic.

The recipe of the TensorFlow psnr stage (pixel loss, Adam, cosine learning rate down to ``lr_min_ratio``,
EMA of the weights, random crops, flips and 90-degree rotations), read from the same ``TrainConfig``, with
the registry's PyTorch networks (``model.architectures``: RRDBNet in BasicSR's layout with the plain one-stage
x2, or Real-ESRGAN's SRVGGNetCompact), so the
checkpoint becomes a model artifact with ``esrgan convert``. Batches: ``training.torch_data``; scores: the
evaluator of ``esrgan eval`` (``training.evaluate``).

With ``--seconds`` the schedule runs over a wall-clock budget rather than a step count, because the lent
machine's time is what is fixed; ``--steps`` then only caps the run. One checkpoint is written, at the end.

    esrgan train DIR_OF_IMAGES --backend torch --scale 4 --seconds 420 --steps 0 --out run_x4
    esrgan train DIR --backend torch --scale 4 --degradation realworld --hr-crop 256 --out real_x4
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from model.architectures import architecture

from .config import TrainConfig
from .evaluate import evaluate, score_line, torch_upscale, validation_sets
from .torch_critic import Critic
from .torch_data import batches
from .torch_distill import distill_batches


def checkpoint_path(cfg: TrainConfig) -> Path:
    return Path(cfg.out) / f"{cfg.arch}_x{cfg.scale}.pth"


def train(cfg: TrainConfig) -> Path:
    """Train, score the EMA model on ``cfg.val``, write ``OUT/ARCH_xS.pth`` (``params_ema``, ``params``, and an
    adversarial distillation's ``discriminator``), ``OUT/result.json`` and ``OUT/log.txt``; returns the
    checkpoint."""
    device = _setup(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    with open(out / "log.txt", "a") as log:
        # before the networks: the loader draws from torch's seed too
        next_batch, loss = distill_batches(cfg, device, log) if cfg.teacher else (batches(cfg, device, log), None)
        model, ema = build(cfg, device)
        critic = Critic(cfg, device, log) if cfg.adversary else None
        run = fit(cfg, model, ema, next_batch, log, loss, critic)
        result = {"scale": cfg.scale, **run,
                  "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                  "config": dataclasses.asdict(cfg), "num_params": sum(p.numel() for p in model.parameters()),
                  "metrics": validate(cfg, ema, device, log)}
        discriminator = {"discriminator": critic.net.state_dict()} if critic is not None else {}
        torch.save({"params_ema": ema.state_dict(), "params": model.state_dict(), **discriminator},
                   checkpoint_path(cfg))
        (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
        print(json.dumps({k: v for k, v in result.items() if k != "metrics"}), file=log, flush=True)
    return checkpoint_path(cfg)


def _setup(seed: int) -> torch.device:
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build(cfg: TrainConfig, device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The generator (channels-last, trained) and its EMA (frozen), from ``--init`` when given."""
    def make():
        return architecture(cfg.arch).torch(**cfg.generator_params).to(device)

    model = make().to(memory_format=torch.channels_last)
    ema = make()
    if cfg.init and Path(cfg.init).is_dir():  # an artifact: its sharp end (the tf backend's distill default)
        state = artifact_state(Path(cfg.init), model, device)
        model.load_state_dict(state)
        ema.load_state_dict(state)
    elif cfg.init:
        state = torch.load(cfg.init, map_location=device, weights_only=True)
        model.load_state_dict(state["params"])
        ema.load_state_dict(state["params_ema"])
    else:
        ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    return model, ema


def artifact_state(folder: Path, model: torch.nn.Module, device) -> dict[str, torch.Tensor]:
    """The artifact's weights in ``model``'s checkpoint names (an artifact of another shape is refused)."""
    from model.artifacts import read_manifest, read_weights
    from model.convert.layouts import detect, from_keras

    manifest = read_manifest(folder)
    layout = detect({k: v.cpu().numpy() for k, v in model.state_dict().items()})
    if manifest.arch != layout.arch or {k: manifest.params.get(k) for k in layout.params} != layout.params:
        raise ValueError(f"{folder}: is {manifest.arch} {manifest.params}; this run trains {layout.arch} {layout.params}")
    return {k: torch.from_numpy(v).to(device) for k, v in from_keras(read_weights(folder, manifest.weights), layout).items()}


def schedule_position(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """How far the run is, 0..1 (1: stop): over the ``seconds`` budget when there is one (``steps``, if
    given, only caps it), else over ``steps``."""
    if cfg.seconds:
        return 1.0 if cfg.steps and step >= cfg.steps else elapsed / cfg.seconds
    return step / cfg.steps


def lr_scale(cfg: TrainConfig, step: int, position: float) -> float:
    """The learning rates' share of their base (``lr``, ``d_lr``): linear warm-up over ``warmup`` steps, then
    cosine decay to ``lr_min_ratio`` at the end."""
    warm = min(1.0, (step + 1) / max(cfg.warmup, 1))
    return warm * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * position)))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - decay)


def fit(cfg: TrainConfig, model, ema, next_batch, log, loss_fn=None, critic: Critic | None = None) -> dict:
    """The training loop; returns the steps, the time they took and the last logged mean losses.
    ``next_batch()`` gives ``(x, *targets)``; the loss is ``loss_fn(model(x), *targets)`` (default: the pixel
    loss to the one target) [+ ``adversarial_weight`` x the ``critic``'s adversarial loss, which then takes its
    own step]."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    loss_fn = loss_fn or (F.mse_loss if cfg.pixel_loss == "mse" else F.l1_loss)
    name = "loss" if loss_fn not in (F.mse_loss, F.l1_loss) else cfg.pixel_loss
    start, step, history, means = time.time(), 0, [], {}
    while (position := schedule_position(cfg, step, time.time() - start)) < 1:
        scale = lr_scale(cfg, step, position)
        history.append(train_step(cfg, model, opt, next_batch(), scale, name, loss_fn, critic))
        # bias-corrected early on, except when fine-tuning: then the EMA starts from trained weights
        update_ema(ema, model, cfg.ema_decay if cfg.init else min(cfg.ema_decay, (1 + step) / (10 + step)))
        step += 1
        if step % cfg.log_every == 0:
            means = _means(history)
            print(f"step {step} t={time.time() - start:.0f}s lr={cfg.lr * scale:.2e} "
                  + " ".join(f"{k}={v:.5f}" for k, v in means.items()), file=log, flush=True)
    seconds = time.time() - start
    means = _means(history) if history else means
    # the mean losses of the steps since the last log line: "loss" the student's (pixel or distillation) loss
    return {"steps": step, "train_seconds": round(seconds, 1), "steps_per_second": round(step / max(seconds, 1e-9), 2),
            "loss": means.pop(name, float("nan")), **means}


def train_step(cfg: TrainConfig, model, opt, batch, scale: float, name: str, loss_fn, critic=None) -> dict:
    """One step of the student's optimizer at ``lr`` x ``scale`` (then of the critic at ``d_lr`` x ``scale``: the
    first target is real, the student's output fake); returns the losses, detached, ``name`` the student's."""
    x, *targets = batch
    sr = model(x)
    loss, terms = loss_fn(sr, *targets), {}
    if critic is not None:
        terms["adversarial"] = critic.generator_loss(targets[0], sr)
        loss = loss + cfg.adversarial_weight * terms["adversarial"]
    for group in opt.param_groups:
        group["lr"] = cfg.lr * scale
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if critic is not None:
        terms["d"] = critic.step(targets[0], sr, cfg.d_lr * scale)
    return {name: loss.detach(), **{k: v.detach() for k, v in terms.items()}}


def _means(history: list[dict]) -> dict[str, float]:
    """Each loss's mean over ``history`` (emptied)."""
    means = {k: torch.stack([h[k] for h in history]).mean().item() for k in history[0]}
    history.clear()
    return means


def validate(cfg: TrainConfig, ema, device, log) -> dict:
    """Scores of the EMA model on every ``--val`` set, by ``esrgan eval``'s protocol."""
    metrics = {}
    for name, folder in validation_sets(cfg.val).items():
        result = evaluate(torch_upscale(ema, device), folder, cfg.scale)
        metrics[name] = {**result["mean"], "images": result["images"]}
        print(score_line(name, cfg.scale, result["mean"]), file=log, flush=True)
    return metrics
