"""The child's chronology: concerns about the same child, linked by the DSL team.

KCSIE's "build a picture" depends on low-level concerns being seen together. The bot only
SUGGESTS that two concerns are about the same child (same school, a similar name, a
compatible year group); the DSL team confirms or rejects it on the card, and only confirmed
links count. Suggestions, counts and `child NAME` are for the DSL team only. Allegations
about staff are never suggested, linked or listed here for the DSL team: `child NAME` shows
them apart, and only to the case manager they were routed to. Logs carry ids and counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.services.child_names import ChildKey, NameIndex, name_tokens, similar_name
from bot.services.decisions import DECISIONS
from bot.store import StoredConcern
from flows.directory import SchoolDirectory
from flows.routing import recipients

logger = logging.getLogger(__name__)

LINK_VERBS = frozenset({"link_confirm", "link_reject"})
SUGGESTED_AT_MOST = 3
MAX_LISTED = 20


# -- the card's words (pure) ---------------------------------------------------------------


def is_case_manager(school: Any, caller: str | None) -> bool:
    """Named to receive a school's allegations (head, chair, other case managers)."""
    wanted = (caller or "").strip().lower()
    people = [school.headteacher, school.chair_of_governors, *school.case_managers]
    return bool(wanted) and any(p and p.aad_object_id == wanted for p in people)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def kind_of(concern: Any) -> str:
    return concern.type.replace("_", " ")


def picture(concerns: list[Any], this_id: str) -> str:
    """'3rd concern in 8 weeks: 2 welfare, 1 disclosure' (all the linked concerns)."""
    first, last = concerns[0].created_at, concerns[-1].created_at
    days = max((last - first).days, 0)
    span = f"{days} days" if days < 14 else f"{round(days / 7)} weeks"
    counts: dict[str, int] = {}
    for stored in concerns:
        counts[kind_of(stored.concern)] = counts.get(kind_of(stored.concern), 0) + 1
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    if concerns[-1].id == this_id:
        return f"{ordinal(len(concerns))} concern in {span}: {kinds}"
    return f"{len(concerns)} concerns about this child in {span}: {kinds}"


# -- the service -----------------------------------------------------------------------------


@dataclass
class CardView:
    summary: str | None = None
    earlier: list[str] = field(default_factory=list)  # one line per other linked concern
    suggestions: list[tuple[str, str]] = field(default_factory=list)  # (id, described)


