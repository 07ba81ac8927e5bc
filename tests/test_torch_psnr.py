"""The torch backend of `esrgan train` (training/torch_train.py) on the CPU, without TensorFlow or pydantic
importable: bicubic pairs cut from tensors, real-world pairs made by training.degrade in DataLoader worker
processes; a few steps, then the checkpoint through `esrgan convert` into an artifact that the engine runs as
PyTorch does. Also its old entry point, `python -m training.torch_psnr`, and what the backend refuses."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from esrgan.main import main as esrgan_main
from tests.helpers import esrgan_env
from training import degrade, torch_psnr
from training.config import TrainConfig
from training.torch_archs import RRDBNet
from training.torch_data import RealworldPatches

REPO = Path(__file__).resolve().parents[1]
# the lent GPU machines have no TensorFlow, and the old entry point needs no pydantic or tqdm either
NO_TENSORFLOW = ("tensorflow", "keras")
BARE = (*NO_TENSORFLOW, "pydantic", "pydantic_settings", "tqdm")
RUN_MODULE = "import runpy, sys; sys.modules.update(dict.fromkeys({blocked!r})); runpy.run_module({module!r}, run_name='__main__')"


def run_without(blocked: tuple[str, ...], module: str, *args) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` where importing any of ``blocked`` fails."""
    env = {**esrgan_env(), "OMP_NUM_THREADS": "1"}
    code = RUN_MODULE.format(blocked=list(blocked), module=module)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


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
    """Through the old entry point and its old flag names (--batch, --patch, --max-steps)."""
    out = tmp_path / "run"
    proc = run_without(
        BARE, "training.torch_psnr", "--data", photos / "hr", "--scale", "2", "--degradation", "realworld", "--usm-gt",
        "--second-order-prob", "0.5", "--workers", "1", "--batch", "2", "--patch", "16", "--num-block", "1",
        "--num-feat", "8", "--num-grow-ch", "4", "--max-steps", "4", "--seconds", "600", "--warmup", "1",
        "--rescales", "1.0", "--log-every", "2", "--val", f"real={photos / 'val'}", "--out", out)
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


def test_esrgan_train_backend_torch_runs_bicubic_pairs_and_converts(photos, tmp_path):
    out, models = tmp_path / "run", tmp_path / "m"
    proc = run_without(
        NO_TENSORFLOW, "esrgan", "train", photos / "hr", "--backend", "torch", "--scale", "2", "--steps", "3", "--batch-size", "2",
        "--hr-crop", "32", "--num-block", "1", "--num-feat", "8", "--num-grow-ch", "4", "--log-every", "1",
        "--val", photos / "val", "--name", "tiny-x2", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = out / "rrdbnet_x2.pth"
    assert f"esrgan convert {ckpt} --name tiny-x2 --scale 2" in proc.stdout

    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 3 and result["config"]["backend"] == "torch" and result["config"]["hr_crop"] == 32
    assert np.isfinite(result["metrics"][photos.name]["psnr"])  # a bare --val DIR is named by its parent
    assert json.loads((out / "config.json").read_text()) == result["config"]
    assert "training pairs on cpu" in (out / "log.txt").read_text()
    assert esrgan_main(["convert", str(ckpt), "--name", "tiny-x2", "--models-dir", str(models), "--scale", "2"]) == 0
    from model.engine import Upscaler

    up = Upscaler.from_artifact(models / "tiny-x2").upscale(np.array(Image.open(photos / "val" / "LR" / "cat.png")))
    assert up.shape == (64, 64, 3) and up.dtype == np.uint8


def test_the_old_entry_point_keeps_its_flags_and_defaults(photos):
    cfg = torch_psnr.config(["--data", str(photos / "hr"), "--scale", "2", "--patch", "16", "--batch", "2",
                             "--max-steps", "4", "--ema", "0.99", "--val", "a=x", "--val", "b=y", "--out", "o"])
    assert (cfg.backend, cfg.hr_crop, cfg.batch_size, cfg.steps, cfg.ema_decay) == ("torch", 32, 2, 4, 0.99)
    assert (cfg.seconds, cfg.lr, cfg.warmup, cfg.rescales, cfg.val) == (420, 4e-4, 500, "1.0,0.8,0.6", ["a=x", "b=y"])
    assert torch_psnr.config(["--data", str(photos / "hr")]).hr_crop == 48 * 4


@pytest.mark.parametrize("args, message", [
    (["--stage", "gan", "--init", "x"], "the torch backend trains the psnr and distill stages; --stage gan needs"),
    (["--teacher", "t.param", "--init-end", "restoration"], "--init-end: only the tf backend has this"),
    (["--teacher", "no-such-model"], "the torch backend reads an ncnn .param file, or the name of an official"),
    (["--precision", "bfloat16"], "--precision: only the tf backend has this"),
    (["--resume"], "saves one checkpoint, at the end"),
    (["--scale", "3"], "x2 or x4"),
    (["--backend", "tf", "--seconds", "60"], "--seconds: only the torch backend has this"),
])
def test_what_a_backend_lacks_is_refused_with_a_message(photos, tmp_path, capsys, args, message):
    (tmp_path / "config.json").write_text(json.dumps({"data": str(photos / "hr"), "backend": "torch"}))
    argv = ["train", str(photos / "hr"), "--backend", "torch", "--out", str(tmp_path), *args]
    assert esrgan_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("esrgan train: error: ") and message in err and "Traceback" not in err


def test_steps_zero_needs_a_time_budget(photos):
    with pytest.raises(ValueError, match="needs a --seconds budget"):
        TrainConfig(data=str(photos / "hr"), backend="torch", steps=0)
    assert TrainConfig(data=str(photos / "hr"), backend="torch", steps=0, seconds=60).steps == 0


def test_torch_run_starts_from_an_artifacts_sharp_end(photos):
    """`--init ARTIFACT` on the torch backend: the network starts as the artifact's sharp end computes in the
    engine (so a GPU distillation can continue today's shipped students); another shape is refused."""
    from model.engine import Upscaler
    from model.settings import SHIPPED_MODELS_DIR
    from training.torch_train import build

    folder = SHIPPED_MODELS_DIR / "esrgan-real-x2"
    manifest = json.loads((folder / "manifest.json").read_text())  # the sharp end: a compact SRVGG network
    params = manifest["params"]
    cfg = TrainConfig(data=str(photos / "hr"), backend="torch", scale=2, init=str(folder), arch=manifest["arch"],
                      **{k: params[k] for k in ("num_feat", "num_conv")})
    model, ema = build(cfg, torch.device("cpu"))
    x = np.random.default_rng(0).random((1, 24, 20, 3), dtype=np.float32)
    engine = Upscaler.from_artifact(folder, strength=1.0, precision="float32", backend="openvino").runner(x)
    for net in (model, ema):
        with torch.no_grad():
            y = net.eval()(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        assert np.abs(np.clip(y, 0, 1) - engine).max() < 1e-4
    other = TrainConfig(data=str(photos / "hr"), backend="torch", scale=2, init=str(folder), num_block=1)
    with pytest.raises(ValueError, match="this run trains rrdbnet"):
        build(other, torch.device("cpu"))
