"""Distillation: a student learns a teacher model's output on the same degraded input (``esrgan train
--teacher MODEL``). The teacher's output is a clean, sharp, stable target; an adversary is optional.

    teacher cache (training.teacher: LR crop -> teacher output, on disk, filled first, resumable)
    -> random sub-crop + flip/rotation of a cached pair -> student -> L1 + perceptual loss (random conv
       features, or with --perceptual feature-matching the discriminator's, paired with the teacher's output)
       + high-frequency L1 (the difference from a Gaussian blur: what makes edges crisp and keeps the
       teacher's texture, which plain L1 lets a small network average away) [+ texture-energy L1: as much
       high frequency as the teacher, where it has it, phase free] [+ ground-truth L1]
       [+ adversarial: a discriminator learns to tell the student's output from the teacher's on the same
       crops; the student is asked for texture the discriminator takes for the teacher's, where L1 can only
       reach the average of what a small network cannot place exactly] [+ grid L1: no stripes on the
       sub-pixel grid, which an adversary's pull otherwise draws] [+ overshoot L1: no halos beyond the
       teacher's local range] [+ chroma L1: no colour fringes]
    -> EMA weights -> artifact: the student is the sharp end (strength 1), the init artifact's
       restoration end stays the smooth end (strength 0)

An x2 student learns the teacher's x4 output area-downscaled by 2, from the same LR crops.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from model.archs import build_generator, dtype_policy, policy_name
from model.archs import discriminator as discriminators
from model.archs.srvgg import halve_scale
from model.artifacts import assign_weights, model_weights, read_manifest, read_weights, save_artifact

from . import losses
from .config import ENERGY_SIGMA, HIGH_PASS_SIGMA, TrainConfig
from .optim import adam
from .pairs import Pairs
from .teacher import TeacherCache, fill_to, open_cache


def distill(cfg: TrainConfig, resume: bool = False) -> Path:
    """Fill the teacher cache to ``cfg.teacher_samples``, then train the student; returns the artifact."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    keras.utils.set_random_seed(cfg.seed)
    student, init = build_student(cfg, out if resume else None)  # first: a wrong --init fails before the fill
    cache = fill_cache(cfg)
    step = _read_step(out) if resume else 0
    critic = build_critic(cfg, out if resume else None)
    train_loop(cfg, student, Pairs(cache, cfg), out, step, critic)
    return export(cfg, student, init, out)


def fill_cache(cfg: TrainConfig) -> TeacherCache:
    from model.engine import Upscaler
    from model.hardware import auto_precision

    from model import official
    from model.settings import get_settings

    teacher = official.folder_of(get_settings(), cfg.teacher)
    cache = open_cache(cfg, teacher.name, read_manifest(teacher).scale)
    # The teacher's fastest compute type here, whatever its manifest pins for exactness.
    fill_to(cfg, cache, lambda: Upscaler.from_artifact(teacher, precision=auto_precision()))
    return cache


def build_student(cfg: TrainConfig, resume_from: Path | None):
    """The student (bf16/f16 compute per cfg.precision), from the run's last weights, the init artifact's
    sharp end, or scratch. Returns it and the init artifact folder (for the smooth end of the export)."""
    with dtype_policy(policy_name(cfg.precision)):
        student = build_generator(cfg.arch, cfg.generator_params)
    init = Path(cfg.init) if cfg.init else None
    if resume_from is not None and (resume_from / "student.npz").is_file():
        with np.load(resume_from / "student.npz") as data:
            assign_weights(student, {k: data[k] for k in data.files}, source="student.npz")
    elif init is not None:
        manifest = read_manifest(init)
        restoration = cfg.init_end == "restoration" and manifest.interpolation is not None
        arch, params = manifest.networks()[-1] if restoration else (manifest.arch, manifest.params)
        # An x4 SRVGG student starts an x2 one exactly: its output area-downscaled, which is the x2 target
        halves = cfg.arch == "srvgg" and params == {**cfg.generator_params, "scale": 2 * cfg.scale}
        if arch != cfg.arch or (params != cfg.generator_params and not halves):
            raise ValueError(f"{init}: is {arch} {params}; this run builds {cfg.arch} {cfg.generator_params}")
        weights = read_weights(init, manifest.interpolation.psnr if restoration else manifest.weights)
        if halves:
            weights = halve_scale(weights, cfg.num_conv, manifest.scale)
        assign_weights(student, weights, source=str(init))
    return student, init


