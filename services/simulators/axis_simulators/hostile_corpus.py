"""The hostile-input corpus: bad messages of every class a LIMS or an imager could send, and the good ones.

Each ``Case`` says where it goes (a Kafka topic or the LIMS HTTP gateway), its bytes, and what the system must
do with it: ``score`` (a good image: scored exactly once), ``apply`` (a good user score: stored exactly once),
``dead`` (dead-lettered exactly once, the reason containing ``reason``) or ``refuse`` (an HTTP 4xx).
Everything is generated; nothing here comes from outside the repository.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from axis_contracts import topics
from axis_contracts.limits import MAX_EVENT_BYTES, control_character
from axis_contracts.wells import PlateType, wells_of
from PIL import Image

Expect = Literal["score", "apply", "dead", "refuse"]
WELLS = wells_of(PlateType.WELLS_96)
CONTROL = ["\x00", "\x07", "\x1b", "\x7f", "\u0085"]


@dataclass
class Case:
    """One input and the outcome it must have."""

    klass: str
    expect: Expect
    topic: str | None = None  # Kafka topic, or None for an HTTP request
    value: bytes = b""
    key: bytes | None = None
    reason: str = ""  # a substring of the dead letter's error (case-insensitive)
    event_id: str | None = None  # good events: the id to find in the database
    http: dict[str, Any] = field(default_factory=dict)  # method, path, headers, body (bytes)
    objects: dict[str, bytes] = field(default_factory=dict)  # S3 objects the case needs (uri -> bytes)
    partition: int | None = None  # filled in when sent
    offset: int | None = None


def png(level: int, size: tuple[int, int] = (40, 32)) -> bytes:
    """A small grey PNG."""
    buf = io.BytesIO()
    Image.new("L", size, color=level).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int = 12_000) -> bytes:
    """A tiny file that decodes to ``side`` x ``side`` pixels (past the service's pixel limit at 12k)."""
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class Corpus:
    """Builds the cases of one run (``run`` makes every plate, id and object key unique)."""

    def __init__(self, run: str, *, bucket: str = "axis-images") -> None:
        self.run = run
        self.bucket = bucket
        self.now = datetime.now(UTC).replace(microsecond=0)
        self._n = 0

    # -- events ---------------------------------------------------------------------------------------------
    def image_event(self, **over: Any) -> dict[str, Any]:
        """A valid ImageCaptured (as JSON-ready dict) of a new drop; ``over`` replaces fields."""
        i = self._n
        self._n += 1
        ev: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "event_type": "ImageCaptured",
            "schema_version": 1,
            "occurred_at": self.now.isoformat(),
            "producer": "hostile-imager",
            "plate_barcode": f"HX{self.run}-{i // 96:03d}",
            "plate_type": "96",
            "well": WELLS[i % 96],
            "drop": 1,
            "inspection_id": f"HX{self.run}-i{i}",
            "imaged_at": (self.now - timedelta(hours=1)).isoformat(),
            "imaging_mode": "visible",
            "image_uri": f"s3://{self.bucket}/hostile/{self.run}/{i}.png",
            "imager_id": "hostile-imager",
        }
        ev.update(over)
        return ev

    @staticmethod
    def key_of(ev: dict[str, Any]) -> bytes:
        return f"{ev.get('plate_barcode')}:{ev.get('well')}:{ev.get('drop', 1)}".encode("utf-8", "replace")

    def good_image(self, level: int = 120) -> Case:
        ev = self.image_event()
        return Case(
            "good image",
            "score",
            topics.IMAGE_CAPTURED,
            json.dumps(ev).encode(),
            self.key_of(ev),
            event_id=ev["event_id"],
            objects={ev["image_uri"]: png(level)},
        )

    def bad_image_event(self, klass: str, reason: str, *, upload: bool = True, **over: Any) -> Case:
        """A bad ImageCaptured; its image is uploaded (when its URI is ours) so that only the named flaw is wrong."""
        return self.bad_image(klass, reason, over, upload=upload)

    def bad_image(self, klass: str, reason: str, over: dict[str, Any], *, upload: bool = True) -> Case:
        """:meth:`bad_image_event` with the replaced fields as a dict."""
        ev = self.image_event(**over)
        value = json.dumps(ev).encode()
        uri = ev.get("image_uri")
        # no object for a URI the contracts refuse (a control character): it is never fetched, and S3 servers
        # refuse such keys themselves
        ours = (
            upload
            and isinstance(uri, str)
            and uri.startswith(f"s3://{self.bucket}/")
            and control_character(uri) is None
        )
        return Case(
            klass,
            "dead",
            topics.IMAGE_CAPTURED,
            value,
            self.key_of(ev),
            reason=reason,
            objects={str(uri): png(90)} if ours else {},
        )

    def user_score(self, inspection: str, /, **over: Any) -> dict[str, Any]:
        """A valid UserScored for an inspection."""
        ev: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "event_type": "UserScored",
            "producer": "hostile-lims",
            "inspection_id": inspection,
            "user_id": "hostile-scientist",
            "score": "single_crystals",
            "scored_at": (self.now - timedelta(minutes=5)).isoformat(),
        }
        ev.update(over)
        return ev

    # -- classes --------------------------------------------------------------------------------------------
    def image_topic_bad(self) -> list[Case]:
        """Bad ImageCaptured records of every class (sizes, encodings, characters, ids, times, schema, objects)."""
        cases: list[Case] = []

        def pad(n: int) -> dict[str, Any]:
            return self.image_event() | {"pad": "x" * n}

        for size in (MAX_EVENT_BYTES + 1, 2 * MAX_EVENT_BYTES + 17, 5_000_000):
            ev = pad(size)
            raw = json.dumps(ev).encode()[: max(size, MAX_EVENT_BYTES + 1)]
            cases.append(Case("oversized", "dead", topics.IMAGE_CAPTURED, raw, self.key_of(ev), reason="at most"))
        ev = pad(MAX_EVENT_BYTES - 600)  # just under the size limit: refused for the unknown field, not the size
        cases.append(
            Case(
                "near size limit",
                "dead",
                topics.IMAGE_CAPTURED,
                json.dumps(ev).encode(),
                self.key_of(ev),
                reason="pad: extra inputs",
            )
        )
        for raw, why in [
            (b"", "empty message"),
            (b"not json at all", "not valid json"),
            (b"\xff\xfe\x00garbage", "not utf-8"),
            (b"[1, 2, 3]", "must be a json object"),
            (b"null", "must be a json object"),
            (b"[" * 5000 + b"]" * 5000, "nest"),
            (b'{"event_id": "', "not valid json"),
        ]:
            cases.append(Case("not an event", "dead", topics.IMAGE_CAPTURED, raw, b"HX:junk:1", reason=why))
        for fld in ("plate_barcode", "well", "inspection_id", "image_uri", "imager_id", "producer"):
            for ch in CONTROL:
                base = self.image_event()
                value = str(base[fld])
                cut = len(value) // 2
                cases.append(self.bad_image("control characters", fld, {fld: value[:cut] + ch + value[cut:]}))
        cases += [
            self.bad_image_event("id limits", "inspection_id", inspection_id="I" * 129),
            self.bad_image_event("id limits", "imager_id", imager_id="m" * 500),
            self.bad_image_event("id limits", "inspection_id", inspection_id=""),
            self.bad_image_event("id limits", "plate_barcode", plate_barcode="P" * 65),
            self.bad_image_event("id limits", "producer", producer="p" * 129),
        ]
        for when, why in [
            (1764000000, "epoch"),
            ("1764000000", "epoch"),
            (1764000000.5, "epoch"),
            ("9999-12-31T00:00:00Z", "future"),
            ((self.now + timedelta(days=2)).isoformat(), "future"),
            ("2026-01-01T00:00:00", "timezone"),
            ("1999-01-01T00:00:00Z", "before 2000"),
            ("yesterday", "imaged_at"),
        ]:
            cases.append(self.bad_image_event("times", why, imaged_at=when))
        cases.append(self.bad_image_event("times", "occurred_at", occurred_at="9999-01-01T00:00:00Z"))
        schema: list[tuple[dict[str, Any], str]] = [
            ({"schema_version": 0}, "schema_version"),
            ({"schema_version": "two"}, "schema_version"),
            ({"event_type": "UserScored"}, "event_type"),
            ({"surprise": 1}, "extra inputs"),
            ({"imaging_mode": "infrared"}, "imaging_mode"),
            ({"well": "Z99"}, "well"),
            ({"plate_type": "97"}, "plate_type"),
            ({"drop": 0}, "drop"),
            ({"event_id": "not-a-uuid"}, "event_id"),
            ({"image_uri": "http://example.org/x.png"}, "image_uri"),
        ]
        for over, why in schema:
            cases.append(self.bad_image("schema", why, over))
        cases.append(self._without("image_uri"))
        # objects: forbidden bucket, missing key, broken and hostile images
        cases.append(self.bad_image_event("objects", "bucket", image_uri=f"s3://not-allowed-{self.run.lower()}/x.png"))
        cases.append(
            self.bad_image_event(
                "objects", "no object at", upload=False, image_uri=f"s3://{self.bucket}/hostile/{self.run}/absent.png"
            )
        )
        for data, why in [
            (b"", "image"),
            (b"this is not an image", "image"),
            (png(80)[:40], "image"),
            (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image"),
            (bomb_png(), "too large"),
        ]:
            ev = self.image_event()
            cases.append(
                Case(
                    "broken images",
                    "dead",
                    topics.IMAGE_CAPTURED,
                    json.dumps(ev).encode(),
                    self.key_of(ev),
                    reason=why,
                    objects={ev["image_uri"]: data},
                )
            )
        return cases

    def _without(self, fld: str) -> Case:
        ev = self.image_event()
        ev.pop(fld)
        return Case("schema", "dead", topics.IMAGE_CAPTURED, json.dumps(ev).encode(), self.key_of(ev), reason=fld)

    def user_topic_bad(self, known: list[str]) -> list[Case]:
        """Bad UserScored records on Kafka for known inspections (so only the flaw is wrong)."""
        out: list[Case] = []

        def bad(klass: str, reason: str, **over: Any) -> None:
            ev = self.user_score(known[len(out) % len(known)], **over)
            out.append(
                Case(
                    klass,
                    "dead",
                    topics.USER_SCORED,
                    json.dumps(ev).encode(),
                    ev["inspection_id"].encode(),
                    reason=reason,
                )
            )

        for ch in CONTROL:
            bad("control characters", "user_id", user_id="sci" + ch + "entist")
            bad("control characters", "score", score="single" + ch + "crystals")
        bad("unknown class", "shiny", score="shiny")
        bad("unknown inspection", "unknown inspection", inspection_id=f"HX{self.run}-never-imaged")
        bad("times", "epoch", scored_at=1764000000)
        bad("times", "future", scored_at="9999-12-31T00:00:00Z")
        bad("times", "timezone", scored_at="2026-01-01T00:00:00")
        bad("id limits", "user_id", user_id="u" * 129)
        ev = self.user_score(known[0]) | {"pad": "y" * (MAX_EVENT_BYTES + 10)}
        out.append(Case("oversized", "dead", topics.USER_SCORED, json.dumps(ev).encode(), b"x", reason="at most"))
        out.append(Case("not an event", "dead", topics.USER_SCORED, b"\x00\x01\x02", b"x", reason="not"))
        return out

    def good_user_kafka(self, inspection_id: str) -> Case:
        ev = self.user_score(inspection_id, score="clear")
        return Case(
            "good user score",
            "apply",
            topics.USER_SCORED,
            json.dumps(ev).encode(),
            inspection_id.encode(),
            event_id=ev["event_id"],
        )

    # -- HTTP -----------------------------------------------------------------------------------------------
    def http_cases(self, known: list[str], api_key: str) -> list[Case]:
        """Requests to POST /v1/user-scores: good ones (202, applied once) and refusals (4xx)."""
        auth = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

        def req(body: Any, *, headers: dict[str, str] | None = None, raw: bytes | None = None) -> dict[str, Any]:
            data = raw if raw is not None else json.dumps(body).encode()
            return {"method": "POST", "path": "/v1/user-scores", "headers": headers or auth, "body": data}

        def body(i: int, **over: Any) -> dict[str, Any]:
            b = {k: v for k, v in self.user_score(known[i % len(known)]).items() if k not in ("event_type", "producer")}
            b.update(over)
            return b

        cases: list[Case] = []
        first = body(0, score="precipitate")
        cases.append(Case("good user score (HTTP)", "apply", http=req(first), event_id=first["event_id"]))
        cases.append(Case("re-sent request (HTTP)", "apply", http=req(first), event_id=first["event_id"]))
        cases.append(
            Case("event_id re-used with other content", "refuse", http=req({**first, "score": "clear"}), reason="409")
        )
        for i in range(1, 4):
            b = body(i, score="microcrystals")
            cases.append(Case("good user score (HTTP)", "apply", http=req(b), event_id=b["event_id"]))
        refusals: list[tuple[str, dict[str, Any], str]] = [
            ("control characters", req(body(4, inspection_id=known[4 % len(known)] + "\x00")), "422"),
            ("control characters", req(body(5, user_id="ann\x00")), "422"),
            ("control characters", req(body(6, user_id="ann\x1b[31m")), "422"),
            ("content type", req(body(7), headers={"Authorization": f"Bearer {api_key}"}), "415"),
            ("content type", req(body(8), headers={**auth, "Content-Type": "text/plain"}), "415"),
            ("not an event", req(None, raw=b"{not json"), "422"),
            ("not an event", req(None, raw=b"[]"), "422"),
            ("times", req(body(9, scored_at=1764000000)), "422"),
            ("times", req(body(10, scored_at="9999-12-31T00:00:00Z")), "422"),
            ("times", req(body(11, scored_at="2026-01-01T00:00:00")), "422"),
            ("unknown class", req(body(12, score="shiny")), "422"),
            ("unknown inspection", req(body(13, inspection_id=f"HX{self.run}-never")), "404"),
            ("id limits", req(body(14, user_id="u" * 129)), "422"),
            ("schema", req(body(15, surprise=1)), "422"),
            ("credentials", req(body(16), headers={"Content-Type": "application/json"}), "401"),
            ("credentials", req(body(17), headers={**auth, "Authorization": "Bearer wrong"}), "403"),
            ("oversized", req(body(18, user_id="u" * (MAX_EVENT_BYTES + 5))), "422"),
        ]
        for klass, r, code in refusals:
            cases.append(Case(klass, "refuse", http=r, reason=code))
        return cases
