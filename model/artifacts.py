"""Model artifacts: a folder holding ``manifest.json`` and the weights it names.

The manifest is the single source of truth for architecture, scale, value range and metrics. Weights
are an ``.npz`` of float arrays keyed ``layer/variable`` (e.g. ``conv_first/kernel``): framework-neutral,
checked name by name and shape by shape on load, and verified against the manifest's sha256.
Listing artifacts does not import TensorFlow (the API lists models); loading does.
"""
from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from .errors import ArtifactError, InvalidOption, ModelNotFound

if TYPE_CHECKING:
    import keras

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class WeightsFile(BaseModel):
    file: str
    sha256: str
    bytes: int


class Interpolation(BaseModel):
    """Network interpolation (ESRGAN sec. 3.4): ``weights`` is the sharp GAN end (strength 1),
    ``psnr`` the smooth PSNR-oriented end (strength 0)."""

    psnr: WeightsFile
    default_strength: float = Field(0.8, ge=0, le=1)
    # The restoration end's own network where it is not the sharp end's (a compact SRVGG sharp end with an
    # RRDBNet restoration end): such ends are blended by output, each network computed, not by weights.
    arch: str | None = None
    params: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _network_whole(self):
        if (self.arch is None) != (self.params is None):
            raise ValueError("a restoration end's network needs both arch and params")
        return self


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    arch: str
    params: dict[str, Any]
    scale: int
    value_range: tuple[float, float] = (0.0, 1.0)
    description: str = ""
    default: bool = Field(False, description="Default model for its scale when settings name none")
    license: str | None = None
    source: str | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    weights: WeightsFile
    interpolation: Interpolation | None = None
    precision: str | None = Field(None, description="What precision 'auto' means for this model (None: the "
                                  "machine's fastest). Converted ncnn models say float32: they then match the "
                                  "reference runtime within a level, where bfloat16 moves pixels by up to 6")
    framework: dict[str, str] = Field(default_factory=dict)
    created: str = ""

    def precision_setting(self, setting: str) -> str:
        """The precision setting that applies to this model: ``auto`` becomes the model's own choice."""
        return self.precision if setting == "auto" and self.precision else setting

    @property
    def blends_outputs(self) -> bool:
        """Whether ``strength`` blends the two ends' outputs (ends of different networks), not their weights."""
        return self.interpolation is not None and self.interpolation.arch is not None

    def networks(self) -> list[tuple[str, dict[str, Any]]]:
        """(arch, params) of every network the artifact may compute: the sharp end's, and a restoration end's
        where it has a network of its own."""
        ends = [(self.arch, self.params)]
        if self.blends_outputs:
            ends.append((self.interpolation.arch, self.interpolation.params))
        return ends

    @property
    def network_scale(self) -> int:
        """The network's own factor; where it differs from ``scale``, the engine resizes its output
        bicubically (Real-ESRGAN's x2/x3 animevideov3 ncnn models are its x4 network plus that resize)."""
        return int(self.params.get("scale", self.scale))

    @property
    def num_params(self) -> int | None:
        return self.training.get("num_params") if self.training else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_weights(model: "keras.Model") -> dict[str, np.ndarray]:
    """The model's variables keyed ``layer/variable`` (BatchNorm moving stats included)."""
    out: dict[str, np.ndarray] = {}
    for layer in model.layers:
        for var in layer.weights:
            out[f"{layer.name}/{var.name}"] = np.asarray(var.numpy(), dtype=np.float32)
    return out


def assign_weights(model: "keras.Model", weights: dict[str, np.ndarray], source: str = "weights") -> None:
    """Set every variable of ``model`` from ``weights``; any missing, extra or misshapen entry is an error."""
    expected = {f"{layer.name}/{v.name}": v for layer in model.layers for v in layer.weights}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ArtifactError(
            f"{source} do not match the architecture: "
            + (f"missing {len(missing)} (e.g. {missing[:3]}) " if missing else "")
            + (f"unexpected {len(extra)} (e.g. {extra[:3]})" if extra else "")
        )
    for key, var in expected.items():
        value = weights[key]
        if tuple(value.shape) != tuple(var.shape):
            raise ArtifactError(f"{source}: {key} has shape {value.shape}, the architecture needs {tuple(var.shape)}")
        var.assign(value.astype(np.float32))  # Keras casts to the variable's type (bfloat16 for inference)


