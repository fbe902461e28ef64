# The edge over HTTP: real activities in; the fake Bot Connector records what goes out.
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestClient
from botbuilder.core import ActivityHandler, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    AdaptiveCardInvokeResponse,
    AdaptiveCardInvokeValue,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
)
from msrest.exceptions import ClientRequestError

from bot.app import create_app
from bot.errors import ConfigError, DeliveryError, DeliveryRefused, map_exceptions
from bot.settings import Secret, Settings
from bot.store import SqliteStore
from bot.teams.adapter import DEFAULT_APOLOGY, SafeguardingAdapter, create_adapter
from bot.teams.connector import TeamsConnector
from tests.fakeconnector import FakeConnector

OUR_TENANT = "11111111-1111-1111-1111-111111111111"
CHANNEL = "19:dsl-team@thread.tacv2"

ClientFactory = Callable[..., Awaitable[TestClient]]


class EchoBot(ActivityHandler):
    """The smallest handler: echoes messages, answers card actions, can be told to fail."""

    def __init__(self) -> None:
        self.turns: list[str] = []
        self.fail_with: Exception | None = None

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        self.turns.append(turn_context.activity.id)
        if self.fail_with:
            raise self.fail_with
        await turn_context.send_activity(MessageFactory.text(f"echo: {turn_context.activity.text}"))

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        self.turns.append(turn_context.activity.id)
        return AdaptiveCardInvokeResponse(
            status_code=200,
            type="application/vnd.microsoft.card.adaptive",
            value={"type": "AdaptiveCard", "version": "1.5", "body": []},
        )


def teams_activity(service_url: str, *, tenant: str = OUR_TENANT, **fields: Any) -> dict:
    """A message activity shaped like the ones Teams posts to /api/messages."""
    activity = {
        "type": "message",
        "id": f"1{uuid.uuid4().int % 10**12:012d}",
        "timestamp": "2025-03-03T09:00:00.000Z",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": {"id": "29:staff-1", "name": "A Teacher", "aadObjectId": "aad-staff-1"},
        "conversation": {"id": "a:1personal", "conversationType": "personal", "tenantId": tenant},
        "recipient": {"id": "28:bot", "name": "Safeguarding"},
        "text": "I am worried about a child",
        "channelData": {"tenant": {"id": tenant}},
    }
    activity.update(fields)
    return activity


def card_action(service_url: str) -> dict:
    return teams_activity(
        service_url,
        type="invoke",
        name="adaptiveCard/action",
        text=None,
        value={"action": {"type": "Action.Execute", "verb": "acknowledge", "data": {}}},
    )


@pytest.fixture
def settings() -> Settings:
    return Settings.from_environ({})


@pytest.fixture
def bot() -> EchoBot:
    return EchoBot()


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, settings: Settings, bot: EchoBot, store: SqliteStore
) -> TestClient:
    return await aiohttp_client(create_app(settings, bot, store, allowed_tenant_ids={OUR_TENANT}))


@pytest.fixture
async def local_connector(settings: Settings) -> AsyncIterator[TeamsConnector]:
    adapter = create_adapter(settings)
    yield TeamsConnector(adapter, settings.app_id)
    await adapter.close_connections()


# -- health -----------------------------------------------------------------------------------


async def test_healthz(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_follows_the_store(client: TestClient, store: SqliteStore) -> None:
    assert (await client.get("/readyz")).status == 200
    store.close()
    assert (await client.get("/readyz")).status == 503


async def test_readyz_waits_for_the_start_up_work(
    aiohttp_client: ClientFactory, settings: Settings, bot: EchoBot, store: SqliteStore
) -> None:
    started = threading.Event()
    client = await aiohttp_client(
        create_app(settings, bot, store, allowed_tenant_ids={OUR_TENANT}, started=started)
    )
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"status": "not ready", "reason": "starting"}
    started.set()
    assert (await client.get("/readyz")).status == 200


# -- /api/messages ------------------------------------------------------------------------------


