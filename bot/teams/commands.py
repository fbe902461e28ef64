"""The commands answered before the dialog session runs: from the store, with the person's
place in a report untouched.

In a 1:1 chat, checked in this order (`Commands.answer`): the record as a file (`record
<ref>`, `record`, `transfer`; its consent card's accept and decline come back here too),
`child NAME` (the chronology, DSL team only), then `my reports` and `open concerns`; once the
turn's school is known, the same words again and reconsidering a report
(`Commands.answer_in_school`). The order matters: each recogniser leaves a report in
progress its words, and "child told me ..." is the start of a report, not a look-up.

Typed in a team (`Commands.continue_privately`): answered in the person's 1:1 chat, the
channel told only that - never a detail of any concern in the channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes, Attachment, ChannelAccount

from bot.errors import DeliveryError, DeliveryRefused
from bot.records.requests import RecordRequests, record_command
from bot.services.alerts import AlertService
from bot.services.child_lookup import child_query, child_replies
from bot.services.reconsider import RECONSIDER, Reconsideration
from bot.services.reports import MY_REPORTS, OPEN_CONCERNS, ReportsView, report_command
from bot.services.sends import CARD
from bot.services.timing import MID_REPORT
from bot.store import CARDS_LANE, Store
from bot.teams.cards import answered_card, card_summary, is_live
from bot.teams.files import UploadFailed, consent_activity, file_info_activity, upload
from bot.teams.private import MOVED_TO_CHAT, NO_PRIVATE_CHAT, send_privately
from bot.teams.replies import group_activity, reply_groups
from bot.teams.turn_state import OPEN_CARD, TurnState
from dialogs.session import Session
from flows.concern import Reporter
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile

logger = logging.getLogger(__name__)


class Commands:
    """Recognises a command and answers it; the dialog session never sees it."""

    def __init__(
        self,
        *,
        schools: SchoolDirectory,
        store: Store,
        alerts: AlertService,
        clock: Callable[[], datetime],
        records: RecordRequests | None,
        state: TurnState,
    ) -> None:
        self.schools = schools
        self.store = store
        self.alerts = alerts
        self.clock = clock
        self.records = records  # the DSL's record as a file (record <ref>, transfer)
        self.state = state

    async def answer(
        self,
        turn_context: TurnContext,
        reporter: Reporter,
        state: dict[str, Any],
        value: dict | None,
    ) -> bool:
        """Before the turn's school is known. True: answered (the session is untouched)."""
        activity = turn_context.activity
        ask = record_command(activity.text, value, state.get("mode")) if self.records else None
        if ask is not None:  # the session (their place in a report) is untouched
            await self._offer_record(turn_context, ask, reporter.aad_object_id)
            return True
        chronology = self.alerts.chronology
        entitled = chronology.may_look_up(reporter.aad_object_id)
        child = child_query(activity.text, value, state.get("mode"), entitled)
        if child is not None:  # `child NAME`: answered from the store, the session untouched
            for reply in await child_replies(chronology, reporter.aad_object_id, child):
                await turn_context.send_activity(reply)
            return True
        command = report_command(activity.text, value, state.get("mode"))
        in_flow = state.get("mode") in MID_REPORT
        if command and command != RECONSIDER:  # across every school they may see
            await self._reply(turn_context, command, reporter, value, in_flow, None)
            return True
        return False

    async def answer_in_school(
        self,
        turn_context: TurnContext,
        reporter: Reporter,
        state: dict[str, Any],
        school: SchoolProfile,
        text: str,
        value: dict | None,
    ) -> bool:
        """In the turn's school: what they wrote before being asked which school may itself
        be a command. True: answered (the session is untouched)."""
        command = report_command(text, value, state.get("mode"))
        if command:
            in_flow = state.get("mode") in MID_REPORT
            await self._reply(turn_context, command, reporter, value, in_flow, school)
            return True
        return False

    async def _reply(
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

    # -- a command typed in a team -------------------------------------------------------

    async def continue_privately(self, turn_context: TurnContext, command: str) -> None:
        """A team-scope command: answered in the person's 1:1 chat (opened if need be), the
        channel told only that - never a detail of any concern in the channel."""
        activity = turn_context.activity
        sender = activity.from_property or ChannelAccount()
        reporter = Reporter(
            name=sender.name or "Staff member", aad_object_id=sender.aad_object_id or sender.id
        )
        state = await self.state.read(turn_context, "session")
        result = None
        if command in {MY_REPORTS, OPEN_CONCERNS}:
            view = ReportsView(self.schools, self.store, self.clock)
            in_flow = state.get("mode") in MID_REPORT
            outgoing = await view.replies(command, reporter, in_flow=in_flow)
        else:
            # In their own school; or, not known yet, the question goes to the chat instead.
            school, asked = await self.state.school_of_sender(turn_context, state, command)
            if school is None:
                outgoing = [asked]
            else:
                session = Session(school, reporter, state)
                result = session.handle(command, None, now=self.clock())
                outgoing = [group_activity(group) for group in reply_groups(result.replies)]
                if result.state != state:
                    await self.state.save(turn_context, "session", result.state)
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
        old = await self.state.read(turn_context, OPEN_CARD)
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
                await self.state.save(turn_context, OPEN_CARD, live or old)

    # -- the record as a file (file consent cards, 1:1 only) ------------------------------

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

    async def record_accepted(self, turn_context: TurnContext, response: Any) -> None:
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

    async def record_declined(self, turn_context: TurnContext, response: Any) -> None:
        activity = turn_context.activity
        aad = activity.from_property.aad_object_id if activity.from_property else None
        context = response.context if isinstance(response.context, dict) else {}
        if self.records is None:
            return
        with self.store.immediate():
            text = await self.records.declined(context, aad)
        await turn_context.send_activity(text)


def _personal(activity: Activity) -> bool:
    return bool(activity.conversation and activity.conversation.conversation_type == "personal")
