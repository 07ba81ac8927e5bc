"""Convert published ESRGAN-family models (PyTorch checkpoints, ncnn param/bin pairs) into model artifacts.

read tensors (no pickled code; ncnn graphs are recognised into the same tensors) -> detect the layout and
sizes -> map onto the Keras model's weights -> write an artifact (manifest.json + weights.npz) that ``esrgan upscale``, ``esrgan models`` and the
service load like any other model.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np

from pydantic import TypeAdapter, ValidationError

from ..artifacts import Manifest, save_artifact, sha256_file
from ..errors import ArtifactError
from .checkpoint import CheckpointError, read_tensors
from .known import KNOWN
from .layouts import Layout, detect, to_keras
from .ncnn import read_graph, recognise

__all__ = ["CheckpointError", "Layout", "convert_checkpoint", "convert_ncnn", "detect", "read_tensors", "to_keras"]

_artifact_name = TypeAdapter(Annotated[str, Manifest.model_fields["name"]])


def convert_checkpoint(checkpoint: Path | str, models_dir: Path | str, name: str, *, scale: int | None = None,
                       description: str | None = None, license: str | None = None, default: bool = False,
                       overwrite: bool = False, psnr: Path | str | None = None,
                       default_strength: float = 0.8) -> Manifest:
    """Write ``models_dir/name`` from ``checkpoint``. ``scale``, when given, must match the detected one.

    ``psnr`` is a second checkpoint of the same network, the smooth end of network interpolation
    (ESRGAN sec. 3.4): RRDB_PSNR_x4.pth beside RRDB_ESRGAN_x4.pth, or realesr-general-wdn-x4v3.pth beside
    realesr-general-x4v3.pth (Real-ESRGAN's denoise strength). Strength 1 is ``checkpoint``, 0 is ``psnr``.
    """
    checkpoint = Path(checkpoint)
    target = _target(models_dir, name, overwrite)
    if not 0.0 <= default_strength <= 1.0:
        raise ArtifactError(f"interpolation strength must be between 0 and 1, got {default_strength}")

    state = read_tensors(checkpoint)
    layout = detect(state)
    if scale is not None and scale != layout.scale:
        raise CheckpointError(f"{checkpoint.name}: holds a x{layout.scale} model ({layout.describe()}), "
                              f"not x{scale}")
    weights = to_keras(state, layout)
    psnr_weights = _second_end(Path(psnr), layout) if psnr is not None else None

    known = KNOWN.get(checkpoint.stem)
    digest = sha256_file(checkpoint)
    fields = dict(
        description=description or (known.description if known else f"converted from {checkpoint.name}"),
        license=license or (known.license if known else None),
        source=f"{checkpoint.name} (sha256 {digest})" + (f", {known.url}" if known else ""),
        default=default,
        training={"converted_from": {"file": checkpoint.name, "sha256": digest, "layout": layout.kind,
                                     "network": layout.describe()}},
    )
    if psnr is not None:
        fields["training"]["interpolation_end"] = {"file": Path(psnr).name, "sha256": sha256_file(Path(psnr))}
    return _write(target, weights, layout, layout.scale, psnr_weights=psnr_weights,
                  default_strength=default_strength, **fields)


def convert_ncnn(param: Path | str, models_dir: Path | str, name: str, *, bin_path: Path | str | None = None,
                 scale: int | None = None, description: str | None = None, license: str | None = None,
                 source: str | None = None, default: bool = False, overwrite: bool = False) -> Manifest:
    """Write ``models_dir/name`` from an ncnn ``param`` + ``.bin`` pair (the ``.bin`` beside it by default).

    The graph is recognised from its structure (``ncnn.recognise``), mapped like a checkpoint, and then the
    recognised network must compute what the graph computes on a small random image (``ncnn_run``)."""
    param = Path(param)
    target = _target(models_dir, name, overwrite)
    graph = read_graph(param, bin_path)
    found = recognise(graph)
    layout = detect(found.state)
    weights = to_keras(found.state, layout)
    _check_same_function(graph, found, layout, weights)
    out_scale = round(layout.scale * found.resize) if found.resize else layout.scale
    if scale is not None and scale != out_scale:
        raise CheckpointError(f"{param.name}: holds a x{out_scale} model ({layout.describe()}), not x{scale}")
    bin_file = Path(bin_path) if bin_path else param.with_suffix(".bin")
    digests = {"param": sha256_file(param), "bin": sha256_file(bin_file)}
    network = layout.describe() + (f", then bicubic x{found.resize:g} (x{out_scale})" if found.resize else "")
    converted = {"file": param.name, "format": "ncnn", "weights_storage": graph.storage, "sha256": digests,
                 "layout": layout.kind, "network": network}
    if found.resize:
        converted["resize"] = found.resize
    return _write(target, weights, layout, out_scale, default=default, license=license, precision="float32",
                  description=description or f"converted from {param.name} (ncnn)",
                  source=source or f"{param.name} + {bin_file.name} (sha256 {digests['bin']})",
                  training={"converted_from": converted})


def _target(models_dir: Path | str, name: str, overwrite: bool) -> Path:
    try:
        _artifact_name.validate_python(name)
    except ValidationError:
        raise ArtifactError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' "
                            "(at most 64, starting with a letter or digit)") from None
    target = Path(models_dir) / name
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} already exists (use --force to replace it)")
    return target


def _write(target: Path, weights, layout: Layout, scale: int, **fields) -> Manifest:
    """Write the artifact beside the target and move it into place, so a failure never leaves a half-written
    model (and of two processes installing the same model at once, one wins and the other keeps its copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        manifest = save_artifact(staging, weights, name=target.name, arch=layout.arch, params=layout.params,
                                 scale=scale, **fields)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _check_same_function(graph, found, layout: Layout, weights) -> None:
    """Run the graph (NumPy reference) and the recognised network (Keras) on one random image; they must
    agree, or the error names the first convolution whose output differs."""
    import keras

    from ..archs import build_generator
    from ..artifacts import assign_weights
    from .ncnn_run import run

    model = build_generator(layout.arch, layout.params)
    assign_weights(model, weights)
    x = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    want, conv_outputs = run(graph, x.transpose(2, 0, 1), until=found.net_output)
    got = model(x[None], training=False).numpy()[0].transpose(2, 0, 1)
    if got.shape == want.shape and np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max()):
        return
    # Where do they part? Compare every convolution's output, in graph order.
    by_layer = {v: k for k, v in found.sources.items()}
    keras_names = {src: by_layer[src].replace(".", "_") for src in conv_outputs if src in by_layer}
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in keras_names.values()])
    for (src, mine), theirs in zip(keras_names.items(), probe(x[None], training=False)):
        theirs = np.asarray(theirs)[0].transpose(2, 0, 1)
        ours = conv_outputs[src]
        if theirs.shape != ours.shape or np.abs(theirs - ours).max() > 1e-3 * max(1.0, np.abs(ours).max()):
            raise CheckpointError(f"ncnn graph: its convolutions fit {layout.describe()}, but its wiring differs: "
                                  f"the first layer that computes something else is Convolution {src!r} "
                                  f"(as {mine})")
    raise CheckpointError(f"ncnn graph: its convolutions fit {layout.describe()}, but the graph's output "
                          f"differs after the last convolution (shape {want.shape} vs {got.shape})")


def _second_end(path: Path, layout: Layout):
    other = detect(state := read_tensors(path))
    if (other.arch, other.params) != (layout.arch, layout.params):
        raise CheckpointError(f"{path.name}: holds {other.describe()}, but interpolation needs the same network "
                              f"as the main checkpoint ({layout.describe()})")
    return to_keras(state, other)
