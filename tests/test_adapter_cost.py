# The SDK's per-turn costs stay removed (bot/teams/adapter.py, bot/teams/sdk_costs.py),
# whatever an SDK upgrade does.
from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from botbuilder.schema import Activity, Attachment
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials
from hypothesis import given, settings
from hypothesis import strategies as st
from msrest.serialization import Deserializer, Serializer
from msrest.universal_http.requests import ClientRetryPolicy

from bot.settings import Settings
from bot.teams import sdk_costs
from bot.teams.adapter import create_adapter  # importing it applies the fixes
from tests.e2e import RunningBot
from tests.test_e2e import WALKS

# What msrest 0.7.1 retries: 408, and every status from 500 except 501 and 505.
STOCK_SAFE_CODES = {i for i in range(500) if i != 408} | {501, 505}


class CountingSet(frozenset):
    """A frozenset that counts membership tests, to see what a client build costs."""

    tests = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.tests += 1
        return frozenset.__contains__(self, item)


def test_the_status_code_lookup_is_a_set_with_the_stock_codes():
    # A list here (the stock SDK) costs ~500 comparisons per lookup, ~1,000 lookups a client.
    assert isinstance(ClientRetryPolicy.safe_codes, frozenset)
    assert set(ClientRetryPolicy.safe_codes) == STOCK_SAFE_CODES


def test_a_connector_client_build_uses_that_lookup_and_keeps_the_retry_behaviour(monkeypatch):
    # If an SDK upgrade builds its retry policy some other way, this notices: the client must
    # still consult ClientRetryPolicy.safe_codes and end with the same codes to retry.
    monkeypatch.setattr(ClientRetryPolicy, "safe_codes", CountingSet(STOCK_SAFE_CODES))
    CountingSet.tests = 0
    client = ConnectorClient(MicrosoftAppCredentials("", ""), base_url="http://127.0.0.1/")
    assert CountingSet.tests == 999
    retry = client.config.retry_policy.policy
    assert set(retry.status_forcelist) == set(range(999)) - STOCK_SAFE_CODES


# -- msrest's walk over plain JSON (cards, values, channelData): bot/teams/sdk_costs.py ----

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


class Colour(Enum):
    RED = "red"


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_plain_json_gives_exactly_what_the_stock_sdk_gives(value):
    for cls, name in ((Serializer, "serialize_object"), (Deserializer, "deserialize_object")):
        ours = getattr(cls, name)
        assert ours.plain_json_fast_path
        assert ours(cls({}), value) == ours.stock(cls({}), value)


def test_anything_but_plain_json_still_takes_the_stock_path():
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    serializer = Serializer({})
    for value in (
        {"when": at, "colour": Colour.RED},
        [("a", 1)],
        {1: "an int key"},
        {"nested": [{"deep": at}]},
    ):
        ours = Serializer.serialize_object
        assert ours(serializer, value) == ours.stock(serializer, value)
    assert (
        Serializer.serialize_object(serializer, {"when": at})["when"] == "2026-01-02T03:04:05.000Z"
    )


def test_a_card_going_out_and_a_value_coming_in_take_the_fast_path(monkeypatch):
    # If an SDK upgrade stops routing "object" fields through these methods, this notices.
    copies = []
    real = sdk_costs.plain_json_copy

    def counting(value):
        copies.append(type(value))
        return real(value)

    monkeypatch.setattr(sdk_costs, "plain_json_copy", counting)
    card = {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "x", "wrap": True}]}
    activity = Activity(
        type="message",
        attachments=[
            Attachment(content_type="application/vnd.microsoft.card.adaptive", content=card)
        ],
    )
    client = ConnectorClient(MicrosoftAppCredentials("", ""), base_url="http://127.0.0.1/")
    body = client._serialize.body(activity, "Activity")
    assert body["attachments"][0]["content"] == card
    assert copies, "the outgoing card was walked by msrest's stock path"
    copies.clear()
    incoming = Activity().deserialize({"type": "message", "value": {"action": "confirm", "n": [1]}})
    assert incoming.value == {"action": "confirm", "n": [1]}
    assert copies, "the incoming value was walked by msrest's stock path"


# -- connector and token clients: one per app id and service URL, not one per turn ---------


async def test_turns_share_one_connector_client_per_service_url(bot: RunningBot, monkeypatch):
    built = []
    real_init = ConnectorClient.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("base_url"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(ConnectorClient, "__init__", counting)
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    for answer in WALKS["disclosure"][:3]:
        await bot.say(answer)
    assert len(built) <= 1  # the stock SDK builds one per turn (four here) and never closes it
    assert len(bot.replies_to()) >= 4
    # The rest of the report, and the outbox's proactive sends (the alert card, "delivered"):
    # one more client at most, for the bot's own (proactive) identity.
    await bot.say(*WALKS["disclosure"][3:], "send")
    await bot.settle()
    assert len(bot.channel_posts()) == 1
    assert len(built) <= 2


async def test_a_different_service_url_or_audience_gets_its_own_client():
    adapter = create_adapter(Settings(data_dir=Path("unused")))
    activity = Activity(type="message", service_url="http://127.0.0.1:1/", channel_id="msteams")
    first = await adapter.authenticate("", activity)
    second = await adapter.authenticate("", activity)
    one = await first.connector_factory.create("http://127.0.0.1:1/", "aud")
    assert await second.connector_factory.create("http://127.0.0.1:1/", "aud") is one
    assert await second.connector_factory.create("http://127.0.0.1:2/", "aud") is not one
    assert await second.connector_factory.create("http://127.0.0.1:1/", "other") is not one
    claims = first.claims_identity
    auth = adapter.bot_framework_authentication
    assert await auth.create_connector_factory(claims).create("http://127.0.0.1:1/", "aud") is one
    token = await auth.create_user_token_client(claims)
    assert await auth.create_user_token_client(claims) is token


async def test_the_kept_clients_are_bounded(monkeypatch):
    monkeypatch.setattr(sdk_costs, "CLIENTS_KEPT", 3)
    clients = sdk_costs.ConnectorClients()

    async def build():
        return object()

    first = await clients.get(("a",), build)
    for key in "bcd":
        await clients.get((key,), build)
    assert await clients.get(("d",), build) is await clients.get(("d",), build)
    assert await clients.get(("a",), build) is not first  # the oldest was let go
    assert clients.built == 5
