# The connector clients' HTTP (bot/teams/transport.py): aiohttp on the asking event loop,
# with the requests, headers and retries msrest's stock sender would have made.
from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botbuilder.schema import Activity, ConversationParameters
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials
from msrest.pipeline.async_requests import AsyncPipelineRequestsHTTPSender
from msrest.universal_http.requests import ClientRetryPolicy
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

import bot.teams.adapter  # noqa: F401  (applies the SDK fixes, as the bot does)
from bot.errors import DeliveryError, map_exceptions
from bot.services.worker import LoopThread
from bot.teams import transport
from bot.teams.transport import (
    BACKOFF_SECONDS,
    IDEMPOTENT,
    RETRIES,
    AiohttpSender,
    backoff,
    status_wait,
    use_aiohttp,
)
from tests.fakeconnector import RESET, FakeConnector

TOKEN = "token-for-tests"


class Credentials(MicrosoftAppCredentials):
    """App credentials whose token is at hand (the real ones ask login.microsoftonline.com)."""

    def get_access_token(self, force_refresh: bool = False) -> str:
        return TOKEN


def stock_client(url: str, app_id: str = "app-1") -> ConnectorClient:
    return ConnectorClient(Credentials(app_id, "secret"), base_url=url)


@pytest.fixture
async def sender() -> AsyncIterator[AiohttpSender]:
    sender = AiohttpSender()
    yield sender
    await sender.close_here()


def new_channel_thread() -> ConversationParameters:
    return ConversationParameters(
        is_group=True,
        channel_data={"channel": {"id": "19:dsl@thread.tacv2"}},
        activity=Activity(type="message", text="alert"),
    )


def steps(client: ConnectorClient) -> list[type]:
    """The pipeline's policies, as classes, SansIO ones unwrapped."""
    policies = client.config.pipeline._impl_policies
    return [type(getattr(policy, "_policy", policy)) for policy in policies]


def test_the_pipeline_is_msrest_s_own_with_only_the_last_step_replaced() -> None:
    # If an SDK upgrade changes how msrest builds a connector client's pipeline (a new policy,
    # another sender), this fails here rather than in Teams.
    stock = stock_client("http://127.0.0.1/")
    stock_steps = steps(stock)
    stock_sender = stock.config.pipeline._sender
    ours = use_aiohttp(stock_client("http://127.0.0.1/"), AiohttpSender())

    assert steps(ours) == stock_steps
    assert isinstance(stock_sender, AsyncPipelineRequestsHTTPSender)
    assert isinstance(ours.config.pipeline._sender, AiohttpSender)
    # The stock sender's settings, which ours copies: 100 s timeouts, certificates verified.
    assert (stock.config.connection.timeout, stock.config.connection.verify) == (100, True)


@pytest.mark.parametrize("method", ["POST", "PUT", "GET", "DELETE", "PATCH"])
def test_the_retry_decisions_are_urllib3_s_as_msrest_configures_it(method: str) -> None:
    retry = ClientRetryPolicy()()
    assert (retry.total, retry.backoff_factor) == (RETRIES, BACKOFF_SECONDS)
    assert retry.allowed_methods == Retry.DEFAULT_ALLOWED_METHODS == IDEMPOTENT
    for status in range(100, 1000):
        for retry_after in ({}, {"Retry-After": "2"}):
            ours = method in IDEMPOTENT and status_wait(status, retry_after, 1) is not None
            assert ours == retry.is_retry(method, status, bool(retry_after)), (status, retry_after)
    assert status_wait(503, {"Retry-After": "2"}, 1) == 2.0


def test_the_backoff_is_urllib3_s() -> None:
    retry = ClientRetryPolicy()()
    for attempt in range(1, RETRIES + 1):
        retry = retry.increment("PUT", "/v3/x", response=HTTPResponse(status=500))
        assert backoff(attempt) == retry.get_backoff_time()


async def test_the_credentials_token_goes_with_every_request(
    fake_connector: FakeConnector, sender: AiohttpSender
) -> None:
    signed = use_aiohttp(stock_client(fake_connector.url), sender)
    anonymous = use_aiohttp(stock_client(fake_connector.url, app_id=""), sender)

    await signed.conversations.create_conversation(new_channel_thread())
    await anonymous.conversations.create_conversation(new_channel_thread())

    first, second = fake_connector.requests_to(r"^/v3/conversations$")
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in second.headers  # no app id: local development
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert first.json["activity"]["text"] == "alert"


