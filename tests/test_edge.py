# The edge refuses cleanly: bad bodies 400, forged tokens 401, other tenants 403 - one log
# line each, no traceback, nothing stored - and counts what it refused on /metrics.
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer
from botframework.connector.auth import AuthenticationConstants
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor, _OpenIdMetadata
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bot.errors import ConfigError
from bot.metrics import Metrics, watch_store
from bot.server import build_server
from bot.settings import UNSAFE_BIND_FLAG, Secret, Settings
from bot.store import SqliteStore
from tests.e2e import REPORTER, SCHOOL, Clock, RunningBot
from tests.fakeconnector import FakeConnector

APP_ID = "9e1d6a4c-1111-4222-8333-444455556666"
# A tenant id with letters, so that a wrong-cased copy differs.
OUR_TENANT = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
PRODUCTION_SCHOOL = dataclasses.replace(SCHOOL, tenant_id=OUR_TENANT)
APP_PASSWORD = "Xq8~the-app-client-secret-from-entra-id.0"
KID = "test-signing-key"


def invoke(running: RunningBot, name: str | None, value: Any) -> dict[str, Any]:
    activity = running.message()
    activity.update(type="invoke", name=name, value=value)
    return activity


def store_snapshot(path: Path) -> dict[str, Any]:
    """Every row of every table that holds what the bot did (not its de-duplication marks)."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] not in ("sqlite_sequence",)
        ]
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}
    finally:
        conn.close()


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a log record carried a traceback"
    assert "Traceback" not in caplog.text


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused ")]


# -- development mode: bad bodies ---------------------------------------------------------


def malformed(running: RunningBot) -> dict[str, Any]:
    """Bodies the table in issue 10 found answered 5xx or logged with a traceback."""
    good = running.message("hello")
    cases: dict[str, Any] = {}

    def variant(case: str, **changes: Any) -> None:
        activity = json.loads(json.dumps(good))
        for key, value in changes.items():
            activity[key] = value
        cases[case] = activity

    variant("from-is-a-string", **{"from": "someone"})
    variant("from-name-is-a-number", **{"from": {"id": "29:x", "name": 5}})
    variant("conversation-is-a-list", conversation=["a"])
    variant("recipient-is-a-number", recipient=7)
    variant("timestamp-is-not-a-date", timestamp="yesterday-ish")
    variant("timestamp-is-a-number", timestamp=12)
    variant("attachments-is-an-object", attachments={"contentType": "image/png"})
    variant("attachment-is-a-string", attachments=["image.png"])
    variant("entities-is-a-string", entities="mention")
    variant("channel-data-is-a-list", channelData=["tenant"])
    variant("tenant-is-a-string", channelData={"tenant": "ours"})
    variant("type-missing", type=None)
    variant("type-is-a-number", type=3)
    variant("service-url-missing", serviceUrl=None)
    variant("members-added-is-an-object", type="conversationUpdate", membersAdded={"id": "x"})
    variant("history-disclosed-is-a-string", historyDisclosed="yes")
    variant(
        "card-action-value-is-a-string",
        type="invoke",
        name="adaptiveCard/action",
        value="acknowledge",
    )
    variant(
        "card-action-verb-is-a-list",
        type="invoke",
        name="adaptiveCard/action",
        value={"action": {"type": "Action.Execute", "verb": ["acknowledge"], "data": {}}},
    )
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    variant("deep-nesting", value=deep)
    variant("array-of-activities", type="message")
    cases["array-of-activities"] = [good]
    cases["a-bare-string"] = "message"
    return cases


@pytest.fixture
async def plain_bot(tmp_path: Path) -> AsyncIterator[RunningBot]:
    async with FakeConnector() as connector:
        running = await RunningBot(connector, tmp_path, Clock()).start()
        yield running
        await running.stop()


async def post_raw(
    running: RunningBot, data: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    assert running._session is not None
    async with running._session.post(
        running.url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    ) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def test_malformed_activities_are_400_with_a_reason_and_no_traceback(
    plain_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    cases = malformed(plain_bot)
    before = store_snapshot(plain_bot.data_dir / "safeguarding.sqlite3")

    with caplog.at_level(logging.INFO):
        answers = {
            name: await post_raw(plain_bot, json.dumps(body).encode())
            for name, body in cases.items()
        }

    assert {name: status for name, (status, _) in answers.items()} == dict.fromkeys(cases, 400)
    assert all(body and body["error"] for _, body in answers.values())
    assert answers["from-name-is-a-number"][1]["error"] == "'from.name' must be a string"
    assert_no_traceback(caplog)
    assert len(refusal_lines(caplog)) == len(cases)
    assert store_snapshot(plain_bot.data_dir / "safeguarding.sqlite3") == before
    assert plain_bot.connector.requests == []
    # And the bot still works for the same person afterwards.
    await plain_bot.say("contacts")
    assert plain_bot.replies_to(REPORTER)


@pytest.mark.parametrize(
    ("data", "headers", "status"),
    [
        (b"{not json", {}, 400),
        (b"\xff\xfe\x00", {}, 400),
        (b"[" * 100_000 + b"]" * 100_000, {}, 400),
        (b'{"type": "message"}', {"Content-Type": "text/plain"}, 415),
        (b'{"type": "message", "text": "' + b"x" * 400_000 + b'"}', {}, 413),
    ],
    ids=["bad-json", "not-utf8", "deep-json", "wrong-media-type", "too-large"],
)
async def test_unreadable_bodies_are_refused_with_one_log_line(
    plain_bot: RunningBot,
    caplog: pytest.LogCaptureFixture,
    data: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    with caplog.at_level(logging.INFO):
        got, body = await post_raw(plain_bot, data, headers)

    assert (got, bool(body and body["error"])) == (status, True)
    assert len(refusal_lines(caplog)) == 1
    assert_no_traceback(caplog)


async def test_an_unknown_invoke_gets_teams_error_envelope_not_501(
    plain_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("composeExtension/query", "task/fetch", "signin/verifyState", None):
        activity = invoke(plain_bot, name, {"anything": 1})
        with caplog.at_level(logging.INFO):
            status, body = await plain_bot.post(activity)
        assert status == 200
        assert body["statusCode"] == 400
        assert body["type"] == "application/vnd.microsoft.error"
        assert body["value"]["code"] == "BadRequest"
    assert_no_traceback(caplog)


async def test_metrics_count_refusals_and_turns_and_show_the_backlog(
    plain_bot: RunningBot,
) -> None:
    await post_raw(plain_bot, b"{not json")
    await post_raw(plain_bot, json.dumps({**plain_bot.message("x"), "from": 1}).encode())
    await plain_bot.say("contacts")
    marker = "Zebra-Marker-Words"
    await plain_bot.say(f"a child told me {marker}")
    assert plain_bot.server is not None
    metrics_url = plain_bot.url.replace("/api/messages", "/metrics")

    async with aiohttp.ClientSession() as session, session.get(metrics_url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        page = await response.text()

    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['safeguarding_refusals_total{status="400",reason="bad_json"}'] == 1
    assert samples['safeguarding_refusals_total{status="400",reason="schema"}'] == 1
    assert samples['safeguarding_turns_total{type="message"}'] == 2
    for gauge in (
        "safeguarding_outbox_depth",
        "safeguarding_oldest_undelivered_alert_age_seconds",
        "safeguarding_timers_due",
    ):
        assert gauge in samples
        assert f"# TYPE {gauge} gauge" in page
    assert "# TYPE safeguarding_refusals_total counter" in page
    # Counts and codes only: nothing anyone wrote, no ids, no names.
    assert marker not in page and REPORTER.name not in page and REPORTER.aad not in page


async def test_metrics_show_an_undelivered_alert_and_its_age(store: SqliteStore) -> None:
    clock = Clock()
    metrics = Metrics()
    watch_store(metrics, store, clock)
    await store.enqueue(None, "post_alert", {"to": "x"}, {"n": 1}, at=clock())
    await store.enqueue(None, "reply", {"to": "y"}, {"n": 2}, at=clock())
    clock.advance(seconds=90)

    page = await metrics.render()

    assert "safeguarding_oldest_undelivered_alert_age_seconds 90" in page
    assert "safeguarding_outbox_depth 2" in page


# -- development mode must not listen on the network ----------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "bot.school.example"])
def test_development_mode_refuses_a_network_bind(host: str) -> None:
    with pytest.raises(ConfigError, match="UNAUTHENTICATED"):
        Settings.from_environ({"HOST": host})


def test_development_mode_binds_the_network_only_with_the_loud_flag() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert Settings.from_environ({"HOST": host}).host == host
    assert Settings.from_environ({"HOST": "0.0.0.0", UNSAFE_BIND_FLAG: "1"}).host == "0.0.0.0"
    assert Settings.from_environ(
        {"HOST": "0.0.0.0", "APP_ID": "a", "APP_PASSWORD": "p", "APP_TENANTID": "t"}
    )


# -- production mode: forged tokens ---------------------------------------------------------


@pytest.fixture
def signing_keys() -> Iterator[tuple[Any, Any]]:
    """The SDK's OpenID key cache seeded with our test key, so no network is touched; the
    SDK's own validation then runs unchanged. Returns (trusted key, a stranger's key)."""
    trusted = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(trusted.public_key()))
    jwk.update({"kid": KID, "endorsements": ["msteams"]})
    saved = dict(JwtTokenExtractor.metadataCache)
    for url in (
        AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
    ):
        metadata = _OpenIdMetadata(url)
        metadata.keys = [jwk]
        metadata.last_updated = datetime.now()
        JwtTokenExtractor.metadataCache[url] = metadata
    yield trusted, stranger
    JwtTokenExtractor.metadataCache.clear()
    JwtTokenExtractor.metadataCache.update(saved)


class ProductionBot(RunningBot):
    async def start(self, default_service_url: str | None = None) -> ProductionBot:
        settings = Settings(
            app_id=APP_ID,
            app_password=Secret(APP_PASSWORD),
            app_tenant_id=OUR_TENANT,
            app_type="SingleTenant",
            data_dir=self.data_dir,
            allowed_tenant_ids=frozenset({OUR_TENANT}),
            data_key=Secret(base64.b64encode(b"k" * 32).decode()),
        )
        self.server = build_server(
            settings, PRODUCTION_SCHOOL, clock=self.clock, default_service_url=self.connector.url
        )
        self._http = TestServer(self.server.app, host="127.0.0.1")
        await self._http.start_server()
        self._session = aiohttp.ClientSession()
        return self

    async def post_with(self, activity: dict[str, Any], authorization: str | None) -> int:
        assert self._session is not None
        headers = {"Authorization": authorization} if authorization is not None else {}
        async with self._session.post(self.url, json=activity, headers=headers) as response:
            return response.status


@pytest.fixture
async def production(tmp_path: Path) -> AsyncIterator[ProductionBot]:
    async with FakeConnector() as connector:
        running = await ProductionBot(connector, tmp_path, Clock()).start()
        yield running
        await running.stop()


def claims(service_url: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
        "aud": APP_ID,
        "serviceurl": service_url,
        "nbf": now - 10,
        "exp": now + 600,
        **extra,
    }


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


def forged_tokens(service_url: str, trusted: Any, stranger: Any) -> dict[str, str | None]:
    body = claims(service_url)
    return {
        "no-token": None,
        "empty-header": "",
        "not-bearer": "Basic dXNlcjpwYXNz",
        "garbage": "Bearer garbage",
        "alg-none": "Bearer " + unsigned({"alg": "none", "typ": "JWT", "kid": KID}, body),
        "hs256-with-app-password": "Bearer "
        + jwt.encode(body, APP_PASSWORD, algorithm="HS256", headers={"kid": KID}),
        "rs256-unknown-key": "Bearer "
        + jwt.encode(body, stranger, algorithm="RS256", headers={"kid": "someone-else"}),
        "rs256-known-kid-wrong-key": "Bearer "
        + jwt.encode(body, stranger, algorithm="RS256", headers={"kid": KID}),
        "jku-elsewhere": "Bearer "
        + jwt.encode(
            body,
            stranger,
            algorithm="RS256",
            headers={"kid": KID, "jku": "https://attacker.example/keys"},
        ),
        "expired": "Bearer "
        + jwt.encode(
            claims(service_url, exp=int(time.time()) - 3600),
            trusted,
            algorithm="RS256",
            headers={"kid": KID},
        ),
        "wrong-audience": "Bearer "
        + jwt.encode(
            claims(service_url, aud="another-app"),
            trusted,
            algorithm="RS256",
            headers={"kid": KID},
        ),
    }


async def test_forged_tokens_are_401_with_one_line_no_traceback_and_no_store_change(
    production: ProductionBot,
    signing_keys: tuple[Any, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    trusted, stranger = signing_keys
    database = production.data_dir / "safeguarding.sqlite3"
    before = store_snapshot(database)
    tokens = forged_tokens(production.connector.url, trusted, stranger)

    statuses = {}
    for name, token in tokens.items():
        caplog.clear()
        with caplog.at_level(logging.INFO):
            statuses[name] = await production.post_with(production.message("hello"), token)
        assert len(refusal_lines(caplog)) == 1, name
        assert_no_traceback(caplog)

    assert statuses == dict.fromkeys(tokens, 401)
    assert store_snapshot(database) == before
    assert production.connector.requests == []
    assert production.server is not None
    page = await production.server.metrics.render()
    assert 'safeguarding_refusals_total{status="401",reason="unauthenticated"}' in page


async def test_a_good_token_passes_and_a_wrong_cased_tenant_is_403(
    production: ProductionBot,
    signing_keys: tuple[Any, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    trusted, _ = signing_keys
    good = "Bearer " + jwt.encode(
        claims(production.connector.url), trusted, algorithm="RS256", headers={"kid": KID}
    )
    database = production.data_dir / "safeguarding.sqlite3"
    before = store_snapshot(database)

    # A valid token gets past authentication (an unknown invoke is then answered at the edge).
    probe = invoke(production, "task/fetch", {})
    probe["channelData"]["tenant"]["id"] = probe["conversation"]["tenantId"] = OUR_TENANT
    assert await production.post_with(probe, good) == 200

    wrong_case = production.message("hello")
    wrong_case["channelData"]["tenant"]["id"] = OUR_TENANT.upper()
    wrong_case["conversation"]["tenantId"] = OUR_TENANT.upper()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert await production.post_with(wrong_case, good) == 403

    assert len(refusal_lines(caplog)) == 1
    assert_no_traceback(caplog)
    assert store_snapshot(database) == before
