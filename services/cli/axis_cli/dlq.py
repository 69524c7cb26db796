"""``python -m axis_cli dlq list|show|replay``: inspect the dead-letter topic and replay records after a fix.

    python -m axis_cli dlq list [--source-topic T] [--consumer C] [--grep TEXT] [--since ISO] [--json]
    python -m axis_cli dlq show 0:17                 # one dead letter in full (partition:offset)
    python -m axis_cli dlq replay 0:17 1:4           # send the original bytes back to their source topic
    python -m axis_cli dlq replay --all --grep 'no object' [--dry-run]

A replayed record keeps its key and bytes (so its ``event_id``): consumers that already processed it skip it,
the others process it now. A record that fails again is dead-lettered again, as a new dead letter.
Connection settings: ``--bootstrap`` or AXIS_KAFKA__BOOTSTRAP_SERVERS (the stack's stack.env).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from axis_contracts import DeadLetter, topics
from pydantic import ValidationError

REPLAY_HEADER = "axis-replay-of"


@dataclass(frozen=True)
class Entry:
    """One record of the dead-letter topic; ``letter`` is None when the record is not a valid DeadLetter."""

    partition: int
    offset: int
    letter: DeadLetter | None
    raw: bytes

    @property
    def ref(self) -> str:
        """``partition:offset``, the id the CLI takes."""
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class Filters:
    """Which dead letters a command applies to (all given conditions must hold)."""

    source_topic: str | None = None
    consumer: str | None = None
    grep: str | None = None
    since: datetime | None = None

    def match(self, e: Entry) -> bool:
        """True when the entry passes every filter."""
        d = e.letter
        if d is None:
            return not (self.source_topic or self.consumer or self.since) and (
                self.grep is None or self.grep.lower() in e.raw.decode("utf-8", "replace").lower()
            )
        if self.source_topic and d.source_topic != self.source_topic:
            return False
        if self.consumer and d.consumer != self.consumer:
            return False
        if self.since and d.occurred_at < self.since:
            return False
        if self.grep:
            hay = f"{d.error_type} {d.error} {d.source_key or ''}".lower()
            if self.grep.lower() not in hay:
                return False
        return True


def parse_ref(text: str) -> tuple[int, int]:
    """``"0:17"`` -> (0, 17); ValueError saying the expected form."""
    part, sep, off = text.partition(":")
    if not sep or not part.isdigit() or not off.isdigit():
        raise ValueError(f"a dead letter is named partition:offset, e.g. 0:17 (as `dlq list` shows), not {text!r}")
    return int(part), int(off)


async def read_all(bootstrap: str, *, topic: str = topics.DEAD_LETTER, timeout_s: float = 30.0) -> list[Entry]:
    """Every record on the dead-letter topic right now, oldest first per partition (no consumer group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster metadata
        parts_ids = consumer.partitions_for_topic(topic)
        parts = [TopicPartition(topic, p) for p in sorted(parts_ids or ())]
        if not parts:
            return []
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        out: list[Entry] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            if loop.time() > deadline:
                raise TimeoutError(f"reading {topic} took more than {timeout_s:.0f}s")
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, recs in batch.items():
                out.extend(_entry(tp.partition, r.offset, r.value or b"") for r in recs if r.offset < end[tp])
        return sorted(out, key=lambda e: (e.partition, e.offset))
    finally:
        await consumer.stop()


def _entry(partition: int, offset: int, raw: bytes) -> Entry:
    try:
        letter: DeadLetter | None = DeadLetter.model_validate_json(raw)
    except ValidationError:
        letter = None
    return Entry(partition, offset, letter, raw)


def original_bytes(letter: DeadLetter, fetch: Callable[[str], bytes] | None) -> bytes:
    """The whole original message: from the dead letter, or from its object-store copy when it was truncated."""
    if not letter.raw_truncated:
        return letter.raw_bytes()
    if letter.raw_uri is None or fetch is None:
        raise ValueError(
            f"dead letter {letter.event_id} keeps only the first bytes of a {letter.raw_length}-byte message and "
            "no object-store copy is reachable: nothing whole to replay"
        )
    data = fetch(letter.raw_uri)
    if letter.raw_sha256 and hashlib.sha256(data).hexdigest() != letter.raw_sha256:
        raise ValueError(f"{letter.raw_uri} does not match the dead letter's SHA-256: not replayed")
    return data


async def replay(
    bootstrap: str,
    entries: Sequence[Entry],
    *,
    to_topic: str | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> list[str]:
    """Publish each entry's original bytes (and key) to its source topic; returns one line per record sent.

    A truncated dead letter is replayed from its whole copy in the object store (``fetch(uri)``).
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", max_request_size=16 * 1024 * 1024
    )
    await producer.start()
    done: list[str] = []
    try:
        for e in entries:
            if e.letter is None:
                raise ValueError(f"{e.ref} is not a DeadLetter record: nothing to replay")
            target = to_topic or e.letter.source_topic
            key = e.letter.source_key.encode() if e.letter.source_key else None
            headers = [(REPLAY_HEADER, e.ref.encode()), ("content-type", b"application/json")]
            data = original_bytes(e.letter, fetch)
            await producer.send_and_wait(target, data, key=key, headers=headers)
            done.append(f"replayed {e.ref} -> {target}")
    finally:
        await producer.stop()
    return done


def summary_line(e: Entry, width: int = 110) -> str:
    """One line per dead letter for ``list``."""
    d = e.letter
    if d is None:
        return f"{e.ref:>8}  (not a DeadLetter record: {len(e.raw)} bytes)"
    when = d.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
    error = " ".join(f"{d.error_type}: {d.error}".split())
    if len(error) > width:
        error = error[: width - 1] + "…"
    return f"{e.ref:>8}  {when}  {d.source_topic}  by {d.consumer}  key={d.source_key or '-'}  {error}"


def detail(e: Entry) -> dict[str, object]:
    """Everything about one dead letter, for ``show``."""
    if e.letter is None:
        return {"ref": e.ref, "valid": False, "raw": e.raw.decode("utf-8", "replace")}
    body = e.letter.model_dump(mode="json")
    try:
        body["raw_value"] = json.loads(e.letter.raw_bytes())
    except (ValueError, UnicodeDecodeError):
        pass
    return {"ref": e.ref, "valid": True, **body}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m axis_cli dlq", description="dead-letter topic tools")
    p.add_argument("--bootstrap", default=None, help="broker (default: AXIS_KAFKA__BOOTSTRAP_SERVERS / stack.env)")
    p.add_argument("--topic", default=topics.DEAD_LETTER, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("list", "one line per dead letter"), ("replay", "send records back to their topic")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--source-topic", default=None, help="only dead letters from this topic")
        s.add_argument("--consumer", default=None, help="only dead letters of this consumer group")
        s.add_argument("--grep", default=None, help="only those whose error or key contains this text")
        s.add_argument("--since", default=None, help="only those dead-lettered at or after this ISO time")
    lst = sub.choices["list"]
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.add_argument("--limit", type=int, default=None, help="the newest N only")
    show = sub.add_parser("show", help="one dead letter in full")
    show.add_argument("ref", help="partition:offset as `list` prints it")
    rep = sub.choices["replay"]
    rep.add_argument("refs", nargs="*", help="partition:offset of each record to replay")
    rep.add_argument("--all", action="store_true", help="replay every dead letter matching the filters")
    rep.add_argument("--to-topic", default=None, help="override the target topic (default: the source topic)")
    rep.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
    return p


def _filters(a: argparse.Namespace) -> Filters:
    since = None
    if a.since:
        since = datetime.fromisoformat(a.since)
        if since.tzinfo is None:
            raise ValueError(f"--since needs a time zone (e.g. {a.since}Z or +00:00)")
    return Filters(a.source_topic, a.consumer, a.grep, since)


def _bootstrap(a: argparse.Namespace) -> str:
    if a.bootstrap:
        return str(a.bootstrap)
    from axis_adapters.settings import ServiceSettings, load_settings

    return load_settings(ServiceSettings).kafka.bootstrap_servers


def _object_fetcher(entries: Sequence[Entry]) -> Callable[[str], bytes] | None:
    """Reads whole copies of truncated dead letters from the stack's object store (only when one is needed)."""
    if not any(e.letter is not None and e.letter.raw_truncated for e in entries):
        return None
    from axis_adapters.objectstore import MinioObjectStore
    from axis_adapters.settings import ServiceSettings, load_settings

    store = MinioObjectStore(load_settings(ServiceSettings).s3)
    return lambda uri: store.get_bytes(uri)


async def _run(a: argparse.Namespace) -> int:
    bootstrap = _bootstrap(a)
    entries = await read_all(bootstrap, topic=a.topic)
    if a.command == "show":
        want = parse_ref(a.ref)
        found = [e for e in entries if (e.partition, e.offset) == want]
        if not found:
            print(f"no dead letter {a.ref} on {a.topic} ({len(entries)} records there)", file=sys.stderr)
            return 1
        print(json.dumps(detail(found[0]), indent=2, ensure_ascii=False))
        return 0
    flt = _filters(a)
    chosen = [e for e in entries if flt.match(e)]
    if a.command == "list":
        if a.limit is not None:
            chosen = chosen[-a.limit :]
        for e in chosen:
            print(json.dumps(detail(e), ensure_ascii=False) if a.json else summary_line(e))
        print(f"{len(chosen)} of {len(entries)} dead letters on {a.topic}", file=sys.stderr)
        return 0
    if a.refs:
        wanted = {parse_ref(r) for r in a.refs}
        by_ref = {(e.partition, e.offset): e for e in chosen}
        missing = sorted(f"{p}:{o}" for p, o in wanted - set(by_ref))
        if missing:
            print(f"not found (or filtered out): {', '.join(missing)}; see `dlq list`", file=sys.stderr)
            return 1
        chosen = [by_ref[w] for w in sorted(wanted)]
    elif not a.all:
        print("name the records to replay (partition:offset) or pass --all with filters", file=sys.stderr)
        return 2
    if a.dry_run:
        for e in chosen:
            target = a.to_topic or (e.letter.source_topic if e.letter else "?")
            print(f"would replay {e.ref} -> {target}")
        return 0
    for line in await replay(bootstrap, chosen, to_topic=a.to_topic, fetch=_object_fetcher(chosen)):
        print(line)
    print(f"{len(chosen)} record(s) replayed", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m axis_cli dlq``."""
    a = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return asyncio.run(_run(a))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
