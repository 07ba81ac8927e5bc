"""Files the converter must refuse, with a message naming what did not match, and the CLI around it."""
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.main import main
from model.convert import CheckpointError, convert_checkpoint
from model.errors import ArtifactError
from tests.helpers import esrgan
from tests.torch_reference import SRVGGNetCompact
from training.torch_archs import RRDBNet


class RunsCode:
    """Unpickling this calls ``open(marker, 'w')``: proof of code execution if the marker appears."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def tiny_basicsr_state():
    torch.manual_seed(0)
    return RRDBNet(4, num_block=2, num_feat=8, num_grow_ch=4).state_dict()


def save(tmp_path, obj, name="ckpt.pth") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        convert_checkpoint(path, tmp_path / "models", "x")
    garbage = tmp_path / "garbage.pth"
    for seed in range(3):  # random bytes: malformed, not "code"
        garbage.write_bytes(np.random.default_rng(seed).bytes(512))
        with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
            convert_checkpoint(garbage, tmp_path / "models", "x")
    with pytest.raises(CheckpointError, match="no such file"):
        convert_checkpoint(tmp_path / "missing.pth", tmp_path / "models", "x")
    assert not (tmp_path / "models" / "x").exists()


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = save(tmp_path, {"params": {"conv_first.weight": RunsCode(marker)}})
    with pytest.raises(CheckpointError, match=r"refused.*pickled objects other than tensors \(\w+\.open\)"):
        convert_checkpoint(path, tmp_path / "models", "evil")
    assert not marker.exists()
    # A plain pickle (not torch.save's zip) holding code: refused the same way.
    import pickle

    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"a": RunsCode(marker)}))
    with pytest.raises(CheckpointError, match="refused"):
        convert_checkpoint(plain, tmp_path / "models", "evil")
    assert not marker.exists()


def test_unknown_tensor_names(tmp_path):
    path = save(tmp_path, {"encoder.layer1.weight": torch.zeros(4, 3, 3, 3), "encoder.layer1.bias": torch.zeros(4)})
    with pytest.raises(CheckpointError, match=r"unknown checkpoint layout.*encoder\.layer1\.bias"):
        convert_checkpoint(path, tmp_path, "x")


def test_non_tensor_entry(tmp_path):
    path = save(tmp_path, {"params": {"conv_first.weight": "hello"}})
    with pytest.raises(CheckpointError, match="'conv_first.weight' is a str, not a tensor"):
        convert_checkpoint(path, tmp_path, "x")
    with pytest.raises(CheckpointError, match="holds a list"):
        convert_checkpoint(save(tmp_path, [torch.zeros(1)], "list.pth"), tmp_path, "x")


def test_inconsistent_shapes_named(tmp_path):
    state = tiny_basicsr_state()
    state["body.1.rdb2.conv3.weight"] = torch.zeros(4, 7, 3, 3)
    with pytest.raises(CheckpointError, match=r"2 blocks.*wrong shape 1: body\.1\.rdb2\.conv3\.weight is \[4, 7, 3, 3\], "
                                              r"expected \[4, 16, 3, 3\]"):
        convert_checkpoint(save(tmp_path, state), tmp_path, "x")


def test_missing_and_unexpected_tensors_named(tmp_path):
    state = tiny_basicsr_state()
    del state["conv_hr.bias"]
    state["body.0.rdb1.conv6.weight"] = torch.zeros(4, 8, 3, 3)
    with pytest.raises(CheckpointError, match=r"missing 1: conv_hr\.bias \[8\].*unexpected 1: body\.0\.rdb1\.conv6\.weight"):
        convert_checkpoint(save(tmp_path, state), tmp_path, "x")


def test_unsupported_variants_explained(tmp_path):
    # Real-ESRGAN x1 (pixel-unshuffle by 4): a valid file, but not a scale this library runs.
    torch.manual_seed(0)
    x1 = save(tmp_path, RRDBNet(1, num_block=1, num_feat=8, num_grow_ch=4).state_dict(), "x1.pth")
    with pytest.raises(CheckpointError, match="x1 model.*x2 and x4 only"):
        convert_checkpoint(x1, tmp_path, "x")
    # SRVGGNetCompact with ReLU (no PReLU weights between the convs).
    state = SRVGGNetCompact(4, num_feat=8, num_conv=1).state_dict()
    relu = {k.replace("body.2.", "body.1.").replace("body.4.", "body.2."): v for k, v in state.items()
            if not k.startswith(("body.1.", "body.3."))}
    with pytest.raises(CheckpointError, match="not a per-channel PReLU"):
        convert_checkpoint(save(tmp_path, relu, "relu.pth"), tmp_path, "x")


def test_scale_name_and_overwrite_checks(tmp_path):
    path = save(tmp_path, tiny_basicsr_state())
    with pytest.raises(CheckpointError, match="holds a x4 model.*not x2"):
        convert_checkpoint(path, tmp_path / "m", "x", scale=2)
    with pytest.raises(ArtifactError, match="invalid model name"):
        convert_checkpoint(path, tmp_path / "m", "../escape")
    convert_checkpoint(path, tmp_path / "m", "x", scale=4)
    with pytest.raises(ArtifactError, match="already exists"):
        convert_checkpoint(path, tmp_path / "m", "x")
    convert_checkpoint(path, tmp_path / "m", "x", overwrite=True, description="second")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["x"]  # no staging folders left behind


def test_cli_convert_then_models_dir_holds_it(tmp_path, capsys):
    path = save(tmp_path, tiny_basicsr_state(), "RealESRGAN_x4plus.pth")
    assert main(["convert", str(path), "--name", "real-x4", "--models-dir", str(tmp_path / "m"), "--scale", "4"]) == 0
    out = capsys.readouterr().out
    assert "BasicSR/Real-ESRGAN RRDBNet, 2 blocks, 8 features, growth 4, x4" in out
    from model.artifacts import find_model

    folder, manifest = find_model(tmp_path / "m", "real-x4")
    assert manifest.license.startswith("BSD-3-Clause") and manifest.scale == 4
    weights = np.load(folder / "weights.npz")
    assert weights["conv_first/kernel"].shape == (3, 3, 3, 8)


def test_cli_bad_file_exits_nonzero_with_message(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(np.random.default_rng(0).bytes(256))
    proc = esrgan("convert", bad, "--name", "b", "--models-dir", tmp_path / "m")
    assert proc.returncode == 1
    assert "esrgan convert:" in proc.stderr and "not a PyTorch checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m" / "b").exists()
