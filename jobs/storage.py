"""Job files behind one interface: each job has an upload and, once it succeeded, a result.

Names are ``uploads/{id}.{ext}`` and ``generated/{id}.{ext}``, built only from a job id (checked
against its pattern) and a fixed extension list, so no caller can name anything else. A video or
animation job also keeps its finished chunks as ``parts/{id}.{n}.part`` until its output is written, so
that a retry resumes after them (``JobParts``, for ``model.frames``). No local path
leaves this module: callers write and read bytes, ``open`` a download stream, or ask for a presigned URL.

Backends, chosen by ``ESRGAN_STORAGE_URL`` (``jobs.backends.open_storage``):
- ``file:///abs/path`` (default: the data folder, ``ESRGAN_DATA_DIR``): ``FileStorage`` here. A write
  goes to a temporary file that is then renamed, so a reader never sees half a file.
- ``s3://bucket/prefix``: ``jobs.s3.S3Storage`` (boto3). An object exists only once fully uploaded.
Files expire with their job record: ``sweep`` removes files whose record is gone.

Errors: ``FileMissing`` (no such file) and ``StorageUnavailable`` (the backend cannot be reached, or
refused); ``api/errors.py`` maps them to HTTP, the worker fails the job with them.
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from model.imageio import ALIASES, FORMATS
from model.video import ANIMATION_FORMATS, VIDEO_FORMATS

from .records import JOB_ID

UPLOADS, GENERATED, PARTS = "uploads", "generated", "parts"
KINDS = (UPLOADS, GENERATED)
# Stored files: every output format (images, animations, videos), plus BMP, which uploads may be and
# outputs never are.
MEDIA_TYPES = ({key: media for key, (_, media, _) in FORMATS.items()} | {"bmp": "image/bmp"}
               | ANIMATION_FORMATS | VIDEO_FORMATS)
EXTENSIONS = {**{key: key for key in MEDIA_TYPES}, "jpeg": ALIASES["jpeg"]}  # format name -> file extension
STORED_NAME = re.compile(rf"^([0-9a-f]{{32}})\.({'|'.join(MEDIA_TYPES)})$")
PART_NAME = re.compile(r"^([0-9a-f]{32})\.(\d{1,6})\.part$")
CHUNK = 256 * 1024


class StorageError(Exception):
    """Base of the errors storage raises."""


class StorageUnavailable(StorageError):
    """The storage cannot be reached or refused the operation (message says which and why)."""


class FileMissing(StorageError):
    """The job's file does not exist (never written, expired or deleted)."""

    def __init__(self, kind: str, job_id: str):
        super().__init__(f"the {'result' if kind == GENERATED else 'input'} file no longer exists")
        self.kind, self.job_id = kind, job_id


@dataclass
class Download:
    """An open file: its size and its bytes in chunks (the source is open until they are consumed)."""

    size: int
    chunks: Iterator[bytes]


def file_name(job_id: str, fmt: str) -> str:
    """The stored name of a job's file in format ``fmt`` (``jpeg`` and ``jpg`` share ``.jpg``)."""
    if not JOB_ID.match(job_id or ""):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{job_id}.{EXTENSIONS[fmt]}"


def part_name(job_id: str, index: int) -> str:
    if not JOB_ID.match(job_id or "") or not 0 <= index < 10**6:
        raise ValueError(f"not a job id and part number: {job_id!r}, {index!r}")
    return f"{job_id}.{index}.part"


def parse_name(filename: str) -> str | None:
    """The job id of a stored name like ``{id}.png`` or ``{id}.3.part``; None for any other name."""
    m = STORED_NAME.match(filename or "") or PART_NAME.match(filename or "")
    return m.group(1) if m else None


class Storage(ABC):
    url: str  # where the files are, for /readyz and messages (no credentials)

    @abstractmethod
    def write(self, kind: str, job_id: str, fmt: str, data: bytes) -> None:
        """Store the whole file; readers see the old state or all of it, never a part."""

    @abstractmethod
    def read(self, kind: str, job_id: str, fmt: str) -> bytes: ...

    @abstractmethod
    def exists(self, kind: str, job_id: str, fmt: str) -> bool: ...

    @abstractmethod
    def open(self, kind: str, job_id: str, fmt: str) -> Download:
        """Open for streaming; FileMissing / StorageUnavailable are raised here, before any byte is sent."""

    def presigned_url(self, kind: str, job_id: str, fmt: str, *, filename: str, inline: bool) -> str | None:
        """A time-limited URL the client can download from directly, when the backend offers one."""
        return None

    @abstractmethod
    def delete(self, kind: str, job_id: str, fmt: str) -> None:
        """Remove one file (a missing one is fine)."""

    def delete_job(self, job_id: str) -> None:
        """Remove every file of the job (missing ones are fine)."""
        for kind in KINDS:
            for fmt in set(EXTENSIONS.values()):
                self.delete(kind, job_id, fmt)
        self.delete_parts(job_id)

    # Parts: the finished chunks of a video or animation job, whole or absent like every file here.
    @abstractmethod
    def write_part(self, job_id: str, index: int, data: bytes) -> None: ...

    @abstractmethod
    def read_part(self, job_id: str, index: int) -> bytes: ...

    @abstractmethod
    def part_numbers(self, job_id: str) -> set[int]: ...

    @abstractmethod
    def delete_parts(self, job_id: str) -> None: ...

    @abstractmethod
    def sweep(self, job_exists: Callable[[str], bool], min_age: float = 60.0) -> int:
        """Remove files whose job record is gone (expired or deleted) and older than ``min_age``
        seconds (younger ones may belong to a job being created right now); returns how many."""

    @abstractmethod
    def check(self) -> None:
        """Make ready (folders, bucket) and verify the storage is usable; StorageUnavailable if not."""


