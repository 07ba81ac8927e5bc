"""PSNR-stage RRDBNet training in PyTorch, for lent GPU machines that carry PyTorch but not TensorFlow.

Same recipe as ``esrgan train --stage psnr`` (L1, Adam, cosine learning rate, EMA of the weights, random
crops, flips and 90-degree rotations), with ``training.torch_archs.RRDBNet`` in BasicSR's layout, so the
checkpoint becomes a model artifact with ``esrgan convert``. Two ways to make the LR inputs:

* ``--degradation bicubic`` (default): MATLAB-compatible bicubic. The whole training set lives on the GPU
  and batches are cut there: the small networks we ship are too fast for a CPU data loader to keep up.
* ``--degradation realworld``: Real-ESRGAN's second-order degradation (``training.degrade``, the same code
  as ``esrgan train --degradation realworld``), made on the fly on the CPU by DataLoader worker processes,
  each sample seeded by ``degrade.pair_seed(seed, index)`` so a run's pairs do not depend on the number
  of workers. ``--usm-gt`` trains against the unsharp-masked HR (Real-ESRNet).

The schedule runs over a wall-clock budget (``--seconds``) rather than a step count, because the lent
machine's time is what is fixed.

    python -m training.torch_psnr --data DIR_OF_IMAGES --scale 4 --seconds 420 --out run_x4
    python -m training.torch_psnr --data DIR --scale 4 --degradation realworld --patch 64 --out real_x4
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from training import degrade
from training.imresize import imresize
from training.metrics import evaluate_pair
from training.torch_archs import RRDBNet

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def load_hr(folder: Path, scale: int, rescales: list[float]):
    """HR images (and smaller copies of them, a standard scale augmentation), uint8 HxWx3, cut to
    multiples of the scale, one at a time."""
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        base = load_rgb(path)
        for r in rescales:
            hr = base if r == 1 else imresize(base, r)
            h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
            yield np.ascontiguousarray(hr[:h, :w])


def make_pairs(images, scale: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The HR images with their MATLAB-bicubic LR, as uint8 CHW tensors on the device."""
    return [tuple(torch.from_numpy(a).permute(2, 0, 1).contiguous().to(device) for a in (hr, imresize(hr, 1 / scale)))
            for hr in images]


def area_weights(shapes) -> np.ndarray:
    """Sample images by area so every pixel is equally likely."""
    areas = np.array([h * w for h, w in shapes], dtype=np.float64)
    return areas / areas.sum()


class RealworldPatches(torch.utils.data.Dataset):
    """Sample ``index`` of a run: an HR crop of ``patch * scale`` (image drawn by area), flipped and rotated,
    and its LR by ``training.degrade``; every choice from ``degrade.pair_seed(seed, index)``, so the same
    run gives the same pairs whichever worker makes them. Returns float CHW tensors in [0, 1]: the LR and
    the target (the USM-sharpened crop with ``usm``)."""

    def __init__(self, images: list[np.ndarray], scale: int, patch: int, seed: int, usm: bool = False,
                 cfg: degrade.DegradeConfig = degrade.REAL_ESRGAN):
        self.crop = patch * scale
        self.images = [im for im in images if min(im.shape[:2]) >= self.crop]
        if not self.images:
            raise ValueError(f"no training image is at least {self.crop}x{self.crop} (patch {patch} x scale {scale})")
        self.weights = area_weights(im.shape[:2] for im in self.images)
        self.scale, self.seed, self.usm, self.cfg = scale, seed, usm, cfg

    def __len__(self) -> int:
        return 2**62  # endless: the schedule stops on time or --max-steps

    def __getitem__(self, index: int):
        rng = degrade.pair_seed(self.seed, index)
        img = self.images[rng.choice(len(self.images), p=self.weights)]
        y = rng.integers(0, img.shape[0] - self.crop + 1)
        x = rng.integers(0, img.shape[1] - self.crop + 1)
        hr = img[y:y + self.crop, x:x + self.crop]
        if rng.integers(2):
            hr = hr[:, ::-1]
        hr = np.rot90(hr, int(rng.integers(4))).astype(np.float32) / 255.0
        lr = degrade.degrade(hr, self.scale, rng, self.cfg)
        target = degrade.usm_sharpen(hr) if self.usm else hr
        to_chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))  # noqa: E731
        return to_chw(lr), to_chw(target)


