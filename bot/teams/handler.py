"""The Teams activity handler: 1:1 conversation turns, alert card actions, install events."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botbuilder.core import InvokeResponse, MessageFactory, TurnContext, UserState
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.schema import Activity, ActivityTypes, Attachment, ChannelAccount

from bot.errors import ConflictError, DeliveryError, DeliveryRefused
from bot.records.requests import RecordRequests, record_command
from bot.services.alerts import CARD, AlertService
from bot.services.child_lookup import child_query, child_replies
from bot.services.reconsider import RECONSIDER, Reconsideration
from bot.services.reports import MY_REPORTS, OPEN_CONCERNS, ReportsView, report_command
from bot.services.timekeeper import Timekeeper
from bot.services.timing import MID_REPORT
from bot.store import CARDS_LANE, DuplicateActivity, Store
from bot.teams.cards import (
    answered_card,
    card_summary,
    is_live,
    message_card,
    reply_card,
    reply_summary,
)
from bot.teams.files import UploadFailed, consent_activity, file_info_activity, upload
from bot.teams.lanes import TurnLanes, person_key
from bot.teams.private import MOVED_TO_CHAT, NO_PRIVATE_CHAT, send_privately, team_command
from bot.teams.schools import PART as SCHOOL_PART
from bot.teams.schools import SchoolResolver, Turn
from dialogs.replies import Reply, TurnResult
from dialogs.session import Session
from dialogs.text import reply_text
from flows.concern import Reporter
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile

logger = logging.getLogger(__name__)

# Turns whose replies are sent through the durable outbox (see _apply).
DURABLE_REPLY_EVENTS = frozenset({"concern_raised", "concern_final"})

_UNIT = "safeguarding.turn_unit"
_KEY = "safeguarding.state_key"
_ITEM = "safeguarding.state_items"
_SCHOOL = "safeguarding.school"
OPEN_CARD = "open_card"


def _part_key(key: str | None, part: str) -> str | None:
    """The session (and the person's school) live at the person's key; the open card in a
    row of its own beside it, written after the replies, so a quick next message never
    conflicts with it."""
    if not key:
        return None
    return key if part in ("session", SCHOOL_PART) else f"{key}/{part}"


IMAGE_WARNING = (
    "Please do not send images or files about a child here - I have not opened or kept it. "
    "If it shows a child, do not forward it: tell the DSL you have it."
)
CHANNEL_REPLY = (
    "Please message me in a private (1:1) chat to report a concern - never post details of a "
    "concern in a channel."
)


class SafeguardingBot(TeamsActivityHandler):
    """Thin: loads the session, hands plain inputs to dialogs, writes, then replies."""

    def __init__(
        self,
        *,
        school: SchoolDirectory | SchoolProfile,
        store: Store,
        alerts: AlertService,
        clock: Callable[[], datetime],
        timekeeper: Timekeeper | None = None,
        records: RecordRequests | None = None,
    ) -> None:
        # Every school served; each turn runs in the reporter's own school (see _school).
        self.schools = SchoolDirectory.of(school)
        self.where = SchoolResolver(self.schools, clock)
        self.records = records  # the DSL's record as a file (record <ref>, transfer)
        self.timekeeper = timekeeper
        self.store = store
        self.alerts = alerts
        self.clock = clock
        # Only for the storage key's format ("msteams/users/<id>"). The person's state
        # ({"session", "open_card"}) is read with the turn's seen-check and written with its
        # unit of work, without the SDK's per-save state hashing.
        self.user_state = UserState(store)
        # The turns lane (given to the app): learns here who can send with their next turn.
        self.lanes = TurnLanes()

    async def on_turn(self, turn_context: TurnContext) -> None:
        # One person's turns run one after another: a turn writes which card is live after
        # its replies are sent, and a quick next answer must read that, not the one before.
        key = _state_key(self.user_state, turn_context)
        if not key:
            await self._on_turn(turn_context, key)
            return
        # In this process, and across replicas sharing a database (Store.person_lock).
        async with self.store.person_lock(key):
            await self._on_turn(turn_context, key)

    async def _on_turn(self, turn_context: TurnContext, key: str | None) -> None:
        activity = turn_context.activity
        started = time.perf_counter()
        conversation_id = activity.conversation.id if activity.conversation else ""
        try:
            # One read (seen? the person's state) now; one transaction - the turn's effects
            # with the activity's seen-mark - before anyone is told anything (see _apply).
            keys = [key, _part_key(key, OPEN_CARD)] if key else []
            async with self.store.turn(activity.id, conversation_id, keys) as unit:
                if unit.duplicate:
                    # Teams re-delivers when slow: an answer must never be applied twice.
                    logger.info("duplicate activity ignored (activity_id=%s)", activity.id)
                    return
                turn_context.turn_state[_UNIT] = unit
                turn_context.turn_state[_KEY] = key
                await self._remember(turn_context)
                await super().on_turn(turn_context)
        except DuplicateActivity:
            # A concurrent delivery of the same activity (or the same "Send" pressed twice at
            # once) committed first: this turn wrote nothing and says nothing.
            logger.info("concurrent duplicate dropped (activity_id=%s)", activity.id)
            return
        logger.info(
            "turn type=%s activity_id=%s took=%.3fs",
            activity.type,
            activity.id,
            time.perf_counter() - started,
        )

    async def _remember(self, turn_context: TurnContext) -> None:
        """Keep where to reach this person (1:1) or channel, refreshed from every activity."""
        activity = turn_context.activity
        reference = TurnContext.get_conversation_reference(activity)
        conversation_type = (
            activity.conversation.conversation_type if activity.conversation else None
        )
        if activity.service_url:
            await self.store.save_conversation_ref("service", "latest", reference)
        sender = activity.from_property
        if conversation_type == "personal" and sender and sender.aad_object_id:
            await self.store.save_conversation_ref("user", sender.aad_object_id, reference)
        channel = (activity.channel_data or {}).get("channel") if activity.channel_data else None
        if channel and channel.get("id"):
            await self.store.save_conversation_ref("channel", channel["id"], reference)

    # -- messages ------------------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        value = activity.value if isinstance(activity.value, dict) else None
        if value and value.get("verb") and value.get("concern_id"):
            with self.store.immediate():  # acting reads back what it wrote (the card)
                return await self._card_action_by_submit(turn_context, value)
        if value and value.get("action") in {"add_police_reference", "written_record_done"}:
            with self.store.immediate():
                reply = await self.alerts.reporter_update(
                    str(value.get("concern_id", "")),
                    (activity.from_property or ChannelAccount()).aad_object_id,
                    value["action"],
                    str(value.get("police_reference") or ""),
                )
            await turn_context.send_activity(reply)
            return None
        if activity.conversation and activity.conversation.conversation_type in {
            "channel",
            "groupChat",
        }:
            command = team_command(activity.text)
            if command:  # what the manifest offers in a team: carried on in the 1:1 chat
                return await self._continue_privately(turn_context, command)
            await turn_context.send_activity(CHANNEL_REPLY)
            return None
        files = [a for a in activity.attachments or [] if a.content_type != "text/html"]
        if files:
            # Never fetched, never stored: only the fact that something was attached is logged.
            logger.warning("attachment refused (activity_id=%s count=%d)", activity.id, len(files))
            await turn_context.send_activity(IMAGE_WARNING)
            if not (activity.text or "").strip() and not value:
                return None
        sender = activity.from_property or ChannelAccount()
        reporter = Reporter(
            name=sender.name or "Staff member", aad_object_id=sender.aad_object_id or sender.id
        )
        state = await self._state(turn_context, "session")
        ask = record_command(activity.text, value, state.get("mode")) if self.records else None
        if ask is not None:  # the session (their place in a report) is untouched
            await self._offer_record(turn_context, ask, reporter.aad_object_id)
            return None
        chronology = self.alerts.chronology
        entitled = chronology.may_look_up(reporter.aad_object_id)
        child = child_query(activity.text, value, state.get("mode"), entitled)
        if child is not None:  # `child NAME`: answered from the store, the session untouched
            for reply in await child_replies(chronology, reporter.aad_object_id, child):
                await turn_context.send_activity(reply)
            return None
        command = report_command(activity.text, value, state.get("mode"))
        in_flow = state.get("mode") in MID_REPORT
        if command and command != RECONSIDER:  # across every school they may see
            return await self._command(turn_context, command, reporter, value, in_flow, None)
        found = await self._school(turn_context, state, activity.text or "", value)
        if found is None:
            return None  # asked which school (or answered `my school`); nothing is lost
        school, text, value = found
        # What they wrote before being asked which school may itself be a command.
        command = report_command(text, value, state.get("mode"))
        if command:
            return await self._command(turn_context, command, reporter, value, in_flow, school)
        before = copy.deepcopy(state)
        session = Session(school, reporter, state)
        # Typed text is passed on exactly as sent: a child's words are never altered.
        result = session.handle(text, value, now=self.clock())
        await self._pin_school(turn_context, school, before, result.state)
        await self._apply(turn_context, result, reporter, before)
        return None

    async def _continue_privately(self, turn_context: TurnContext, command: str) -> None:
        """A team-scope command: answered in the person's 1:1 chat (opened if need be), the
        channel told only that - never a detail of any concern in the channel."""
        activity = turn_context.activity
        sender = activity.from_property or ChannelAccount()
        reporter = Reporter(
            name=sender.name or "Staff member", aad_object_id=sender.aad_object_id or sender.id
        )
        state = await self._state(turn_context, "session")
        result = None
        if command in {MY_REPORTS, OPEN_CONCERNS}:
            view = ReportsView(self.schools, self.store, self.clock)
            in_flow = state.get("mode") in MID_REPORT
            outgoing = await view.replies(command, reporter, in_flow=in_flow)
        else:
            # In their own school; or, not known yet, the question goes to the chat instead.
            school, asked = await self._school_of_sender(turn_context, state, command)
            if school is None:
                outgoing = [asked]
            else:
                session = Session(school, reporter, state)
                result = session.handle(command, None, now=self.clock())
                outgoing = [_group_activity(group) for group in _groups(result.replies)]
                if result.state != state:
                    await self._save_state(turn_context, "session", result.state)
        try:
            reference, ids = await send_privately(self.alerts.messenger, activity, outgoing)
        except (DeliveryError, DeliveryRefused) as exc:
            # Teams would not open the chat (e.g. the app is not installed for them yet):
            # say how to reach the bot, still without a word about any concern.
            logger.warning(
                "1:1 chat not opened (%s, activity_id=%s)", type(exc).__name__, activity.id
            )
            emergency = self.schools.schools[0].contact("emergency").number
            await turn_context.send_activity(NO_PRIVATE_CHAT.format(emergency=emergency))
            return
        await turn_context.send_activity(MOVED_TO_CHAT)
        if result is None:
            return
        # The card now waiting in the chat is the live one; the one before is closed.
        old = await self._state(turn_context, OPEN_CARD)
        waits = bool(result.replies) and is_live(result.replies[-1])
        live = {"id": ids[-1], "lines": []} if waits else {}
        if old.get("id") and live:
            answered = answered_card(old["lines"])
            closed = Activity(
                type=ActivityTypes.message,
                summary=card_summary(answered),
                attachments=[Attachment(content_type=CARD, content=answered)],
            )
            try:
                await self.alerts.messenger.update_activity(reference, old["id"], closed)
            except Exception as exc:  # only untidy: an old card left pressable
                logger.warning("card update failed (activity_id=%s error=%s)", old["id"], exc)
        if live or old:
            with self.store.in_lane(CARDS_LANE):
                await self._save_state(turn_context, OPEN_CARD, live or old)

    async def _command(
        self,
        turn_context: TurnContext,
        command: str,
        reporter: Reporter,
        value: dict | None,
        in_flow: bool,
        school: SchoolProfile | None,
    ) -> None:
        """Answered from the store; the session (their place in a flow) is untouched."""
        if command == RECONSIDER and school is not None:
            replies = await Reconsideration(school, self.store, self.alerts, self.clock).replies(
                reporter, value, in_flow=in_flow
            )
        else:
            view = ReportsView(self.schools, self.store, self.clock)
            replies = await view.replies(command, reporter, in_flow=in_flow)
        for reply in replies:
            await turn_context.send_activity(reply)

    async def _school(
        self, turn_context: TurnContext, state: dict[str, Any], text: str, value: dict | None
    ) -> tuple[SchoolProfile, str, dict | None] | None:
        """The reporter's school for this turn, and the message to run in it (what they wrote
        before being asked, once they answer). None: a question or `my school` was answered."""
        turn = await self._school_turn(turn_context, state, text, value)
        if turn.reply is not None:
            await turn_context.send_activity(turn.reply)
            return None
        return turn.school, turn.text, turn.value

    async def _school_of_sender(
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
        part = copy.deepcopy(await self._state(turn_context, SCHOOL_PART))
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
            await self._save_state(turn_context, SCHOOL_PART, part)
            # Where their reports go changed: audited (ids only), for a DSL asking why.
            for key, scope in (("id", "person"), ("report", "report")):
                if part.get(key) and part.get(key) != kept.get(key):
                    detail = {"school": part[key], "for": scope}
                    await self.store.audit(aad, "school_set", None, detail)
        if turn.school is not None:
            turn_context.turn_state[_SCHOOL] = turn.school
        return turn

    async def _pin_school(
        self,
        turn_context: TurnContext,
        school: SchoolProfile,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> None:
        """A report keeps the school it was started at until it ends."""
        if self.schools.single is not None:
            return
        part = copy.deepcopy(await self._state(turn_context, SCHOOL_PART))
        was, now = before.get("mode") in MID_REPORT, after.get("mode") in MID_REPORT
        if self.where.pin(part, school, was_mid_report=was, mid_report=now):
            await self._save_state(turn_context, SCHOOL_PART, part)

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

    # -- the record as a file (file consent cards, 1:1 only) --------------------------------

    async def _offer_record(self, turn_context: TurnContext, ask: Any, aad: str | None) -> None:
        assert self.records is not None
        with self.store.immediate():
            offer = await self.records.offer(ask, aad)
        if isinstance(offer, str):
            await turn_context.send_activity(offer)
            return
        if isinstance(offer, dict):  # `record` alone: the list, with a button for each
            await turn_context.send_activity(
                Activity(
                    type=ActivityTypes.message,
                    attachments=[Attachment(content_type=CARD, content=offer)],
                )
            )
            return
        made = offer.file
        await turn_context.send_activity(
            consent_activity(made.name, len(made.data), offer.description, offer.context)
        )

    async def on_teams_file_consent_accept(self, turn_context: TurnContext, response: Any) -> None:
        activity = turn_context.activity
        aad = activity.from_property.aad_object_id if activity.from_property else None
        context = response.context if isinstance(response.context, dict) else {}
        if self.records is None or not _personal(activity):
            await turn_context.send_activity("Files are sent only in a 1:1 chat with me.")
            return
        with self.store.immediate():
            made = await self.records.accepted(context, aad)
        if isinstance(made, str):
            await turn_context.send_activity(made)
            return
        info = response.upload_info
        try:
            await upload(info.upload_url if info else "", made.data)
        except UploadFailed as exc:
            logger.warning("record upload failed (%s, activity_id=%s)", exc, activity.id)
            with self.store.immediate():
                await self.store.audit(
                    aad, "record_upload_failed", made.concern_ids[0], {"error": str(exc)}
                )
            await turn_context.send_activity(self.records.failed(context))
            return
        with self.store.immediate():
            text = await self.records.delivered(context, aad or "", made)
        await turn_context.send_activity(file_info_activity(info, text))

    async def on_teams_file_consent_decline(self, turn_context: TurnContext, response: Any) -> None:
        activity = turn_context.activity
        aad = activity.from_property.aad_object_id if activity.from_property else None
        context = response.context if isinstance(response.context, dict) else {}
        if self.records is None:
            return
        with self.store.immediate():
            text = await self.records.declined(context, aad)
        await turn_context.send_activity(text)

    async def _state(self, turn_context: TurnContext, part: str) -> dict[str, Any]:
        """One part of the person's stored state (read with the turn's seen-check): the
        session, or the open card (its own row: see _send_replies)."""
        key = _part_key(turn_context.turn_state.get(_KEY), part)
        items = turn_context.turn_state.setdefault(_ITEM, {})
        if key and key not in items:
            items[key] = (await self.store.read([key])).get(key, {})
        return (items.get(key) or {}).get(part) or {}

    async def _save_state(self, turn_context: TurnContext, part: str, value: Any) -> None:
        key = _part_key(turn_context.turn_state.get(_KEY), part)
        if not key:
            return
        items = turn_context.turn_state.setdefault(_ITEM, {})
        item = {**(items.get(key) or {}), part: value}
        if part == OPEN_CARD:
            item["e_tag"] = "*"  # bookkeeping: the latest wins, never a conflict for the turn
        await self.store.write({key: item})  # sets the new etag in `item`
        items[key] = item

    async def _apply(
        self,
        turn_context: TurnContext,
        result: TurnResult,
        reporter: Reporter,
        before: dict[str, Any],
    ) -> None:
        # The concern is written (with its outbox) before the staff member is told anything:
        # everything up to the commit is ONE transaction with the activity's seen-mark.
        # A concurrent duplicate (the same "Send" pressed twice at once) fails that commit
        # and changes and says nothing (on_turn); the other turn keeps the session.
        for event in result.events:
            if not await self.alerts.on_event(event, turn_context.activity.service_url):
                # The store decided: another turn already raised/sent this report.
                raise DuplicateActivity("report already raised by a concurrent turn")
        key = turn_context.turn_state.get(_KEY)
        if result.state != before:
            await self._save_state(turn_context, "session", result.state)
        if self.timekeeper is not None and key:
            school = turn_context.turn_state.get(_SCHOOL)
            await self.timekeeper.on_turn(key, reporter, result.state, school)
        durable: list[str] = []
        if result.replies and any(e.kind in DURABLE_REPLY_EVENTS for e in result.events):
            # The reply to "Send" (or to an urgent report being raised) is in the outbox like
            # every other message, queued in this turn's transaction. The turn still sends it
            # at once (in place of the pressed card); if Teams fails that, the outbox sends
            # it, with retries - never lost behind the generic apology.
            durable = await self.alerts.enqueue_replies(
                result.events[0].concern.id,
                reporter.aad_object_id,
                [_group_activity(group) for group in _groups(result.replies)],
            )
        unit = turn_context.turn_state.get(_UNIT)
        if unit is not None:
            await unit.commit()
        if result.events:
            self.alerts.wakeup.set()  # committed: the outbox can see it now
        sender = turn_context.activity.from_property
        self.lanes.can_send(
            person_key(turn_context.activity.channel_id, sender.id if sender else None),
            result.state.get("mode") == "summary",
        )
        if not durable:
            await self._send_replies(turn_context, result)
            return
        try:
            await self._send_replies(turn_context, result)
        except Exception as exc:
            logger.warning(
                "reply not sent in the turn (%s, activity_id=%s): the outbox sends it",
                type(exc).__name__,
                turn_context.activity.id,
            )
            await self.alerts.deliver_now(durable)
        else:
            # Bookkeeping after the reply, like the open card: no fsync (a power cut could
            # only make the outbox send "saved" once more, never lose anything).
            with self.store.in_lane(CARDS_LANE):
                await self.store.mark_sent_in_turn(durable)

    async def _send_replies(self, turn_context: TurnContext, result: TurnResult) -> None:
        """Fewer, denser messages: notices ride in the card of the question that follows.

        The card that asked the question just answered never stays live: pressed on, it
        is replaced in place by what was answered and the next question (so the chat does
        not grow); answered by typing, it becomes read-only lines of what was answered.
        """
        activity = turn_context.activity
        open_card = await self._state(turn_context, OPEN_CARD)
        lines = [*map(tuple, open_card.get("lines", [])), *result.answered]
        groups = _groups(result.replies)
        pressed = activity.reply_to_id if isinstance(activity.value, dict) else None
        still_open: dict[str, Any] = {}
        if open_card.get("id") and pressed == open_card["id"] and groups:
            first = groups.pop(0)
            card = message_card(first, lines)
            if await self._replace(turn_context, pressed, card, reply_summary(first)):
                if is_live(first[-1]):
                    still_open = {"id": pressed, "lines": lines}
            else:
                groups.insert(0, first)
        elif open_card.get("id"):
            await self._replace(turn_context, open_card["id"], answered_card(lines))
        for group in groups:
            sent = await turn_context.send_activity(_group_activity(group))
            if is_live(group[-1]) and sent is not None and sent.id:
                still_open = {"id": sent.id, "lines": []}
        if still_open != open_card:
            # Which card is live is only known once it is sent, so it is written after the
            # turn's transaction, on the cards lane: no fsync, as losing it (power cut) only
            # leaves an old card pressable - nothing anyone was told was sent.
            try:
                with self.store.in_lane(CARDS_LANE):
                    await self._save_state(turn_context, OPEN_CARD, still_open)
            except ConflictError:
                # Another turn of this person's (e.g. a second "Send" a moment later) wrote
                # first: the answers are saved and sent; only which card is live is stale.
                logger.info("open card not recorded: state changed (activity_id=%s)", activity.id)

    async def _replace(
        self, turn_context: TurnContext, activity_id: str, card: dict, summary: str = ""
    ) -> bool:
        updated = Activity(
            id=activity_id,
            type=ActivityTypes.message,
            summary=summary or card_summary(card),
            attachments=[Attachment(content_type=CARD, content=card)],
        )
        try:
            await turn_context.update_activity(updated)
        except Exception as exc:  # the answer is saved; an old card left live is only untidy
            logger.warning("card update failed (activity_id=%s error=%s)", activity_id, exc)
            return False
        return True

    # -- alert card actions --------------------------------------------------------------

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        if turn_context.activity.name == "adaptiveCard/action":
            data = turn_context.activity.value or {}
            action = data.get("action") or {}
            concern_id = str((action.get("data") or {}).get("concern_id", ""))
            actor = turn_context.activity.from_property.aad_object_id
            if action.get("verb") == "refresh":
                # Each person's own view (Universal Actions): who has it, their buttons.
                activity = turn_context.activity
                card = await self.alerts.view(
                    concern_id,
                    actor,
                    activity.reply_to_id,
                    activity.conversation.id if activity.conversation else None,
                )
                if card is None:
                    return _invoke_message("That alert is not known.")
                return _invoke_card(card)
            with self.store.immediate():  # acting reads back what it wrote (the card)
                result = await self.alerts.act(
                    concern_id,
                    action.get("verb") or "",
                    actor,
                    values=action.get("data") or {},
                    seen_as=_card_seen_as(turn_context.activity),
                )
            if not result.allowed or result.card is None or result.concern is None:
                # Shown only to the person who pressed; the card stays as it is for everyone.
                return _invoke_message(result.message)
            if action.get("verb") == "decision_form":  # the decisions, for the presser only
                return _invoke_card(result.card)
            # The presser sees their own view at once; everyone else's refreshes from the
            # shared card the outbox updates.
            return _invoke_card(await self.alerts.render(result.concern, viewer=actor))
        return await super().on_invoke_activity(turn_context)

    async def _card_action_by_submit(self, turn_context: TurnContext, value: dict) -> None:
        """Action.Submit fallback (older clients): act, then update the card in place."""
        result = await self.alerts.act(
            str(value["concern_id"]),
            str(value["verb"]),
            turn_context.activity.from_property.aad_object_id,
            values=value,
            seen_as=_card_seen_as(turn_context.activity),
        )
        if not result.allowed:
            # Says only who may act; nothing about the concern.
            await turn_context.send_activity(result.message)
            return
        if result.card and value.get("verb") == "decision_form":
            # Older clients: the decisions come as a card of their own, not over the alert.
            await turn_context.send_activity(
                Activity(
                    type=ActivityTypes.message,
                    attachments=[Attachment(content_type=CARD, content=result.card)],
                )
            )
            return
        if result.card and turn_context.activity.reply_to_id:
            updated = Activity(
                id=turn_context.activity.reply_to_id,
                type=ActivityTypes.message,
                summary=card_summary(result.card),
                attachments=[Attachment(content_type=CARD, content=result.card)],
            )
            await turn_context.update_activity(updated)

    # -- installation --------------------------------------------------------------------

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.conversation and activity.conversation.conversation_type == "personal":
            # A fresh install starts an empty chat: no earlier card is left to replace.
            if await self._state(turn_context, "open_card"):
                await self._save_state(turn_context, "open_card", {})
            await turn_context.send_activity(
                "Hello. I help you follow the school's safeguarding procedures and get a "
                "concern to the DSL fast. Tell me what happened, or type 'help'. "
                f"If a child is in immediate danger, phone "
                f"{self.schools.schools[0].contact('emergency').number} now."
            )


def _tenant_id(activity: Activity) -> str | None:
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = channel_data.get("tenant") if isinstance(channel_data.get("tenant"), dict) else {}
    conversation = activity.conversation
    return tenant.get("id") or (conversation.tenant_id if conversation else None)


def _personal(activity: Activity) -> bool:
    return bool(activity.conversation and activity.conversation.conversation_type == "personal")


def _state_key(user_state: UserState, turn_context: TurnContext) -> str | None:
    """Where this person's state is stored (the SDK's UserState key), if they are known."""
    activity = turn_context.activity
    if not (activity.channel_id and activity.from_property and activity.from_property.id):
        return None
    return user_state.get_storage_key(turn_context)


def _groups(replies: list[Reply]) -> list[list[Reply]]:
    """Each card that waits for an answer takes the notices before it; the rest go together."""
    groups: list[list[Reply]] = []
    pending: list[Reply] = []
    for reply in replies:
        pending.append(reply)
        if is_live(reply):
            groups.append(pending)
            pending = []
    if pending:
        groups.append(pending)
    return groups


def _group_activity(group: list[Reply]) -> Activity:
    if len(group) == 1:
        card = reply_card(group[0])
        if card is None:
            return MessageFactory.text(reply_text(group[0]))
    else:
        card = message_card(group)
    return Activity(
        type=ActivityTypes.message,
        summary=reply_summary(group),  # the chat list and notification line, not "Sent a card"
        attachments=[Attachment(content_type=CARD, content=card)],
    )


def _card_seen_as(activity: Activity) -> tuple[dict[str, Any], str] | None:
    """Which copy of an alert was pressed: a crash can leave a copy the store never heard
    of; acting on it teaches the concern about it, so every later update reaches it too."""
    if not activity.reply_to_id or not activity.conversation:
        return None
    reference = TurnContext.get_conversation_reference(activity).serialize()
    reference["activityId"] = activity.reply_to_id
    return reference, activity.reply_to_id


def _invoke_card(card: dict) -> InvokeResponse:
    return InvokeResponse(
        status=200,
        body={"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive", "value": card},
    )


def _invoke_message(message: str) -> InvokeResponse:
    return InvokeResponse(
        status=200,
        body={
            "statusCode": 200,
            "type": "application/vnd.microsoft.activity.message",
            "value": message,
        },
    )
