"""The embedded stack's durable S3 server: localbucket 1.2.1 with what this system needs added.

``serve_s3(data_root, port)`` runs it in the calling process (``axis_stack.components.start_s3`` starts it as
``python -c``); ``list_page`` is its prefix-scoped listing (unit-tested against localbucket's own). Why
localbucket, and what was measured: docs/storage.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any


def serve_s3(data_root: str, port: int) -> None:
    """Run localbucket on 127.0.0.1:``port`` over ``data_root`` in this process, with the fixes the stack needs.

    localbucket 1.2.1 as published lacks four things this system relies on, added by the handler below:
    ``If-Match`` on PUT (the broker's optimistic updates); listings that walk only the folder a prefix names
    (the broker lists a partition on every fetch; walking the whole bucket grew with the log); TCP_NODELAY
    (headers and body go out as two writes: without it each response waited ~40 ms for a delayed ACK); and
    GetBucketLocation (the minio client asks it when given no region). It also fsyncs each object before
    renaming it into place. docs/storage.md has the measurements.
    """
    import logging
    from http.server import ThreadingHTTPServer

    handler = _localbucket_handler()
    root = Path(data_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)  # localbucket logs every request at INFO
    handler.data_root = root
    ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()


def _localbucket_handler() -> Any:
    import localbucket as lb

    locks = [threading.Lock() for _ in range(64)]

    class Handler(lb.S3Handler):  # type: ignore[misc]
        disable_nagle_algorithm = True

        def _get_request(self, bucket: str, key: str) -> None:
            if bucket and not key and "location" in self.query:  # the minio client asks it when given no region
                self._check_query("GetBucketLocation", {"location"})
                self._bucket_dir(bucket)
                self._send_xml(lb.ET.Element("LocationConstraint", xmlns=lb.S3_NAMESPACE))  # empty: us-east-1
                return
            super()._get_request(bucket, key)

        def _write_object(self, bucket: str, key: str, write: Callable[[IO[bytes]], str]) -> str:
            target = self._object_path(bucket, key)
            # One lock per key (striped): a conditional write checks and replaces with no other write between.
            with locks[hash(str(target)) % len(locks)]:
                expected = self.headers.get("If-Match")
                if expected is not None:
                    if not target.is_file():
                        raise lb.S3Error(HTTPStatus.NOT_FOUND, "NoSuchKey", "The specified key does not exist.")
                    if not lb.etag_matches(expected, lb.object_etag(target)):
                        raise self._precondition_failed_error()

                def synced(file: IO[bytes]) -> str:
                    etag = write(file)
                    file.flush()
                    os.fsync(file.fileno())
                    return etag

                etag: str = super()._write_object(bucket, key, synced)
            _fsync_dir(target.parent)
            return etag

        def _list_entries(
            self, bucket_dir: Path, prefix: str, delimiter: str, marker: str, marker_is_prefix: bool, max_keys: int
        ) -> tuple[list[tuple[str, Path]], list[str], bool, str]:
            return list_page(bucket_dir, prefix, delimiter, marker, marker_is_prefix, max_keys, skip=lb.TEMP_PREFIX)

    return Handler


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_page(
    bucket_dir: Path,
    prefix: str,
    delimiter: str,
    marker: str,
    marker_is_prefix: bool,
    max_keys: int,
    *,
    skip: str = ".localbucket-",
) -> tuple[list[tuple[str, Path]], list[str], bool, str]:
    """One page of a bucket listing (keys with their files, common prefixes, truncated, last entry).

    What localbucket's own listing returns, but walking only the folder that ``prefix`` names instead of the
    whole bucket. Files whose name starts with ``skip`` (unfinished writes) are not objects.
    """
    folder = prefix.rpartition("/")[0]
    top = bucket_dir.joinpath(*folder.split("/")) if folder else bucket_dir
    if not top.is_dir() or not top.resolve().is_relative_to(bucket_dir.resolve()):
        return [], [], False, ""
    keys = []
    for directory, _, files in os.walk(top):
        for name in files:
            path = Path(directory, name)
            key = path.relative_to(bucket_dir).as_posix()
            if not name.startswith(skip) and key.startswith(prefix):
                keys.append((key, path))
    keys.sort(key=lambda item: item[0].encode())  # S3 orders keys by their UTF-8 bytes
    contents: list[tuple[str, Path]] = []
    common: list[str] = []
    last = ""
    for key, path in keys:
        if marker and (key.encode() <= marker.encode() or (marker_is_prefix and key.startswith(marker))):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        group = key[: cut + len(delimiter)] if cut >= 0 else ""
        if group and common and common[-1] == group:
            continue
        if len(contents) + len(common) >= max_keys:
            return contents, common, max_keys > 0, last
        if group:
            common.append(group)
            last = "P:" + group
        else:
            contents.append((key, path))
            last = "K:" + key
    return contents, common, False, last