async def test_a_message_reaches_the_handler_and_the_reply_reaches_the_connector(
    client: TestClient, bot: EchoBot, fake_connector: FakeConnector
) -> None:
    activity = teams_activity(fake_connector.url)

    response = await client.post("/api/messages", json=activity)

    assert response.status == 201
    assert bot.turns == [activity["id"]]
    (reply,) = fake_connector.requests_to(r"^/v3/conversations/a:1personal/activities")
    assert reply.method == "POST"
    assert reply.path == f"/v3/conversations/a:1personal/activities/{activity['id']}"
    assert reply.json["text"] == "echo: I am worried about a child"
    assert "Authorization" not in reply.headers  # local development: no credentials


@pytest.mark.parametrize(
    "where",
    [
        {"conversation": {"id": "a:1", "tenantId": "22222222-evil"}},
        {"channelData": {"tenant": {"id": "22222222-evil"}}},
        {"conversation": {"id": "a:1"}, "channelData": {}},
    ],
    ids=["conversation-tenant", "channel-data-tenant", "no-tenant"],
)
async def test_a_foreign_or_missing_tenant_is_refused_before_the_handler(
    client: TestClient, bot: EchoBot, fake_connector: FakeConnector, where: dict
) -> None:
    activity = teams_activity(fake_connector.url, **where)

    response = await client.post("/api/messages", json=activity)

    assert response.status == 403
    assert bot.turns == []
    assert fake_connector.requests == []


async def test_adaptive_card_action_returns_200_with_the_json_body(
    client: TestClient, bot: EchoBot, fake_connector: FakeConnector
) -> None:
    response = await client.post("/api/messages", json=card_action(fake_connector.url))

    assert response.status == 200
    body = await response.json()
    assert body["statusCode"] == 200
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    assert body["value"]["type"] == "AdaptiveCard"
    assert len(bot.turns) == 1


async def test_plain_cloud_adapter_crashes_on_the_same_invoke(
    aiohttp_client: ClientFactory, bot: EchoBot, fake_connector: FakeConnector
) -> None:
    # The 4.17.1 trap SafeguardingAdapter.process works around: if this starts passing with
    # 200, the SDK was fixed and the override can go.
    adapter = CloudAdapter(
        ConfigurationBotFrameworkAuthentication(Settings().bot_framework_config())
    )
    app = web.Application()

    async def messages(request: web.Request) -> web.StreamResponse:
        return await adapter.process(request, bot)

    app.router.add_post("/api/messages", messages)
    client = await aiohttp_client(app)

    response = await client.post("/api/messages", json=card_action(fake_connector.url))

    assert response.status == 500


