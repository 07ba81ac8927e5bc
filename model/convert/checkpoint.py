"""Reading a checkpoint's tensors, and nothing else: no pickled code ever runs.

``.pth``/``.pt`` files go through ``torch.load(weights_only=True)``, whose unpickler accepts tensors and
plain containers only; ``.safetensors`` files are read with the safetensors package (no torch needed).
Training wrappers (``params_ema``, ``params``, ``state_dict``) and DataParallel's ``module.`` prefix are
removed, so the result is one flat ``name -> float32 array`` dict in the checkpoint's own naming.
"""
from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import ESRGANError

# Real-ESRGAN's loader prefers the EMA weights when a file holds both; so do we.
WRAPPERS = ("params_ema", "params", "state_dict")


class CheckpointError(ESRGANError):
    """A file that is not a checkpoint this converter can read, or whose tensors match no known layout."""

    code = "bad_checkpoint"


def read_tensors(path: Path | str) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    raw = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
    return unwrap(raw, str(path))


def unwrap(obj, source: str) -> dict[str, np.ndarray]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a dict of named tensors")
    for key in WRAPPERS:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not obj:
        raise CheckpointError(f"{source}: holds no tensors")
    tensors = {}
    for name, value in obj.items():
        array = _as_array(value)
        if array is None:
            raise CheckpointError(f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor "
                                  f"(top-level keys: {', '.join(map(str, list(obj)[:5]))})")
        tensors[str(name).removeprefix("module.")] = array
    return tensors


def _as_array(value) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor, without importing torch here
        return value.detach().float().numpy()
    return None


def _read_torch(path: Path):
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{path}: reading PyTorch checkpoints needs PyTorch: "
                              "pip install 'esrgan-service[torch]'") from None
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols mean nothing to the user
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # The restricted unpickler met a global (a class or function): exactly what must never run.
        if found := re.search(r"GLOBAL ([\w.]+)", str(exc)):
            raise CheckpointError(f"{path}: refused: the file holds pickled objects other than tensors "
                                  f"({found[1]}), which could run code when loaded") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (malformed pickle data)") from None
    except Exception as exc:  # torch raises KeyError, RuntimeError, EOFError... for non-checkpoints
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None


def _read_safetensors(path: Path):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise CheckpointError(f"{path}: reading .safetensors needs the safetensors package: "
                              "pip install 'esrgan-service[torch]'") from None
    try:
        return load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
