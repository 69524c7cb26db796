"""The dead letter: a message a consumer could not process, kept byte for byte with the reason (replayable)."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from axis_contracts import topics
from axis_contracts.events import Event


class DeadLetter(Event):
    """A message a consumer could not process, with the reason; replayable after a fix."""

    # the raw message must survive byte for byte (replay), so no whitespace stripping here
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    TOPIC: ClassVar[str] = topics.DEAD_LETTER
    # the raw message and the error are kept as they were: they are evidence, never stored in PostgreSQL
    UNCHECKED_TEXT: ClassVar[frozenset[str]] = frozenset({"raw_value", "error", "source_key", "source_topic"})
    event_type: Literal["DeadLetter"] = "DeadLetter"
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    source_key: str | None = None
    raw_value: str = Field(description="the message as text (utf-8) or hex when it is not valid utf-8")
    raw_encoding: Literal["utf-8", "hex"] = "utf-8"
    error_type: str
    error: str
    consumer: str
    attempts: int = 1
    # schema 1 fields above; the ones below are optional additions (a too-large raw message is truncated here
    # and kept whole in the object store)
    raw_length: int | None = Field(default=None, ge=0, description="length of the original message in bytes")
    raw_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    raw_truncated: bool = False
    raw_uri: str | None = Field(default=None, description="s3:// copy of the whole message when raw_truncated")

    def raw_bytes(self) -> bytes:
        """The original message bytes, for replay (only the kept prefix when ``raw_truncated``)."""
        if self.raw_encoding == "hex":
            return bytes.fromhex(self.raw_value)
        return self.raw_value.encode()

    @classmethod
    def wrap(
        cls,
        *,
        raw: bytes,
        source_topic: str,
        error: Exception | str,
        consumer: str,
        keep_bytes: int | None = None,
        raw_uri: str | None = None,
        **extra: Any,
    ) -> DeadLetter:
        """Build a dead-letter record around raw message bytes and the error that rejected them.

        With ``keep_bytes``, a longer message keeps only its first ``keep_bytes`` bytes here (``raw_truncated``);
        its length and SHA-256 are always recorded, and ``raw_uri`` says where the whole message was copied.
        """
        truncated = keep_bytes is not None and len(raw) > keep_bytes
        kept = raw[:keep_bytes] if truncated else raw
        text, enc = _as_text(kept, truncated=truncated)
        etype = type(error).__name__ if isinstance(error, Exception) else "Rejected"
        return cls(
            producer=consumer,
            source_topic=source_topic,
            raw_value=text,
            raw_encoding=enc,  # type: ignore[arg-type]
            error_type=etype,
            error=str(error)[:4000],
            consumer=consumer,
            raw_length=len(raw),
            raw_sha256=hashlib.sha256(raw).hexdigest(),
            raw_truncated=truncated,
            raw_uri=raw_uri,
            **extra,
        )


def _as_text(raw: bytes, *, truncated: bool) -> tuple[str, str]:
    """UTF-8 text when the bytes are UTF-8 (a cut multi-byte character at the end is dropped), else hex."""
    for cut in range(4 if truncated else 1):
        try:
            return raw[: len(raw) - cut].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            continue
    return raw.hex(), "hex"
