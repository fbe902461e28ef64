"""Which earlier concerns may be about the same child: name and year-group matching, and the
per-school index that lets an alert card ask without opening every concern the school raised.

Names are sealed at rest, so matching needs them opened. `NameIndex` opens each concern once
(when first seen, and again only when it has changed) and keeps just what matching needs - the
name's tokens and the year group - so a card's suggestions cost a look-up among the school's
distinct first names, not a read of its whole history for every alert and card update.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import threading
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from bot.store.model import _iso

NAME_SIMILARITY = 0.8  # difflib ratio: "Amelia" ~ "Amelie", not "Amelia" ~ "Amir"
# How far back each refresh looks again: longer than any transaction and any clock skew
# between replicas, so a change committed late (stamped before the last one seen) is not missed.
OVERLAP = timedelta(minutes=2)
BATCH = 500  # concerns opened per store call when (re)reading


# -- matching (pure) ------------------------------------------------------------------------


def name_tokens(name: str | None) -> list[str]:
    """Lower case, accents and punctuation dropped: 'Zoë O'Neil' -> ['zoe', 'oneil']."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return [t for t in (re.sub(r"[^\w]", "", word) for word in text.split()) if t]


def year_group(text: str | None) -> str | None:
    """'Y4', 'Year 4', 'yr 4', '4C' -> '4'; 'Reception', 'RB' -> 'R'; unknown -> None."""
    said = (text or "").strip().lower()
    if not said or "not known" in said or said in {"?", "unknown", "skip"}:
        return None
    digits = re.search(r"\d+", said)
    if digits:
        return str(int(digits.group()))
    if said.startswith(("rec", "r")) and len(said) <= 12:
        return "R"
    if said.startswith("nur"):
        return "N"
    return None


@lru_cache(maxsize=65_536)
def _like(a: str, b: str) -> bool:
    if len(a) == 1 or len(b) == 1:  # an initial
        return a[0] == b[0]
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= NAME_SIMILARITY


def _tokens_alike(ta: tuple[str, ...] | list[str], tb: tuple[str, ...] | list[str]) -> bool:
    if not ta or not tb or not _like(ta[0], tb[0]):
        return False
    if len(ta) > 1 and len(tb) > 1:
        return _like(ta[-1], tb[-1])
    return True


def similar_name(a: str | None, b: str | None) -> bool:
    """Same first name (allowing a typo), and the same surname when both give one."""
    return _tokens_alike(name_tokens(a), name_tokens(b))


def years_fit(a: str | None, b: str | None) -> bool:
    """Year groups (`year_group`'s) the same, or the later one up (the school year moved
    on); unknown fits anything."""
    if a is None or b is None or a == b:
        return True
    if a.isdigit() and b.isdigit():
        return int(b) - int(a) == 1
    return (a, b) in {("N", "R"), ("R", "1")}


@dataclass(frozen=True, slots=True)
class ChildKey:
    """What matching reads of a concern: the child's name tokens and year group."""

    tokens: tuple[str, ...]
    year: str | None

    @classmethod
    def of(cls, concern: Any) -> ChildKey:
        return cls(tuple(name_tokens(concern.child_name)), year_group(concern.child_year))


def keys_match(earlier: ChildKey, later: ChildKey) -> bool:
    if not _tokens_alike(earlier.tokens, later.tokens):
        return False
    if not years_fit(earlier.year, later.year):
        return False
    # A first name alone is weak: then the year group must be known and the same.
    if min(len(earlier.tokens), len(later.tokens)) < 2:
        return earlier.year is not None and earlier.year == later.year
    return True


def same_child(earlier: Any, later: Any) -> bool:
    """Whether to SUGGEST that two concerns are about one child (the DSL decides)."""
    return earlier.school_id == later.school_id and keys_match(
        ChildKey.of(earlier), ChildKey.of(later)
    )


# -- the index -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    created_at: datetime
    version: str  # the row's updated_at when it was read
    key: ChildKey