async def test_a_failing_turn_apologises_and_logs_ids_only(
    client: TestClient,
    bot: EchoBot,
    fake_connector: FakeConnector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot.fail_with = ValueError("the child said something secret")
    activity = teams_activity(fake_connector.url, text="something secret")

    with caplog.at_level(logging.INFO):
        response = await client.post("/api/messages", json=activity)

    assert response.status == 201
    (apology,) = fake_connector.sent_activities()
    assert apology["text"] == DEFAULT_APOLOGY
    assert "ValueError" in caplog.text and activity["id"] in caplog.text
    assert "secret" not in caplog.text


async def test_local_development_warns_loudly_at_startup(
    aiohttp_client: ClientFactory,
    settings: Settings,
    bot: EchoBot,
    store: SqliteStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        await aiohttp_client(create_app(settings, bot, store, allowed_tenant_ids={OUR_TENANT}))

    assert "NOT authenticated" in caplog.text


async def test_production_rejects_unauthenticated_requests(
    aiohttp_client: ClientFactory, bot: EchoBot, store: SqliteStore, fake_connector: FakeConnector
) -> None:
    production = Settings.from_environ(
        {"APP_ID": "app-id", "APP_PASSWORD": "pw", "APP_TENANTID": OUR_TENANT}
    )
    client = await aiohttp_client(create_app(production, bot, store))

    response = await client.post("/api/messages", json=teams_activity(fake_connector.url))

    assert response.status == 401
    assert bot.turns == []


# -- the connector port -----------------------------------------------------------------------


async def test_post_to_channel_starts_a_thread_in_that_channel(
    local_connector: TeamsConnector, fake_connector: FakeConnector
) -> None:
    connector = local_connector

    conversation_id, activity_id = await connector.post_to_channel(
        fake_connector.url, OUR_TENANT, "team-1", CHANNEL, MessageFactory.text("alert card")
    )

    (create,) = fake_connector.requests_to(r"^/v3/conversations$")
    assert create.method == "POST"
    assert create.json["isGroup"] is True
    assert create.json["channelData"]["channel"] == {"id": CHANNEL}
    assert create.json["channelData"]["tenant"] == {"id": OUR_TENANT}
    assert create.json["tenantID"] == OUR_TENANT  # sic: the SDK's spelling
    assert create.json["activity"]["text"] == "alert card"
    assert conversation_id == f"{CHANNEL};messageid={activity_id}"
    assert fake_connector.conversations[conversation_id].channel_id == CHANNEL


async def test_send_to_user_opens_a_chat_and_sends(
    local_connector: TeamsConnector, fake_connector: FakeConnector
) -> None:
    connector = local_connector

    conversation_id, activity_id = await connector.send_to_user(
        fake_connector.url, OUR_TENANT, "aad-staff-1", {"type": "message", "text": "delivered"}
    )

    create, send = fake_connector.requests
    assert create.json["members"] == [{"id": "aad-staff-1"}]
    assert create.json["isGroup"] is False
    assert send.path == f"/v3/conversations/{conversation_id}/activities"
    assert send.json["text"] == "delivered"
    assert activity_id in fake_connector.conversations[conversation_id].activities


async def test_reply_and_update_in_a_thread(
    local_connector: TeamsConnector, fake_connector: FakeConnector
) -> None:
    connector = local_connector
    conversation_id, root_id = await connector.post_to_channel(
        fake_connector.url, OUR_TENANT, "team-1", CHANNEL, MessageFactory.text("alert")
    )
    ref = ConversationReference(
        channel_id="msteams",
        service_url=fake_connector.url,
        conversation=ConversationAccount(id=conversation_id, is_group=True),
        bot=ChannelAccount(id="28:bot"),
    )

    reply_id = await connector.reply_in_thread(ref, MessageFactory.text("still unacknowledged"))
    await connector.update_activity(ref, root_id, MessageFactory.text("acknowledged"))

    reply, update = fake_connector.requests[1:]
    assert (reply.method, reply.path) == ("POST", f"/v3/conversations/{conversation_id}/activities")
    assert (update.method, update.path) == (
        "PUT",
        f"/v3/conversations/{conversation_id}/activities/{root_id}",
    )
    activities = fake_connector.conversations[conversation_id].activities
    assert activities[root_id]["text"] == "acknowledged"
    assert activities[reply_id]["text"] == "still unacknowledged"


async def test_429_then_500_surface_as_delivery_errors(
    local_connector: TeamsConnector, fake_connector: FakeConnector
) -> None:
    connector = local_connector
    fake_connector.fail_next(r"^/v3/conversations$", statuses=[429, 500], retry_after=1)
    send = connector.post_to_channel(fake_connector.url, OUR_TENANT, "t", CHANNEL, {"text": "a"})

    with pytest.raises(DeliveryError) as throttled:
        await send
    with pytest.raises(DeliveryError) as broken:
        await connector.post_to_channel(fake_connector.url, OUR_TENANT, "t", CHANNEL, {"text": "a"})

    assert (throttled.value.status, throttled.value.retry_after) == (429, 1.0)
    assert broken.value.status == 500
    # The SDK does not retry a POST: one request per attempt.
    assert len(fake_connector.requests_to(r"^/v3/conversations$")) == 2


async def test_a_4xx_is_refused_not_retried(
    local_connector: TeamsConnector, fake_connector: FakeConnector
) -> None:
    connector = local_connector
    ref = ConversationReference(
        channel_id="msteams",
        service_url=fake_connector.url,
        conversation=ConversationAccount(id="a:1personal"),
    )

    with pytest.raises(DeliveryRefused) as refused:
        await connector.update_activity(ref, "no-such-activity", {"text": "x"})

    assert refused.value.status == 404


async def test_the_sdk_itself_retries_a_put_on_429_and_5xx(
    local_connector: TeamsConnector, fake_connector: FakeConnector
) -> None:
    # As msrest's urllib3 Retry (bot/teams/transport.py): PUT/GET/DELETE are retried on 5xx
    # and on 429 with Retry-After; POST never is.
    connector = local_connector
    conversation_id, root_id = await connector.post_to_channel(
        fake_connector.url, OUR_TENANT, "t", CHANNEL, {"text": "alert"}
    )
    ref = {
        "channelId": "msteams",
        "serviceUrl": fake_connector.url,
        "conversation": {"id": conversation_id},
    }
    fake_connector.fail_next(r"/activities/", statuses=[429, 500], retry_after=0, method="PUT")

    await connector.update_activity(ref, root_id, {"text": "acknowledged"})

    assert [r.status for r in fake_connector.requests_to(r"/activities/", "PUT")] == [429, 500, 200]


def test_network_errors_are_delivery_errors() -> None:
    # What msrest raises when requests cannot connect, or urllib3 retries run out.
    with pytest.raises(DeliveryError, match="network error") as caught, map_exceptions("send"):
        raise ClientRequestError("Error occurred in request.", requests.ConnectionError())
    assert caught.value.status is None


async def test_the_bot_never_fetches_attachment_urls(
    client: TestClient, bot: EchoBot, fake_connector: FakeConnector
) -> None:
    image = {"contentType": "image/png", "contentUrl": f"{fake_connector.url}attachments/1.png"}
    activity = teams_activity(fake_connector.url, attachments=[image])

    assert (await client.post("/api/messages", json=activity)).status == 201
    assert bot.turns == [activity["id"]]
    assert fake_connector.requests_to(r"^/attachments") == []


def test_map_exceptions_converts_timeouts() -> None:
    with pytest.raises(DeliveryError, match="send: timed out"), map_exceptions("send"):
        raise TimeoutError


# -- settings -------------------------------------------------------------------------------


def test_local_development_without_app_id() -> None:
    settings = Settings.from_environ({})

    assert settings.local_development
    assert (settings.port, settings.host) == (3978, "127.0.0.1")
    assert settings.bot_framework_config().APP_TYPE == "MultiTenant"


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"APP_ID": "a", "APP_TENANTID": "t"}, "APP_PASSWORD"),
        ({"APP_ID": "a", "APP_TYPE": "MultiTenant"}, "APP_PASSWORD"),
        ({"APP_ID": "a", "APP_PASSWORD": "p", "APP_TYPE": "SingleTenant"}, "APP_TENANTID"),
        ({"APP_ID": "a", "APP_TYPE": "UserAssignedMSI"}, "APP_TENANTID"),
    ],
)
def test_production_without_credentials_refuses_to_start(
    environ: dict[str, str], missing: str
) -> None:
    with pytest.raises(ConfigError, match=f"Config '{missing}' is missing"):
        Settings.from_environ({"APP_TYPE": "SingleTenant", **environ})


def test_production_settings_and_the_sdk_config() -> None:
    settings = Settings.from_environ(
        {"APP_ID": "app", "APP_PASSWORD": "hunter2", "APP_TENANTID": OUR_TENANT, "PORT": "8080"}
    )

    config = settings.bot_framework_config()
    assert not settings.local_development
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.allowed_tenant_ids == {OUR_TENANT}
    assert (config.APP_ID, config.APP_PASSWORD, config.APP_TENANTID) == (
        "app",
        "hunter2",
        OUR_TENANT,
    )
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.app_password)


def test_managed_identity_needs_no_password() -> None:
    settings = Settings.from_environ(
        {"APP_ID": "app", "APP_TYPE": "UserAssignedMSI", "APP_TENANTID": OUR_TENANT}
    )
    assert settings.app_password == Secret("")
    assert isinstance(create_adapter(settings), SafeguardingAdapter)


def test_production_app_needs_allowed_tenants(bot: EchoBot, store: SqliteStore) -> None:
    settings = Settings.from_environ(
        {"APP_ID": "app", "APP_PASSWORD": "p", "APP_TYPE": "MultiTenant"}
    )
    with pytest.raises(ConfigError, match="ALLOWED_TENANT_IDS"):
        create_app(settings, bot, store)
