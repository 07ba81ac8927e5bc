"""``open_storage``: the storage backend that ``ESRGAN_STORAGE_URL`` names (``jobs.storage`` for the
interface and files, ``jobs.s3`` for S3; here so that neither imports the other both ways)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from .settings import Settings
from .storage import FileStorage, Storage


def open_storage(settings: Settings) -> Storage:
    """The backend ``settings.storage_url`` names (default: files in ``settings.data_dir``)."""
    url = settings.storage_url or Path(settings.data_dir).resolve().as_uri()
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FileStorage(unquote(parts.path))
    if parts.scheme == "s3":
        from .s3 import S3Storage  # boto3 is needed only for S3

        return S3Storage(settings, bucket=parts.netloc, prefix=parts.path.strip("/"))
    raise ValueError(f"ESRGAN_STORAGE_URL must be file:///absolute/path or s3://bucket/prefix, not {url!r}")
