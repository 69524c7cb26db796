"""What an event may contain, so that every consumer and the HTTP gateway refuse the same things, early.

The limits are the ones the database and the broker can honour (docs/reliability.md lists them):

- a message is at most ``MAX_EVENT_BYTES`` (1 MiB) of UTF-8 JSON;
- text fields hold no control characters (C0, DEL, C1; PostgreSQL cannot store NUL at all); free-text fields
  (reasons, comments) may hold tab and newline;
- identifiers are 1-128 characters, printable;
- times are ISO 8601 strings with a time zone (``2026-12-02T10:00:00Z``) — never epoch numbers — and lie in
  ``[EARLIEST_TIME, now + max future skew]``; the skew is ``DEFAULT_MAX_FUTURE_SKEW`` (10 minutes) unless the
  validation context says otherwise (``{"max_future_skew_s": 60}``) — a clock a little ahead is tolerated, a
  time in year 9999 (which would pin "latest score wins" forever) is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field, ValidationInfo

MAX_EVENT_BYTES = 1_048_576
MAX_ID_LENGTH = 128
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_MAX_FUTURE_SKEW = timedelta(minutes=10)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d*)?\s*$")


def control_character(text: str, *, free_text: bool = False) -> str | None:
    """A description of the first control character in ``text`` (None when there is none)."""
    m = (_CONTROL_EXCEPT_WHITESPACE if free_text else _CONTROL).search(text)
    if m is None:
        return None
    return f"U+{ord(m.group()):04X} at position {m.start()}"


def _no_control(text: str) -> str:
    found = control_character(text)
    if found:
        raise ValueError(f"must not contain control characters (found {found})")
    return text


def _no_control_free(text: str) -> str:
    found = control_character(text, free_text=True)
    if found:
        raise ValueError(f"must not contain control characters other than tab and newline (found {found})")
    return text


def _iso_only(value: Any) -> Any:
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError(
            "must be an ISO 8601 date-time with a time zone (e.g. 2026-12-02T10:00:00Z); epoch numbers are refused"
        )
    return value


def max_future_skew(info: ValidationInfo | None) -> timedelta:
    """The future skew allowed by the validation context (``max_future_skew_s``), else the default."""
    ctx = info.context if info is not None and isinstance(info.context, dict) else {}
    skew = ctx.get("max_future_skew_s")
    return DEFAULT_MAX_FUTURE_SKEW if skew is None else timedelta(seconds=float(skew))


def _in_window(value: datetime, info: ValidationInfo) -> datetime:
    value = value.astimezone(UTC)
    if value < EARLIEST_TIME:
        raise ValueError(f"lies before {EARLIEST_TIME.date().isoformat()}: not a plausible time")
    skew = max_future_skew(info)
    latest = datetime.now(UTC) + skew
    if value > latest:
        raise ValueError(
            f"lies in the future ({value.isoformat()} is more than {skew.total_seconds():g} s after now, "
            f"{datetime.now(UTC).replace(microsecond=0).isoformat()}); check the sender's clock and time zone"
        )
    return value


Text = Annotated[str, AfterValidator(_no_control)]
FreeText = Annotated[str, AfterValidator(_no_control_free)]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_no_control)]
EventTime = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_in_window)]


def strings_of(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string (and dict key) inside a value, with a dotted path to it."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from strings_of(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str):
                yield sub, k
            yield from strings_of(v, sub)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from strings_of(v, f"{path}.{i}")


def check_no_control(
    model: BaseModel, *, free_text: frozenset[str] = frozenset(), skip: frozenset[str] = frozenset()
) -> None:
    """Raise ValueError naming the first field whose text holds a control character (tab/newline ok in free_text)."""
    for path, text in strings_of(model):
        top = path.split(".", 1)[0]
        if top in skip:
            continue
        found = control_character(text, free_text=top in free_text)
        if found:
            raise ValueError(f"{path}: text must not contain control characters (found {found})")
