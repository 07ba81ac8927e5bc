"""What this machine computes fastest in, read without TensorFlow (the API and the worker's parent use it).

``precision: auto`` resolves here: bfloat16 where the CPU has native bfloat16 (AMX or AVX512-BF16: ~2x
float32 for ~0.01-0.02 dB), float16 on NVIDIA GPUs (tensor cores), float32 otherwise (CPUs without
native bfloat16 emulate it, slower than float32).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from .precision import PRECISIONS

AUTO = "auto"
# /proc/cpuinfo flags of native bfloat16 matrix math that oneDNN uses
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


@lru_cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags (of the first processor listed; empty where /proc is not Linux's)."""
    model, flags = "", frozenset()
    try:
        text = CPUINFO.read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        if model and flags:
            break
    return model, flags


def has_nvidia_gpu() -> bool:
    """An NVIDIA GPU the driver lists and CUDA_VISIBLE_DEVICES does not hide."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    try:
        return any(NVIDIA_GPUS.iterdir())
    except OSError:
        return False


def auto_precision(flags: frozenset[str] | None = None, gpu: bool | None = None) -> str:
    """The fastest compute type whose quality matches float32 (within 0.05 dB; the distilled esrgan-real-x2 0.064 dB) on this machine."""
    if gpu if gpu is not None else has_nvidia_gpu():
        return "float16"
    flags = cpu_info()[1] if flags is None else flags
    return "bfloat16" if any(f in flags for f in BF16_FLAGS) else "float32"


def resolve_precision(setting: str, gpu: bool | None = None) -> str:
    """The concrete precision a setting means here (``auto`` or one of PRECISIONS)."""
    if setting == AUTO:
        return auto_precision(gpu=gpu)
    if setting not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {setting!r}")
    return setting


def describe(setting: str, gpu: bool | None = None) -> str:
    """One line for logs and listings: what runs and why, e.g. ``float32 (auto: AMD EPYC, no AMX/AVX512-BF16)``."""
    precision = resolve_precision(setting, gpu)
    if setting != AUTO:
        return f"{precision} (set)"
    if precision == "float16":
        return "float16 (auto: GPU)"
    model, flags = cpu_info()
    found = [f for f in BF16_FLAGS if f in flags]
    why = ", ".join(found) if found else "no AMX/AVX512-BF16"
    return f"{precision} (auto: {model or 'CPU'}, {why})"