@dataclass
class _School:
    entries: dict[str, _Entry] = field(default_factory=dict)
    by_first: dict[str, set[str]] = field(default_factory=dict)  # first name token -> ids
    seen_up_to: datetime | None = None  # the newest version read
    read_from: float = float("-inf")  # when the latest finished refresh began (monotonic)

    def put(self, concern_id: str, entry: _Entry) -> None:
        self.drop(concern_id)
        self.entries[concern_id] = entry
        if entry.key.tokens:
            self.by_first.setdefault(entry.key.tokens[0], set()).add(concern_id)

    def drop(self, concern_id: str) -> None:
        old = self.entries.pop(concern_id, None)
        if old is not None and old.key.tokens:
            bucket = self.by_first[old.key.tokens[0]]
            bucket.discard(concern_id)
            if not bucket:
                del self.by_first[old.key.tokens[0]]


class NameIndex:
    """Per school: each raised DSL-team concern's `ChildKey`, kept in step with the store.

    Shared by the chat loop and the outbox's loop (each its own thread), so its maps change
    and are read only under a thread lock, never across an await. Refreshes of one school in
    one loop go one at a time, and a refresh that began after a caller asked has read all it
    needs: ten alert cards rendered at once read the store once or twice, not ten times (each
    read is a hop to the store's thread, which under load costs ~15 ms)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._schools: dict[str, _School] = {}
        self._lock = threading.Lock()
        self._refreshing: dict[tuple[int, str], asyncio.Lock] = {}

    async def refresh(self, school_id: str) -> None:
        """Read what changed since the last refresh (everything, the first time): afterwards
        the index holds every concern committed before this call."""
        asked = time.monotonic()
        key = (id(asyncio.get_running_loop()), school_id)
        with self._lock:
            one_at_a_time = self._refreshing.setdefault(key, asyncio.Lock())
        async with one_at_a_time:
            with self._lock:
                school = self._schools.get(school_id)
                if school is not None and school.read_from >= asked:
                    return  # it read after everything committed before we asked
            await self._refresh(school_id)

    async def _refresh(self, school_id: str) -> None:
        with self._lock:
            school = self._schools.setdefault(school_id, _School())
            since = school.seen_up_to
        began = time.monotonic()
        versions = await self.store.concern_versions(
            school_id, since=None if since is None else _iso(since - OVERLAP)
        )
        with self._lock:
            stale = [
                (cid, version)
                for cid, version in versions
                if (entry := school.entries.get(cid)) is None or entry.version != version
            ]
        for start in range(0, len(stale), BATCH):
            chunk = dict(stale[start : start + BATCH])
            found = await self.store.concerns_by_id(list(chunk))
            with self._lock:
                for stored in found:
                    entry = _Entry(stored.created_at, chunk[stored.id], ChildKey.of(stored.concern))
                    school.put(stored.id, entry)
        newest = max((datetime.fromisoformat(v) for _, v in versions), default=None)
        with self._lock:
            if newest is not None and (school.seen_up_to is None or newest > school.seen_up_to):
                school.seen_up_to = newest
            school.read_from = max(school.read_from, began)

    def forget(self, school_id: str, concern_ids: Iterable[str]) -> None:
        """Concerns no longer in the store (deleted under the retention setting)."""
        with self._lock:
            school = self._schools.get(school_id)
            for concern_id in concern_ids if school else ():
                school.drop(concern_id)

    def matches(self, school_id: str, key: ChildKey, *, before: datetime) -> list[str]:
        """Ids of the school's concerns raised before `before` that may be this child's,
        newest first (call `refresh` first)."""
        if not key.tokens:
            return []
        with self._lock:
            school = self._schools.get(school_id) or _School()
            first = key.tokens[0]
            found = [
                (entry.created_at, concern_id)
                for token, ids in school.by_first.items()
                if _like(token, first)
                for concern_id in ids
                if (entry := school.entries[concern_id]).created_at < before
                and keys_match(entry.key, key)
            ]
        return [concern_id for _, concern_id in sorted(found, reverse=True)]

    def named(self, school_id: str, name: str) -> set[str]:
        """Ids of the school's concerns about a child with a name like `name`."""
        tokens = tuple(name_tokens(name))
        if not tokens:
            return set()
        with self._lock:
            school = self._schools.get(school_id) or _School()
            return {
                concern_id
                for token, ids in school.by_first.items()
                if _like(token, tokens[0])
                for concern_id in ids
                if _tokens_alike(school.entries[concern_id].key.tokens, tokens)
            }