class Chronology:
    """Per school of the deployment (a trust's schools never share a chronology)."""

    def __init__(self, store: Any, schools: Any, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.schools = SchoolDirectory.of(schools)
        self.clock = clock
        self.names = NameIndex(store)

    def _date(self, at: datetime, school_id: str) -> str:
        school = self.schools.find(school_id) or self.schools.schools[0]
        return at.astimezone(school.timezone).strftime("%a %d %b %Y")

    def may_look_up(self, caller: str | None) -> bool:
        """The DSL team (or trust lead) of a school served, or a case manager of one."""
        return bool(self.schools.overseen_by(caller)) or any(
            is_case_manager(s, caller) for s in self.schools.schools
        )

    async def linked(self, stored: StoredConcern) -> list[StoredConcern]:
        found = []
        for concern_id in await self.store.chronology_ids(stored.id):
            other = await self.store.get_concern(concern_id)
            if other is not None and not other.concern.is_allegation:
                found.append(other)
        return found

    async def suggestions(self, stored: StoredConcern) -> list[StoredConcern]:
        """Earlier DSL concerns that may be about this child, newest first, not yet decided
        and not already in its chronology."""
        if stored.concern.is_allegation or not name_tokens(stored.concern.child_name):
            return []
        c = stored.concern
        await self.names.refresh(c.school_id)
        decided = await self.store.link_decisions(stored.id)
        linked = set(await self.store.chronology_ids(stored.id))
        matches = self.names.matches(c.school_id, ChildKey.of(c), before=stored.created_at)
        candidates = [
            other_id
            for other_id in matches
            if other_id not in decided and other_id not in linked and other_id != stored.id
        ]
        out: list[StoredConcern] = []
        # Opened a few at a time, each few in one store call (usually the only one).
        for start in range(0, len(candidates), SUGGESTED_AT_MOST):
            chunk = candidates[start : start + SUGGESTED_AT_MOST]
            found = {other.id: other for other in await self.store.concerns_by_id(chunk)}
            if gone := [other_id for other_id in chunk if other_id not in found]:
                self.names.forget(c.school_id, gone)  # deleted under the retention setting
            out += [found[other_id] for other_id in chunk if other_id in found]
            if len(out) >= SUGGESTED_AT_MOST:
                break
        return out[:SUGGESTED_AT_MOST]

    async def for_card(self, stored: StoredConcern) -> CardView:
        view = CardView()
        linked = await self.linked(stored)
        if len(linked) > 1:
            view.summary = picture(linked, stored.id)
            view.earlier = [await self._line(o) for o in linked if o.id != stored.id]
        for other in await self.suggestions(stored):
            c = other.concern
            who = ", ".join(x for x in (c.child_name, c.child_year) if x)
            view.suggestions.append(
                (other.id, f"{self._date(other.created_at, c.school_id)} - {kind_of(c)} - {who}")
            )
        return view

    async def _line(self, other: StoredConcern) -> str:
        entries = await self.store.record_entries(other.id)
        done = [
            DECISIONS[e.kind].entry
            for e in entries
            if e.kind in DECISIONS and e.kind not in {"add_note", "acknowledge"}
        ]
        state = f" - {'; '.join(done)}" if done else f" - {other.status}"
        when = self._date(other.created_at, other.concern.school_id)
        return f"{when} - {kind_of(other.concern)}{state}"

    async def act(
        self, stored: StoredConcern, verb: str, data: dict, actor: str | None, now: datetime
    ) -> str | None:
        """Confirm or reject a suggested link; returns a refusal, or None when done."""
        other = await self.store.get_concern(str(data.get("other_id") or ""))
        if (
            other is None
            or other.id == stored.id
            or stored.concern.is_allegation
            or other.concern.is_allegation
            or other.concern.school_id != stored.concern.school_id
        ):
            return "Those two concerns cannot be linked. Nothing was changed."
        if verb == "link_confirm":
            await self.store.link_concerns(
                stored.id, other.id, stored.concern.school_id, actor, now
            )
        else:
            await self.store.reject_link(stored.id, other.id, actor, now)
        logger.info("chronology %s concern=%s other=%s", verb, stored.id, other.id)
        return None

    # -- `child NAME` ---------------------------------------------------------------------

    async def lookup(self, name: str, caller: str | None) -> list[tuple[str, list[str]]]:
        """(heading, lines) per child found: the DSL team's chronologies (linked concerns
        together) in each school the caller oversees, then - only for their case manager -
        allegations, kept apart."""
        out: list[tuple[str, list[str]]] = []
        several = len(self.schools.schools) > 1
        for school in self.schools.overseen_by(caller):
            await self.names.refresh(school.id)
            named = self.names.named(school.id, name)
            if not named:
                continue
            # A linked concern joins its child's group whatever its name.
            children = await self.store.child_ids(school.id)
            theirs = {children.get(i, i) for i in named}
            ids = named | {i for i, child in children.items() if child in theirs}
            groups: dict[str, list[StoredConcern]] = {}
            for c in sorted(
                await self.store.concerns_by_id(sorted(ids)),
                key=lambda found: found.created_at,
                reverse=True,  # the child named most recently first
            ):
                if c.routing == "dsl_team" and c.status != "draft":
                    groups.setdefault(children.get(c.id, c.id), []).append(c)
            for members in groups.values():
                members.sort(key=lambda s: s.created_at)
                heading, lines = await self._group(members)
                out.append((f"{school.name}: {heading}" if several else heading, lines))
        wanted = (caller or "").strip().lower()
        for school in self.schools.schools:
            if not wanted or not is_case_manager(school, caller):
                continue
            for c in await self.store.school_concerns(school.id, allegations=True):
                mine = any(p.aad_object_id == wanted for p in recipients(school, c.concern))
                if mine and similar_name(name, c.concern.child_name):
                    when = self._date(c.created_at, school.id)
                    out.append(
                        (
                            f"Allegation about a member of staff ({when}) - you are its case "
                            "manager; kept apart from the DSL's chronology",
                            [await self._line(c)],
                        )
                    )
        logger.info("child lookup results=%d", len(out))
        return out[:MAX_LISTED]

    async def _group(self, members: list[StoredConcern]) -> tuple[str, list[str]]:
        last = members[-1].concern
        who = ", ".join(x for x in (last.child_name, last.child_year) if x)
        linked = len(members) > 1
        heading = f"{who} - {picture(members, members[-1].id)}" if linked else who
        if not linked:
            heading += " - not linked to other concerns"
        return heading, [await self._line(m) for m in members[-MAX_LISTED:]]
