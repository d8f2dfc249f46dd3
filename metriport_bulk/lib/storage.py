"""File storage for bulk inputs and results: S3 (production, SeaweedFS in dev/CI) or the local filesystem
(embedded default). Django's default storage does reads, writes and deletes; boto3 does what it cannot:
pre-signed PUT/GET URLs on the public S3 address, HEAD and server-side copy."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import threading
from collections.abc import Generator, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import reverse

DOWNLOAD_SALT = "metriport-bulk.download"

# One part in flight at a time: boto3's default (ten threads, 8 MB parts) holds up to ~80 MB of a large file
# in memory per transfer, so a worker's peak grew with the file (issue 24, flat memory). Sequential parts of a
# nearby S3 cost little time against parsing or writing the file.
_TRANSFER = TransferConfig(use_threads=False, multipart_chunksize=8 * 1024 * 1024)

# boto3 ships no types (boto3-stubs is not installed): its clients are Any.
S3Client = Any


class BinaryReadable(Protocol):
    """What `save` reads from: a binary file, a Django File, a bounded request-body reader."""

    def read(self, size: int = ..., /) -> bytes: ...


def is_s3() -> bool:
    return bool(settings.S3_BUCKET)


def _s3_key(key: str) -> str:
    return f"{settings.S3_PREFIX}/{key}" if settings.S3_PREFIX else key


# boto3's default session is not safe to build clients from in several threads at once (a worker's threads
# may all begin with a file); each endpoint's client is built once, under this lock, and then shared (boto3's
# clients are thread-safe).
_CLIENTS_LOCK = threading.Lock()


def _client(endpoint_url: str | None) -> S3Client:
    with _CLIENTS_LOCK:
        return _built_client(endpoint_url)


@lru_cache(maxsize=4)
def _built_client(endpoint_url: str | None) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=settings.S3_REGION,
        aws_access_key_id=settings.S3_ACCESS_KEY_ID,
        aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def s3_client() -> S3Client:
    return _client(settings.S3_ENDPOINT_URL)


def warm_up() -> None:
    """Builds this process's S3 client ahead of its first file: a first client loads boto3's service model,
    about 0.1-0.2 s that would otherwise come in the middle of a request's parse, after the upload."""
    if is_s3():
        s3_client()


def s3_public_client() -> S3Client:
    """Signs URLs for the address clients reach (the signature covers the host)."""
    return _client(settings.S3_PUBLIC_ENDPOINT_URL)


@receiver(setting_changed)
def _reset_clients(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("S3_"):
        _built_client.cache_clear()


def presigned_put_url(key: str, expires_in: int) -> str:
    url: str = s3_public_client().generate_presigned_url(
        "put_object", Params={"Bucket": settings.S3_BUCKET, "Key": _s3_key(key)}, ExpiresIn=expires_in
    )
    return url


def object_size(key: str) -> int | None:
    """Size in bytes of the stored object, or None when it does not exist."""
    if is_s3():
        try:
            size: int = s3_client().head_object(Bucket=settings.S3_BUCKET, Key=_s3_key(key))["ContentLength"]
            return size
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
    return default_storage.size(key) if default_storage.exists(key) else None


def copy(source_key: str, target_key: str) -> None:
    if is_s3():
        s3_client().copy_object(
            Bucket=settings.S3_BUCKET,
            Key=_s3_key(target_key),
            CopySource={"Bucket": settings.S3_BUCKET, "Key": _s3_key(source_key)},
        )
        return
    with default_storage.open(source_key, "rb") as source:
        save(target_key, source)


def save(key: str, stream: BinaryReadable) -> None:
    """Writes (or overwrites) `key` from a binary stream, without holding it in memory."""
    if is_s3():
        s3_client().upload_fileobj(stream, settings.S3_BUCKET, _s3_key(key), Config=_TRANSFER)
        return
    path = Path(default_storage.path(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        shutil.copyfileobj(stream, out, 1024 * 1024)
    partial.replace(path)  # readers never see a half-written file


def delete(key: str) -> None:
    if key:
        default_storage.delete(key)


@contextlib.contextmanager
def open_for_read(key: str) -> Iterator[BinaryIO]:
    """A seekable binary file of `key`: the file itself locally, a disk-spooled download from S3."""
    if not is_s3():
        with default_storage.open(key, "rb") as file:
            yield cast(BinaryIO, file)  # a Django File proxies the file object's methods
        return
    with tempfile.TemporaryFile() as tmp:
        s3_client().download_fileobj(settings.S3_BUCKET, _s3_key(key), tmp, Config=_TRANSFER)
        tmp.seek(0)
        yield tmp


_RANGE_CHUNK = 256 * 1024


@contextlib.contextmanager
def open_ranges(key: str, ranges: list[tuple[int, int]]) -> Iterator[BinaryIO]:
    """One binary stream of the bytes [start, end) of each of `ranges` of `key`, one after the other (a file's
    header, then a segment of its rows), read as it goes: ranged GETs on S3, nothing downloaded first. A range
    cut short (a dropped connection, a shorter file) raises OSError rather than end early."""
    chunks = _range_chunks(key, ranges)
    try:
        yield cast(BinaryIO, _ChunkStream(chunks))
    finally:
        chunks.close()


def _range_chunks(key: str, ranges: list[tuple[int, int]]) -> Generator[bytes, None, None]:
    if is_s3():
        for start, end in ranges:
            if end > start:
                body = s3_client().get_object(
                    Bucket=settings.S3_BUCKET, Key=_s3_key(key), Range=f"bytes={start}-{end - 1}"
                )["Body"]
                try:
                    yield from _read_range(key, body, start, end)
                finally:
                    body.close()
        return
    with default_storage.open(key, "rb") as file:
        for start, end in ranges:
            file.seek(start)
            yield from _read_range(key, file, start, end)


def _read_range(key: str, file: Any, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of `file`, positioned at `start`, in chunks; OSError when it ends before `end`."""
    remaining = end - start
    while remaining > 0:
        data = file.read(min(remaining, _RANGE_CHUNK))
        if not data:
            raise OSError(f"{key}: bytes {start}-{end - 1} ended {remaining} bytes early")
        remaining -= len(data)
        yield data


class _ChunkStream(io.RawIOBase):
    """A readable binary stream over an iterator of byte strings."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")  # a view: handing a chunk on in parts copies nothing twice

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            self._pending = memoryview(next(self._chunks, b""))
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def download_url(key: str, *, filename: str, expires_in: int) -> str:
    """A time-limited URL of the stored file: pre-signed GET on S3, a signed token to our own view locally."""
    if is_s3():
        url: str = s3_public_client().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": settings.S3_BUCKET,
                "Key": _s3_key(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
                "ResponseContentType": "text/csv",
            },
            ExpiresIn=expires_in,
        )
        return url
    token = signing.dumps({"k": key, "f": filename, "e": expires_in}, salt=DOWNLOAD_SALT, compress=True)
    return settings.PUBLIC_BASE_URL + reverse("file-download", args=[token])


def read_download_token(token: str) -> tuple[str, str]:
    """(key, filename) of a valid local download token; raises signing.BadSignature (incl. expired)."""
    data = signing.loads(token, salt=DOWNLOAD_SALT)
    # The expiry is inside the signed payload; check the age against it.
    signing.loads(token, salt=DOWNLOAD_SALT, max_age=int(data["e"]))
    return data["k"], data["f"]


def local_path(key: str) -> str:
    return default_storage.path(key)
