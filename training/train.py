"""Two-stage ESRGAN training in TensorFlow, the tf backend of ``esrgan train``, with every knob in ``TrainConfig``
(the torch backend, psnr stage only, reads the same config: ``training/torch_train.py``).

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
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from model.archs import build_generator, dtype_policy, policy_name
from model.archs import discriminator as discriminators
from model.artifacts import assign_weights, model_weights, read_manifest, read_weights, save_artifact

from . import losses
from .config import TrainConfig
from .data import make_dataset
from .evaluate import evaluate, keras_upscale, score_line, validation_sets
from .optim import adam


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train (or continue) the run in ``cfg.out``; returns the exported artifact folder."""
    if cfg.stage == "distill":
        from .distill import distill

        return distill(cfg, resume)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    keras.utils.set_random_seed(cfg.seed)
    strategy = tf.distribute.MirroredStrategy() if cfg.multi_gpu else tf.distribute.get_strategy()
    nets = build_networks(cfg, strategy)
    manager = tf.train.CheckpointManager(nets.checkpoint(), out / "checkpoints", max_to_keep=cfg.keep_checkpoints)
    start_from(cfg, nets, manager, resume)
    writer = tf.summary.create_file_writer(str(out / "logs"))
    logs, started, start_step = run_steps(cfg, nets, strategy, manager, writer)
    if manager.latest_checkpoint is None or int(manager.latest_checkpoint.rsplit("-", 1)[1]) != nets.steps_done:
        manager.save(checkpoint_number=nets.steps_done)
    elapsed = time.time() - started
    metrics = _validate(nets.ema, cfg, writer, nets.steps_done) if cfg.val else {}
    return export(nets.ema, cfg, out / "artifact" / cfg.name, metrics,
                  {"steps": nets.steps_done, "seconds_this_session": round(elapsed, 1),
                   "steps_per_sec": round((nets.steps_done - start_step) / max(elapsed, 1e-9), 3),
                   "final_losses": {k: round(float(v), 6) for k, v in logs.items()},
                   "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"})


@dataclass
class Networks:
    """The networks of a run and their optimizers. The checkpoint holds the first six (these names are
    the checkpoint's: renaming one orphans every saved run); the perceptual feature extractors are rebuilt."""

    step: tf.Variable
    generator: keras.Model
    ema: keras.Model
    g_opt: keras.optimizers.Optimizer
    discriminator: keras.Model | None = None  # gan stage only, as the rest
    d_opt: keras.optimizers.Optimizer | None = None
    d_features: keras.Model | None = None  # the VGG-style discriminator with its features as outputs
    extractor: keras.Model | None = None  # VGG19 or random conv features; None: discriminator feature matching

    CHECKPOINTED = ("step", "generator", "ema", "g_opt", "discriminator", "d_opt")

    @property
    def steps_done(self) -> int:
        return int(self.step.numpy())

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(**{k: getattr(self, k) for k in self.CHECKPOINTED if getattr(self, k) is not None})


def build_networks(cfg: TrainConfig, strategy) -> Networks:
    """Fresh networks and optimizers, built in this order (the seeded initial weights depend on it)."""
    gan = cfg.stage == "gan"
    vgg_file = losses.find_vgg19_weights(cfg.vgg19_weights) if gan and cfg.perceptual == "vgg" else None
    with strategy.scope(), dtype_policy(policy_name(cfg.precision)):
        generator = build_generator(cfg.arch, cfg.generator_params)
        ema = build_generator(cfg.arch, cfg.generator_params)
        ema.set_weights(generator.get_weights())
        g_opt = adam(cfg, cfg.lr)
        g_opt.build(generator.trainable_variables)  # slots exist before a restore fills them
        nets = Networks(tf.Variable(0, dtype=tf.int64, trainable=False, name="step"), generator, ema, g_opt)
        if gan:
            nets.discriminator = discriminators.build(cfg.discriminator, cfg.hr_crop, cfg.d_num_feat)
            nets.d_features = None if cfg.discriminator == "unet" else losses.with_features(nets.discriminator)
            nets.d_opt = adam(cfg, cfg.d_lr)
            nets.d_opt.build(nets.discriminator.trainable_variables)
            nets.extractor = (losses.vgg19_conv54(vgg_file) if vgg_file
                              else losses.random_conv_features(cfg.seed) if cfg.perceptual == "random" else None)
    return nets


