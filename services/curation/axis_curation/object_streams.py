"""Streaming reads of stored objects (dataset downloads): chunks from the S3 server, never a whole object."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from axis_adapters.objectstore import ObjectStore, minio_client, parse_uri, translate_errors
from axis_adapters.settings import S3Settings


class ObjectStreams(Protocol):
    """What a download route needs: the size of an object, then its bytes in chunks."""

    def size(self, uri: str) -> int: ...
    def chunks(self, uri: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]: ...


class MinioObjectStreams:
    """ObjectStreams over the ``minio`` client."""

    def __init__(self, settings: S3Settings) -> None:
        self._client = minio_client(settings)

    def size(self, uri: str) -> int:
        """Bytes of the object (ObjectMissing / ObjectStoreUnavailable like the object store)."""
        bucket, key = parse_uri(uri)
        with translate_errors(uri):
            return int(self._client.stat_object(bucket, key).size or 0)

    def chunks(self, uri: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """The object's bytes, ``chunk_size`` at a time (the connection is released at the end)."""
        bucket, key = parse_uri(uri)
        with translate_errors(uri):
            resp = self._client.get_object(bucket, key)
        try:
            yield from resp.stream(chunk_size)
        finally:
            resp.close()
            resp.release_conn()


class WholeObjectStreams:
    """ObjectStreams over any ObjectStore (reads the object at once: for fakes and small objects)."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def size(self, uri: str) -> int:
        """Bytes of the object."""
        return len(self._store.get_bytes(uri))

    def chunks(self, uri: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """The object's bytes in chunks."""
        data = self._store.get_bytes(uri)
        for i in range(0, len(data), chunk_size):
            yield data[i : i + chunk_size]


def iter_lines(streams: ObjectStreams, uri: str) -> Iterator[bytes]:
    """The lines of a JSON Lines object, streamed (no trailing newline on each)."""
    rest = b""
    for chunk in streams.chunks(uri):
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from (line for line in lines if line.strip())
    if rest.strip():
        yield rest