def _quiet_worker(_):
    cv2.setNumThreads(1)  # one OpenCV thread per loader process: the workers already fill the cores


def sample_batch(pairs, weights, batch: int, patch: int, scale: int, gen: np.random.Generator):
    """Aligned random crops with the same flip/rotation for the LR and HR patch of each sample."""
    lrs, hrs = [], []
    for i in gen.choice(len(pairs), size=batch, p=weights):
        hr, lr = pairs[i]
        y = gen.integers(0, lr.shape[1] - patch + 1)
        x = gen.integers(0, lr.shape[2] - patch + 1)
        lp = lr[:, y:y + patch, x:x + patch]
        hp = hr[:, y * scale:(y + patch) * scale, x * scale:(x + patch) * scale]
        k, flip = int(gen.integers(4)), bool(gen.integers(2))
        if flip:
            lp, hp = lp.flip(2), hp.flip(2)
        lrs.append(torch.rot90(lp, k, (1, 2)))
        hrs.append(torch.rot90(hp, k, (1, 2)))
    to_float = lambda ts: torch.stack(ts).float().div_(255).contiguous(memory_format=torch.channels_last)  # noqa: E731
    return to_float(lrs), to_float(hrs)


@torch.no_grad()
def evaluate(model, val_dir: Path, scale: int, device) -> dict:
    """Set-style folders (HR/, LR/): PSNR/SSIM on Y with border crop = scale, model and bicubic."""
    model.eval()
    out = {}
    for hr_path in sorted((val_dir / "HR").iterdir()):
        lr_path = next((val_dir / "LR").glob(hr_path.stem + ".*"))
        hr, lr = load_rgb(hr_path), load_rgb(lr_path)
        x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float().div(255).to(device)
        sr = model(x).clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).cpu().numpy()
        bic = imresize(lr, scale)
        out[hr_path.stem] = {"model": evaluate_pair(sr, hr, scale), "bicubic": evaluate_pair(bic, hr, scale)}
    model.train()
    mean = {k: float(np.mean([v["model"][k] for v in out.values()])) for k in ("psnr", "ssim")}
    bic = {k: float(np.mean([v["bicubic"][k] for v in out.values()])) for k in ("psnr", "ssim")}
    return {"psnr": mean["psnr"], "ssim": mean["ssim"], "bicubic_psnr": bic["psnr"], "bicubic_ssim": bic["ssim"],
            "images": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of HR training images (searched recursively)")
    ap.add_argument("--val", action="append", default=[], help="NAME=DIR with HR/ and LR/ (repeatable)")
    ap.add_argument("--scale", type=int, choices=(2, 4), default=4)
    ap.add_argument("--num-block", type=int, default=6)
    ap.add_argument("--num-feat", type=int, default=32)
    ap.add_argument("--num-grow-ch", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=48, help="LR patch size")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--pixel-loss", choices=("l1", "mse"), default="l1",
                    help="l1 trains best; mse (what PSNR scores) for a final fine-tune with --init")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seconds", type=float, default=420, help="wall-clock budget of the schedule")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = time only)")
    ap.add_argument("--rescales", default="1.0,0.8,0.6")
    ap.add_argument("--degradation", choices=("bicubic", "realworld"), default="bicubic",
                    help="LR inputs: MATLAB bicubic (cut on the GPU) or Real-ESRGAN's second-order "
                         "degradation (training.degrade, made by CPU loader workers)")
    ap.add_argument("--second-order-prob", type=float, default=1.0,
                    help="realworld: share of pairs degraded twice (Real-ESRGAN: 1), the rest once")
    ap.add_argument("--usm-gt", action="store_true", help="realworld: L1 against the unsharp-masked HR (Real-ESRNet)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                    help="realworld: DataLoader worker processes making pairs")
    ap.add_argument("--log-every", type=int, default=500, help="steps between loss lines in log.txt")
    ap.add_argument("--init", type=Path, help="start from this checkpoint (its params and params_ema): fine-tuning")
    ap.add_argument("--warmup", type=int, default=500, help="steps of linear learning-rate warm-up")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.usm_gt and args.degradation != "realworld":
        ap.error("--usm-gt sharpens the targets of --degradation realworld pairs only")
    if not 0 <= args.second_order_prob <= 1:
        ap.error("--second-order-prob is a share, 0..1")

    torch.manual_seed(args.seed)
    gen = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "log.txt", "a")

    t0 = time.time()
    images = load_hr(args.data, args.scale, [float(r) for r in args.rescales.split(",")])
    if args.degradation == "realworld":
        patches = RealworldPatches(list(images), args.scale, args.patch, args.seed, args.usm_gt,
                                   degrade.DegradeConfig(second_order_prob=args.second_order_prob))
        loader = iter(torch.utils.data.DataLoader(
            patches, batch_size=args.batch, num_workers=args.workers, pin_memory=device.type == "cuda",
            worker_init_fn=_quiet_worker, persistent_workers=args.workers > 0,
            prefetch_factor=4 if args.workers > 0 else None))

        def next_batch():
            return tuple(t.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                         for t in next(loader))
        print(f"{len(patches.images)} training images, realworld pairs by {args.workers} workers, on {device} "
              f"in {time.time() - t0:.1f}s", file=log, flush=True)
    else:
        pairs = [p for p in make_pairs(images, args.scale, device) if min(p[1].shape[1:]) >= args.patch]
        weights = area_weights(p[1].shape[1:] for p in pairs)

        def next_batch():
            return sample_batch(pairs, weights, args.batch, args.patch, args.scale, gen)
        print(f"{len(pairs)} training pairs on {device} in {time.time() - t0:.1f}s", file=log, flush=True)

    def make_model():  # x2 is the plain one-stage variant (no pixel-unshuffle), as esrgan-psnr-x2 ships
        return RRDBNet(args.scale, args.num_block, args.num_feat, args.num_grow_ch, pixel_unshuffle=False).to(device)

    model = make_model().to(memory_format=torch.channels_last)
    ema = make_model()
    if args.init:
        state = torch.load(args.init, map_location=device, weights_only=True)
        model.load_state_dict(state["params"])
        ema.load_state_dict(state["params_ema"])
    else:
        ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))

    start, step, losses, last_loss = time.time(), 0, [], float("nan")
    while True:
        frac = (time.time() - start) / args.seconds
        if frac >= 1 or (args.max_steps and step >= args.max_steps):
            break
        # Short warm-up, then cosine decay to 1% over the time budget.
        lr = args.lr * min(1.0, (step + 1) / max(args.warmup, 1)) * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = next_batch()
        loss = (F.mse_loss if args.pixel_loss == "mse" else F.l1_loss)(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            decay = args.ema if args.init else min(args.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        losses.append(loss.detach())
        step += 1
        if step % args.log_every == 0:
            last_loss = torch.stack(losses).mean().item()
            losses.clear()
            print(f"step {step} t={time.time() - start:.0f}s lr={lr:.2e} {args.pixel_loss}={last_loss:.5f}", file=log, flush=True)
    train_seconds = time.time() - start
    if losses:
        last_loss = torch.stack(losses).mean().item()

    result = {"scale": args.scale, "steps": step, "train_seconds": round(train_seconds, 1),
              "steps_per_second": round(step / max(train_seconds, 1e-9), 2),
              "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "num_params": sum(p.numel() for p in model.parameters()),
              "loss": last_loss,  # mean pixel loss of the steps since the last log line
              "metrics": {}}
    for spec in args.val:
        name, _, folder = str(spec).partition("=")
        result["metrics"][name] = evaluate(ema, Path(folder), args.scale, device)
        print(f"{name}: PSNR {result['metrics'][name]['psnr']:.3f} SSIM {result['metrics'][name]['ssim']:.4f} "
              f"(bicubic {result['metrics'][name]['bicubic_psnr']:.3f})", file=log, flush=True)
    torch.save({"params_ema": ema.state_dict(), "params": model.state_dict()}, args.out / f"rrdbnet_x{args.scale}.pth")
    (args.out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "metrics"}), file=log, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
