"""Two-stage ESRGAN training, top to bottom, with every knob in ``TrainConfig``.

Stage ``psnr``: L1 loss, Adam, cosine learning-rate decay, EMA of the generator weights.
Stage ``gan`` (from a stage-1 artifact): relativistic average GAN with the VGG-style discriminator,
L1 and a perceptual loss (VGG19 conv5_4 before ReLU, or discriminator feature matching when no
VGG19 weights are at hand). The EMA generator is exported as a model artifact.

Run state (step, both networks, EMA, optimizers) lives in ``tf.train.Checkpoint`` files under
``out/checkpoints``, saved every ``checkpoint_every`` steps and when the run is interrupted (Ctrl-C,
SIGTERM); ``resume`` continues from the latest one, the data pipeline skipping the samples already seen.
"""
from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from pathlib import Path

import keras
import tensorflow as tf

from model.archs import build_generator, dtype_policy, policy_name
from model.archs.discriminator import build_discriminator, build_unet_discriminator
from model.artifacts import assign_weights, model_weights, read_manifest, read_weights, save_artifact

from . import losses
from .config import TrainConfig
from .data import make_dataset
from .evaluate import evaluate, keras_upscale


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train (or continue) the run in ``cfg.out``; returns the exported artifact folder."""
    if cfg.stage == "distill":
        from .distill import distill

        return distill(cfg, resume)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    keras.utils.set_random_seed(cfg.seed)
    strategy = tf.distribute.MirroredStrategy() if cfg.multi_gpu else tf.distribute.get_strategy()
    gan = cfg.stage == "gan"
    vgg_file = losses.find_vgg19_weights(cfg.vgg19_weights) if gan and cfg.perceptual == "vgg" else None

    def adam(lr):
        schedule = keras.optimizers.schedules.CosineDecay(lr, cfg.steps, alpha=cfg.lr_min_ratio)
        opt = keras.optimizers.Adam(schedule, beta_1=cfg.beta1, beta_2=cfg.beta2)
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none
        return keras.optimizers.LossScaleOptimizer(opt) if cfg.precision == "float16" else opt

    # --- models, optimizers, checkpoint -------------------------------------------------------
    with strategy.scope(), dtype_policy(policy_name(cfg.precision)):
        generator = build_generator("rrdbnet", cfg.generator_params)
        ema = build_generator("rrdbnet", cfg.generator_params)
        ema.set_weights(generator.get_weights())
        g_opt = adam(cfg.lr)
        g_opt.build(generator.trainable_variables)  # slots exist before a restore fills them
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        state = dict(step=step, generator=generator, ema=ema, g_opt=g_opt)
        if gan:
            unet = cfg.discriminator == "unet"
            discriminator = (build_unet_discriminator(cfg.d_num_feat) if unet
                             else build_discriminator(cfg.hr_crop, cfg.d_num_feat))
            d_features = None if unet else losses.with_features(discriminator)
            d_opt = adam(cfg.lr)
            d_opt.build(discriminator.trainable_variables)
            state.update(discriminator=discriminator, d_opt=d_opt)
            extractor = (losses.vgg19_conv54(vgg_file) if vgg_file
                         else losses.random_conv_features(cfg.seed) if cfg.perceptual == "random" else None)
    ckpt = tf.train.Checkpoint(**state)
    manager = tf.train.CheckpointManager(ckpt, out / "checkpoints", max_to_keep=cfg.keep_checkpoints)
    if resume:
        if not manager.latest_checkpoint:
            raise FileNotFoundError(f"{out / 'checkpoints'}: no checkpoint to resume from")
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"resumed {manager.latest_checkpoint} at step {int(step.numpy())}")
    elif cfg.init:
        init = read_manifest(cfg.init)
        if init.arch != "rrdbnet" or init.params != cfg.generator_params:
            raise ValueError(f"{cfg.init}: is {init.arch} {init.params}, this run builds rrdbnet {cfg.generator_params}")
        weights = read_weights(cfg.init, init.weights)
        assign_weights(generator, weights, source=cfg.init)
        assign_weights(ema, weights, source=cfg.init)

    # --- data ------------------------------------------------------------------------------------
    ds = make_dataset(cfg.data, lr_dir=cfg.lr_data, scale=cfg.scale, crop=cfg.hr_crop, batch_size=cfg.batch_size,
                      seed=cfg.seed, degradation=cfg.degradation, start=int(step.numpy()) * cfg.batch_size,
                      usm=cfg.usm_gt, second_order_prob=cfg.second_order_prob)
    batches = iter(strategy.experimental_distribute_dataset(ds))
    replicas = strategy.num_replicas_in_sync

    # --- one step ----------------------------------------------------------------------------------
    def l1(a, b):
        return tf.reduce_mean(tf.abs(a - b))

    def pixel(a, b):
        return tf.reduce_mean(tf.square(a - b)) if cfg.pixel_loss == "mse" else l1(a, b)

    def apply(opt, tape, scaled_loss, variables):
        grads = tape.gradient(scaled_loss, variables)
        opt.apply_gradients(zip(grads, variables))

    # a batch is (lr, target) or, with usm_gt, (lr, sharpened target, hr): the losses that shape detail
    # (pixel, perceptual, artifact) aim at the target, the discriminator sees real, unsharpened photos
    def psnr_step(lr, target, hr=None):
        with tf.GradientTape() as tape:
            sr = tf.cast(generator(lr, training=True), tf.float32)
            loss = pixel(sr, target)
            # gradients are summed over replicas; loss scaling (mixed precision) must be taped too
            scaled = g_opt.scale_loss(loss / replicas)
        apply(g_opt, tape, scaled, generator.trainable_variables)
        return {cfg.pixel_loss: loss}

    def discriminate(images):
        if d_features is None:
            return tf.cast(discriminator(images, training=True), tf.float32), []
        logits, *feats = d_features(images, training=True)
        return tf.cast(logits, tf.float32), [tf.cast(f, tf.float32) for f in feats]

    def gan_step(lr, target, hr=None):
        hr = target if hr is None else hr
        with tf.GradientTape(persistent=True) as tape:
            sr = tf.cast(generator(lr, training=True), tf.float32)
            real_logits, real_feats = discriminate(hr)
            fake_logits, fake_feats = discriminate(sr)
            pix = l1(sr, target)
            if extractor is not None:
                percep = losses.feature_l1(extractor, sr, target)
            else:
                percep = losses.feature_matching(fake_feats, real_feats)
            if unet:  # per-pixel logits, Real-ESRGAN's vanilla GAN loss
                adv = losses.vanilla_generator_loss(fake_logits)
                d_loss = losses.vanilla_discriminator_loss(real_logits, fake_logits)
            else:
                adv = losses.ragan_generator_loss(real_logits, fake_logits)
                d_loss = losses.ragan_discriminator_loss(real_logits, fake_logits)
            g_loss = cfg.l1_weight * pix + cfg.perceptual_weight * percep + cfg.adversarial_weight * adv
            logs = {"l1": pix, "perceptual": percep, "adversarial": adv}
            if cfg.artifact_weight:
                weight = losses.artifact_map(target, sr, tf.cast(ema(lr, training=False), tf.float32))
                logs["artifact"] = l1(weight * sr, weight * target)
                g_loss += cfg.artifact_weight * logs["artifact"]
            if cfg.lowfreq_weight:
                logs["lowfreq"] = losses.lowfreq_l1(sr, target, sigma=cfg.scale / 2)
                g_loss += cfg.lowfreq_weight * logs["lowfreq"]
            if cfg.chroma_weight:
                logs["chroma"] = losses.chroma_l1(sr, target)
                g_loss += cfg.chroma_weight * logs["chroma"]
            g_scaled, d_scaled = g_opt.scale_loss(g_loss / replicas), d_opt.scale_loss(d_loss / replicas)
        apply(g_opt, tape, g_scaled, generator.trainable_variables)
        apply(d_opt, tape, d_scaled, discriminator.trainable_variables)
        return {**logs, "g": g_loss, "d": d_loss}

    one_step = gan_step if gan else psnr_step

    @tf.function
    def train_step(batch):
        logs = strategy.run(one_step, args=batch)
        # EMA, bias-corrected early on (as tf.train.ExponentialMovingAverage with num_updates), so short
        # runs export a useful average instead of one still dominated by the initial weights.
        t = tf.cast(step, tf.float32)
        decay = tf.minimum(cfg.ema_decay, (1.0 + t) / (10.0 + t))
        for e, w in zip(ema.weights, generator.weights):
            e.assign(decay * e + (1.0 - decay) * tf.cast(w, e.dtype))
        step.assign_add(1)
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    # --- the loop ------------------------------------------------------------------------------
    from tqdm import tqdm

    writer = tf.summary.create_file_writer(str(out / "logs"))
    metrics: dict = {}
    logs: dict = {}
    stop = _StopRequest()
    started, start_step = time.time(), int(step.numpy())
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not cfg.progress, dynamic_ncols=True, desc=cfg.stage)
    try:
        while int(step.numpy()) < cfg.steps:
            logs = train_step(next(batches))
            s = int(step.numpy())
            bar.update(1)
            if s % cfg.log_every == 0 or s == cfg.steps:
                values = {k: float(v) for k, v in logs.items()}
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()})
                if not cfg.progress:  # background runs: a plain line per log interval
                    rate = (s - start_step) / (time.time() - started)
                    print(f"step {s}/{cfg.steps} {rate:.3f} steps/s " + " ".join(f"{k}={v:.4g}" for k, v in values.items()),
                          flush=True)
                with writer.as_default(step=s):
                    for k, v in values.items():
                        tf.summary.scalar(f"loss/{k}", v)
                    tf.summary.scalar("lr", float(g_opt.learning_rate))
                    tf.summary.scalar("steps_per_sec", (s - start_step) / (time.time() - started))
            if s % cfg.checkpoint_every == 0:
                manager.save(checkpoint_number=s)
            if cfg.val and cfg.val_every and s % cfg.val_every == 0 and s < cfg.steps:
                metrics = _validate(ema, cfg, writer, s)
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        path = manager.save(checkpoint_number=int(step.numpy()))
        bar.close()
        print(f"\ninterrupted at step {int(step.numpy())}; saved {path}; continue with --resume --out {out}")
        raise
    finally:
        stop.restore()
        writer.flush()
        # Drop the input pipeline now: its threads run Python (the real-world degradation), and left to
        # interpreter shutdown after an interrupt they kept the process from exiting.
        batches = ds = None  # noqa: F841
    bar.close()
    if manager.latest_checkpoint is None or int(manager.latest_checkpoint.rsplit("-", 1)[1]) != int(step.numpy()):
        manager.save(checkpoint_number=int(step.numpy()))
    elapsed = time.time() - started
    if cfg.val:
        metrics = _validate(ema, cfg, writer, int(step.numpy()))
    return export(ema, cfg, out / "artifact" / cfg.name, metrics,
                  {"steps": int(step.numpy()), "seconds_this_session": round(elapsed, 1),
                   "steps_per_sec": round((int(step.numpy()) - start_step) / max(elapsed, 1e-9), 3),
                   "final_losses": {k: round(float(v), 6) for k, v in logs.items()},
                   "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"})


class _StopRequest:
    """Ctrl-C or SIGTERM ends the run after the current step (a step cut in half would be saved with
    new weights but the old step count); a second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _validate(model, cfg: TrainConfig, writer, s: int) -> dict:
    result = evaluate(keras_upscale(model), cfg.val, cfg.scale)
    with writer.as_default(step=s):
        tf.summary.scalar("val/psnr", result["mean"]["psnr"])
        tf.summary.scalar("val/ssim", result["mean"]["ssim"])
    name = Path(cfg.val).parent.name or Path(cfg.val).name
    print(f"step {s}: {name} x{cfg.scale} PSNR {result['mean']['psnr']:.3f} dB, SSIM {result['mean']['ssim']:.4f} "
          f"(bicubic {result['mean']['bicubic_psnr']:.3f} dB)")
    return {f"{name}_x{cfg.scale}": {k: round(v, 4) for k, v in result["mean"].items()}}


def export(model: keras.Model, cfg: TrainConfig, folder: Path, metrics: dict, run: dict) -> Path:
    """Write the (EMA) generator as a model artifact with the training config and metrics."""
    training = {**{k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress",)}, **run}
    save_artifact(folder, model_weights(model), name=cfg.name, arch="rrdbnet", params=cfg.generator_params,
                  scale=cfg.scale, training=training, metrics=metrics,
                  description=f"RRDBNet x{cfg.scale} ({cfg.num_block} blocks, {cfg.num_feat} features), "
                              f"{cfg.stage} stage, {run['steps']} steps")
    return folder

