"""Smoke test: the Agents Playground driver against a tiny echo bot defined here.

Needs the npm package (``npm ci`` at the repo root installs
@microsoft/m365agentsplayground) and ``node`` on PATH.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from botbuilder.core import ActivityHandler, CardFactory, MessageFactory, TurnContext
from botbuilder.core.invoke_response import InvokeResponse
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import AdaptiveCardInvokeResponse, ConversationParameters

from tests.acceptance.playground import (
    ALERTS_CHANNEL_ID,
    BOT_ID,
    ME,
    OTHER_USERS,
    TENANT_ID,
    Playground,
    _free_port,
)

if not Playground.is_installed():
    pytest.skip(
        "node_modules/@microsoft/m365agentsplayground is missing: run `npm ci` at the repo root",
        allow_module_level=True,
    )

DSL = OTHER_USERS[0]


class _NoAuthConfig:
    APP_ID = ""  # local dev: no Bot Framework auth, the playground sends no token
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


def _card(title: str, *, buttons: bool = True) -> dict[str, Any]:
    actions = []
    if buttons:
        actions = [
            {"type": "Action.Execute", "title": "Ack", "verb": "ack", "data": {"n": 1}},
            {"type": "Action.Submit", "title": "Yes", "data": {"answer": "yes"}},
        ]
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": title}],
        "actions": actions,
    }


class EchoBot(ActivityHandler):
    """echo / 'card' / Action.Submit / Action.Execute / 'alert' (proactive channel post)."""

    def __init__(self, adapter: CloudAdapter) -> None:
        self.adapter = adapter
        self.reporter_ref = None
        self.received: list[dict[str, Any]] = []

    async def on_turn(self, turn_context: TurnContext) -> None:
        self.received.append(turn_context.activity.serialize())
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.value:
            await turn_context.send_activity(f"submitted {json.dumps(activity.value)}")
            return
        text = (activity.text or "").strip()
        if text == "card":
            card = CardFactory.adaptive_card(_card("Question"))
            await turn_context.send_activity(MessageFactory.attachment(card))
        elif text == "alert":
            self.reporter_ref = TurnContext.get_conversation_reference(activity)
            await self._post_alert(activity.service_url)
            await turn_context.send_activity("alert raised")
        else:
            await turn_context.send_activity(f"echo: {text}")

    async def _post_alert(self, service_url: str) -> None:
        params = ConversationParameters(
            is_group=True,
            channel_data={"channel": {"id": ALERTS_CHANNEL_ID}},
            activity=MessageFactory.attachment(CardFactory.adaptive_card(_card("Alert"))),
            tenant_id=TENANT_ID,
        )

        async def first_turn(tc: TurnContext) -> None:
            # tc.activity.conversation.id == "channel-alerts-id;messageid=<activity id>"
            update = MessageFactory.attachment(CardFactory.adaptive_card(_card("Alert (open)")))
            update.id = tc.activity.id
            await tc.update_activity(update)

        await self.adapter.create_conversation("", first_turn, params, "msteams", service_url)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        who = activity.from_property.name
        done = _card(f"Acknowledged by {who}", buttons=False)
        update = MessageFactory.attachment(CardFactory.adaptive_card(done))
        update.id = activity.reply_to_id
        await turn_context.update_activity(update)
        if self.reporter_ref is not None:

            async def tell_reporter(tc: TurnContext) -> None:
                await tc.send_activity(f"{who} picked up your alert")

            await self.adapter.continue_conversation(self.reporter_ref, tell_reporter, "")
        # CloudAdapter.process (4.17.1) serialises the body with msrest: it must be a
        # Model such as AdaptiveCardInvokeResponse -- a plain dict body crashes it.
        body = AdaptiveCardInvokeResponse(
            status_code=200, type="application/vnd.microsoft.card.adaptive", value=done
        )
        return InvokeResponse(status=200, body=body)


@pytest.fixture
async def echo_bot():
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(_NoAuthConfig()))
    bot = EchoBot(adapter)

    async def messages(request: web.Request) -> web.Response:
        return await adapter.process(request, bot)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bot.url = f"http://127.0.0.1:{port}/api/messages"
    try:
        yield bot
    finally:
        await runner.cleanup()


@pytest.fixture
async def playground(echo_bot):
    async with Playground(echo_bot.url) as pg:
        yield pg


async def test_personal_message_round_trip(playground: Playground, echo_bot: EchoBot) -> None:
    await playground.send_personal("hello")
    reply = await playground.wait_for_text("echo: hello")
    assert reply.conversation_id == playground.personal_chat_id
    incoming = echo_bot.received[0]
    assert incoming["type"] == "message"
    assert incoming["channelId"] == "msteams"
    assert incoming["serviceUrl"] == playground.service_url
    assert incoming["from"]["id"] == ME.id
    assert incoming["from"]["aadObjectId"] == ME.aad_object_id
    assert incoming["conversation"]["conversationType"] == "personal"
    assert incoming["channelData"]["tenant"]["id"] == TENANT_ID


async def test_card_submit_and_execute(playground: Playground, echo_bot: EchoBot) -> None:
    await playground.send_personal("card")
    card_msg = await playground.wait_for(lambda m: m.from_bot and m.card is not None)

    await playground.submit({"answer": "yes"}, reply_to=card_msg.id)
    await playground.wait_for_text('submitted {"answer": "yes"}')
    submit = echo_bot.received[-1]
    assert submit["replyToId"] == card_msg.id

    res = await playground.execute("ack", {"n": 1}, activity_id=card_msg.id)
    assert res["type"] == "application/vnd.microsoft.card.adaptive"
    invoke = next(a for a in echo_bot.received if a["type"] == "invoke")
    assert invoke["name"] == "adaptiveCard/action"
    assert invoke["value"]["action"] == {"type": "Action.Execute", "verb": "ack", "data": {"n": 1}}
    updated = playground.message(card_msg.id)
    assert updated.card["body"][0]["text"] == f"Acknowledged by {ME.name}"
    assert updated.updates >= 1


async def test_proactive_channel_alert_update_and_execute(
    playground: Playground, echo_bot: EchoBot
) -> None:
    await playground.send_personal("alert")
    await playground.wait_for_text("alert raised")
    alert = await playground.wait_for(
        lambda m: m.from_bot and m.card is not None and m.updates >= 1,
        conversation=ALERTS_CHANNEL_ID,
    )
    assert alert.conversation_id == f"{ALERTS_CHANNEL_ID};messageid={alert.id}"
    assert alert.card["body"][0]["text"] == "Alert (open)"

    await playground.execute("ack", activity_id=alert.id, user=DSL.id)
    await playground.wait_for_text(f"{DSL.name} picked up your alert")
    invoke = next(a for a in echo_bot.received if a["type"] == "invoke")
    assert invoke["from"]["id"] == DSL.id
    assert invoke["conversation"]["id"] == alert.conversation_id
    assert invoke["channelData"]["channel"]["id"] == ALERTS_CHANNEL_ID
    assert invoke["recipient"]["id"] == BOT_ID
    assert playground.message(alert.id).card["body"][0]["text"] == f"Acknowledged by {DSL.name}"
