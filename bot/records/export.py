"""The record as structured data for systems that import (CPOMS, MyConcern): JSON and CSV.

Both carry the same `Record`s the PDF shows and read back to equal values. JSON keeps every
text exact. CSV cells that a spreadsheet would run as a formula (starting = + - @, a tab or a
carriage return) - and, so that reading back is exact, cells starting with an apostrophe -
get one leading apostrophe, which spreadsheets hide; `records_from_csv` removes it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from bot.records.record import RECORD_FORMAT, AuditLine, DeadlineLine, Entry, Record

COLUMNS = ("record", "section", "at", "who", "what", "detail")
_LISTS = {
    "actions_taken": Entry,
    "timeline": Entry,
    "escalations": Entry,
    "deadlines": DeadlineLine,
    "audit": AuditLine,
}
_PAIRS = ("fields", "answers")
_STRINGS = ("flags", "rules_shown", "sources", "notes")
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "'")


def records_json(records: Sequence[Record]) -> bytes:
    body = {"format": RECORD_FORMAT, "records": [r.to_dict() for r in records]}
    return json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")


def records_from_json(data: bytes | str) -> list[Record]:
    body = json.loads(data)
    if body.get("format") != RECORD_FORMAT:
        raise ValueError(f"not a {RECORD_FORMAT} export")
    return [Record.from_dict(r) for r in body["records"]]


def records_csv(records: Sequence[Record]) -> bytes:
    """One row per fact: which record, which section, then when / who / what / detail."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for number, record in enumerate(records, start=1):
        for row in _rows(record):
            writer.writerow([str(number), *(_cell(v) for v in row)])
    # A byte-order mark: Excel then reads the file as UTF-8 (emoji, Arabic, Hebrew intact).
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def records_from_csv(data: bytes | str) -> list[Record]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    if tuple(next(reader)) != COLUMNS:
        raise ValueError("not a safeguarding record CSV")
    grouped: dict[str, dict[str, Any]] = {}
    for number, section, *rest in reader:
        _at, _who, what, detail = (_uncell(v) for v in rest)
        data_ = grouped.setdefault(number, {k: [] for k in (*_LISTS, *_PAIRS, *_STRINGS)})
        if section in _LISTS:
            data_[section].append(_LISTS[section](**json.loads(detail)))
        elif section in _PAIRS:
            data_[section].append((what, detail))
        elif section in _STRINGS:
            data_[section].append(detail)
        else:
            data_[section] = detail
    return [Record(**grouped[n]) for n in sorted(grouped, key=int)]


def _rows(record: Record) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    for f in fields(Record):
        value = getattr(record, f.name)
        if f.name in _LISTS:
            for item in value:
                rows.append(
                    (
                        f.name,
                        getattr(item, "at", getattr(item, "due_at", "")),
                        getattr(item, "who", getattr(item, "owner", "")),
                        getattr(item, "what", getattr(item, "label", getattr(item, "action", ""))),
                        json.dumps(_plain(item), ensure_ascii=False),
                    )
                )
        elif f.name in _PAIRS:
            rows += [(f.name, "", "", label, text) for label, text in value]
        elif f.name in _STRINGS:
            rows += [(f.name, "", "", "", text) for text in value]
        else:
            rows.append((f.name, "", "", "", value))
    return rows


def _plain(item: Any) -> dict[str, Any]:
    return {f.name: getattr(item, f.name) for f in fields(item)}


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


def _uncell(value: str) -> str:
    return value[1:] if value.startswith("'") else value
