"""The PyTorch trainer (training/torch_psnr.py) with --degradation realworld, on the CPU: pairs made by
training.degrade in DataLoader worker processes, a few steps, then the checkpoint through `esrgan convert`
into an artifact that the engine runs as PyTorch does."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from esrgan.main import main as esrgan_main
from training import degrade
from training.torch_archs import RRDBNet
from training.torch_psnr import RealworldPatches

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two small photos (scikit-image's) as training HR, and a one-image real-world validation set."""
    root = tmp_path_factory.mktemp("photos")
    (root / "hr").mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((96, 72), Image.LANCZOS).save(root / "hr" / f"{name}.png")
    hr = data.chelsea()[40:104, 120:184]  # 64x64, the cat's face
    lr = degrade.degrade(hr.astype(np.float32) / 255.0, 2, degrade.pair_seed(7, 0))
    for sub, img in (("HR", hr), ("LR", np.round(lr * 255).astype(np.uint8))):
        (root / "val" / sub).mkdir(parents=True)
        Image.fromarray(img).save(root / "val" / sub / "cat.png")
    return root


def test_realworld_patches_are_seeded_per_sample(photos):
    images = [np.asarray(Image.open(p)) for p in sorted((photos / "hr").iterdir())]
    patches = RealworldPatches(images, scale=2, patch=16, seed=3, usm=True)
    lr, target = patches[5]
    assert lr.shape == (3, 16, 16) and target.shape == (3, 32, 32) and lr.dtype == torch.float32
    again = RealworldPatches(images, scale=2, patch=16, seed=3, usm=True)
    for a, b in zip(patches[5], again[5]):  # same seed and index, same pair, in any process
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(patches[6][0], lr)
    with pytest.raises(ValueError, match="at least 256x256"):
        RealworldPatches(images, scale=4, patch=64, seed=0)


def test_realworld_run_writes_a_checkpoint_that_converts_and_runs(photos, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "training.torch_psnr", "--data", str(photos / "hr"), "--scale", "2",
           "--degradation", "realworld", "--usm-gt", "--second-order-prob", "0.5", "--workers", "1",
           "--batch", "2", "--patch", "16",
           "--num-block", "1", "--num-feat", "8", "--num-grow-ch", "4", "--max-steps", "4", "--seconds", "600",
           "--warmup", "1", "--rescales", "1.0", "--log-every", "2", "--val", f"real={photos / 'val'}",
           "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 4 and result["config"]["degradation"] == "realworld"
    assert np.isfinite(result["loss"]) and 0 < result["loss"] < 1
    assert np.isfinite(result["metrics"]["real"]["psnr"])
    log = (out / "log.txt").read_text()
    assert "realworld pairs by 1 workers" in log and "step 4 " in log

    # the checkpoint through the CLI converter; the artifact's network gives PyTorch's output, and the engine
    # (which mirrors the borders, so it is not compared pixel for pixel) runs it
    ckpt = out / "rrdbnet_x2.pth"
    assert esrgan_main(["convert", str(ckpt), "--name", "torch-real-x2", "--models-dir", str(tmp_path / "m"),
                        "--scale", "2"]) == 0
    from model.artifacts import load_keras_model
    from model.engine import Upscaler

    net = RRDBNet(2, num_block=1, num_feat=8, num_grow_ch=4, pixel_unshuffle=False).eval()
    net.load_state_dict(torch.load(ckpt, weights_only=True)["params_ema"])
    image = np.array(Image.open(photos / "val" / "LR" / "cat.png"))
    x = image[None].astype(np.float32) / 255
    with torch.no_grad():
        expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    got = np.asarray(load_keras_model(tmp_path / "m" / "torch-real-x2")(x))
    assert got.shape == expected.shape == (1, 64, 64, 3)
    assert np.abs(got - expected).max() <= 1e-4 and expected.std() > 1e-3
    up = Upscaler.from_artifact(tmp_path / "m" / "torch-real-x2").upscale(image)
    assert up.shape == (64, 64, 3) and up.dtype == np.uint8 and up.std() > 1