def start_from(cfg: TrainConfig, nets: Networks, manager, resume: bool) -> None:
    """The latest checkpoint (``resume``), or the ``init`` artifact's weights, or nothing (fresh)."""
    if resume:
        if not manager.latest_checkpoint:
            raise FileNotFoundError(f"{manager.directory}: no checkpoint to resume from")
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"resumed {manager.latest_checkpoint} at step {nets.steps_done}")
    elif cfg.init:
        init = read_manifest(cfg.init)
        if init.arch != cfg.arch or init.params != cfg.generator_params:
            raise ValueError(f"{cfg.init}: is {init.arch} {init.params}, this run builds {cfg.arch} {cfg.generator_params}")
        weights = read_weights(cfg.init, init.weights)
        assign_weights(nets.generator, weights, source=cfg.init)
        assign_weights(nets.ema, weights, source=cfg.init)


def _l1(a, b):
    return tf.reduce_mean(tf.abs(a - b))


def _apply(opt, tape, scaled_loss, variables) -> None:
    grads = tape.gradient(scaled_loss, variables)
    opt.apply_gradients(zip(grads, variables))


class Steps:
    """One step of the run's stage on one replica's share of a batch, and ``train_step``: that step on
    every replica, then the EMA and the step counter, as one ``tf.function``.

    A batch is (lr, target) or, with usm_gt, (lr, sharpened target, hr): the losses that shape detail
    (pixel, perceptual, artifact) aim at the target, the discriminator sees real, unsharpened photos."""

    def __init__(self, cfg: TrainConfig, nets: Networks, strategy):
        self.cfg, self.nets, self.strategy = cfg, nets, strategy
        self.replicas = strategy.num_replicas_in_sync
        self.one_step = self.gan_step if cfg.stage == "gan" else self.psnr_step
        self.train_step = tf.function(self._train_step)

    def _pixel(self, a, b):
        return tf.reduce_mean(tf.square(a - b)) if self.cfg.pixel_loss == "mse" else _l1(a, b)

    def psnr_step(self, lr, target, hr=None):
        g, g_opt = self.nets.generator, self.nets.g_opt
        with tf.GradientTape() as tape:
            sr = tf.cast(g(lr, training=True), tf.float32)
            loss = self._pixel(sr, target)
            # gradients are summed over replicas; loss scaling (mixed precision) must be taped too
            scaled = g_opt.scale_loss(loss / self.replicas)
        _apply(g_opt, tape, scaled, g.trainable_variables)
        return {self.cfg.pixel_loss: loss}

    def _discriminate(self, images):
        if self.nets.d_features is None:
            return tf.cast(self.nets.discriminator(images, training=True), tf.float32), []
        logits, *feats = self.nets.d_features(images, training=True)
        return tf.cast(logits, tf.float32), [tf.cast(f, tf.float32) for f in feats]

    def _extra_losses(self, lr, sr, target) -> dict:
        """The optional generator losses against GAN artifacts, each with its weight: {name: (weight, loss)}."""
        cfg, extra = self.cfg, {}
        if cfg.artifact_weight:
            weight = losses.artifact_map(target, sr, tf.cast(self.nets.ema(lr, training=False), tf.float32))
            extra["artifact"] = (cfg.artifact_weight, _l1(weight * sr, weight * target))
        if cfg.lowfreq_weight:
            extra["lowfreq"] = (cfg.lowfreq_weight, losses.lowfreq_l1(sr, target, sigma=cfg.scale / 2))
        if cfg.chroma_weight:
            extra["chroma"] = (cfg.chroma_weight, losses.chroma_l1(sr, target))
        return extra

    def gan_step(self, lr, target, hr=None):
        cfg, nets = self.cfg, self.nets
        hr = target if hr is None else hr
        with tf.GradientTape(persistent=True) as tape:
            sr = tf.cast(nets.generator(lr, training=True), tf.float32)
            real_logits, real_feats = self._discriminate(hr)
            fake_logits, fake_feats = self._discriminate(sr)
            pix = _l1(sr, target)
            if nets.extractor is not None:
                percep = losses.feature_l1(nets.extractor, sr, target)
            else:
                percep = losses.feature_matching(fake_feats, real_feats)
            adv, d_loss = losses.adversarial(cfg.discriminator, real_logits, fake_logits)
            g_loss = cfg.l1_weight * pix + cfg.perceptual_weight * percep + cfg.adversarial_weight * adv
            logs = {"l1": pix, "perceptual": percep, "adversarial": adv}
            for name, (weight, loss) in self._extra_losses(lr, sr, target).items():
                logs[name] = loss
                g_loss += weight * loss
            g_scaled = nets.g_opt.scale_loss(g_loss / self.replicas)
            d_scaled = nets.d_opt.scale_loss(d_loss / self.replicas)
        _apply(nets.g_opt, tape, g_scaled, nets.generator.trainable_variables)
        _apply(nets.d_opt, tape, d_scaled, nets.discriminator.trainable_variables)
        return {**logs, "g": g_loss, "d": d_loss}

    def _train_step(self, batch):
        nets = self.nets
        logs = self.strategy.run(self.one_step, args=batch)
        # EMA, bias-corrected early on (as tf.train.ExponentialMovingAverage with num_updates), so short
        # runs export a useful average instead of one still dominated by the initial weights.
        t = tf.cast(nets.step, tf.float32)
        decay = tf.minimum(self.cfg.ema_decay, (1.0 + t) / (10.0 + t))
        for e, w in zip(nets.ema.weights, nets.generator.weights):
            e.assign(decay * e + (1.0 - decay) * tf.cast(w, e.dtype))
        nets.step.assign_add(1)
        return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}


