"""File path -> the fields of an ImageCaptured, by a pattern with named fields (``{plate_barcode}/{well}_{mode}.jpg``).

Pure logic: no file system, no clock, no environment. The caller passes the path relative to the watched folder
(``/`` between folders) and the file's modification time (used when the pattern has no ``{imaged_at:...}``).

A pattern is literal text with fields in braces. Fields: ``plate_barcode``, ``well``, ``drop``, ``mode``,
``inspection_id``, ``imaged_at:<strftime format>``, ``plate_type``, ``imager_id``, ``ext``, and ``_anything``
(matched, then ignored). ``*`` matches any text inside one folder or file name, ``**/`` any number of folders.
A field used twice must hold the same text both times. ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from axis_contracts import ImagingMode, PlateType, validate_well
from pydantic import BaseModel, ConfigDict, Field, field_validator

KNOWN_FIELDS = (
    "plate_barcode",
    "well",
    "drop",
    "mode",
    "inspection_id",
    "imaged_at",
    "plate_type",
    "imager_id",
    "ext",
)

# Lazy where a field may contain the separator that follows it: the whole path must match, so the regex engine
# backtracks until every field fits (``XT_001_A1_1_vis.jpg`` with ``{plate_barcode}_{well}_...`` -> ``XT_001``).
DEFAULT_FIELD_REGEX: dict[str, str] = {
    "plate_barcode": r"[A-Za-z0-9][A-Za-z0-9_.\-]*?",
    "well": r"[A-Za-z]{1,2}\d{1,2}",
    "drop": r"\d{1,2}",
    "mode": r"[A-Za-z0-9\-]+?",
    "inspection_id": r"[^/]+?",
    "imager_id": r"[^/]+?",
    "plate_type": r"96|384|1536",
    "ext": r"[A-Za-z0-9]+",
}
IGNORED_FIELD_REGEX = r"[^/]+?"

# strftime directives a file name can carry, and what each matches
TIME_DIRECTIVES: dict[str, str] = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{2}",
    "d": r"\d{2}",
    "j": r"\d{3}",
    "H": r"\d{2}",
    "M": r"\d{2}",
    "S": r"\d{2}",
    "f": r"\d{1,6}",
    "z": r"(?:Z|[+\-]\d{2}:?\d{2})",
}

DEFAULT_MODE_TOKENS: dict[str, ImagingMode] = {
    "vis": ImagingMode.VISIBLE,
    "visible": ImagingMode.VISIBLE,
    "vl": ImagingMode.VISIBLE,
    "bf": ImagingMode.VISIBLE,
    "brightfield": ImagingMode.VISIBLE,
    "white": ImagingMode.VISIBLE,
    "uv": ImagingMode.UV,
    "uvex": ImagingMode.UV,
    "ultraviolet": ImagingMode.UV,
}

DEFAULT_EXTENSIONS = ("jpg", "jpeg", "png", "tif", "tiff")
MAX_DROP = 16


class PatternError(ValueError):
    """The mapping configuration is wrong (bad pattern, template, time zone); the message says how to fix it."""


class Unmappable(ValueError):
    """A file whose path does not give a valid image description; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MappedFile:
    """What a file's path (and mtime) says about the image in it."""

    plate_barcode: str
    plate_type: PlateType
    well: str
    drop: int
    imaging_mode: ImagingMode
    inspection_id: str
    imaged_at: datetime
    imager_id: str | None
    ext: str


