"""A press on an alert card: Universal Actions (an `adaptiveCard/action` invoke, answered
with the presser's own view of the card) and the Action.Submit fallback of older clients
(act, then update the card in place)."""

from __future__ import annotations

from typing import Any

from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.schema import Activity, ActivityTypes, Attachment

from bot.services.alerts import AlertService
from bot.services.sends import CARD
from bot.store import Store
from bot.teams.cards import card_summary


class AlertActions:
    """Acts on a concern for whoever pressed; the alert service decides who may."""

    def __init__(self, alerts: AlertService, store: Store) -> None:
        self.alerts = alerts
        self.store = store

    async def invoke(self, turn_context: TurnContext) -> InvokeResponse:
        """An `adaptiveCard/action` invoke: the card (or a message) for the presser only."""
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

    async def submit(self, turn_context: TurnContext, value: dict) -> None:
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
