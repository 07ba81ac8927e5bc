"""S3 storage (``ESRGAN_STORAGE_URL=s3://bucket/prefix``) through boto3: AWS S3, MinIO, Ceph RGW...

Objects are ``{prefix}/uploads/{id}.{ext}`` and ``{prefix}/generated/{id}.{ext}``. A PUT makes an
object visible only once it is complete, so nothing half-written is ever read or served. Credentials
come the standard AWS ways (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile, an instance
role); ``ESRGAN_S3_ENDPOINT_URL`` points at a non-AWS server (path-style addressing then). Every S3 or
network error becomes ``StorageUnavailable`` with what was tried and why; a missing object ``FileMissing``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .settings import Settings
from .storage import CHUNK, EXTENSIONS, KINDS, MEDIA_TYPES, PART_NAME, PARTS, Download, FileMissing, Storage, \
    StorageUnavailable, file_name, parse_name, part_name

NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
ERRORS = (BotoCoreError, ClientError, OSError)


def _code(exc: Exception) -> str | None:
    return exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None


class S3Storage(Storage):
    def __init__(self, settings: Settings, bucket: str, prefix: str = ""):
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.presign, self.presign_seconds = settings.s3_presign, settings.s3_presign_seconds
        config = Config(connect_timeout=settings.s3_timeout, read_timeout=settings.s3_timeout,
                        retries={"mode": "standard", "max_attempts": settings.s3_max_attempts},
                        signature_version="s3v4",
                        s3={"addressing_style": "path"} if settings.s3_endpoint_url else None)
        # A client is thread-safe; workers make theirs after the fork (worker/tasks.py).
        self.client = boto3.session.Session().client("s3", endpoint_url=settings.s3_endpoint_url or None,
                                                     config=config)

    def _key(self, kind: str, name: str) -> str:
        assert kind in KINDS or kind == PARTS
        return f"{self.prefix}/{kind}/{name}" if self.prefix else f"{kind}/{name}"

    def _unavailable(self, exc: Exception, what: str) -> StorageUnavailable:
        code = _code(exc)
        why = f"{code}: {exc.response.get('Error', {}).get('Message') or ''}".rstrip(": ") if code else str(exc)
        return StorageUnavailable(f"S3 ({self.url}) could not {what}: {why}")

    def write(self, kind: str, job_id: str, fmt: str, data: bytes) -> None:
        name = file_name(job_id, fmt)
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(kind, name), Body=data,
                                   ContentType=MEDIA_TYPES[EXTENSIONS[fmt]])
        except ERRORS as exc:
            raise self._unavailable(exc, f"store {kind}/{name}") from None

    def _get(self, kind: str, job_id: str, fmt: str) -> dict:
        name = file_name(job_id, fmt)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(kind, name))
        except ERRORS as exc:
            if _code(exc) in NOT_FOUND - {"NoSuchBucket"}:
                raise FileMissing(kind, job_id) from None
            raise self._unavailable(exc, f"read {kind}/{name}") from None

    def read(self, kind: str, job_id: str, fmt: str) -> bytes:
        body = self._get(kind, job_id, fmt)["Body"]
        try:
            with body:
                return body.read()
        except ERRORS as exc:
            raise self._unavailable(exc, f"read {kind}/{file_name(job_id, fmt)}") from None

    def exists(self, kind: str, job_id: str, fmt: str) -> bool:
        name = file_name(job_id, fmt)
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(kind, name))
            return True
        except ERRORS as exc:
            if _code(exc) in NOT_FOUND:
                return False
            raise self._unavailable(exc, f"look up {kind}/{name}") from None

    def open(self, kind: str, job_id: str, fmt: str) -> Download:
        response = self._get(kind, job_id, fmt)
        body = response["Body"]

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(CHUNK)

        return Download(int(response["ContentLength"]), chunks())

    def presigned_url(self, kind: str, job_id: str, fmt: str, *, filename: str, inline: bool) -> str | None:
        if not self.presign:
            return None
        if not self.exists(kind, job_id, fmt):  # a 404 envelope here rather than S3's XML at the client
            raise FileMissing(kind, job_id)
        from urllib.parse import quote

        disposition = f"{'inline' if inline else 'attachment'}; filename*=utf-8''{quote(filename)}"
        return self.client.generate_presigned_url("get_object", ExpiresIn=self.presign_seconds, Params={
            "Bucket": self.bucket, "Key": self._key(kind, file_name(job_id, fmt)),
            "ResponseContentType": MEDIA_TYPES[EXTENSIONS[fmt]], "ResponseContentDisposition": disposition})

    def delete(self, kind: str, job_id: str, fmt: str) -> None:
        self._delete([self._key(kind, file_name(job_id, fmt))])

    def delete_job(self, job_id: str) -> None:
        self._delete([self._key(kind, file_name(job_id, ext)) for kind in KINDS for ext in set(EXTENSIONS.values())])
        self.delete_parts(job_id)

    def write_part(self, job_id: str, index: int, data: bytes) -> None:
        name = part_name(job_id, index)
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(PARTS, name), Body=data)
        except ERRORS as exc:
            raise self._unavailable(exc, f"store {PARTS}/{name}") from None

    def read_part(self, job_id: str, index: int) -> bytes:
        name = part_name(job_id, index)
        try:
            with self.client.get_object(Bucket=self.bucket, Key=self._key(PARTS, name))["Body"] as body:
                return body.read()
        except ERRORS as exc:
            raise self._unavailable(exc, f"read {PARTS}/{name}") from None

    def part_numbers(self, job_id: str) -> set[int]:
        prefix = self._key(PARTS, part_name(job_id, 0).removesuffix("0.part"))
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            names = [obj["Key"].rsplit("/", 1)[-1] for page in pages for obj in page.get("Contents", [])]
        except ERRORS as exc:
            raise self._unavailable(exc, f"list the parts of job {job_id}") from None
        return {int(m.group(2)) for m in map(PART_NAME.match, names) if m}

    def delete_parts(self, job_id: str) -> None:
        numbers = self.part_numbers(job_id)
        if numbers:
            self._delete([self._key(PARTS, part_name(job_id, n)) for n in numbers])

    def _delete(self, keys: list[str]) -> None:
        try:
            for start in range(0, len(keys), 1000):  # the most one request takes
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
        except ERRORS as exc:
            raise self._unavailable(exc, f"delete {len(keys)} object(s)") from None

    def sweep(self, job_exists: Callable[[str], bool], min_age: float = 60.0) -> int:
        cutoff = datetime.fromtimestamp(time.time() - min_age, timezone.utc)
        expired = []
        try:
            for kind in (*KINDS, PARTS):
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=self._key(kind, ""))
                for page in pages:
                    for obj in page.get("Contents", []):
                        job_id = parse_name(obj["Key"].rsplit("/", 1)[-1])
                        if job_id and obj["LastModified"] < cutoff and not job_exists(job_id):
                            expired.append(obj["Key"])
        except ERRORS as exc:
            raise self._unavailable(exc, "list objects") from None
        if expired:
            self._delete(expired)
        return len(expired)

    def check(self) -> None:
        """The bucket answers; one that does not exist yet is created (as the file backend makes its folder)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ERRORS as exc:
            if _code(exc) not in NOT_FOUND:
                raise self._unavailable(exc, "reach the bucket") from None
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ERRORS as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._unavailable(exc, "create the bucket") from None