class MappingConfig(BaseModel):
    """How paths map to fields: the pattern and everything that turns its raw text into event fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = Field(min_length=1)
    field_patterns: dict[str, str] = Field(default_factory=dict, description="regex per field, replacing the default")
    mode_tokens: dict[str, ImagingMode] = Field(default_factory=lambda: dict(DEFAULT_MODE_TOKENS))
    default_mode: ImagingMode | None = Field(default=None, description="the mode when the pattern has no {mode}")
    plate_types: dict[str, PlateType] = Field(default_factory=dict, description="barcode prefix -> plate type")
    default_plate_type: PlateType = PlateType.WELLS_96
    timezone: str = Field(default="UTC", description="zone of times in names without %z, and of the template")
    inspection_template: str | None = Field(default=None, description="None: see default_inspection_template()")
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS

    @field_validator("mode_tokens", mode="after")
    @classmethod
    def _lower_tokens(cls, v: dict[str, ImagingMode]) -> dict[str, ImagingMode]:
        return {k.strip().lower(): m for k, m in v.items()}

    @field_validator("extensions", mode="after")
    @classmethod
    def _lower_ext(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(e.strip().lower().lstrip(".") for e in v if e.strip())

    def digest(self) -> str:
        """A short fingerprint: a file found unmappable under another configuration is looked at again."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def default_inspection_template(has_inspection_field: bool) -> str:
    """Inspection ids are per drop (visible and UV of one drop fuse); a plate-wide id gets plate, well and drop."""
    if has_inspection_field:
        return "{plate_barcode}-{well}-d{drop}-{inspection_id}"
    return "{plate_barcode}-{well}-d{drop}-{imaged_at:%Y%m%d}"


@dataclass(frozen=True)
class _Token:
    literal: str | None = None  # regex-escaped literal text, or None for a field
    raw: str = ""  # the token as written (for messages)
    name: str = ""
    fmt: str = ""


