"""An alert's card as it stands now, and one person's own view of it.

The card shows the concern, who has it, what happened since it went (escalations, the reporter
stopping), the DSL's record entries and, for a DSL alert, the child's chronology. The first
post to a DSL channel @mentions the team; Teams asks for each person's own view (Universal
Actions refresh): who has it, and buttons only for those who may act (access.py). A card
Teams would refuse as too big gives way in its record, saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bot.services.access import may_act, name_of
from bot.services.chronology import Chronology
from bot.services.records import entry_lines
from bot.services.timing import ESCALATION_TEXT
from bot.store import Store, StoredConcern
from bot.teams.alert_card import Mentioned, alert_card
from bot.teams.cards import MAX_CARD_BYTES, card_bytes
from bot.teams.record_cards import chronology_block, decision_actions, record_block
from dialogs.replies import recipient
from flows.concern import URGENT_FLAGS, Concern
from flows.directory import SchoolDirectory
from flows.routing import recipients

RECORD_SHOWN = 300  # characters of a decision's reason on a card too big for all of it
RESEND_NOTICE = {
    "type": "TextBlock",
    "text": "Sent again: an earlier attempt may also have reached this channel. It is the same "
    "report - acting on either copy updates both.",
    "wrap": True,
    "weight": "Bolder",
    "color": "Attention",
}


class AlertView:
    def __init__(
        self,
        store: Store,
        schools: SchoolDirectory,
        clock: Callable[[], datetime],
        chronology: Chronology,
    ) -> None:
        self.store = store
        self.schools = schools
        self.clock = clock
        self.chronology = chronology

    async def render(
        self,
        stored: StoredConcern,
        *,
        resend: bool = False,
        first_post: bool = False,
        viewer: str | None = None,
    ) -> dict[str, Any]:
        """The card as it stands now: status, history of actions, notes. `resend`: this copy
        was sent again after an attempt whose outcome is unknown - it says so. `first_post`:
        the post that must notify the DSL team (@mentions). `viewer`: one person's own view
        (Universal Actions refresh): who has it, and buttons only for those who may act."""
        card = await self._render(stored, first_post=first_post, viewer=viewer)
        if resend:
            card["body"].insert(0, dict(RESEND_NOTICE))
        return card

    async def view(
        self,
        concern_id: str,
        viewer: str | None,
        activity_id: str | None,
        conversation_id: str | None = None,
    ) -> dict[str, Any] | None:
        """One person's own view of an alert (the card's refresh): None when they may not see
        it - neither someone who may act, nor looking at a copy the bot posted (that
        message, in that conversation)."""
        stored = await self.store.get_concern(concern_id)
        if stored is None:
            return None
        if not may_act(self.schools, stored, viewer):
            posts = await self.store.alert_posts(concern_id)
            if not any(
                p.activity_id == activity_id
                and _thread(p.reference.conversation.id) == _thread(conversation_id)
                for p in posts
                if activity_id and p.reference.conversation
            ):
                return None
        return await self.render(stored, viewer=viewer or "")

    def _mentions(self, concern: Concern) -> list[Mentioned]:
        """Whom the first post of a DSL-channel alert @mentions: a channel post notifies only
        people who follow the channel or are mentioned. Urgent: always; routine: as the
        profile says (dsl_channel.mention_routine)."""
        if concern.routing.route != "dsl_team":
            return []  # an allegation goes 1:1 to its case managers: a direct message notifies
        school = self.schools.get(concern.school_id)
        when = school.dsl_channel.mention_routine
        quiet = when == "never" or (
            when == "school_hours" and not school.in_school_hours(self.clock())
        )
        if concern.priority != "urgent" and quiet:
            return []
        return [Mentioned(p.aad_object_id, p.name) for p in school.dsl_team()]

    def _refresh_ids(self, concern: Concern) -> list[str]:
        """Teams user ids (MRIs) whose client asks for its own view of the card: the people
        who may act on it (Teams allows 60)."""
        school = self.schools.get(concern.school_id)
        if concern.routing.route == "dsl_team":
            leads = self.schools.organisation_of(school.id).trust_safeguarding_leads
            people = [*school.dsl_team(), *leads]
        else:
            people = list(recipients(school, concern))
        return [f"8:orgid:{p.aad_object_id}" for p in people if p.aad_object_id][:60]

    def _viewer_line(self, stored: StoredConcern, viewer: str | None) -> str:
        if viewer is None or stored.status == "closed":
            return ""
        if not may_act(self.schools, stored, viewer):
            who = (
                "the DSL team" if stored.concern.routing.route == "dsl_team" else "its case manager"
            )
            return f"Only {who} can act on this alert."
        if not stored.acknowledged_by:
            return "Nobody has this yet: press 'Acknowledge - I'm taking this' if it is you."
        school = self.schools.get(stored.concern.school_id)
        at = hhmm(stored.acknowledged_at, school) if stored.acknowledged_at else ""
        if stored.acknowledged_by == name_of(self.schools, viewer, school):
            return f"You have this (picked up at {at})." if at else "You have this."
        return f"{stored.acknowledged_by} has this."

    async def _render(
        self, stored: StoredConcern, *, first_post: bool = False, viewer: str | None = None
    ) -> dict[str, Any]:
        entries = await self.store.audit_entries(stored.id)
        school = self.schools.get(stored.concern.school_id)
        history = [
            {
                "state": e.action,
                "by": name_of(self.schools, e.actor_aad_id, school),
                "at": e.at.isoformat(),
            }
            for e in entries
            if e.action
            in {
                "acknowledged",
                "referred_social_care",
                "referred_police",
                "referred_lado",
                "closed",
            }
        ]
        escalations = [
            _event_line(e.action, e.detail, hhmm(e.at, school))
            for e in entries
            if e.action in _EVENT_LINES
        ]
        if stored.concern.status == "raised" and not {e.action for e in entries} & _ENDED:
            escalations.insert(0, _still_recording(stored.concern))
        notes = [
            {"state": "note", "by": n.label, "at": n.at, "text": n.value}
            for n in stored.concern.notes
        ]
        entries = await self.store.record_entries(stored.id)
        lines = entry_lines(
            entries,
            lambda at: _when(at, school),
            skip=frozenset({"add_note", "acknowledge"}),  # they have their own lines
        )
        view = None
        # Allegations are never in a chronology; a viewer who may not act never sees one.
        if not stored.concern.is_allegation and (
            viewer is None or may_act(self.schools, stored, viewer)
        ):
            view = await self.chronology.for_card(stored)

        def build(left_off: int = 0, cut: int | None = None) -> dict[str, Any]:
            blocks = [record_block(lines[left_off:], left_off=left_off, cut=cut)]
            if view is not None:
                blocks.append(
                    chronology_block(stored.id, view.summary, view.earlier, view.suggestions)
                )
            return alert_card(
                stored.concern,
                recipient=recipient(
                    school, stored.concern.routing.route, stored.concern.subject_ids
                ),
                history=history + notes,
                escalations=escalations,
                now=self.clock(),
                mentions=self._mentions(stored.concern) if first_post else (),
                refresh_ids=self._refresh_ids(stored.concern),
                viewer_line=self._viewer_line(stored, viewer),
                can_act=viewer is None or may_act(self.schools, stored, viewer),
                record_blocks=[b for b in blocks if b],
                decision_actions=decision_actions(stored.id, stored.concern.routing.route),
            )

        # Teams refuses a message over about 28 KB: the record gives way, saying so - long
        # reasons are cut on the card, then the oldest entries left to the record itself
        # (the newest always shows).
        card = build()
        if card_bytes(card) > MAX_CARD_BYTES and lines:
            card = build(cut=RECORD_SHOWN)
            left_off = 0
            while card_bytes(card) > MAX_CARD_BYTES and left_off < len(lines) - 1:
                left_off += 1
                card = build(left_off, RECORD_SHOWN)
        return card


def _thread(conversation_id: str | None) -> str:
    """A channel's id without the thread part ('19:x@thread.tacv2;messageid=1' -> '19:x...')."""
    return (conversation_id or "").split(";", 1)[0]


