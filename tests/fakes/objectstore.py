"""In-memory ObjectStore for unit tests (the port is axis_adapters.objectstore.ObjectStore)."""

from __future__ import annotations

from dataclasses import dataclass, field

from axis_adapters.objectstore import ObjectMissing, parse_uri


@dataclass
class InMemoryObjectStore:
    """Fake for unit tests: a dict of URIs to bytes."""

    objects: dict[str, bytes] = field(default_factory=dict)
    buckets: set[str] = field(default_factory=set)

    def put_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, _ = parse_uri(uri)
        self.buckets.add(bucket)
        self.objects[uri] = bytes(data)

    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        parse_uri(uri)
        if uri not in self.objects:
            raise ObjectMissing(f"no object at {uri}")
        data = self.objects[uri]
        if max_bytes is not None and len(data) > max_bytes:
            raise ValueError(f"object is {len(data)} bytes, more than the limit of {max_bytes}")
        return data

    def exists(self, uri: str) -> bool:
        return uri in self.objects

    def ensure_bucket(self, bucket: str) -> None:
        self.buckets.add(bucket)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        start = f"s3://{bucket}/"
        return sorted(u[len(start) :] for u in self.objects if u.startswith(start + prefix))
