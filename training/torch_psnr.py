"""PSNR-stage RRDBNet training in PyTorch, for lent GPU machines that carry PyTorch but not TensorFlow.

Same recipe as ``esrgan train --stage psnr`` (L1, Adam, cosine learning rate, EMA of the weights, LR made
by MATLAB-compatible bicubic, random crops, flips and 90-degree rotations), in BasicSR's layout, so the
checkpoint becomes a model artifact with ``esrgan convert``. The whole training set lives on the GPU and
batches are cut there: the small networks we ship are too fast for a CPU data loader to keep up.
The schedule runs over a wall-clock budget (``--seconds``) rather than a step count, because the lent
machine's time is what is fixed.

    python -m training.torch_psnr --data DIR_OF_IMAGES --scale 4 --seconds 420 --out run_x4
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from training.imresize import imresize
from training.metrics import evaluate_pair

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


class ResidualDenseBlock(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x):
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (ResidualDenseBlock(nf, gc) for _ in range(3))

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """BasicSR names; scale 2 here is the plain variant (one upsampling stage, no pixel-unshuffle)."""

    def __init__(self, scale: int, num_block: int, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if scale == 4:
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x):
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        if self.scale == 4:
            feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def make_pairs(folder: Path, scale: int, rescales: list[float], device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """HR images (and smaller copies of them, a standard scale augmentation) with their MATLAB-bicubic LR,
    as uint8 CHW tensors on the device."""
    pairs = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        base = load_rgb(path)
        for r in rescales:
            hr = base if r == 1 else imresize(base, r)
            h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
            hr = np.ascontiguousarray(hr[:h, :w])
            lr = imresize(hr, 1 / scale)
            pairs.append(tuple(torch.from_numpy(a).permute(2, 0, 1).contiguous().to(device) for a in (hr, lr)))
    return pairs


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
    ap.add_argument("--init", type=Path, help="start from this checkpoint (its params and params_ema): fine-tuning")
    ap.add_argument("--warmup", type=int, default=500, help="steps of linear learning-rate warm-up")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    gen = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "log.txt", "a")

    t0 = time.time()
    pairs = make_pairs(args.data, args.scale, [float(r) for r in args.rescales.split(",")], device)
    pairs = [p for p in pairs if min(p[1].shape[1:]) >= args.patch]
    areas = np.array([p[1].shape[1] * p[1].shape[2] for p in pairs], dtype=np.float64)
    weights = areas / areas.sum()  # sample images by area so every pixel is equally likely
    print(f"{len(pairs)} training pairs on {device} in {time.time() - t0:.1f}s", file=log, flush=True)

    model = RRDBNet(args.scale, args.num_block, args.num_feat, args.num_grow_ch).to(device)
    model = model.to(memory_format=torch.channels_last)
    ema = RRDBNet(args.scale, args.num_block, args.num_feat, args.num_grow_ch).to(device)
    if args.init:
        state = torch.load(args.init, map_location=device, weights_only=True)
        model.load_state_dict(state["params"])
        ema.load_state_dict(state["params_ema"])
    else:
        ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))

    start, step, losses = time.time(), 0, []
    while True:
        frac = (time.time() - start) / args.seconds
        if frac >= 1 or (args.max_steps and step >= args.max_steps):
            break
        # Short warm-up, then cosine decay to 1% over the time budget.
        lr = args.lr * min(1.0, (step + 1) / max(args.warmup, 1)) * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = sample_batch(pairs, weights, args.batch, args.patch, args.scale, gen)
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
        if step % 500 == 0:
            mean_loss = torch.stack(losses).mean().item()
            losses.clear()
            print(f"step {step} t={time.time() - start:.0f}s lr={lr:.2e} {args.pixel_loss}={mean_loss:.5f}", file=log, flush=True)
    train_seconds = time.time() - start

    result = {"scale": args.scale, "steps": step, "train_seconds": round(train_seconds, 1),
              "steps_per_second": round(step / max(train_seconds, 1e-9), 2),
              "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "num_params": sum(p.numel() for p in model.parameters()), "metrics": {}}
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