def _batches(cfg: TrainConfig, strategy, step: int):
    """The input pipeline from the run's position: the samples of ``step`` steps are skipped."""
    ds = make_dataset(cfg.data, lr_dir=cfg.lr_data, scale=cfg.scale, crop=cfg.hr_crop, batch_size=cfg.batch_size,
                      seed=cfg.seed, degradation=cfg.degradation, start=step * cfg.batch_size,
                      usm=cfg.usm_gt, second_order_prob=cfg.second_order_prob)
    return iter(strategy.experimental_distribute_dataset(ds))


def run_steps(cfg: TrainConfig, nets: Networks, strategy, manager, writer) -> tuple[dict, float, int]:
    """Steps up to ``cfg.steps`` with logs, checkpoints and validation; an interrupt saves a checkpoint
    and is raised again. Returns the last losses, the start time and the step this session began at."""
    from tqdm import tqdm

    train_step = Steps(cfg, nets, strategy).train_step
    batches = _batches(cfg, strategy, nets.steps_done)
    logs: dict = {}
    stop = _StopRequest()
    started, start_step = time.time(), nets.steps_done
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not cfg.progress, dynamic_ncols=True, desc=cfg.stage)
    try:
        while nets.steps_done < cfg.steps:
            logs = train_step(next(batches))
            s = nets.steps_done
            bar.update(1)
            if s % cfg.log_every == 0 or s == cfg.steps:
                _log(cfg, bar, writer, s, logs, float(nets.g_opt.learning_rate),
                     (s - start_step) / (time.time() - started))
            if s % cfg.checkpoint_every == 0:
                manager.save(checkpoint_number=s)
            if cfg.val and cfg.val_every and s % cfg.val_every == 0 and s < cfg.steps:
                _validate(nets.ema, cfg, writer, s)
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        path = manager.save(checkpoint_number=nets.steps_done)
        bar.close()
        print(f"\ninterrupted at step {nets.steps_done}; saved {path}; continue with --resume --out {cfg.out}")
        raise
    finally:
        stop.restore()
        writer.flush()
        # Drop the input pipeline now: its threads run Python (the real-world degradation), and left to
        # interpreter shutdown after an interrupt they kept the process from exiting.
        batches = None  # noqa: F841
    bar.close()
    return logs, started, start_step


def _log(cfg: TrainConfig, bar, writer, s: int, logs: dict, lr: float, rate: float) -> None:
    values = {k: float(v) for k, v in logs.items()}
    bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()})
    if not cfg.progress:  # background runs: a plain line per log interval
        print(f"step {s}/{cfg.steps} {rate:.3f} steps/s " + " ".join(f"{k}={v:.4g}" for k, v in values.items()),
              flush=True)
    with writer.as_default(step=s):
        for k, v in values.items():
            tf.summary.scalar(f"loss/{k}", v)
        tf.summary.scalar("lr", lr)
        tf.summary.scalar("steps_per_sec", rate)


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
    """Scores on every ``--val`` set, logged and printed; the manifest's metrics."""
    sets = validation_sets(cfg.val)
    metrics = {}
    for name, folder in sets.items():
        mean = evaluate(keras_upscale(model), folder, cfg.scale)["mean"]
        tag = "val" if len(sets) == 1 else f"val/{name}"
        with writer.as_default(step=s):
            tf.summary.scalar(f"{tag}/psnr", mean["psnr"])
            tf.summary.scalar(f"{tag}/ssim", mean["ssim"])
        print(f"step {s}: {score_line(name, cfg.scale, mean)}")
        metrics[f"{name}_x{cfg.scale}"] = {k: round(v, 4) for k, v in mean.items()}
    return metrics


def export(model: keras.Model, cfg: TrainConfig, folder: Path, metrics: dict, run: dict) -> Path:
    """Write the (EMA) generator as a model artifact with the training config and metrics."""
    training = {**{k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress",)}, **run}
    save_artifact(folder, model_weights(model), name=cfg.name, arch=cfg.arch, params=cfg.generator_params,
                  scale=cfg.scale, training=training, metrics=metrics,
                  description=f"{cfg.arch} x{cfg.scale} {cfg.generator_params}, {cfg.stage} stage, {run['steps']} steps")
    return folder