def _tokens(pattern: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    lit = ""
    for m in re.finditer(r"\{\{|\}\}|\{([^{}]*)\}|[{}]", pattern):
        lit += pattern[pos : m.start()]
        pos = m.end()
        text = m.group()
        if text in ("{{", "}}"):
            lit += text[0]
            continue
        if text in ("{", "}"):
            raise PatternError(
                f"unbalanced {text!r} at position {m.start()} of pattern {pattern!r} (write {{{{ or }}}})"
            )
        if lit:
            out.append(_Token(literal=lit, raw=lit))
            lit = ""
        inner = m.group(1)
        name, _, fmt = inner.partition(":")
        out.append(_Token(raw=text, name=name.strip(), fmt=fmt))
    lit += pattern[pos:]
    if lit:
        out.append(_Token(literal=lit, raw=lit))
    return out


def _literal_regex(text: str) -> str:
    """Regex of literal pattern text: ``**/`` is any folders, ``*`` any text inside one name, the rest as is."""
    out = []
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            out.append(r"(?:[^/]+/)*")
            i += 3
        elif text[i] == "*":
            out.append(r"[^/]*")
            i += 1 + (text.startswith("**", i))
        else:
            out.append(re.escape(text[i]))
            i += 1
    return "".join(out)


def time_regex(fmt: str) -> str:
    """Regex matching what ``strftime(fmt)`` writes, for the directives a file name can hold."""
    out = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(re.escape(c))
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise PatternError(f"time format {fmt!r} ends with a lone '%'")
        d = fmt[i + 1]
        if d == "%":
            out.append("%")
        elif d in TIME_DIRECTIVES:
            out.append(TIME_DIRECTIVES[d])
        else:
            known = " ".join("%" + k for k in TIME_DIRECTIVES)
            raise PatternError(f"time format {fmt!r}: %{d} is not supported in file names (use {known})")
        i += 2
    return "".join(out)


class PathMapper:
    """A compiled :class:`MappingConfig`: ``map(relpath, mtime=...)`` gives a MappedFile or raises Unmappable."""

    def __init__(self, config: MappingConfig) -> None:
        self.config = config
        try:
            self._zone = ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PatternError(
                f"unknown time zone {config.timezone!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        for name, rx in config.field_patterns.items():
            if name not in KNOWN_FIELDS:
                raise PatternError(f"field_patterns names {name!r}, not one of {', '.join(KNOWN_FIELDS)}")
            try:
                groups = re.compile(rx).groups
            except re.error as exc:
                raise PatternError(f"field_patterns[{name!r}] = {rx!r} is not a valid regex: {exc}") from None
            if groups:
                raise PatternError(f"field_patterns[{name!r}]: use (?:...) instead of (...) groups")
        self.tokens = _tokens(config.pattern)
        self.fields: list[str] = []
        self.time_format: str | None = None
        self.regex = re.compile(self._compile(), re.DOTALL)
        self._segments = self._segment_regexes()
        missing = [f for f in ("plate_barcode", "well") if f not in self.fields]
        if missing:
            raise PatternError(f"pattern {config.pattern!r} has no {{{'}, {'.join(missing)}}} field: it must name them")
        if "mode" not in self.fields and config.default_mode is None:
            raise PatternError(f"pattern {config.pattern!r} has no {{mode}}: add one or set a default mode")
        if "plate_type" in config.field_patterns:
            raise PatternError("plate_type cannot be given a regex (it is 96, 384 or 1536)")
        self.template = config.inspection_template or default_inspection_template("inspection_id" in self.fields)
        self._check_template()

    # ------------------------------------------------------------------------------------------------ compile
    def _field_regex(self, name: str) -> str:
        if name.startswith("_"):
            return IGNORED_FIELD_REGEX
        return self.config.field_patterns.get(name, DEFAULT_FIELD_REGEX[name])

    def _compile(self) -> str:
        parts = []
        for tok in self.tokens:
            if tok.literal is not None:
                parts.append(_literal_regex(tok.literal))
                continue
            name = tok.name
            if not name.isidentifier() or (name not in KNOWN_FIELDS and not name.startswith("_")):
                raise PatternError(
                    f"unknown field {tok.raw} in pattern {self.config.pattern!r}; fields: "
                    + ", ".join("{" + f + "}" for f in KNOWN_FIELDS)
                    + ", or {_name} for text to ignore"
                )
            if name == "imaged_at":
                if not tok.fmt:
                    raise PatternError("{imaged_at} needs a strftime format, e.g. {imaged_at:%Y%m%d-%H%M%S}")
                if self.time_format is not None:
                    raise PatternError(
                        "{imaged_at:...} appears twice; use one field (its format may span folders, "
                        "e.g. {imaged_at:%Y/%m/%d-%H%M}) and {_name} for other copies of the time"
                    )
                self.time_format = tok.fmt
                parts.append(f"(?P<imaged_at>{time_regex(tok.fmt)})")
                self.fields.append(name)
                continue
            if tok.fmt:
                raise PatternError(f"{tok.raw}: only {{imaged_at:...}} takes a format")
            if name in self.fields:
                parts.append(f"(?P={name})")  # the same field twice: the same text both times
                continue
            parts.append(f"(?P<{name}>{self._field_regex(name)})")
            self.fields.append(name)
        return "".join(parts)

    def _segment_regexes(self) -> list[tuple[str, re.Pattern[str]]] | None:
        """Per folder / file-name part of the pattern, for saying which part of a path does not fit (no ``**``)."""
        if "**" in self.config.pattern or (self.time_format and "/" in self.time_format):
            return None
        segments: list[tuple[list[str], list[str]]] = [([], [])]
        for tok in self.tokens:
            if tok.literal is not None:
                for i, piece in enumerate(tok.literal.split("/")):
                    if i:
                        segments.append(([], []))
                    if piece:
                        segments[-1][0].append(piece.replace("{", "{{").replace("}", "}}"))
                        segments[-1][1].append(_literal_regex(piece))
                continue
            rx = time_regex(tok.fmt) if tok.name == "imaged_at" else self._field_regex(tok.name)
            segments[-1][0].append(tok.raw)
            segments[-1][1].append(f"(?:{rx})")
        return [("".join(shown), re.compile("".join(rx), re.DOTALL)) for shown, rx in segments]

    def _check_template(self) -> None:
        names = {f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None}
        allowed = {"plate_barcode", "well", "drop", "mode", "plate_type", "imaged_at"} | set(self.fields)
        unknown = sorted(n for n in names if n not in allowed)
        if unknown or "" in names:
            raise PatternError(
                f"inspection template {self.template!r} uses {unknown or ['{}']} — it may use "
                + ", ".join("{" + n + "}" for n in sorted(allowed))
            )
        try:
            self.template.format_map(self._sample_values())
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise PatternError(f"inspection template {self.template!r} cannot be filled in: {exc}") from None

    def _sample_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {f: "x" for f in self.fields}
        values.update(plate_barcode="P", well="A1", drop=1, mode="visible", plate_type="96")
        values["imaged_at"] = datetime(2026, 1, 2, 3, 4, 5, tzinfo=self._zone)
        return values

    # ------------------------------------------------------------------------------------------------ map
    def map(self, relpath: str, *, mtime: datetime) -> MappedFile:
        """The image fields of a file, or Unmappable with the reason."""
        name = relpath.rsplit("/", 1)[-1]
        stem, dot, suffix = name.rpartition(".")
        ext = suffix.lower() if dot and stem else ""
        if not ext:
            raise Unmappable(f"the file name has no extension; images end in {', '.join(self.config.extensions)}")
        if ext not in self.config.extensions:
            raise Unmappable(
                f"extension .{ext} is not an image type this service ingests ({', '.join(self.config.extensions)})"
            )
        m = self.regex.fullmatch(relpath)
        if m is None:
            raise Unmappable(self._explain_mismatch(relpath))
        got = m.groupdict()
        plate = got["plate_barcode"]
        plate_type = self._plate_type(plate, got.get("plate_type"))
        try:
            well = validate_well(got["well"], plate_type)
        except ValueError as exc:
            raise Unmappable(f"well: {exc}") from None
        drop = int(got["drop"]) if got.get("drop") else 1
        if not 1 <= drop <= MAX_DROP:
            raise Unmappable(f"drop {got['drop']!r} is out of range (1-{MAX_DROP})")
        mode = self._mode(got.get("mode"))
        imaged_at = self._time(got.get("imaged_at"), mtime)
        values: dict[str, Any] = {k: v for k, v in got.items() if v is not None}
        values.update(
            plate_barcode=plate,
            well=well,
            drop=drop,
            mode=mode.value,
            plate_type=plate_type.value,
            imaged_at=imaged_at.astimezone(self._zone),
        )
        inspection = self.template.format_map(values)
        return MappedFile(
            plate_barcode=plate,
            plate_type=plate_type,
            well=well,
            drop=drop,
            imaging_mode=mode,
            inspection_id=inspection,
            imaged_at=imaged_at.astimezone(UTC),
            imager_id=got.get("imager_id"),
            ext=ext,
        )

    def _explain_mismatch(self, relpath: str) -> str:
        pattern = self.config.pattern
        if self._segments is None:
            return f"the path does not match the pattern {pattern!r}"
        parts = relpath.split("/")
        if len(parts) != len(self._segments):
            return (
                f"the path has {len(parts) - 1} folder level(s) below the watched folder, the pattern "
                f"{pattern!r} has {len(self._segments) - 1}"
            )
        for i, (part, (shown, rx)) in enumerate(zip(parts, self._segments, strict=True)):
            if rx.fullmatch(part) is None:
                where = "the file name" if i == len(parts) - 1 else f"folder {i + 1}"
                whole = "" if len(parts) == 1 else f" (pattern {pattern!r})"
                return f"{where} {part!r} does not match {shown!r}{whole}"
        names = [t.name for t in self.tokens if t.literal is None]
        repeated = sorted({n for n in names if names.count(n) > 1})
        return f"the parts of the path disagree: {', '.join(repeated)} must be the same everywhere in {pattern!r}"

    def _plate_type(self, barcode: str, field: str | None) -> PlateType:
        if field:
            return PlateType(field)
        best: tuple[int, PlateType] | None = None
        for prefix, ptype in self.config.plate_types.items():
            if barcode.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), ptype)
        return best[1] if best else self.config.default_plate_type

    def _mode(self, token: str | None) -> ImagingMode:
        if token is None:
            assert self.config.default_mode is not None  # checked at construction
            return self.config.default_mode
        mode = self.config.mode_tokens.get(token.lower())
        if mode is None:
            known = ", ".join(sorted(self.config.mode_tokens))
            raise Unmappable(f"imaging mode {token!r} is not a known mode token ({known}); add it to the mode tokens")
        return mode

    def _time(self, text: str | None, mtime: datetime) -> datetime:
        if text is None:
            return mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC)
        assert self.time_format is not None
        try:
            parsed = datetime.strptime(text, self.time_format)
        except ValueError as exc:
            raise Unmappable(f"imaged_at {text!r} is not a time in the format {self.time_format!r}: {exc}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=self._zone)