def _write_weights(folder: Path, filename: str, weights: dict[str, np.ndarray]) -> WeightsFile:
    path = folder / filename
    np.savez(path, **weights)
    return WeightsFile(file=filename, sha256=sha256_file(path), bytes=path.stat().st_size)


def _frameworks() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def save_artifact(
    folder: Path | str,
    weights: dict[str, np.ndarray],
    *,
    name: str,
    arch: str,
    params: dict[str, Any],
    scale: int,
    psnr_weights: dict[str, np.ndarray] | None = None,
    default_strength: float = 0.8,
    psnr_network: tuple[str, dict[str, Any]] | None = None,
    **fields: Any,
) -> Manifest:
    """Write weights (and the PSNR end for interpolation, if given) and the manifest describing them.
    ``psnr_network``: the PSNR end's (arch, params) where they are not ``arch``/``params`` (blended by output)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    own = psnr_network if psnr_network is not None and tuple(psnr_network) != (arch, params) else (None, None)
    manifest = Manifest(
        name=name, arch=arch, params=params, scale=scale,
        weights=_write_weights(folder, "weights.npz", weights),
        interpolation=(
            Interpolation(psnr=_write_weights(folder, "weights_psnr.npz", psnr_weights),
                          default_strength=default_strength, arch=own[0], params=own[1])
            if psnr_weights is not None else None
        ),
        framework=_frameworks(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **fields,
    )
    manifest.training.setdefault("num_params", int(sum(v.size for v in weights.values())))
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def read_manifest(folder: Path | str) -> Manifest:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST} (not a model artifact)")
    try:
        manifest = Manifest.model_validate_json(path.read_text())
    except (ValidationError, ValueError) as exc:
        raise ArtifactError(f"{path}: invalid manifest: {exc}") from None
    if manifest.name != folder.name:
        raise ArtifactError(f"{path}: manifest names model {manifest.name!r} but its folder is {folder.name!r}")
    if manifest.format_version > FORMAT_VERSION:
        raise ArtifactError(f"{path}: format version {manifest.format_version} is newer than this library's")
    return manifest


def read_weights(folder: Path | str, entry: WeightsFile) -> dict[str, np.ndarray]:
    path = Path(folder) / entry.file
    if not path.is_file():
        raise ArtifactError(f"{path}: weights file missing")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise ArtifactError(f"{path}: checksum mismatch (manifest {entry.sha256[:12]}..., file {digest[:12]}...): "
                            "the file is corrupt or was replaced")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # a valid checksum over an unreadable file: written by something else
        raise ArtifactError(f"{path}: unreadable weights: {exc}") from None


def interpolate(gan: dict[str, np.ndarray], psnr: dict[str, np.ndarray], strength: float) -> dict[str, np.ndarray]:
    """Network interpolation: strength 1 = GAN weights, 0 = PSNR weights."""
    if set(gan) != set(psnr):
        raise ArtifactError("the two interpolation ends have different variables")
    return {k: strength * gan[k] + (1.0 - strength) * psnr[k] for k in gan}


def load_weights(folder: Path | str, manifest: Manifest, strength: float | None = None) -> dict[str, np.ndarray]:
    """The artifact's weights, interpolated towards its PSNR end by ``strength`` where it has one."""
    weights = read_weights(folder, manifest.weights)
    if strength is not None and manifest.interpolation is not None:
        weights = interpolate(weights, read_weights(folder, manifest.interpolation.psnr), float(strength))
    return weights


@dataclass(frozen=True)
class Part:
    """One network a runner computes, and the share of its output in the result."""

    arch: str
    params: dict[str, Any]
    weights: dict[str, np.ndarray]
    share: float = 1.0


