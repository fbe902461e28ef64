"""The checker: reads one raw value (with the file and field it came from) as text, a slug, a
time, a date, a list of days..., and collects every problem and warning, so that all of a
profile's problems are reported together."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from flows.profile.contact import DAY_NAMES

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
# One number, or several written "A or B" (never "A/B": that reads as one long number).
_NUMBER = re.compile(r"^[0-9 ()+-]*[0-9][0-9 ()+-]*(?: or [0-9 ()+-]*[0-9][0-9 ()+-]*)*$")


@dataclass(frozen=True)
class _Src:
    """A raw value and where it was written, so problems name the right file and field."""

    value: Any
    file: str
    field: str


def _join(prefix: str, key: str | int) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def warn(self, where: tuple[str, str], message: str) -> None:
        line = f"{where[0]}: {where[1]}: WARNING: {message}"
        if line not in self.warnings:
            self.warnings.append(line)

    def bad(self, src: _Src | tuple[str, str], message: str) -> None:
        file, fld = (src.file, src.field) if isinstance(src, _Src) else src
        line = f"{file}: {fld}: {message}"
        if line not in self.problems:  # a shared trust key is checked once per school
            self.problems.append(line)

    def keys(
        self, data: Mapping[str, Any], allowed: frozenset[str], file: str, prefix: str
    ) -> None:
        for key in data:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.bad((file, _join(prefix, str(key))), f"unknown key {key!r} (allowed: {hint})")

    def mapping(self, src: _Src, allowed: frozenset[str]) -> dict[str, Any] | None:
        if src.value is None:
            self.bad(src, "required, but missing")
            return None
        if not isinstance(src.value, dict):
            self.bad(src, f"must be a mapping, got {_kind(src.value)}")
            return None
        self.keys(src.value, allowed, src.file, src.field)
        return src.value

    def text(self, src: _Src) -> str | None:
        if not isinstance(src.value, str) or not src.value.strip():
            self.bad(src, f"must be non-empty text, got {_kind(src.value)}")
            return None
        return src.value.strip()

    def optional_text(self, src: _Src) -> str | None:
        return None if src.value is None else self.text(src)

    def pattern(self, src: _Src, rx: re.Pattern[str], what: str) -> str | None:
        value = self.text(src)
        if value is not None and not rx.match(value):
            self.bad(src, f"must be {what}, got {value!r}")
            return None
        return value

    def boolean(self, src: _Src) -> bool | None:
        if not isinstance(src.value, bool):
            self.bad(src, f"must be true or false, got {_kind(src.value)} (yes/no/on/off are text)")
            return None
        return src.value

    def minutes(self, src: _Src, allow_null: bool = False) -> int | None:
        if src.value is None and allow_null:
            return None
        if isinstance(src.value, bool) or not isinstance(src.value, int) or src.value <= 0:
            self.bad(src, f"must be a whole number above 0, got {_kind(src.value)}")
            return None
        return src.value

    def clock(self, src: _Src) -> time | None:
        value = src.value
        if not isinstance(value, str) or not _HHMM.match(value):
            self.bad(src, f'must be a 24-hour time "HH:MM" in quotes, got {_kind(value)}')
            return None
        return time(int(value[:2]), int(value[3:]))

    def day(self, src: _Src) -> date | None:
        value = src.value
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.bad(src, f"must be an ISO date YYYY-MM-DD, got {_kind(value)}")
        return None

    def days(self, src: _Src) -> frozenset[int] | None:
        if not isinstance(src.value, list) or not src.value:
            self.bad(src, f"must be a list of days like [mon, tue], got {_kind(src.value)}")
            return None
        out: set[int] = set()
        for i, item in enumerate(src.value):
            if item not in DAY_NAMES:
                self.bad(
                    _Src(item, src.file, _join(src.field, i)),
                    f"must be one of {', '.join(DAY_NAMES)}, got {_kind(item)}",
                )
            else:
                out.add(DAY_NAMES.index(item))
        return frozenset(out)
