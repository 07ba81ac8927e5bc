"""Where the network runs. One contract for the engine: NHWC float32 in [0, 1] in, the same out.

- ``openvino`` (the default on CPUs): the graph is built from the artifact's weights
  (``model.openvino_graph``) and planned for this CPU; no TensorFlow import, no first-call trace.
- ``tensorflow``: the Keras model (GPUs, architectures OpenVINO has no graph for, and parity with training).

``auto`` picks OpenVINO where it is installed, the architecture has a graph and no NVIDIA GPU is present.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from .architectures import architecture, openvino_archs
from .artifacts import Manifest, Part, load_keras_model, load_parts
from .compiled import CompiledCache, cache_key
from .errors import InvalidOption
from .hardware import describe, has_nvidia_gpu, resolve_precision
from .settings import BACKEND_SETTINGS, PRECISION_SETTINGS

_OV_PRECISION = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


class Runner(Protocol):
    backend: str
    precision: str  # what the convolutions compute in, as the runtime reports it
    oom_errors: tuple[type[BaseException], ...]  # a tile too large for the device: the engine splits it

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def resolve_backend(setting: str, *archs: str) -> str:
    """The backend that runs networks of ``archs`` (every one of them) under ``setting``."""
    if setting not in BACKEND_SETTINGS:
        raise InvalidOption(f"backend must be one of {', '.join(BACKEND_SETTINGS)}, got {setting!r}")
    has_ov = importlib.util.find_spec("openvino") is not None
    missing = [arch for arch in archs if arch not in openvino_archs()]
    if setting == "openvino":
        if not has_ov:
            raise InvalidOption("backend openvino: the openvino package is not installed (pip install openvino)")
        if missing:
            raise InvalidOption(f"backend openvino has no graph for architecture {missing[0]!r}; "
                                f"it runs {', '.join(openvino_archs())} (use backend tensorflow)")
        return "openvino"
    if setting == "auto" and has_ov and not missing and not has_nvidia_gpu():
        return "openvino"
    return "tensorflow"


def _tf_gpu() -> bool:
    import tensorflow as tf  # TensorFlow's own view: an NVIDIA GPU without CUDA libraries is no GPU to it

    return bool(tf.config.list_physical_devices("GPU"))


def _gpu(backend: str) -> bool:
    """Whether ``backend`` (a setting) runs on a GPU here; OpenVINO runs on the CPU."""
    if backend == "openvino":
        return False
    return (backend == "tensorflow" or has_nvidia_gpu()) and _tf_gpu()


def runner_precision(setting: str, backend: str) -> str:
    """The concrete precision a setting means for ``backend`` here."""
    if setting not in PRECISION_SETTINGS:
        raise InvalidOption(f"precision must be one of {', '.join(PRECISION_SETTINGS)}, got {setting!r}")
    return resolve_precision(setting, gpu=_gpu(backend))


def precision_line(setting: str, backend: str = "auto") -> str:
    """``float32 (auto: AMD EPYC, no AMX/AVX512-BF16)``: what runs and why, for logs and listings."""
    return describe(setting, gpu=_gpu(backend))


class TensorFlowRunner:
    backend = "tensorflow"

    def __init__(self, model, value_range=(0.0, 1.0), clip: bool = True):
        import tensorflow as tf

        self.model = model
        self.precision = next((layer.compute_dtype for layer in model.layers if layer.weights), "float32")
        self.oom_errors = (tf.errors.ResourceExhaustedError,)
        lo, hi = value_range

        # The first shape gets a static-shape trace (grappler and oneDNN plan it ~2x faster than a dynamic one:
        # the start-up of a one-size batch); a second shape makes TF generalise to one dynamic trace for
        # all later sizes (a service's inputs vary), never a trace per size.
        @tf.function(reduce_retracing=True)
        def forward(x):
            y = model(x * (hi - lo) + lo, training=False)
            y = (tf.cast(y, tf.float32) - lo) / (hi - lo)
            return tf.clip_by_value(y, 0.0, 1.0) if clip else y

        self.function = forward

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self.function(tf.constant(x)).numpy()


class OpenVINORunner:
    backend = "openvino"
    oom_errors = (MemoryError,)
    _core = None

    def __init__(self, compiled):
        import openvino as ov

        self.compiled = compiled
        # What the plugin chose: a CPU without bfloat16 runs float32 whatever was asked
        ran = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = {ov.Type.f32: "float32", ov.Type.bf16: "bfloat16", ov.Type.f16: "float16"}.get(ran, str(ran))
        self._local = threading.local()  # an infer request serves one call at a time: one per thread

    @classmethod
    def core(cls):
        import openvino as ov

        if cls._core is None:
            cls._core = ov.Core()
        return cls._core

    @staticmethod
    def config(precision: str) -> dict:
        return {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY"}

    @classmethod
    def from_parts(cls, manifest: Manifest, parts: list[Part], precision: str = "float32"):
        from .openvino_graph import build_model

        graph = build_model([(architecture(p.arch).openvino, p.params, p.weights, p.share) for p in parts],
                            manifest.value_range, clip=_clips(manifest), name=manifest.arch)
        return cls(cls.core().compile_model(graph, "CPU", cls.config(precision)))

    @classmethod
    def from_artifact(cls, folder: Path | str, manifest: Manifest, strength: float | None = None,
                      precision: str = "float32", cache: CompiledCache | None = None) -> "OpenVINORunner":
        """The compiled network from ``cache`` where this artifact state was compiled before on this
        machine, else built from the verified weights (and stored there)."""
        key = cache_key(folder, manifest, strength, precision, _clips(manifest)) if cache else ""
        compiled = cache.load(cls.core(), key, cls.config(precision)) if cache else None
        if compiled is not None:
            return cls(compiled)
        runner = cls.from_parts(manifest, load_parts(folder, manifest, strength), precision)
        if cache:
            cache.store(key, runner.compiled)
        return runner

    def __call__(self, x: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request.infer([np.ascontiguousarray(x, dtype=np.float32)])[0].copy()


def load_runner(folder: Path | str, manifest: Manifest, *, strength: float | None = None,
                precision: str = "auto", backend: str = "auto", cache: CompiledCache | None = None) -> Runner:
    """The artifact's (optionally interpolated) network, ready to run on ``backend`` in ``precision``;
    ``cache``: where OpenVINO keeps compiled networks between processes (model.compiled)."""
    backend = resolve_backend(backend, *(arch for arch, _ in manifest.networks()))
    precision = runner_precision(manifest.precision_setting(precision), backend)
    if backend == "openvino":
        return OpenVINORunner.from_artifact(folder, manifest, strength, precision, cache)
    model = load_keras_model(folder, manifest, strength=strength, precision=precision, inference=True)
    return TensorFlowRunner(model, manifest.value_range, clip=_clips(manifest))


def _clips(manifest: Manifest) -> bool:
    """Whether the runner clips to [0, 1]: not where the engine resizes the output first (it clips after)."""
    return manifest.network_scale == manifest.scale
