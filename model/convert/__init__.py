"""Convert published PyTorch ESRGAN-family checkpoints into this library's model artifacts.

read tensors (no pickled code) -> detect the layout and sizes -> map onto the Keras model's weights
-> write an artifact (manifest.json + weights.npz) that ``esrgan upscale``, ``esrgan models`` and the
service load like any other model.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from pydantic import TypeAdapter, ValidationError

from ..artifacts import Manifest, save_artifact, sha256_file
from ..errors import ArtifactError
from .checkpoint import CheckpointError, read_tensors
from .known import KNOWN
from .layouts import Layout, detect, to_keras

__all__ = ["CheckpointError", "Layout", "convert_checkpoint", "detect", "read_tensors", "to_keras"]

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
    try:
        _artifact_name.validate_python(name)
    except ValidationError:
        raise ArtifactError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' "
                            "(at most 64, starting with a letter or digit)") from None
    if not 0.0 <= default_strength <= 1.0:
        raise ArtifactError(f"interpolation strength must be between 0 and 1, got {default_strength}")
    target = Path(models_dir) / name
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} already exists (use --force to replace it)")

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
    # Write beside the target and move it into place, so a failure never leaves a half-written model.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        manifest = save_artifact(staging, weights, name=name, arch=layout.arch, params=layout.params,
                                 scale=layout.scale, psnr_weights=psnr_weights,
                                 default_strength=default_strength, **fields)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _second_end(path: Path, layout: Layout):
    other = detect(state := read_tensors(path))
    if (other.arch, other.params) != (layout.arch, layout.params):
        raise CheckpointError(f"{path.name}: holds {other.describe()}, but interpolation needs the same network "
                              f"as the main checkpoint ({layout.describe()})")
    return to_keras(state, other)
