"""'my reports' for any staff member and 'open concerns' for the DSL team, as Adaptive Cards.

Answered by the edge before the dialog session runs (the dialogs layer has no store), so a
staff member part-way through a report keeps their place. Neither list ever shows a child's
words; 'my reports' shows only the child's first name, and for an allegation only where it
went. Allegations are shown only to the case manager they were routed to, never the DSL team.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from botbuilder.core import MessageFactory
from botbuilder.schema import Activity

from bot.store import Store, StoredConcern
from bot.teams.cards import card, card_message, heading, submit, verbatim
from dialogs.replies import recipient
from flows.concern import FLAGS, Reporter
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile

logger = logging.getLogger(__name__)

MY_REPORTS = "my_reports"
OPEN_CONCERNS = "open_concerns"
# Always a command, even part-way through a report (no question's answer looks like these).
RECONSIDER = "reconsider"  # answered by bot/services/reconsider.py
PHRASES = {
    "my reports": MY_REPORTS,
    "my report": MY_REPORTS,
    "open concerns": OPEN_CONCERNS,
    "not acted on": RECONSIDER,
    "not been acted on": RECONSIDER,
    "concern not acted on": RECONSIDER,
    "my concern has not been acted on": RECONSIDER,
    "reconsider": RECONSIDER,
    "reconsideration": RECONSIDER,
}
# One word that could be someone's typed answer: a command only when no report is in progress.
WORDS = {"reports": MY_REPORTS, "open": OPEN_CONCERNS, "dashboard": OPEN_CONCERNS}
IN_PROGRESS = {"flow", "summary", "confirm_cancel"}
MAX_SHOWN = 20
REFUSED = "Only the DSL team can see open concerns."
REFERRALS = {
    "referred_social_care": "referred to children's social care",
    "referred_police": "referred to the police",
    "referred_lado": "referred to the LADO",
}


def report_command(
    text: str | None, value: Mapping[str, Any] | None, mode: str | None
) -> str | None:
    """MY_REPORTS, OPEN_CONCERNS, or None when the message belongs to the conversation."""
    if value:
        command = value.get("command") if value.get("action") == "command" else None
        return command if command in {MY_REPORTS, OPEN_CONCERNS, RECONSIDER} else None
    said = " ".join((text or "").lower().split())
    if said in PHRASES:
        return PHRASES[said]
    if mode not in IN_PROGRESS:
        return WORDS.get(said)
    return None


class ReportsView:
    """Reads the store and renders the lists; never changes a concern or a session."""

    def __init__(
        self,
        schools: SchoolDirectory | SchoolProfile,
        store: Store,
        clock: Callable[[], datetime],
    ) -> None:
        # Each concern is shown in its own school's terms (time zone, who it went to).
        self.schools = SchoolDirectory.of(schools)
        self.store = store
        self.clock = clock

    async def replies(self, command: str, caller: Reporter, *, in_flow: bool = False) -> list:
        if command == MY_REPORTS:
            out = [await self.my_reports(caller)]
        else:
            out = [await self.open_concerns(caller)]
        if in_flow:
            out.append(
                MessageFactory.text(
                    "Your report in progress is kept: carry on answering where you left off."
                )
            )
        return out

    # -- my reports ------------------------------------------------------------------------

    async def my_reports(self, caller: Reporter) -> Activity:
        found = await self.store.list_concerns_by_reporter(
            caller.aad_object_id, limit=MAX_SHOWN + 1
        )
        found = [s for s in found if s.status != "draft"]
        logger.info("my reports shown count=%d", min(len(found), MAX_SHOWN))
        if not found:
            return MessageFactory.text("You have not made any reports yet.")
        body: list[dict[str, Any]] = [heading("Your reports, newest first", size="Medium")]
        lines = ["Your reports, newest first:"]
        for number, stored in enumerate(found[:MAX_SHOWN], start=1):
            status = await self._reporter_status(stored)
            when = self._when(stored.created_at)
            items = [heading(f"{number}. {stored.concern.title}"), _line(f"Raised {when}")]
            if self.schools.single is None:
                items.append(_line(self.schools.get(stored.concern.school_id).name, subtle=True))
            first_name = _first_name(stored.concern.child_name)
            if first_name and not stored.concern.is_allegation:
                items += [_line("Child (first name):", subtle=True), *verbatim(first_name)]
            items.append(_line(f"Status: {status}"))
            body.append({"type": "Container", "separator": True, "items": items})
            # The fallback is plain and carries no names: it can surface outside the card.
            lines.append(f"{number}. {stored.concern.title} - raised {when} - {status}")
        if len(found) > MAX_SHOWN:
            body.append(_line(f"Showing your {MAX_SHOWN} most recent reports.", subtle=True))
        refresh = submit("Refresh", {"action": "command", "command": MY_REPORTS})
        return card_message(card(body, [refresh]), "\n".join(lines), "Your reports")

    async def _reporter_status(self, stored: StoredConcern) -> str:
        concern = stored.concern
        route = concern.routing.route
        delivery = await self._delivery(stored)
        if route == "lado":
            return "not sent to anyone in school - phone the LADO yourself"
        if concern.is_allegation:
            # Where it went, and whether it arrived; nothing about how it is being handled.
            school = self.schools.get(concern.school_id)
            return f"{delivery} - {recipient(school, route, concern.subject_ids)}"
        if stored.status == "closed":
            return "closed"
        referral = await self._referral(stored)
        if referral:
            return referral
        if stored.acknowledged_by:
            at = self._hhmm(stored.acknowledged_at) if stored.acknowledged_at else ""
            return f"picked up by {stored.acknowledged_by}" + (f" at {at}" if at else "")
        if delivery == "sent":
            return "sent - waiting to be picked up"
        return delivery

    async def _delivery(self, stored: StoredConcern) -> str:
        posts = [
            o for o in await self.store.outbox_for_concern(stored.id) if o.kind == "post_alert"
        ]
        if any(o.status == "delivered" for o in posts):
            return "sent"
        if posts and all(o.status == "failed" for o in posts):
            return "NOT delivered - phone the DSL now"
        return "not delivered yet - still trying"

    async def _referral(self, stored: StoredConcern) -> str | None:
        if stored.status in REFERRALS:
            return REFERRALS[stored.status]
        entries = [e for e in await self.store.audit_entries(stored.id) if e.action in REFERRALS]
        return REFERRALS[entries[-1].action] if entries else None

    # -- open concerns ---------------------------------------------------------------------

    def _visible_routes(self, aad: str) -> list[tuple[SchoolProfile, set[str]]]:
        """Per school, which routes' concerns this person may see: their own school's DSL
        team's (every school of their trust for a trust safeguarding lead), and allegations
        where they are that school's headteacher or chair. Never another school's."""
        overseen = {s.id for s in self.schools.overseen_by(aad)}
        visible = []
        for school in self.schools.schools:
            routes = {"dsl_team"} if school.id in overseen else set()
            for route, person in (
                ("headteacher", school.headteacher),
                ("chair_of_governors", school.chair_of_governors),
            ):
                if person and aad and person.aad_object_id.lower() == aad.lower():
                    routes.add(route)
            if routes:
                visible.append((school, routes))
        return visible

    async def open_concerns(self, caller: Reporter) -> Activity:
        aad = caller.aad_object_id or ""
        visible = self._visible_routes(aad)
        if not visible:
            await self.store.audit(aad or None, "open_concerns_refused")
            logger.warning("open concerns refused")
            return MessageFactory.text(REFUSED)
        now = self.clock()
        pages = []
        for school, routes in visible:
            # Nobody has picked it up, then a promise is overdue (the longest overdue first),
            # then the rest (oldest first) - counted, ordered and limited by the store, so the
            # cost does not grow with the list. One list per school: a trust lead sees each
            # school's apart.
            total, found = await self.store.open_concerns_page(
                school.id, routes, now=now, limit=MAX_SHOWN
            )
            pages.append((school, total, found))
        total = sum(page[1] for page in pages)
        await self.store.audit(
            aad, "open_concerns_viewed", None, {"count": total, "schools": len(pages)}
        )
        logger.info("open concerns shown count=%d schools=%d", total, len(pages))
        if not total:
            return MessageFactory.text("There are no open concerns.")
        # Where each listed concern's alert was posted, for its thread link: one query.
        posts = await self.store.alert_posts_for(s.id for _, _, found in pages for s in found)
        body: list[dict[str, Any]] = [heading(f"Open concerns ({total})", size="Medium")]
        lines = [f"Open concerns ({total}):"]
        for school, count, found in pages:
            if self.schools.single is None:
                body.append(heading(f"{school.name} ({count})"))
                lines.append(f"{school.name} ({count}):")
            for number, stored in enumerate(found, start=1):
                items, line = self._open_item(number, stored, now)
                link = thread_link(school, posts.get(stored.id, []))
                if link:  # the DSL opens the alert's own thread: its card, replies, notes
                    open_thread = {
                        "type": "Action.OpenUrl",
                        "title": "Open its thread",
                        "url": link,
                    }
                    items.append({"type": "ActionSet", "actions": [open_thread]})
                body.append({"type": "Container", "separator": True, "items": items})
                lines.append(line)
            if count > MAX_SHOWN:
                body.append(_line(f"And {count - MAX_SHOWN} more, not shown.", subtle=True))
        refresh = submit("Refresh", {"action": "command", "command": OPEN_CONCERNS})
        return card_message(card(body, [refresh]), "\n".join(lines), "Open concerns")

    def _open_item(
        self, number: int, stored: StoredConcern, now: datetime
    ) -> tuple[list[dict[str, Any]], str]:
        concern = stored.concern
        flags = [f for f in FLAGS if f in concern.flags]
        tags = " ".join(f"[{f}]" for f in flags) or stored.priority
        urgent = stored.priority == "urgent"
        title: dict[str, Any] = heading(f"{number}. {concern.title}")
        if urgent:
            title["color"] = "Attention"
        if stored.acknowledged_by:
            at = self._hhmm(stored.acknowledged_at) if stored.acknowledged_at else ""
            status = f"Picked up by {stored.acknowledged_by}" + (f" at {at}" if at else "")
        else:
            status = "NOT PICKED UP YET"
        when = self._when(stored.created_at)
        items: list[dict[str, Any]] = [title, _line(f"Priority: {stored.priority} {tags}")]
        if concern.is_allegation:
            school = self.schools.get(concern.school_id)
            to = recipient(school, concern.routing.route, concern.subject_ids)
            items.append(_line(f"Allegation: for {to}"))
        if concern.child_name:
            items += [_line("Child:", subtle=True), *verbatim(concern.child_name)]
        items += [_line(f"Raised {when}"), _line(f"Status: {status}")]
        for deadline in concern.deadlines:
            due = _parse(deadline.due_at)
            late = due is not None and due < now
            shown = self._when(due) if due else deadline.due_at
            text = f"{'OVERDUE - ' if late else ''}{deadline.label}: due {shown}"
            items.append(_line(text, color="Attention" if late else None))
        overdue = " - OVERDUE" if _overdue(stored, now) else ""
        line = f"{number}. {concern.title} [{stored.priority}] - raised {when} - {status}{overdue}"
        return items, line

    # -- helpers ---------------------------------------------------------------------------

    def _hhmm(self, at: datetime) -> str:
        return at.astimezone(self._timezone).strftime("%H:%M")

    def _when(self, at: datetime) -> str:
        return at.astimezone(self._timezone).strftime("%H:%M, %a %d %b %Y")

    @property
    def _timezone(self) -> Any:
        # Schools of one deployment share a country; the first school's zone reads for all.
        return self.schools.schools[0].timezone


def thread_link(school: Any, posts: list[Any]) -> str | None:
    """A Teams deep link to the channel thread an alert started, built from the thread's ids
    (conversation "<channel id>;messageid=<root id>"); None for an alert sent only 1:1."""
    for post in posts:
        conversation = post.reference.conversation
        channel_id, _, root = (conversation.id if conversation else "").partition(";messageid=")
        if not root:
            continue
        query = {"tenantId": school.tenant_id, "parentMessageId": root}
        if channel_id == school.dsl_channel.channel_id:
            query["groupId"] = school.dsl_channel.team_id  # the team's Microsoft 365 group
        return (
            f"https://teams.microsoft.com/l/message/{quote(channel_id, safe='')}/{root}?"
            + urlencode(query)
        )
    return None


def _line(text: str, *, subtle: bool = False, color: str | None = None) -> dict[str, Any]:
    """Our own wording (titles, statuses): wrapped plain text, never a person's words."""
    block: dict[str, Any] = {"type": "TextBlock", "text": text, "wrap": True}
    if subtle:
        block["isSubtle"] = True
    if color:
        block["color"] = color
    return block


def _first_name(name: str | None) -> str | None:
    parts = (name or "").split()
    return parts[0] if parts else None


def _parse(text: str | None) -> datetime | None:
    try:
        at = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return at if at is not None and at.tzinfo is not None else None


def _overdue(stored: StoredConcern, now: datetime) -> bool:
    due = [_parse(d.due_at) for d in stored.concern.deadlines]
    return any(at is not None and at < now for at in due)
