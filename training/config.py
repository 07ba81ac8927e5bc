"""The knobs of ``esrgan train`` and ``esrgan prepare``, one dataclass each. Free of TensorFlow (and of
every dependency but the standard library) so that the CLI can build its options from them without slowing
``esrgan --help``, and so that the PyTorch trainer reads the same config on machines without TensorFlow."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from model.precision import PRECISIONS


@dataclass
class PrepareConfig:
    src: str
    out: str
    scale: int = 4
    resize: float = 1.0  # applied to every source image first (e.g. 0.5 to tame JPEG noise)
    crops: int = 0  # augmented patch pairs per image; 0 = none
    crop: int = 128  # HR patch side (a multiple of scale)
    min_scaling: float = 0.6  # random rescale of each image in [min_scaling, 1] before cropping
    seed: int = 0
    # LR of HR/: bicubic | realworld (second order) | realworld-once (one round), training.degrade seeded by
    # seed + file name
    degradation: str = "bicubic"


BACKENDS = ("tf", "torch")
# Fixed parts of the distillation loss, the same in both backends (training.losses, training.torch_distill)
HIGH_PASS_SIGMA = 1.0  # the high pass: the image minus its Gaussian blur of this width
ENERGY_SIGMA = 2.0  # texture energy: |high pass| blurred by this width
GRID_SIGMA = 2.0  # grid L1: the sub-pixel grid patterns blurred by this width (LR pixels)
OVERSHOOT_WINDOW = 5  # overshoot L1: the target's local min..max over this square window
# chroma L1: the BT.601 Cb and Cr rows of RGB in [0, 1], one column per plane
CHROMA_ROWS = ((-0.168736, 0.5), (-0.331264, -0.418688), (0.5, -0.081312))
STAGES = ("psnr", "gan", "distill")
ARCHS = ("rrdbnet", "srvgg")  # the generators a run can train (model.architectures has their builders)
DEGRADATIONS = ("bicubic", "realworld")
VAL_DEGRADATIONS = (*DEGRADATIONS, "realworld-once")
PERCEPTUAL = ("vgg", "feature-matching", "random")
DISCRIMINATORS = ("vgg", "unet")
PIXEL_LOSSES = ("l1", "mse")
# fields that one backend reads and the other has no use for: a changed one is refused, not ignored
TORCH_ONLY = ("seconds", "warmup", "rescales", "workers")
TF_ONLY = ("lr_data", "precision", "multi_gpu", "val_every", "checkpoint_every", "keep_checkpoints", "init_end",
           "default_strength", "d_condition")


@dataclass
class TrainConfig:
    # what and where
    # tf (TensorFlow, every stage) | torch (PyTorch, psnr and distill stages: GPU machines without TensorFlow)
    backend: str = "tf"
    stage: str = "psnr"  # psnr | gan | distill (learn a teacher model's outputs; implied by --teacher)
    data: str = ""  # folder of HR images (any size), or the HR half of paired folders
    lr_data: str | None = None  # paired mode: folder of LR images with the HR folder's file names
    degradation: str = "bicubic"  # bicubic (benchmark "BI") | realworld (blur, noise, JPEG)
    out: str = "runs/esrgan"  # checkpoints, TensorBoard logs, config.json, exported artifact
    name: str | None = None  # exported artifact name; default ARCH-xSCALE (e.g. srvgg-x4)
    init: str | None = None  # start from: an artifact folder (the gan stage needs one), or a .pth checkpoint (torch)
    # folders with HR/ and LR/ to score during training and in the manifest: DIR or NAME=DIR, repeatable
    val: list[str] = field(default_factory=list)
    # generator
    arch: str = "rrdbnet"  # rrdbnet | srvgg (Real-ESRGAN's SRVGGNetCompact: a plain conv stack, fast per pixel)
    scale: int = 4
    num_block: int = 6  # rrdbnet: RRDB blocks
    num_feat: int = 32
    num_grow_ch: int = 16  # rrdbnet: dense growth channels
    num_conv: int = 16  # srvgg: body convs
    # optimisation
    steps: int = 100_000
    batch_size: int = 16
    hr_crop: int = 128  # HR patch side; the discriminator needs a multiple of 32
    lr: float | None = None  # default: 2e-4 (psnr) / 1e-4 (gan), as ESRGAN
    lr_min_ratio: float = 0.01  # cosine decay to lr * this
    pixel_loss: str = "l1"  # psnr stage: l1 (trains best) | mse (what PSNR scores; for a final fine-tune)
    beta1: float = 0.9
    beta2: float = 0.99
    ema_decay: float = 0.999
    # stage 2 (ESRGAN weights)
    l1_weight: float | None = None  # default: 1 (psnr) / 1e-2 (gan)
    perceptual: str = "vgg"  # vgg | feature-matching | random (frozen random conv features, no pretrained file)
    discriminator: str = "vgg"  # vgg (ESRGAN, relativistic GAN) | unet (Real-ESRGAN, spectral norm, per-pixel GAN)
    artifact_weight: float = 0.0  # LDL artifact-map loss (Liang et al. 2022) against GAN artifacts; 1 as LDL
    lowfreq_weight: float = 0.0  # L1 of Gaussian-blurred (sigma = scale / 2) SR vs target: against halos, colour casts
    chroma_weight: float = 0.0  # L1 of SR vs target Cb/Cr planes: against colour fringes (texture lives in luma)
    usm_gt: bool = False  # pixel and perceptual losses against the unsharp-masked HR (Real-ESRGAN); realworld only
    second_order_prob: float = 1.0  # realworld: share of pairs degraded twice (Real-ESRGAN: 1), the rest once
    perceptual_weight: float | None = None  # default: 1 (gan, VGG scale) / 0.1 (distill, random conv features)
    # default: 5e-3 (gan) / 0 (distill: a small adversary, e.g. 0.05 with --discriminator vgg, asks the
    # student for the teacher's texture where L1 to the teacher's exact phase only gets its average)
    adversarial_weight: float | None = None
    vgg19_weights: str | None = None  # default: ESRGAN_VGG19_WEIGHTS, then Keras's cache path
    d_num_feat: int = 64
    d_lr: float | None = None  # the discriminator's learning rate; default: --lr
    # distillation: the discriminator also sees the LR input (upsampled), so it judges whether the texture
    # belongs to this input (pix2pix's conditional discriminator), not whether it looks like texture at all
    d_condition: bool = False
    # distillation (training.distill): the teacher's outputs on the same degraded crops are the target
    teacher: str | None = None  # a model name or artifact folder the engine runs (e.g. realesrgan-x4plus)
    teacher_cache: str | None = None  # default: beside --out, teacher-cache-<teacher>; shared by runs
    teacher_samples: int = 2000  # cached (LR crop, teacher output) pairs to fill before training
    teacher_crop: int = 64  # LR side of a cached crop (x4plus: ~0.6 s per 64x64 crop on 2 bf16 cores)
    hf_weight: float = 1.0  # L1 of the high-pass (image minus its Gaussian blur): keeps the teacher's edges
    gt_weight: float = 0.0  # L1 to the ground-truth crop as well
    # L1 between local high-frequency energy maps (blurred |high-pass|): asks for as much texture as the
    # teacher draws, where it draws it, without asking for its exact phase (which L1 can only average away)
    energy_weight: float = 0.0
    # L1 of the sub-pixel grid pattern (losses.grid_l1): against the stripes an adversary draws on the grid,
    # blind to texture; with --adversarial-weight
    grid_weight: float = 0.0
    # L1 of SR outside the target's local min..max (losses.overshoot_l1): against halos along edges
    overshoot_weight: float = 0.0
    init_end: str = "sharp"  # which end of an interpolated --init the student starts from: sharp | restoration
    default_strength: float = 1.0  # the exported artifact's default strength (with a restoration end)
    # bookkeeping
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    val_every: int = 0  # 0 = only at the end
    seed: int = 0
    # compute type, weights stay float32: float16 (+ loss scaling) for NVIDIA GPUs, bfloat16 for TPUs, recent
    # GPUs and CPUs with AVX512-BF16 / AMX (1.8x faster steps on this project's CI CPU)
    precision: str = "float32"
    multi_gpu: bool = False  # tf.distribute.MirroredStrategy over all visible GPUs
    progress: bool = True
    # the torch backend's own knobs (training.torch_train)
    seconds: float = 0.0  # wall-clock budget: the schedule runs over time, --steps only caps it (0: --steps)
    warmup: int = 0  # steps of linear learning-rate warm-up
    rescales: str = "1.0"  # every training image also at these scales (e.g. 1.0,0.8,0.6): more object sizes
    workers: int | None = None  # realworld: DataLoader processes making pairs (default min(8, cores))

    def __post_init__(self):
        if isinstance(self.val, str):  # configs saved before several validation sets were possible
            self.val = [self.val]
        self._check_choices()
        self._check_backend()
        self.name = self.name or f"{self.arch}-x{self.scale}"
        gan = self.stage == "gan"
        self.perceptual_weight = (self.perceptual_weight if self.perceptual_weight is not None
                                  else 0.1 if self.stage == "distill" else 1.0)
        self.lr = self.lr if self.lr is not None else (1e-4 if gan or self.teacher else 2e-4)
        self.d_lr = self.d_lr if self.d_lr is not None else self.lr
        if self.stage == "distill":  # the teacher cache's pairs are always degraded like uploads (training.teacher)
            self.degradation = "realworld"
        self.l1_weight = self.l1_weight if self.l1_weight is not None else (1e-2 if gan else 1.0)
        self.adversarial_weight = (self.adversarial_weight if self.adversarial_weight is not None
                                   else 5e-3 if gan else 0.0)
        multiple = 32 if self.discriminator == "vgg" else 8
        if self.adversary and self.hr_crop % multiple:
            raise ValueError(f"the {self.discriminator} discriminator needs --hr-crop a multiple of {multiple}, "
                             f"got {self.hr_crop}")
        if self.d_condition and not (self.stage == "distill" and self.adversary):
            raise ValueError("--d-condition conditions a distillation's discriminator: give --teacher and "
                             "--adversarial-weight or --perceptual feature-matching")
        if self.hr_crop % self.scale:
            raise ValueError(f"--hr-crop {self.hr_crop} must be a multiple of the scale {self.scale}")
        if not self.data:
            raise ValueError("no training images: give their folder (DATA or --data)")
        for folder in (self.data, self.lr_data):
            if folder is not None and not Path(folder).is_dir():
                raise ValueError(f"{folder}: not a folder of images")
        if gan and not self.init:
            raise ValueError("the gan stage starts from stage-1 weights: give --init PSNR_ARTIFACT")
        if not self.steps and not self.seconds:
            raise ValueError("--steps 0 means no step limit, which needs a --seconds budget (torch backend)")

    def _check_choices(self) -> None:
        for name, allowed in (("backend", BACKENDS), ("stage", STAGES), ("perceptual", PERCEPTUAL),
                              ("precision", PRECISIONS), ("discriminator", DISCRIMINATORS),
                              ("pixel_loss", PIXEL_LOSSES), ("degradation", DEGRADATIONS),
                              ("init_end", ("sharp", "restoration")), ("arch", ARCHS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.perceptual == "feature-matching" and self.discriminator != "vgg":
            raise ValueError("--perceptual feature-matching reads the VGG-style discriminator's features: "
                             "use --discriminator vgg, or --perceptual random")
        if self.usm_gt and self.degradation != "realworld":
            raise ValueError("--usm-gt sharpens the targets of --degradation realworld pairs only")
        if not 0 <= self.second_order_prob <= 1:
            raise ValueError(f"--second-order-prob is a share, 0..1, got {self.second_order_prob}")
        if (self.stage == "distill") != bool(self.teacher):
            raise ValueError("distillation needs --teacher MODEL, and --teacher means --stage distill")

    def _check_backend(self) -> None:
        """What one backend has and the other has not is refused, not silently ignored."""
        if self.backend == "torch" and self.stage == "gan":
            raise ValueError("the torch backend trains the psnr and distill stages; --stage gan needs --backend tf")
        if self.backend == "torch" and self.stage == "distill" and self.perceptual == "feature-matching":
            raise ValueError("--perceptual feature-matching in distillation is the tf backend's; the torch "
                             "backend's perceptual term is the random conv features")
        if self.backend == "torch" and self.arch == "rrdbnet" and self.scale not in (2, 4):
            raise ValueError(f"the torch backend's RRDBNet is x2 or x4, got --scale {self.scale}")
        if self.backend == "torch" and self.init and not Path(self.init).exists():
            raise ValueError(f"{self.init}: the torch backend starts from a .pth checkpoint file (params, "
                             "params_ema) or an artifact folder (its sharp end)")
        other = TORCH_ONLY if self.backend == "tf" else TF_ONLY
        changed = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(self)
                   if f.name in other and getattr(self, f.name) != f.default]
        if changed:
            owner = "torch" if self.backend == "tf" else "tf"
            raise ValueError(f"{', '.join(changed)}: only the {owner} backend has this; "
                             f"this run is --backend {self.backend}")

    def save(self, folder: Path) -> None:
        """The run's config, read back by ``--resume`` and kept beside the checkpoints."""
        (folder / "config.json").write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @property
    def adversary(self) -> bool:
        """Whether this run trains a discriminator: the gan stage, or a distillation given an adversarial weight
        or matching its features (``--perceptual feature-matching``)."""
        return self.stage == "gan" or (self.stage == "distill" and (bool(self.adversarial_weight)
                                                                     or self.feature_matching))

    @property
    def feature_matching(self) -> bool:
        """Whether a distillation's perceptual term is the discriminator's features (paired with the teacher's)."""
        return self.stage == "distill" and self.perceptual == "feature-matching" and bool(self.perceptual_weight)

    @property
    def pair_workers(self) -> int:
        """Processes making degraded pairs (torch backend): ``--workers``, default min(8, cores)."""
        return self.workers if self.workers is not None else min(8, os.cpu_count() or 1)

    @property
    def generator_params(self) -> dict:
        """The artifact manifest's ``params`` of the network this run trains (``arch``)."""
        if self.arch == "srvgg":
            return dict(scale=self.scale, num_feat=self.num_feat, num_conv=self.num_conv)
        return dict(scale=self.scale, num_block=self.num_block, num_feat=self.num_feat, num_grow_ch=self.num_grow_ch)
