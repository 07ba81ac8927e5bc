"""Architectures by name: the manifest's ``arch`` and ``params`` select and size one (the table of
architectures is ``model.architectures``)."""
import contextlib
import threading
from typing import Any

import keras

from ..precision import PRECISIONS
from ..architectures import architecture

_policy_lock = threading.RLock()  # Keras reads the dtype policy from global state while building


def policy_name(precision: str) -> str:
    """The Keras dtype policy that computes in ``precision`` (one of PRECISIONS) with float32 weights."""
    return "float32" if precision == "float32" else f"mixed_{precision}"


@contextlib.contextmanager
def dtype_policy(name: str | None):
    """Build layers under a Keras dtype policy (Keras reads it from global state), then restore it."""
    with _policy_lock:
        previous = keras.config.dtype_policy()
        if name:
            keras.config.set_dtype_policy(name)
        try:
            yield
        finally:
            keras.config.set_dtype_policy(previous)


def build_generator(arch: str, params: dict[str, Any], precision: str | None = None,
                    inference: bool = False) -> keras.Model:
    """``precision`` other than float32 computes in that type with float32 weights (Keras mixed precision):
    bfloat16 runs about twice as fast on CPUs with AVX512-BF16/AMX for ~0.01-0.02 dB PSNR. None keeps the
    policy in force (a training run sets its own). ``inference`` stores the weights in ``precision`` too: the
    mixed policy (what training needs) casts every float32 weight on every call; inference casts once."""
    builder = architecture(arch).keras
    if precision is None:
        return builder(**params)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    with dtype_policy(precision if inference else policy_name(precision)):
        return builder(**params)