class FileStorage(Storage):
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    def _path(self, kind: str, job_id: str, fmt: str) -> Path:
        assert kind in KINDS
        return self.root / kind / file_name(job_id, fmt)

    def write(self, kind: str, job_id: str, fmt: str, data: bytes) -> None:
        self._write(self._path(kind, job_id, fmt), kind, data)

    def _write(self, path: Path, kind: str, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # no partial file left behind
            raise StorageUnavailable(f"cannot write {kind}/{path.name} in {self.url}: {exc.strerror or exc}") from None

    def read(self, kind: str, job_id: str, fmt: str) -> bytes:
        try:
            return self._path(kind, job_id, fmt).read_bytes()
        except FileNotFoundError:
            raise FileMissing(kind, job_id) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {kind} of job {job_id}: {exc.strerror or exc}") from None

    def exists(self, kind: str, job_id: str, fmt: str) -> bool:
        return self._path(kind, job_id, fmt).is_file()

    def open(self, kind: str, job_id: str, fmt: str) -> Download:
        try:
            f = open(self._path(kind, job_id, fmt), "rb")
        except FileNotFoundError:
            raise FileMissing(kind, job_id) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {kind} of job {job_id}: {exc.strerror or exc}") from None

        def chunks() -> Iterator[bytes]:
            with f:
                while block := f.read(CHUNK):
                    yield block

        return Download(os.fstat(f.fileno()).st_size, chunks())

    def delete(self, kind: str, job_id: str, fmt: str) -> None:
        try:
            self._path(kind, job_id, fmt).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {kind} of job {job_id}: {exc.strerror or exc}") from None

    def write_part(self, job_id: str, index: int, data: bytes) -> None:
        self._write(self.root / PARTS / part_name(job_id, index), PARTS, data)

    def read_part(self, job_id: str, index: int) -> bytes:
        try:
            return (self.root / PARTS / part_name(job_id, index)).read_bytes()
        except OSError as exc:
            raise StorageUnavailable(f"cannot read part {index} of job {job_id}: {exc.strerror or exc}") from None

    def part_numbers(self, job_id: str) -> set[int]:
        prefix = part_name(job_id, 0).removesuffix("0.part")
        try:
            names = [p.name for p in (self.root / PARTS).glob(f"{prefix}*.part")]
        except OSError as exc:
            raise StorageUnavailable(f"cannot list the parts of job {job_id}: {exc.strerror or exc}") from None
        return {int(m.group(2)) for m in map(PART_NAME.match, names) if m}

    def delete_parts(self, job_id: str) -> None:
        for index in self.part_numbers(job_id):
            try:
                (self.root / PARTS / part_name(job_id, index)).unlink(missing_ok=True)
            except OSError as exc:
                raise StorageUnavailable(f"cannot delete part {index} of job {job_id}: {exc.strerror or exc}") from None

    def sweep(self, job_exists: Callable[[str], bool], min_age: float = 60.0) -> int:
        removed, cutoff = 0, time.time() - min_age
        for kind in (*KINDS, PARTS):
            folder = self.root / kind
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                job_id = parse_name(path.name)
                if job_id and path.stat().st_mtime < cutoff and not job_exists(job_id):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def check(self) -> None:
        try:
            for kind in KINDS:
                (self.root / kind).mkdir(parents=True, exist_ok=True)
                if not os.access(self.root / kind, os.W_OK):
                    raise StorageUnavailable(f"{self.root / kind} is not writable")
        except OSError as exc:
            raise StorageUnavailable(f"cannot create {self.root}: {exc.strerror or exc}") from None


class JobParts:
    """One job's parts, as ``model.frames`` keeps them (its ``Parts``)."""

    def __init__(self, storage: Storage, job_id: str):
        self.storage, self.job_id = storage, job_id

    def done(self) -> set[int]:
        return self.storage.part_numbers(self.job_id)

    def write(self, index: int, data: bytes) -> None:
        self.storage.write_part(self.job_id, index, data)

    def read(self, index: int) -> bytes:
        return self.storage.read_part(self.job_id, index)

    def clear(self) -> None:
        self.storage.delete_parts(self.job_id)

