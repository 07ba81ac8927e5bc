"""OpenVINO networks compiled once per machine and kept on disk, so that a fresh process (one ``esrgan
upscale``, a restarted worker) starts without reading, verifying, building and planning the weights again.

A compiled network is valid for one artifact state (the weights files' checksums from the manifest, their
sizes and modification times: a replaced file misses and goes through the full, verified load), one strength
and precision, one OpenVINO version and one CPU (model and flags). The key hashes all of these; the blob is
OpenVINO's own export. The folder is bounded (``compiled_cache_mb``): least recently used blobs go first.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from .artifacts import Manifest
from .hardware import cpu_info
from .settings import Settings

log = logging.getLogger("esrgan.compiled")
SUFFIX = ".ovblob"


def cache_key(folder: Path | str, manifest: Manifest, strength: float | None, precision: str, clip: bool) -> str:
    import openvino as ov

    files = [manifest.weights] + ([manifest.interpolation.psnr] if manifest.interpolation else [])
    stamps = []
    for entry in files:
        st = (Path(folder) / entry.file).stat()
        stamps.append([entry.file, entry.sha256, st.st_size, st.st_mtime_ns])
    model, flags = cpu_info()
    what = {"format": 1, "openvino": ov.get_version(), "cpu": [model, sorted(flags)], "networks": manifest.networks(),
            "value_range": list(manifest.value_range), "clip": clip,
            "strength": strength if manifest.interpolation else None, "precision": precision, "files": stamps}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:32]


class CompiledCache:
    def __init__(self, folder: Path | str, limit_mb: int):
        self.folder = Path(folder)
        self.limit = limit_mb * 2**20

    def load(self, core, key: str, config: dict):
        """The compiled network stored under ``key``, or None (absent, or unreadable: it is rebuilt)."""
        path = self.folder / f"{key}{SUFFIX}"
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        try:
            compiled = core.import_model(blob, "CPU", config)
        except Exception as exc:  # a truncated or foreign file: build again and overwrite it
            log.warning("compiled-model cache: %s unreadable (%s); rebuilding", path.name, exc)
            return None
        try:
            os.utime(path)  # recently used: pruned last
        except OSError:
            pass
        return compiled

    def store(self, key: str, compiled) -> None:
        """Export ``compiled`` under ``key`` (atomically: concurrent processes may write the same key), then
        prune. A folder that cannot be written only costs the next process the full build."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            data = compiled.export_model()
            data = data.getvalue() if hasattr(data, "getvalue") else bytes(data)
            if len(data) > self.limit:
                return
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.folder / f"{key}{SUFFIX}")
            self.prune(keep=key)
        except OSError as exc:
            log.warning("compiled-model cache: cannot write to %s (%s)", self.folder, exc)

    def prune(self, keep: str) -> None:
        blobs = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            try:
                st = path.stat()
            except OSError:  # removed by another process meanwhile
                continue
            blobs.append((st.st_mtime_ns, st.st_size, path))
        total = sum(size for _, size, _ in blobs)
        for _, size, path in sorted(blobs):
            if total <= self.limit:
                break
            if path.stem != keep:
                path.unlink(missing_ok=True)
                total -= size


def compiled_cache(settings: Settings) -> CompiledCache | None:
    """The configured cache, or None where it is switched off (``compiled_cache_mb`` 0)."""
    return CompiledCache(settings.compiled_cache_dir, settings.compiled_cache_mb) if settings.compiled_cache_mb else None
