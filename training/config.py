"""The knobs of ``esrgan train`` and ``esrgan prepare``, one dataclass each. Free of TensorFlow so
that the CLI can build its options from them without slowing ``esrgan --help``."""
from __future__ import annotations

from dataclasses import dataclass
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


STAGES = ("psnr", "gan", "distill")
DEGRADATIONS = ("bicubic", "realworld")
VAL_DEGRADATIONS = (*DEGRADATIONS, "realworld-once")
PERCEPTUAL = ("vgg", "feature-matching", "random")
DISCRIMINATORS = ("vgg", "unet")
PIXEL_LOSSES = ("l1", "mse")


@dataclass
class TrainConfig:
    # what and where
    stage: str = "psnr"  # psnr | gan | distill (learn a teacher model's outputs; implied by --teacher)
    data: str = ""  # folder of HR images (any size), or the HR half of paired folders
    lr_data: str | None = None  # paired mode: folder of LR images with the HR folder's file names
    degradation: str = "bicubic"  # bicubic (benchmark "BI") | realworld (blur, noise, JPEG)
    out: str = "runs/esrgan"  # checkpoints, TensorBoard logs, config.json, exported artifact
    name: str = "rrdbnet-x4"  # exported artifact name
    init: str | None = None  # gan stage: the stage-1 artifact folder to start from
    val: str | None = None  # folder with HR/ and LR/ to score during training and in the manifest
    # generator
    scale: int = 4
    num_block: int = 6
    num_feat: int = 32
    num_grow_ch: int = 16
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
    adversarial_weight: float = 5e-3
    vgg19_weights: str | None = None  # default: ESRGAN_VGG19_WEIGHTS, then Keras's cache path
    d_num_feat: int = 64
    # distillation (training.distill): the teacher's outputs on the same degraded crops are the target
    teacher: str | None = None  # a model name or artifact folder the engine runs (e.g. realesrgan-x4plus)
    teacher_cache: str | None = None  # default: beside --out, teacher-cache-<teacher>; shared by runs
    teacher_samples: int = 2000  # cached (LR crop, teacher output) pairs to fill before training
    teacher_crop: int = 64  # LR side of a cached crop (x4plus: ~0.6 s per 64x64 crop on 2 bf16 cores)
    hf_weight: float = 1.0  # L1 of the high-pass (image minus its Gaussian blur): keeps the teacher's edges
    gt_weight: float = 0.0  # L1 to the ground-truth crop as well
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

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.perceptual not in PERCEPTUAL:
            raise ValueError(f"perceptual must be one of {PERCEPTUAL}, got {self.perceptual!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"discriminator must be one of {DISCRIMINATORS}, got {self.discriminator!r}")
        if self.perceptual == "feature-matching" and self.discriminator != "vgg":
            raise ValueError("--perceptual feature-matching reads the VGG-style discriminator's features: "
                             "use --discriminator vgg, or --perceptual random")
        if self.usm_gt and self.degradation != "realworld":
            raise ValueError("--usm-gt sharpens the targets of --degradation realworld pairs only")
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {PIXEL_LOSSES}, got {self.pixel_loss!r}")
        gan = self.stage == "gan"
        if (self.stage == "distill") != bool(self.teacher):
            raise ValueError("distillation needs --teacher MODEL, and --teacher means --stage distill")
        if self.init_end not in ("sharp", "restoration"):
            raise ValueError(f"init_end must be sharp or restoration, got {self.init_end!r}")
        self.perceptual_weight = (self.perceptual_weight if self.perceptual_weight is not None
                                  else 0.1 if self.stage == "distill" else 1.0)
        self.lr = self.lr if self.lr is not None else (1e-4 if gan or self.teacher else 2e-4)
        self.l1_weight = self.l1_weight if self.l1_weight is not None else (1e-2 if gan else 1.0)
        multiple = 32 if self.discriminator == "vgg" else 8
        if gan and self.hr_crop % multiple:
            raise ValueError(f"the gan stage with the {self.discriminator} discriminator needs --hr-crop a "
                             f"multiple of {multiple}, got {self.hr_crop}")
        if self.hr_crop % self.scale:
            raise ValueError(f"--hr-crop {self.hr_crop} must be a multiple of the scale {self.scale}")
        for folder in (self.data, self.lr_data):
            if folder is not None and not Path(folder).is_dir():
                raise ValueError(f"{folder or '(none given)'}: not a folder of images")
        if gan and not self.init:
            raise ValueError("the gan stage starts from stage-1 weights: give --init PSNR_ARTIFACT")

    @property
    def generator_params(self) -> dict:
        return dict(scale=self.scale, num_block=self.num_block, num_feat=self.num_feat, num_grow_ch=self.num_grow_ch)