CRITIC = "discriminator.npz"  # the discriminator's weights beside the student's, to resume


def build_critic(cfg: TrainConfig, resume_from: Path | None):
    """The discriminator of an adversarial distillation (None without one), from the run's last weights."""
    if not cfg.adversary:
        return None
    with dtype_policy(policy_name(cfg.precision)):
        critic = discriminators.build(cfg.discriminator, cfg.hr_crop, cfg.d_num_feat, 6 if cfg.d_condition else 3)
    if resume_from is not None and (resume_from / CRITIC).is_file():
        with np.load(resume_from / CRITIC) as data:
            assign_weights(critic, {k: data[k] for k in data.files}, source=CRITIC)
    return critic


def high_pass(x, sigma: float = HIGH_PASS_SIGMA):
    """What a Gaussian blur removes: edges and texture."""
    return x - losses.gaussian_blur(x, sigma)


def texture_energy(x, sigma: float = ENERGY_SIGMA):
    """Local high-frequency energy: how much texture, where, whatever its phase."""
    return losses.gaussian_blur(tf.abs(high_pass(x)), sigma)


def make_step(cfg: TrainConfig, student, optimizer, critic=None, critic_optimizer=None):
    # --perceptual feature-matching: the discriminator's features of the student's output against those of the
    # teacher's output on the same crop (paired, so texture is asked for where the teacher has it); otherwise
    # frozen random conv features
    features = losses.with_features(critic) if cfg.feature_matching else None
    extractor = losses.random_conv_features(cfg.seed) if cfg.perceptual_weight and not cfg.feature_matching else None

    @tf.function
    def step(lr, target, hr):
        adv = d_loss = tf.constant(0.0)
        with tf.GradientTape(persistent=critic is not None) as tape:
            sr = tf.cast(student(lr, training=True), tf.float32)
            l1 = tf.reduce_mean(tf.abs(sr - target))
            hf = tf.reduce_mean(tf.abs(high_pass(sr) - high_pass(target)))
            loss = l1 + cfg.hf_weight * hf
            if extractor is not None:
                loss += cfg.perceptual_weight * losses.feature_l1(extractor, sr, target)
            if cfg.energy_weight:
                loss += cfg.energy_weight * tf.reduce_mean(tf.abs(texture_energy(sr) - texture_energy(target)))
            if cfg.gt_weight:
                loss += cfg.gt_weight * tf.reduce_mean(tf.abs(sr - hr))
            if cfg.grid_weight:
                loss += cfg.grid_weight * losses.grid_l1(sr, target, cfg.scale)
            if cfg.overshoot_weight:
                loss += cfg.overshoot_weight * losses.overshoot_l1(sr, target)
            if cfg.chroma_weight:  # the adversary's colour fringes along strokes
                loss += cfg.chroma_weight * losses.chroma_l1(sr, target)
            judged = (target, sr)
            if cfg.d_condition:  # each beside the LR input it came from, upsampled to its size
                shown = tf.image.resize(tf.cast(lr, tf.float32), tf.shape(sr)[1:3], "bicubic")
                judged = tuple(tf.concat([x, shown], -1) for x in judged)
            if features is not None:
                # one batch: its features are read after BatchNorm, which would equalise two separate batches'
                # texture levels, the very thing compared
                both = [tf.cast(f, tf.float32) for f in features(tf.concat(judged, 0), training=True)]
                (real, *real_feats), (fake, *fake_feats) = zip(*(tf.split(f, 2) for f in both))
                loss += cfg.perceptual_weight * losses.feature_matching(fake_feats, real_feats)
            elif critic is not None:
                real, fake = (critic(x, training=True) for x in judged)
            if critic is not None:  # the teacher's output is "real", the student's "fake"
                real, fake = tf.cast(real, tf.float32), tf.cast(fake, tf.float32)
                adv, d_loss = losses.adversarial(cfg.discriminator, real, fake)
                loss += cfg.adversarial_weight * adv
                d_scaled = critic_optimizer.scale_loss(d_loss)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, student.trainable_variables)
        optimizer.apply_gradients(zip(grads, student.trainable_variables))
        if critic is not None:
            grads = tape.gradient(d_scaled, critic.trainable_variables)
            critic_optimizer.apply_gradients(zip(grads, critic.trainable_variables))
        return loss, l1, hf, adv, d_loss

    return step


