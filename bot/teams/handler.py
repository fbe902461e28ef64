"""The Teams activity handler: the plumbing of a turn.

One person's turns run one after another; the person's state (turn_state.py) is read with
the activity's seen-check and written in one transaction with the turn's effects; then the
replies are sent and the card that asked is replaced. Each message goes, in a fixed order, to
an alert card's actions (alert_actions.py), a command (commands.py) or the dialog session.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botbuilder.core import InvokeResponse, TurnContext, UserState
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import Activity, ActivityTypes, Attachment, ChannelAccount

from bot.errors import ConflictError
from bot.records.requests import RecordRequests
from bot.services.alerts import AlertService
from bot.services.sends import CARD
from bot.services.timekeeper import Timekeeper
from bot.store import CARDS_LANE, DuplicateActivity, Store
from bot.teams.alert_actions import AlertActions
from bot.teams.cards import answered_card, card_summary, is_live, message_card, reply_summary
from bot.teams.commands import Commands
from bot.teams.lanes import TurnLanes, person_key
from bot.teams.private import team_command
from bot.teams.replies import group_activity, reply_groups
from bot.teams.schools import SchoolResolver
from bot.teams.turn_state import KEY, OPEN_CARD, SCHOOL, UNIT, TurnState, part_key, state_key
from dialogs.replies import TurnResult
from dialogs.session import Session
from flows.concern import Reporter
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile

logger = logging.getLogger(__name__)

# Turns whose replies are sent through the durable outbox (see _apply).
DURABLE_REPLY_EVENTS = frozenset({"concern_raised", "concern_final"})

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
        # Every school served; each turn runs in the reporter's own school (TurnState.school).
        self.schools = SchoolDirectory.of(school)
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
        self.state = TurnState(store, self.schools, SchoolResolver(self.schools, clock))
        self.commands = Commands(
            schools=self.schools,
            store=store,
            alerts=alerts,
            clock=clock,
            records=records,  # the DSL's record as a file (record <ref>, transfer)
            state=self.state,
        )
        self.alert_actions = AlertActions(alerts, store)

    async def on_turn(self, turn_context: TurnContext) -> None:
        # One person's turns run one after another: a turn writes which card is live after
        # its replies are sent, and a quick next answer must read that, not the one before.
        key = state_key(self.user_state, turn_context)
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
            keys = [key, part_key(key, OPEN_CARD)] if key else []
            async with self.store.turn(activity.id, conversation_id, keys) as unit:
                if unit.duplicate:
                    # Teams re-delivers when slow: an answer must never be applied twice.
                    logger.info("duplicate activity ignored (activity_id=%s)", activity.id)
                    return
                turn_context.turn_state[UNIT] = unit
                turn_context.turn_state[KEY] = key
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
        """Keep where to reach this person (1:1) or channel, refreshed from every activity.

        Without the activity's own id: nothing later replies "to" it (proactive sends never
        do, bot/teams/connector.py), and with it every turn rewrote - and re-sealed - rows
        that had not changed."""
        activity = turn_context.activity
        ref = TurnContext.get_conversation_reference(activity)
        ref.activity_id = None
        reference = ref.serialize()  # once, for every row below
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
                return await self.alert_actions.submit(turn_context, value)
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
                return await self.commands.continue_privately(turn_context, command)
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
        state = await self.state.read(turn_context, "session")
        # A record, `child NAME`, my reports...: answered from the store (commands.py).
        if await self.commands.answer(turn_context, reporter, state, value):
            return None
        found = await self.state.school(turn_context, state, activity.text or "", value)
        if found is None:
            return None  # asked which school (or answered `my school`); nothing is lost
        school, text, value = found
        if await self.commands.answer_in_school(turn_context, reporter, state, school, text, value):
            return None
        before = copy.deepcopy(state)
        session = Session(school, reporter, state)
        # Typed text is passed on exactly as sent: a child's words are never altered.
        result = session.handle(text, value, now=self.clock())
        await self.state.pin_school(turn_context, school, before, result.state)
        await self._apply(turn_context, result, reporter, before)
        return None

    # -- the record as a file (its file consent card, answered in commands.py) ------------

    async def on_teams_file_consent_accept(self, turn_context: TurnContext, response: Any) -> None:
        await self.commands.record_accepted(turn_context, response)

    async def on_teams_file_consent_decline(self, turn_context: TurnContext, response: Any) -> None:
        await self.commands.record_declined(turn_context, response)

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
        key = turn_context.turn_state.get(KEY)
        if result.state != before:
            await self.state.save(turn_context, "session", result.state)
        if self.timekeeper is not None and key:
            school = turn_context.turn_state.get(SCHOOL)
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
                [group_activity(group) for group in reply_groups(result.replies)],
            )
        unit = turn_context.turn_state.get(UNIT)
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
        open_card = await self.state.read(turn_context, OPEN_CARD)
        lines = [*map(tuple, open_card.get("lines", [])), *result.answered]
        groups = reply_groups(result.replies)
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
            sent = await turn_context.send_activity(group_activity(group))
            if is_live(group[-1]) and sent is not None and sent.id:
                still_open = {"id": sent.id, "lines": []}
        if still_open != open_card:
            # Which card is live is only known once it is sent, so it is written after the
            # turn's transaction, on the cards lane: no fsync, as losing it (power cut) only
            # leaves an old card pressable - nothing anyone was told was sent.
            try:
                with self.store.in_lane(CARDS_LANE):
                    await self.state.save(turn_context, OPEN_CARD, still_open)
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
            return await self.alert_actions.invoke(turn_context)
        return await super().on_invoke_activity(turn_context)

    # -- installation --------------------------------------------------------------------

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.conversation and activity.conversation.conversation_type == "personal":
            # A fresh install starts an empty chat: no earlier card is left to replace.
            if await self.state.read(turn_context, "open_card"):
                await self.state.save(turn_context, "open_card", {})
            await turn_context.send_activity(
                "Hello. I help you follow the school's safeguarding procedures and get a "
                "concern to the DSL fast. Tell me what happened, or type 'help'. "
                f"If a child is in immediate danger, phone "
                f"{self.schools.schools[0].contact('emergency').number} now."
            )
