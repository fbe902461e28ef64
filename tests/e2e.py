"""End-to-end harness: the real aiohttp app on a loopback port, real Bot Framework activity
JSON posted to /api/messages, and a fake Bot Connector recording everything the bot sends."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp.test_utils import TestServer

from bot.server import Server, build_server
from bot.services.delivery import SEND_TIMEOUT_SECONDS
from bot.settings import Secret, Settings
from flows.directory import SchoolDirectory
from flows.profile import load_organisation
from tests.fakeconnector import FakeConnector

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = load_organisation(ROOT / "profiles" / "buttsbury-junior.yaml").school()
TENANT = SCHOOL.tenant_id
CHANNEL = SCHOOL.dsl_channel.channel_id
CARD = "application/vnd.microsoft.card.adaptive"


# Card updates in channels and 1:1 chats the bot opened, not the reporter's own question
# cards (those are replaced in place as they are answered).
ALERT_UPDATES = r"^/v3/conversations/(?!a:personal-)[^/]+/activities/"


@dataclass(frozen=True)
class User:
    id: str
    name: str
    aad: str


REPORTER = User("29:reporter", "Rita Reporter", "00000000-0000-0000-0000-00000000f001")
DSL = User("29:dsl", SCHOOL.dsl.name, SCHOOL.dsl.aad_object_id)
DEPUTY = User("29:deputy", SCHOOL.deputies[0].name, SCHOOL.deputies[0].aad_object_id)
HEAD = User("29:head", SCHOOL.headteacher.name, SCHOOL.headteacher.aad_object_id)
CHAIR = User("29:chair", SCHOOL.chair_of_governors.name, SCHOOL.chair_of_governors.aad_object_id)
OUTSIDER = User("29:outsider", "Nosy Colleague", "00000000-0000-0000-0000-00000000f099")


class Clock:
    """A clock the test moves; starts on a Monday morning in term."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/London"))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class RunningBot:
    """One bot process-equivalent: `start`, talk to it, `stop`; start again on the same data."""

    def __init__(
        self,
        connector: FakeConnector,
        data_dir: Path,
        clock: Clock,
        served: SchoolDirectory | None = None,
        database_url: str = "",
    ) -> None:
        """`served`: the schools this server serves (a whole trust); default the one SCHOOL."""
        self.served = served
        self.tenant = served.schools[0].tenant_id if served else TENANT
        self.connector = connector
        self.data_dir = data_dir
        self.database_url = database_url  # PostgreSQL; "" for the SQLite file in data_dir
        self.clock = clock
        self.server: Server | None = None
        self._http: TestServer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def start(
        self, default_service_url: str | None = None, send_timeout: float = SEND_TIMEOUT_SECONDS
    ) -> RunningBot:
        settings = Settings(data_dir=self.data_dir, database_url=Secret(self.database_url))
        self.server = build_server(
            settings,
            self.served or SCHOOL,
            clock=self.clock,
            default_service_url=default_service_url or self.connector.url,
            poll_seconds=0.02,
            send_timeout=send_timeout,
        )
        self._http = TestServer(self.server.app, host="127.0.0.1")
        await self._http.start_server()
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._session:
            await self._session.close()
        if self._http:
            await self._http.close()
        self.server = self._http = self._session = None

    async def connect(self, url: str) -> RunningBot:
        """Talk to a bot running elsewhere (another process) instead of starting one."""
        self._external_url = url
        self._session = aiohttp.ClientSession()
        return self

    @property
    def url(self) -> str:
        if getattr(self, "_external_url", None):
            return self._external_url
        assert self._http is not None
        return str(self._http.make_url("/api/messages"))

    async def post(self, activity: dict[str, Any]) -> tuple[int, Any]:
        assert self._session is not None
        async with self._session.post(self.url, json=activity) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

    # -- activities ----------------------------------------------------------------------

    def base(self, user: User, conversation: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "id": f"act-{next(self._ids)}-{uuid.uuid4().hex[:6]}",
            "timestamp": self.clock().isoformat(),
            "serviceUrl": self.connector.url,
            "channelId": "msteams",
            "from": {"id": user.id, "name": user.name, "aadObjectId": user.aad},
            "conversation": conversation,
            "recipient": {"id": "28:safeguarding-bot", "name": "Safeguarding"},
            "channelData": {"tenant": {"id": self.tenant}},
            "locale": "en-GB",
            **extra,
        }

    def personal(self, user: User) -> dict[str, Any]:
        return {
            "id": f"a:personal-{user.id}",
            "conversationType": "personal",
            "tenantId": self.tenant,
        }

    def message(
        self,
        text: str | None = None,
        value: dict | None = None,
        *,
        user: User = REPORTER,
        **extra: Any,
    ) -> dict[str, Any]:
        activity = self.base(user, self.personal(user), type="message", **extra)
        if text is not None:
            activity["text"] = text
        if value is not None:
            activity["value"] = value
        return activity

    async def say(self, *texts: str, user: User = REPORTER) -> None:
        for text in texts:
            status, _ = await self.post(self.message(text, user=user))
            assert status in (200, 201), status

    def press(
        self,
        verb: str,
        concern_id: str,
        *,
        user: User,
        thread: str,
        reply_to: str,
        note: str | None = None,
        channel: str = CHANNEL,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"concern_id": concern_id}
        if note is not None:
            data["note"] = note
        conversation = {"id": thread, "conversationType": "channel", "tenantId": self.tenant}
        activity = self.base(
            user,
            conversation,
            type="invoke",
            name="adaptiveCard/action",
            replyToId=reply_to,
            value={
                "action": {"type": "Action.Execute", "verb": verb, "data": data},
                "trigger": "manual",
            },
        )
        activity["channelData"].update({"channel": {"id": channel}})
        return activity

    async def press_on_alert(
        self,
        verb: str,
        *,
        user: User,
        about: str | None = None,
        note: str | None = None,
        channel: str = CHANNEL,
    ) -> tuple[int, Any]:
        """Press a button (Action.Execute) on the alert in the DSL channel, as `user`.
        With several alerts, `about` picks the one whose card contains that text."""
        for conversation in self.connector.conversations.values():
            if conversation.channel_id != channel or not conversation.activities:
                continue
            root, activity = next(iter(conversation.activities.items()))
            card = activity["attachments"][0]["content"]
            if about is None or about in str(card):
                concern_id = concern_id_of(card)
                return await self.post(
                    self.press(
                        verb,
                        concern_id,
                        user=user,
                        thread=conversation.id,
                        reply_to=root,
                        note=note,
                        channel=channel,
                    )
                )
        raise AssertionError("no alert in the DSL channel" + (f" about {about!r}" if about else ""))

    # -- what the bot sent ---------------------------------------------------------------

    def replies_to(self, user: User = REPORTER) -> list[dict[str, Any]]:
        return self.connector.sent_activities(self.personal(user)["id"])

    def texts_to(self, user: User = REPORTER) -> str:
        """Everything the user was shown (message text and card fallback text)."""
        out = []
        for activity in self.replies_to(user) + self.direct_messages(user):
            out.append(activity.get("text") or "")
            for attachment in activity.get("attachments") or []:
                out.append((attachment.get("content") or {}).get("fallbackText", ""))
        return "\n".join(out)

    def sent_cards(self) -> list[dict[str, Any]]:
        """Every Adaptive Card the bot sent or updated, in order."""
        cards = []
        for request in self.connector.requests:
            body = request.json if isinstance(request.json, dict) else {}
            activity = body.get("activity", body)
            for attachment in activity.get("attachments") or []:
                if attachment.get("contentType") == CARD:
                    cards.append(attachment["content"])
        return cards

    def channel_posts(self) -> list[Any]:
        return [
            r
            for r in self.connector.requests_to(r"^/v3/conversations$", "POST")
            if r.status < 300 and ((r.json or {}).get("channelData") or {}).get("channel")
        ]

    def direct_messages(self, user: User) -> list[dict[str, Any]]:
        """Messages the bot started 1:1 with this user (create conversation, then send)."""
        found = []
        for conversation in self.connector.conversations.values():
            ids = {m.get("id") for m in conversation.members}
            if not conversation.is_group and ({user.aad, user.id} & ids):
                found.extend(conversation.activities.values())
        return found

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until no timer or message is due now (both workers run in the background)."""
        assert self.server is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            store, now = self.server.store, self.clock()
            # Timers first: a finishing timer adds its messages to the outbox atomically.
            timers = await store.count_due_timers(now)
            messages = await store.count_due(now)
            if not (timers or messages or await store.count_due_timers(now)):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("outbox did not settle")


def concern_id_of(card: dict[str, Any]) -> str:
    """The concern an alert card is about (every button carries it)."""
    [found] = set(re.findall(r'"concern_id": "([^"]+)"', json.dumps(card)))
    return found


def card_buttons(card: dict[str, Any]) -> list[str]:
    """The titles of every button a card shows (its action bar and its ActionSets)."""
    titles = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if str(node.get("type", "")).startswith("Action.") and node.get("title"):
                titles.append(node["title"])
                if node["type"] != "Action.ShowCard":
                    return  # not its fallback
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in card.items() if k != "refresh"})
    return titles


concern_of = concern_id_of  # the record tests' name for it


async def until(condition, timeout: float = 5.0) -> None:
    """Wait for a condition (not a fixed sleep): fixed sleeps fail on a busy machine."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)