def load_parts(folder: Path | str, manifest: Manifest, strength: float | None = None) -> list[Part]:
    """What a runner computes at ``strength``: one network (its weights interpolated towards the restoration
    end where both ends are the same network), or, for ends of different networks, each end with its
    output's share (an end with no share is not computed). No strength: the sharp end."""
    if not manifest.blends_outputs or strength is None:
        return [Part(manifest.arch, manifest.params, load_weights(folder, manifest, strength))]
    end, s = manifest.interpolation, float(strength)
    parts = [Part(manifest.arch, manifest.params, read_weights(folder, manifest.weights), s)] if s > 0 else []
    if s < 1:
        parts.append(Part(end.arch, end.params, read_weights(folder, end.psnr), 1.0 - s))
    return parts


def load_keras_model(folder: Path | str, manifest: Manifest | None = None, strength: float | None = None,
                     precision: str = "float32", inference: bool = False) -> "keras.Model":
    """Build the manifest's network(s) and load the (optionally interpolated) weights; ``inference``: the
    weights are stored in ``precision`` (see build_generator), not for training or saving. Ends of different
    networks: one model summing each end's output times its share."""
    import keras

    from .archs import PRECISIONS, build_generator

    if precision not in PRECISIONS:
        raise InvalidOption(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")

    manifest = manifest or read_manifest(folder)
    models = []
    for part in load_parts(folder, manifest, strength):
        try:
            model = build_generator(part.arch, part.params, precision, inference=inference)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{folder}: manifest architecture {part.arch} {part.params}: {exc}") from None
        assign_weights(model, part.weights, source=f"{folder}/{manifest.name} {part.arch}")
        models.append((model, part.share))
    if len(models) == 1:  # load_parts gives a lone network its whole share
        return models[0][0]
    inp = keras.Input((None, None, manifest.params.get("num_in_ch", 3)), name="lr")
    outs = [keras.layers.Rescaling(share, name=f"share_{i}")(model(inp)) for i, (model, share) in enumerate(models)]
    return keras.Model(inp, keras.layers.Add(name="blend")(outs), name="blend")


# --- registry -------------------------------------------------------------------------------------

Roots = Path | str | Sequence[Path | str]


def _roots(models_dirs: Roots) -> list[Path]:
    """Model folders in search order (the configured models, then the installed official ones)."""
    return [Path(models_dirs)] if isinstance(models_dirs, (str, Path)) else [Path(d) for d in models_dirs]


def list_models(models_dirs: Roots) -> list[Manifest]:
    """Every valid artifact directly below the folders, by name (the first folder wins a name). Broken ones
    are skipped here and reported when someone asks for them by name."""
    found: dict[str, Manifest] = {}
    for root in _roots(models_dirs):
        if not root.is_dir():
            continue
        for sub in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()):
            try:
                found.setdefault(sub.name, read_manifest(sub))
            except ArtifactError:
                continue
    return sorted(found.values(), key=lambda m: m.name)


def model_folder(models_dirs: Roots, name: str) -> Path | None:
    """The folder of model ``name`` (the first folder that holds it), or None."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    return next((root / name for root in _roots(models_dirs) if (root / name / MANIFEST).is_file()), None)


def find_model(models_dirs: Roots, name: str | None = None, scale: int | None = None,
               default_names: dict[int, str | None] | None = None) -> tuple[Path, Manifest]:
    """Resolve a model by name, or the default for ``scale``: the settings' name for it, else the
    manifest marked ``default``, else the first by name."""
    if name:
        folder = model_folder(models_dirs, name)
        if folder is None:
            known = ", ".join(m.name for m in list_models(models_dirs)) or "none"
            raise ModelNotFound(f"unknown model {name!r} (installed: {known})")
        manifest = read_manifest(folder)
        if scale is not None and manifest.scale != scale:
            raise ModelNotFound(f"model {name!r} is x{manifest.scale}, not x{scale}")
        return folder, manifest
    scale = scale or 4
    configured = (default_names or {}).get(scale)
    if configured:
        return find_model(models_dirs, configured, scale)
    candidates = [m for m in list_models(models_dirs) if m.scale == scale]
    if not candidates:
        raise ModelNotFound(f"no x{scale} model installed in {', '.join(map(str, _roots(models_dirs)))}")
    best = next((m for m in candidates if m.default), candidates[0])
    return model_folder(models_dirs, best.name), best