# What happened after the alert went (escalations, the reporter stopping, moving on, asking
# for reconsideration), as the card says it.
_EVENT_LINES = {
    "escalated": "Not picked up yet: {to} at {at}",
    "report_abandoned": "STOPPED BY THE REPORTER at {at} - this report was not finished: ask "
    "them in person what has happened since.",
    "report_moved": "At {at} the reporter went on with this report under another procedure, "
    "for other people; nothing more will be added here. Ask them in person if you need to.",
    "report_stalled": "NOT FINISHED: at {at} the reporter had stopped answering part-way. "
    "They have been reminded; ask them in person what has happened.",
    "reconsideration_requested": "The reporter asked at {at} for this to be looked at again "
    "(not acted on / not improving): speak to them.",
}
_ENDED = {"report_abandoned", "report_moved"}


def _event_line(action: str, detail: Mapping[str, Any], at: str) -> str:
    to = ESCALATION_TEXT.get(str(detail.get("to")), "") if action == "escalated" else ""
    return _EVENT_LINES[action].format(to=to, at=at)


def _still_recording(concern: Concern) -> str:
    urgent = [f for f in concern.flags if f in URGENT_FLAGS]
    why = f" because of {', '.join(urgent)}" if urgent else ""
    return (
        f"STILL BEING RECORDED: sent at once{why}, before the report was finished. This card "
        "updates as the reporter answers."
    )


def _when(at: datetime, school: Any) -> str:
    return at.astimezone(school.timezone).strftime("%a %d %b %Y %H:%M")


def hhmm(at: datetime, school: Any) -> str:
    """A time as the school's clock shows it (its own time zone)."""
    return at.astimezone(school.timezone).strftime("%H:%M")