class RefusingPool(concurrent.futures.ThreadPoolExecutor):
    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connector request went to a thread")


async def test_a_request_never_leaves_the_event_loop_for_a_thread(
    fake_connector: FakeConnector, sender: AiohttpSender
) -> None:
    loop = asyncio.get_running_loop()
    pool = RefusingPool()
    loop.set_default_executor(pool)
    try:
        ours = use_aiohttp(stock_client(fake_connector.url), sender)
        created = await ours.conversations.create_conversation(new_channel_thread())
        assert created.id
        # The stock sender runs `requests` in the default pool: the same call fails here.
        with pytest.raises(AssertionError, match="went to a thread"):
            await stock_client(fake_connector.url).conversations.create_conversation(
                new_channel_thread()
            )
    finally:
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())
        pool.shutdown()


async def test_a_dropped_connection_is_retried_for_a_put_never_for_a_post(
    fake_connector: FakeConnector, sender: AiohttpSender
) -> None:
    client = use_aiohttp(stock_client(fake_connector.url), sender)
    created = await client.conversations.create_conversation(new_channel_thread())
    update = Activity(type="message", id=created.activity_id, text="acknowledged")

    fake_connector.fail_next(r"/activities/", statuses=[RESET], method="PUT")
    await client.conversations.update_activity(created.id, created.activity_id, update)
    fake_connector.fail_next(r"^/v3/conversations$", statuses=[RESET], method="POST")
    with pytest.raises(DeliveryError, match="network error"), map_exceptions("post"):
        await client.conversations.create_conversation(new_channel_thread())

    puts = fake_connector.requests_to(r"/activities/", "PUT")
    assert [r.status for r in puts][-2:] == [999, 200]  # reset, then sent again
    posts = fake_connector.requests_to(r"^/v3/conversations$", "POST")
    assert [r.status for r in posts] == [201, 999]  # the reset POST is not repeated here


async def test_a_connection_never_made_is_tried_again_for_any_method(
    sender: AiohttpSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[int] = []
    monkeypatch.setattr(transport, "backoff", lambda attempt: waits.append(attempt) or 0.0)
    with socket.socket() as unused:  # a port with nobody listening
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/"
    client = use_aiohttp(stock_client(url), sender)

    with pytest.raises(DeliveryError, match="network error"), map_exceptions("post"):
        await client.conversations.create_conversation(new_channel_thread())

    assert waits == [1, 2, 3]  # three retries after the first attempt, as urllib3's


async def test_each_event_loop_has_its_own_session_and_closes_it(
    fake_connector: FakeConnector, sender: AiohttpSender
) -> None:
    client = use_aiohttp(stock_client(fake_connector.url), sender)
    outbox = LoopThread("outbox-test")
    try:
        await client.conversations.create_conversation(new_channel_thread())
        await outbox.run(
            client.conversations.create_conversation(new_channel_thread()), context=None
        )
        sessions = list(sender._sessions.values())
        assert len(sessions) == 2 and not any(s.closed for s in sessions)

        await outbox.run(sender.close_here(), context=None)
        await sender.close_here()
        assert sender._sessions == {} and all(s.closed for s in sessions)
    finally:
        outbox.close()


async def test_the_environment_s_proxy_is_used_and_read_once_per_origin(
    sender: AiohttpSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append((request.method, request.host))
        return web.json_response({"id": "a:1", "activityId": "1"}, status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    reads: list[Any] = []
    stock_lookup = transport.get_env_proxy_for_url
    monkeypatch.setattr(
        transport, "get_env_proxy_for_url", lambda url: reads.append(url) or stock_lookup(url)
    )
    async with TestServer(app, host="127.0.0.1") as server:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = use_aiohttp(stock_client("http://connector.invalid/"), sender)
        for _ in range(2):
            await client.conversations.create_conversation(new_channel_thread())

    assert seen == [("POST", "connector.invalid")] * 2
    assert len(reads) == 1


async def test_an_error_answer_keeps_its_status_for_the_outbox(
    fake_connector: FakeConnector, sender: AiohttpSender
) -> None:
    client = use_aiohttp(stock_client(fake_connector.url), sender)
    fake_connector.fail_next(r"^/v3/conversations$", statuses=[429], retry_after=7)

    with pytest.raises(DeliveryError) as throttled, map_exceptions("post"):
        await client.conversations.create_conversation(new_channel_thread())

    assert (throttled.value.status, throttled.value.retry_after) == (429, 7.0)