def train_loop(cfg: TrainConfig, student, pairs: Pairs, out: Path, start: int, critic=None) -> None:
    # The optimizer's own count starts at 0, so its EMA starts as a copy of the weights (Keras copies them at
    # iteration 0, and averages zeros in otherwise).
    optimizer = adam(cfg, cfg.lr, start, use_ema=True, ema_momentum=cfg.ema_decay)
    optimizer.build(student.trainable_variables)
    critic_optimizer = None
    if critic is not None:
        critic_optimizer = adam(cfg, cfg.d_lr, start)
        critic_optimizer.build(critic.trainable_variables)
    step = make_step(cfg, student, optimizer, critic, critic_optimizer)
    log, t0 = out / "log.jsonl", time.perf_counter()
    with tqdm(total=cfg.steps, initial=start, desc="distill", unit="step", disable=not cfg.progress) as bar:
        for s in range(start + 1, cfg.steps + 1):
            loss, l1, hf, adv, d_loss = step(*(tf.constant(a) for a in pairs.batch()))
            bar.update()
            if s % cfg.log_every == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}", pairs=len(pairs.names))
                record = {"step": s, "loss": float(loss), "l1": float(l1), "hf": float(hf)}
                if critic is not None:
                    record |= {"adversarial": float(adv), "d": float(d_loss)}
                with open(log, "a") as f:
                    f.write(json.dumps({**record, "pairs": len(pairs.names),
                                        "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
            if s % cfg.checkpoint_every == 0 or s == cfg.steps:
                pairs.refresh()
                if critic is not None:
                    np.savez(out / CRITIC, **model_weights(critic))
                _save_student(out, student, optimizer, s)


def _save_student(out: Path, student, optimizer, step: int) -> None:
    """The raw weights (to resume) and the EMA weights (to export), then the step: in that order, so a kill
    between them resumes from the older step with newer weights at worst."""
    np.savez(out / "student.npz", **model_weights(student))
    raw = [v.numpy() for v in student.trainable_variables]
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    inner.finalize_variable_values(student.trainable_variables)  # swaps the EMA values in
    np.savez(out / "student_ema.npz", **model_weights(student))
    for v, value in zip(student.trainable_variables, raw):
        v.assign(value)
    (out / "state.json").write_text(json.dumps({"step": step}) + "\n")


def _read_step(out: Path) -> int:
    path = out / "state.json"
    return json.loads(path.read_text())["step"] if path.is_file() else 0


def export(cfg: TrainConfig, student, init: Path | None, out: Path) -> Path:
    """The artifact: the student's EMA weights as the sharp end; the init artifact's restoration end (if it
    has one) as the smooth end, so ``strength`` still blends."""
    with np.load(out / "student_ema.npz") as data:
        weights = {k: data[k] for k in data.files}
    psnr, psnr_network, strength = None, None, cfg.default_strength
    manifest = read_manifest(init) if init is not None else None
    if manifest is not None and manifest.interpolation is not None and manifest.scale == cfg.scale:
        psnr, psnr_network = read_weights(init, manifest.interpolation.psnr), manifest.networks()[-1]
    folder = out / cfg.name
    training = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "progress"}
    save_artifact(folder, weights, name=cfg.name, arch=cfg.arch, params=cfg.generator_params, scale=cfg.scale,
                  psnr_weights=psnr, psnr_network=psnr_network, default_strength=strength,
                  training={"distill": training},
                  description=f"{cfg.arch} x{cfg.scale} {cfg.generator_params} distilled from "
                              f"{Path(cfg.teacher).name}, {cfg.steps} steps")
    return folder
