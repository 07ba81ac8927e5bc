"""Job files in ``settings.data_dir``: ``uploads/{id}.{ext}`` and ``generated/{id}.{ext}``.

Names are built only from a job id (checked against its pattern) and a fixed extension list, so no
caller can reach a path outside the storage folder. Files expire with their job record: the sweep
removes files whose record is gone.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Callable

from model.imageio import ALIASES, FORMATS
from model.settings import Settings

from .jobs import JOB_ID

UPLOADS, GENERATED = "uploads", "generated"
# Stored files: every output format, plus BMP, which uploads may be and outputs never are.
MEDIA_TYPES = {key: media for key, (_, media, _) in FORMATS.items()} | {"bmp": "image/bmp"}
EXTENSIONS = {**{key: key for key in MEDIA_TYPES}, "jpeg": ALIASES["jpeg"]}  # format name -> file extension
STORED_NAME = re.compile(rf"^([0-9a-f]{{32}})\.({'|'.join(MEDIA_TYPES)})$")


class Storage:
    def __init__(self, settings: Settings):
        self.root = Path(settings.data_dir).resolve()

    def folder(self, kind: str) -> Path:
        assert kind in (UPLOADS, GENERATED)
        return self.root / kind

    def path(self, kind: str, job_id: str, fmt: str) -> Path:
        if not JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.folder(kind) / f"{job_id}.{EXTENSIONS[fmt]}"

    def resolve_name(self, kind: str, filename: str) -> tuple[str, Path] | None:
        """(job id, path) for a stored file name like ``{id}.png``; None for any other name."""
        m = STORED_NAME.match(filename or "")
        return (m.group(1), self.folder(kind) / filename) if m else None

    def write(self, kind: str, job_id: str, fmt: str, data: bytes) -> Path:
        """Write atomically (temp file + rename) so a reader never sees half a file."""
        path = self.path(kind, job_id, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def remove_job(self, job_id: str) -> None:
        for kind in (UPLOADS, GENERATED):
            for ext in set(EXTENSIONS.values()):
                (self.folder(kind) / f"{job_id}.{ext}").unlink(missing_ok=True)

    def writable(self) -> bool:
        try:
            for kind in (UPLOADS, GENERATED):
                self.folder(kind).mkdir(parents=True, exist_ok=True)
                if not os.access(self.folder(kind), os.W_OK):
                    return False
            return True
        except OSError:
            return False

    def sweep(self, job_exists: Callable[[str], bool], min_age: float = 60.0) -> int:
        """Remove files whose job record is gone (expired or deleted); returns how many."""
        removed, cutoff = 0, time.time() - min_age
        for kind in (UPLOADS, GENERATED):
            folder = self.folder(kind)
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                m = STORED_NAME.match(path.name)
                # Young files may belong to a job being created right now.
                if m and path.stat().st_mtime < cutoff and not job_exists(m.group(1)):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed
