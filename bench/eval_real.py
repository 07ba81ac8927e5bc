"""Real-world quality table: bicubic, the PSNR models and the real-world models (strength 0, default, 1)
on the deterministic real-world validation sets (Set5/Set14 HR degraded by ``training.degrade`` with
fixed seeds, as ``esrgan prepare --degradation realworld --seed 0`` writes them; "once": one round,
``--degradation realworld-once``), and the real-world
models on the clean (bicubic) sets. PSNR-Y / SSIM with border = scale, and the texture ratio (mean
|Laplacian| of the output over the original's; bicubic blur reads far below 1).

    python bench/eval_real.py --datasets ../shared/datasets/val [--models-dir DIR] [--json docs/real_quality.json]
"""
import argparse
import json
import tempfile
from pathlib import Path

from model.artifacts import find_model
from model.settings import get_settings
from training.config import PrepareConfig
from training.evaluate import engine_upscale, evaluate
from training.prepare import prepare


def real_set(hr_dir: Path, scale: int, out: Path, degradation: str = "realworld") -> Path:
    prepare(PrepareConfig(src=str(hr_dir), out=str(out), scale=scale, degradation=degradation, seed=0), progress=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, required=True, help="folder with Set5/x2, Set5/x4, Set14/x2, ...")
    ap.add_argument("--models-dir", type=Path, default=get_settings().models_dir)
    ap.add_argument("--sets", default="Set5,Set14")
    ap.add_argument("--json", type=Path, help="also write the table here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (4, 2):
            real_folder, real = find_model(args.models_dir, f"esrgan-real-x{scale}")
            psnr_folder, _ = find_model(args.models_dir, f"esrgan-psnr-x{scale}")
            default = real.interpolation.default_strength if real.interpolation else None
            runs = [(f"esrgan-psnr-x{scale}", psnr_folder, None)]
            runs += [(f"esrgan-real-x{scale} s={s:g}", real_folder, s) for s in sorted({0.0, default, 1.0} - {None})]
            for name in args.sets.split(","):
                clean = args.datasets / name / f"x{scale}"
                sets = {"real": real_set(clean / "HR", scale, Path(tmp) / f"{name}x{scale}"),
                        "once": real_set(clean / "HR", scale, Path(tmp) / f"once{name}x{scale}", "realworld-once"),
                        "clean": clean}
                for kind, folder in sets.items():
                    for label, model, strength in runs if kind != "clean" else runs[1:]:
                        mean = evaluate(engine_upscale(model, strength), folder, scale)["mean"]
                        if label == runs[0][0] or (kind == "clean" and label == runs[1][0]):
                            rows.append({"scale": scale, "set": f"{kind}-{name}", "model": "bicubic",
                                         **{k: mean[f"bicubic_{k}"] for k in ("psnr", "ssim", "texture")}})
                        rows.append({"scale": scale, "set": f"{kind}-{name}", "model": label,
                                     **{k: mean[k] for k in ("psnr", "ssim", "texture")}})
                        r = rows[-1]
                        print(f"x{scale} {r['set']:<14} {r['model']:<26} {r['psnr']:7.3f} dB {r['ssim']:.4f} "
                              f"texture {r['texture']:.3f}", flush=True)
    print("\n| scale | set | model | PSNR-Y | SSIM | texture |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| x{r['scale']} | {r['set']} | {r['model']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['texture']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
