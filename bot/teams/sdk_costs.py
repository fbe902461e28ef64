"""What the Bot Framework SDK would otherwise pay on every turn, paid once (issue 8).

Applied when bot.teams.adapter is imported; tests/test_adapter_cost.py fails if an SDK
upgrade undoes any of it. Nothing here changes what is sent or checked - only how often the
same work is done.
"""

from __future__ import annotations

from typing import Any

from botframework.connector.auth import AuthenticationConstants, ClaimsIdentity
from botframework.connector.auth.connector_factory import ConnectorFactory
from msrest.serialization import Deserializer, Serializer

from bot.teams.transport import AiohttpSender, use_aiohttp


class _NotPlainJson(Exception):
    pass


def plain_json_copy(value: Any) -> Any:
    """A copy of a tree of exactly dict (str keys) / list / str / int / float / bool / None;
    _NotPlainJson for anything else (a subclass, a model, a date...)."""
    kind = type(value)
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlainJson
            copied[key] = plain_json_copy(item)
        return copied
    if kind is list:
        return [plain_json_copy(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    raise _NotPlainJson


def fix_json_copy_cost() -> None:
    """msrest walks every "object" field - a card's whole JSON, an activity's value and
    channelData - node by node: each dict or list is looked for among ~160 model classes in a
    *list* of them, each number goes through `eval`. A card of ~200 nodes costs ~1.5 ms, three
    or four times a turn (about 20 % of a turn's CPU). For plain JSON the stock result is
    exactly a structural copy, made here in ~0.1 ms; anything else (an enum, a date, a model,
    a subclass of str) still takes the stock path."""
    for cls, name in ((Serializer, "serialize_object"), (Deserializer, "deserialize_object")):
        stock = getattr(cls, name)
        if getattr(stock, "plain_json_fast_path", False):
            continue

        def fast(self: Any, attr: Any, _stock: Any = stock, **kwargs: Any) -> Any:
            if type(attr) is dict or type(attr) is list:
                try:
                    return plain_json_copy(attr)
                except _NotPlainJson:
                    pass
            return _stock(self, attr, **kwargs)

        fast.plain_json_fast_path = True  # type: ignore[attr-defined]
        fast.stock = stock  # type: ignore[attr-defined]  (the tests compare the two)
        setattr(cls, name, fast)


def app_id_of(claims: ClaimsIdentity | None) -> str | None:
    """The bot app id a turn's claims name (as the SDK's own factory reads it)."""
    if claims is None:
        return None
    return claims.get_claim_value(AuthenticationConstants.AUDIENCE_CLAIM) or (
        claims.get_claim_value(AuthenticationConstants.APP_ID_CLAIM)
    )


# Teams has a handful of service URLs; the bound only matters for activities nobody checked
# (local development accepts any serviceUrl).
CLIENTS_KEPT = 64


class ConnectorClients:
    """One connector client per (bot app id, service URL, audience), kept for the process.

    CloudAdapter builds a new ConnectorClient - with its own HTTP session, so a new TCP and TLS
    connection to Teams - for every turn, and never closes it; and a token client every turn
    that this bot never uses. The Bot Framework's C# adapter keeps them per service URL and
    app id; so does this. Credentials (and their token cache) are the same objects the SDK
    would have built; a client is shared by concurrent turns, as its HTTP session allows.
    The connector clients send with aiohttp on the asking loop (bot/teams/transport.py)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[Any, ...], Any] = {}
        self.built = 0  # how many clients were actually built (for tests)
        self.sender = AiohttpSender()

    def factory(self, inner: ConnectorFactory | None, claims: ClaimsIdentity | None) -> Any:
        if inner is None:
            return None
        return _CachedFactory(self, inner, app_id_of(claims))

    async def get(self, key: tuple[Any, ...], build: Any) -> Any:
        client = self._clients.get(key)
        if client is None:
            client = await build()
            self.built += 1
            client = self._clients.setdefault(key, client)
            while len(self._clients) > CLIENTS_KEPT:  # the oldest goes (as the SDK's would)
                self._clients.pop(next(iter(self._clients)))
        return client


class _CachedFactory(ConnectorFactory):
    def __init__(self, clients: ConnectorClients, inner: ConnectorFactory, app_id: Any) -> None:
        self._clients = clients
        self._inner = inner
        self._app_id = app_id

    async def create(self, service_url: str, audience: str | None = None) -> Any:
        key = ("connector", type(self._inner), self._app_id, service_url, audience)

        async def build() -> Any:
            client = await self._inner.create(service_url, audience)
            return use_aiohttp(client, self._clients.sender)

        return await self._clients.get(key, build)
