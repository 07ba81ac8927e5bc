"""The OpenVINO runtime (the default on CPUs): the shipped models equal their Keras twins (every graph:
tests/test_architectures.py), the choice of runtime follows the setting, the architecture and the machine,
and the CLI's default path never imports TensorFlow."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.harness import make_artifact
from model.engine import Upscaler
from model.errors import InvalidOption
from model.runners import resolve_backend
from model.settings import SHIPPED_MODELS_DIR

ROOT = Path(__file__).resolve().parents[1]


def both(folder, **kw):
    return [Upscaler.from_artifact(folder, precision="float32", backend=b, **kw) for b in ("tensorflow", "openvino")]


@pytest.mark.parametrize("name", sorted(p.name for p in SHIPPED_MODELS_DIR.iterdir()))
def test_shipped_models_match_tensorflow(name, photo):
    tf_up, ov_up = both(SHIPPED_MODELS_DIR / name)
    assert (tf_up.backend, ov_up.backend) == ("tensorflow", "openvino")
    a, b = tf_up.upscale(photo, tile=0).astype(int), ov_up.upscale(photo, tile=0).astype(int)
    assert a.shape == b.shape == (96 * tf_up.scale, 120 * tf_up.scale, 3)
    assert np.abs(a - b).max() <= 1 and np.mean(a != b) < 0.01  # float32 rounding, nothing more


def test_runtime_choice(tmp_path):
    assert resolve_backend("auto", "rrdbnet") == "openvino"  # this machine has no NVIDIA GPU
    assert resolve_backend("auto", "srresnet") == "tensorflow"  # no OpenVINO graph for it
    assert resolve_backend("tensorflow", "rrdbnet") == "tensorflow"
    with pytest.raises(InvalidOption, match="no graph for architecture 'srresnet'"):
        resolve_backend("openvino", "srresnet")
    with pytest.raises(InvalidOption, match="backend must be one of"):
        resolve_backend("onnx", "rrdbnet")
    make_artifact(tmp_path, "gan", arch="srresnet")
    assert Upscaler.from_artifact(tmp_path / "gan").backend == "tensorflow"


def test_precision_is_what_openvino_runs(models_dir):
    """A CPU without bfloat16 runs float32 whatever was asked, and the result says so."""
    from model.hardware import BF16_FLAGS, cpu_info

    up = Upscaler.from_artifact(models_dir / "tiny-x4", precision="bfloat16", backend="openvino")
    native = any(f in cpu_info()[1] for f in BF16_FLAGS)
    assert up.precision == ("bfloat16" if native else "float32")
    assert Upscaler.from_artifact(models_dir / "tiny-x4", precision="float32", backend="openvino").precision == "float32"


def test_cli_default_path_never_imports_tensorflow(tmp_path, models_dir):
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    code = ("import sys; from esrgan.main import main; rc = main(['upscale', sys.argv[1], '-o', sys.argv[2], "
            "'--models-dir', sys.argv[3]]); print('TF', 'tensorflow' in sys.modules); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out.png"), str(models_dir)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "ESRGAN_BACKEND": "auto"},
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "TF False" in run.stdout and "runtime openvino" in run.stderr
    assert cv2.imread(str(tmp_path / "out.png")).shape == (80, 96, 3)
