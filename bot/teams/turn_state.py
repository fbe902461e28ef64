"""What a turn keeps of the person it serves: their stored state - the session, their school
and the open card - and the school the turn runs in.

The state is read with the turn's seen-check and written with its unit of work (see
SafeguardingBot.on_turn in handler.py), without the SDK's per-save state hashing. The session
and the school live at the person's key ("msteams/users/<id>"); the open card in a row of its
own beside it, written after the replies, so a quick next message never conflicts with it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from botbuilder.core import TurnContext, UserState
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import Activity, ChannelAccount

from bot.services.timing import MID_REPORT
from bot.store import Store
from bot.teams.schools import PART as SCHOOL_PART
from bot.teams.schools import SchoolResolver, Turn
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile

logger = logging.getLogger(__name__)

# Where a turn keeps its unit of work, the person's key, what it has read, and its school.
UNIT = "safeguarding.turn_unit"
KEY = "safeguarding.state_key"
_ITEM = "safeguarding.state_items"
SCHOOL = "safeguarding.school"
OPEN_CARD = "open_card"


def part_key(key: str | None, part: str) -> str | None:
    """The session (and the person's school) live at the person's key; the open card in a
    row of its own beside it, written after the replies, so a quick next message never
    conflicts with it."""
    if not key:
        return None
    return key if part in ("session", SCHOOL_PART) else f"{key}/{part}"


def state_key(user_state: UserState, turn_context: TurnContext) -> str | None:
    """Where this person's state is stored (the SDK's UserState key), if they are known."""
    activity = turn_context.activity
    if not (activity.channel_id and activity.from_property and activity.from_property.id):
        return None
    return user_state.get_storage_key(turn_context)


class TurnState:
    """The person's stored state during one turn, and the school the turn runs in."""

    def __init__(self, store: Store, schools: SchoolDirectory, where: SchoolResolver) -> None:
        self.store = store
        self.schools = schools
        self.where = where

    async def read(self, turn_context: TurnContext, part: str) -> dict[str, Any]:
        """One part of the person's stored state (read with the turn's seen-check): the
        session, or the open card (its own row: see SafeguardingBot._send_replies)."""
        key = part_key(turn_context.turn_state.get(KEY), part)
        items = turn_context.turn_state.setdefault(_ITEM, {})
        if key and key not in items:
            items[key] = (await self.store.read([key])).get(key, {})
        return (items.get(key) or {}).get(part) or {}

    async def save(self, turn_context: TurnContext, part: str, value: Any) -> None:
        key = part_key(turn_context.turn_state.get(KEY), part)
        if not key:
            return
        items = turn_context.turn_state.setdefault(_ITEM, {})
        item = {**(items.get(key) or {}), part: value}
        if part == OPEN_CARD:
            item["e_tag"] = "*"  # bookkeeping: the latest wins, never a conflict for the turn
        await self.store.write({key: item})  # sets the new etag in `item`
        items[key] = item

    # -- the school the turn runs in -----------------------------------------------------

    async def school(
        self, turn_context: TurnContext, state: dict[str, Any], text: str, value: dict | None
    ) -> tuple[SchoolProfile, str, dict | None] | None:
        """The reporter's school for this turn, and the message to run in it (what they wrote
        before being asked, once they answer). None: a question or `my school` was answered."""
        turn = await self._school_turn(turn_context, state, text, value)
        if turn.reply is not None:
            await turn_context.send_activity(turn.reply)
            return None
        return turn.school, turn.text, turn.value

    async def school_of_sender(
        self, turn_context: TurnContext, state: dict[str, Any], command: str
    ) -> tuple[SchoolProfile | None, Activity | None]:
        """For a team-scope command: their school, or the question to send them privately."""
        turn = await self._school_turn(turn_context, state, command, None)
        return (None, turn.reply) if turn.reply is not None else (turn.school, None)

    async def _school_turn(
        self, turn_context: TurnContext, state: dict[str, Any], text: str, value: dict | None
    ) -> Turn:
        activity = turn_context.activity
        aad = (activity.from_property or ChannelAccount()).aad_object_id
        part = copy.deepcopy(await self.read(turn_context, SCHOOL_PART))
        kept = copy.deepcopy(part)
        turn = await self.where.turn(
            part,
            aad,
            _tenant_id(activity),
            text,
            value,
            mid_report=state.get("mode") in MID_REPORT,
            email=lambda: self._email(turn_context),
        )
        if part != kept:
            await self.save(turn_context, SCHOOL_PART, part)
            # Where their reports go changed: audited (ids only), for a DSL asking why.
            for key, scope in (("id", "person"), ("report", "report")):
                if part.get(key) and part.get(key) != kept.get(key):
                    detail = {"school": part[key], "for": scope}
                    await self.store.audit(aad, "school_set", None, detail)
        if turn.school is not None:
            turn_context.turn_state[SCHOOL] = turn.school
        return turn

    async def pin_school(
        self,
        turn_context: TurnContext,
        school: SchoolProfile,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> None:
        """A report keeps the school it was started at until it ends."""
        if self.schools.single is not None:
            return
        part = copy.deepcopy(await self.read(turn_context, SCHOOL_PART))
        was, now = before.get("mode") in MID_REPORT, after.get("mode") in MID_REPORT
        if self.where.pin(part, school, was_mid_report=was, mid_report=now):
            await self.save(turn_context, SCHOOL_PART, part)

    async def _email(self, turn_context: TurnContext) -> str | None:
        """The sender's e-mail address from Teams (only asked when a profile lists e-mail
        domains and the sender is not otherwise known). Never logged."""
        try:
            member = await TeamsInfo.get_member(
                turn_context, turn_context.activity.from_property.id
            )
        except Exception as exc:  # not found, or Teams unavailable: ask instead
            logger.warning("member look-up failed (%s)", type(exc).__name__)
            return None
        return getattr(member, "email", None) or getattr(member, "user_principal_name", None)


def _tenant_id(activity: Activity) -> str | None:
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = channel_data.get("tenant") if isinstance(channel_data.get("tenant"), dict) else {}
    conversation = activity.conversation
    return tenant.get("id") or (conversation.tenant_id if conversation else None)
