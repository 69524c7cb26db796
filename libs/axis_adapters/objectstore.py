"""Object store port (S3 / MinIO API) with a MinIO-client adapter and an in-memory fake."""

from __future__ import annotations

import io
import re
from typing import Any, Literal, Protocol

from axis_adapters.settings import S3Settings

_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")


class ObjectMissing(LookupError):
    """The object named by a URI does not exist (permanent: dead-letter it)."""


class ObjectStoreUnavailable(ConnectionError):
    """The object store cannot be reached right now (transient: retry)."""


class ForbiddenBucket(ValueError):
    """A URI points outside the buckets this service may read."""


def parse_uri(uri: str, allowed_buckets: list[str] | None = None) -> tuple[str, str]:
    """Split ``s3://bucket/key``; refuse keys with ``..`` and buckets outside ``allowed_buckets``."""
    m = _URI.match(uri)
    if not m:
        raise ValueError(f"not an s3://bucket/key URI: {uri[:200]!r}")
    bucket, key = m["bucket"], m["key"]
    if ".." in key.split("/"):
        raise ForbiddenBucket(f"object key may not contain '..': {uri[:200]!r}")
    if allowed_buckets is not None and bucket not in allowed_buckets:
        raise ForbiddenBucket(f"bucket {bucket!r} is not one of the allowed buckets ({', '.join(allowed_buckets)})")
    return bucket, key


def make_uri(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


class ObjectStore(Protocol):
    """What the services need from an object store."""

    def put_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes: ...
    def exists(self, uri: str) -> bool: ...
    def ensure_bucket(self, bucket: str) -> None: ...
    def list_keys(self, bucket: str, prefix: str = "") -> list[str]: ...


def minio_client(settings: S3Settings) -> Any:
    """The ``minio`` client of the settings (every reader and writer of the object store builds it here)."""
    from minio import Minio

    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key.get_secret_value(),
        secure=settings.secure,
        region=settings.region,
    )


class MinioObjectStore:
    """ObjectStore over the ``minio`` client (works with MinIO and moto's S3 server)."""

    def __init__(self, settings: S3Settings) -> None:
        self._client = minio_client(settings)

    def put_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, key = parse_uri(uri)
        with translate_errors(uri):
            self._client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        bucket, key = parse_uri(uri)
        with translate_errors(uri):
            resp = self._client.get_object(bucket, key)  # one request: the limit is checked on the response
            try:
                if max_bytes is None:
                    return resp.read()
                return _read_capped(resp, max_bytes)
            finally:
                resp.close()
                resp.release_conn()

    def exists(self, uri: str) -> bool:
        try:
            bucket, key = parse_uri(uri)
            with translate_errors(uri):
                self._client.stat_object(bucket, key)
            return True
        except ObjectMissing:
            return False

    def ensure_bucket(self, bucket: str) -> None:
        with translate_errors(f"s3://{bucket}/"):
            if not self._client.bucket_exists(bucket):
                self._client.make_bucket(bucket)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        with translate_errors(f"s3://{bucket}/{prefix}"):
            return sorted(o.object_name or "" for o in self._client.list_objects(bucket, prefix=prefix, recursive=True))


def _read_capped(resp: Any, max_bytes: int) -> bytes:
    """The body of a response, refused (ValueError) as soon as it is known to exceed ``max_bytes``: from its
    Content-Length when the server sends one, else while reading (never more than ``max_bytes`` + 64 KiB)."""
    length = resp.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise ValueError(f"object is {int(length)} bytes, more than the limit of {max_bytes}")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = resp.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise ValueError(f"object is more than the limit of {max_bytes} bytes")
        chunks.append(chunk)


class translate_errors:
    """Map minio/urllib3 errors to ObjectMissing (permanent) or ObjectStoreUnavailable (transient)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: object) -> Literal[False]:
        if ev is None:
            return False
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError

        if isinstance(ev, S3Error):
            if ev.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise ObjectMissing(f"no object at {self.uri}") from None
            if ev.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise PermissionError(f"object store refused access to {self.uri}: {ev.code}") from None
            return False
        if isinstance(ev, HTTPError | ConnectionError | TimeoutError) and not isinstance(ev, ObjectMissing):
            raise ObjectStoreUnavailable(f"object store unreachable for {self.uri}: {type(ev).__name__}") from ev
        return False


class BucketGuard:
    """Wraps an ObjectStore so that reads outside ``allowed`` buckets raise ForbiddenBucket (a ValueError)."""

    def __init__(self, inner: ObjectStore, allowed: list[str]) -> None:
        self._inner = inner
        self._allowed = list(allowed)

    def put_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._inner.put_bytes(uri, data, content_type)

    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        parse_uri(uri, self._allowed)
        return self._inner.get_bytes(uri, max_bytes)

    def exists(self, uri: str) -> bool:
        parse_uri(uri, self._allowed)
        return self._inner.exists(uri)

    def ensure_bucket(self, bucket: str) -> None:
        self._inner.ensure_bucket(bucket)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        if bucket not in self._allowed:
            raise ForbiddenBucket(f"bucket {bucket!r} is not one of the allowed buckets ({', '.join(self._allowed)})")
        return self._inner.list_keys(bucket, prefix)
