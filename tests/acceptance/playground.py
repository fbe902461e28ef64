"""Headless driver for the Microsoft 365 Agents Playground (npm @microsoft/m365agentsplayground).

The playground is a local Node server that emulates Teams (personal chat, a team with
channels, mock users, Adaptive Cards) and acts as the Bot Connector service for the bot
under test.  Its web UI talks to it over plain HTTP + one WebSocket, so this driver uses
the same interface directly -- no browser needed.  See docs/dev/playground.md.

Usage::

    async with Playground("http://127.0.0.1:3978/api/messages") as pg:
        await pg.send_personal("hello")
        reply = await pg.wait_for(lambda m: m.from_bot and m.text == "echo: hello")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

PACKAGE_NAME = "@microsoft/m365agentsplayground"
PACKAGE_VERSION = "0.2.28"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACKAGE_DIR = REPO_ROOT / "node_modules" / "@microsoft" / "m365agentsplayground"

TENANT_ID = "00000000-0000-0000-0000-0000000000001"
BOT_ID = "00000000-0000-0000-0000-00000000000011"
BOT_NAME = "Test Bot"
PERSONAL_CHAT_ID = "personal-chat-id"
TEAM_ID = "team-id"
TEAM_AAD_GROUP_ID = "00000000-0000-0000-0000-000000000031"
GENERAL_CHANNEL_ID = TEAM_ID  # the General channel's id is the team id
ALERTS_CHANNEL_ID = "channel-alerts-id"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"

# Environment that keeps the playground off the network.  ``--disable-telemetry`` alone
# is NOT enough: the bundled applicationinsights SDK still starts and its Statsbeat probes
# the Azure metadata endpoint 169.254.169.254 and does DNS look-ups.
OFFLINE_ENV = {
    "TEAMSAPPTESTER_BROWSER": "none",  # do not try to open a browser
    "APPLICATION_INSIGHTS_NO_STATSBEAT": "1",
    "APPLICATIONINSIGHTS_CONFIGURATION_CONTENT": json.dumps(
        {"disableAppInsights": True, "disableStatsbeat": True}
    ),
}


@dataclass(frozen=True)
class MockUser:
    id: str
    name: str
    aad_object_id: str
    upn: str

    def to_config(self) -> dict[str, str]:
        given, _, surname = self.name.partition(" ")
        return {
            "id": self.id,
            "name": self.name,
            "userPrincipleName": self.upn,  # (sic) the playground's spelling
            "aadObjectId": self.aad_object_id,
            "givenName": given,
            "surname": surname or given,
            "email": self.upn,
        }


# Same people as the playground's built-in config.  ``ME`` is the playground's
# "current user": the only member of the personal chat and the author of every
# typed message.  The others are team members who can press card buttons.
ME = MockUser(
    "user-id-0", "Alex Wilber", "00000000-0000-0000-0000-0000000000020", "alexw@example.com"
)
OTHER_USERS = (
    MockUser(
        "user-id-1", "Megan Bowen", "00000000-0000-0000-0000-0000000000021", "meganb@example.com"
    ),
    MockUser(
        "user-id-2", "Adele Vance", "00000000-0000-0000-0000-0000000000022", "adelev@example.com"
    ),
    MockUser(
        "user-id-3", "Isaiah Langer", "00000000-0000-0000-0000-0000000000023", "isaiahl@example.com"
    ),
    MockUser(
        "user-id-4",
        "Patti Fernandez",
        "00000000-0000-0000-0000-0000000000024",
        "pattif@example.com",
    ),
    MockUser(
        "user-id-5", "Lynne Robbins", "00000000-0000-0000-0000-0000000000025", "lynner@example.com"
    ),
)


class PlaygroundError(RuntimeError):
    pass


@dataclass
class Message:
    """One message as the playground shows it (latest version after updates)."""

    id: str
    conversation_id: str  # the conversation the bot sees, e.g. "team-id;messageid=123"
    from_id: str
    text: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    updates: int = 0  # how many times it was updated (update_activity / invoke response)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def from_bot(self) -> bool:
        return self.from_id == BOT_ID

    @property
    def channel_id(self) -> str:
        """Top-level conversation: channel id for channel threads, chat id otherwise."""
        return self.conversation_id.split(";", 1)[0]

    @property
    def card(self) -> dict[str, Any] | None:
        for att in self.attachments:
            if att.get("contentType") == CARD_CONTENT_TYPE:
                return att.get("content")
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_config(
    *,
    me: MockUser = ME,
    users: tuple[MockUser, ...] = OTHER_USERS,
    personal_chat_id: str = PERSONAL_CHAT_ID,
    channels: tuple[tuple[str, str], ...] = ((ALERTS_CHANNEL_ID, "Safeguarding Alerts"),),
    tenant_id: str = TENANT_ID,
    team_id: str = TEAM_ID,
    team_name: str = "Staff Team",
    team_aad_group_id: str = TEAM_AAD_GROUP_ID,
) -> dict[str, Any]:
    """The playground's .m365agentsplayground.yml content (JSON is valid YAML).

    The defaults are the playground's built-in ids; pass a school's tenant, people and
    channel to run a bot that checks them (see scripts/playground_config.py).  The
    team's General channel has the team id; ``channels`` are added to it.
    """
    # The playground's config schema (0.1.1) wants exactly 5 users and at most 1 channel
    # besides General; it fails to start otherwise.
    if len(users) != 5:
        raise ValueError(f"the playground needs exactly 5 other users, got {len(users)}")
    if len(channels) > 1:
        raise ValueError(f"the playground supports 1 channel besides General, got {channels}")
    ids = [me.id, *(u.id for u in users)]
    if len(set(ids)) != len(ids):
        raise ValueError(f"mock user ids must be unique: {ids}")
    return {
        "version": "0.1.1",
        "tenantId": tenant_id,
        "bot": {"id": BOT_ID, "name": BOT_NAME},
        "currentUser": me.to_config(),
        "users": [u.to_config() for u in users],
        "personalChat": {"id": personal_chat_id},
        "groupChat": {"id": "group-chat-id", "name": "Group Chat"},
        "team": {
            "id": team_id,
            "name": team_name,
            "aadGroupId": team_aad_group_id,
            "channels": [{"id": cid, "name": name} for cid, name in channels],
        },
    }


class Playground:
    """Runs the playground as a subprocess and drives it over HTTP + WebSocket."""

    def __init__(
        self,
        bot_url: str,
        *,
        port: int | None = None,
        package_dir: str | os.PathLike[str] | None = None,
        config: dict[str, Any] | None = None,
        node: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.bot_url = bot_url
        self.package_dir = Path(
            package_dir or os.environ.get("PLAYGROUND_PACKAGE_DIR") or DEFAULT_PACKAGE_DIR
        )
        self.config = config or build_config()
        self.node = node or shutil.which("node") or "node"
        self.startup_timeout = startup_timeout
        self.port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.service_url = f"{self.base_url}/_connector"
        self.personal_chat_id: str = self.config["personalChat"]["id"]
        self.me_id: str = self.config["currentUser"]["id"]
        self.users: dict[str, dict[str, Any]] = {
            u["id"]: u for u in [self.config["currentUser"], *self.config["users"]]
        }
        self.startup_seconds: float | None = None
        self.events: list[dict[str, Any]] = []  # every raw WebSocket event, in order
        self._messages: dict[str, Message] = {}  # by message id, insertion-ordered
        self._proc: asyncio.subprocess.Process | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    # ----------------------------------------------------------------- lifecycle
    @staticmethod
    def is_installed(package_dir: str | os.PathLike[str] | None = None) -> bool:
        pkg = package_dir or os.environ.get("PLAYGROUND_PACKAGE_DIR") or DEFAULT_PACKAGE_DIR
        return (Path(pkg) / "cli.js").is_file()

    async def __aenter__(self) -> Playground:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        cli = self.package_dir / "cli.js"
        if not cli.is_file():
            raise PlaygroundError(f"{cli} not found: run `npm ci` in {REPO_ROOT}")
        self._tmp = tempfile.TemporaryDirectory(prefix="playground-")
        tmp = Path(self._tmp.name)
        cfg = tmp / ".m365agentsplayground.yml"
        cfg.write_text(json.dumps(self.config, indent=2))
        env = {
            **os.environ,
            **OFFLINE_ENV,
            "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(cfg),
            "M365_AGENTS_PLAYGROUND_LOGFILE": str(tmp / "playground.log"),
        }
        args = [
            str(cli), "start",
            "--app-endpoint", self.bot_url,
            "--channel-id", "msteams",
            "--port", str(self.port),
            "--service-url", self.service_url,
            "--disable-telemetry",
        ]  # fmt: skip
        started = time.monotonic()
        self._proc = await asyncio.create_subprocess_exec(
            self.node,
            *args,
            cwd=tmp,  # it writes ./devTools/ when the log path is not set
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            await asyncio.wait_for(self._wait_listening(), self.startup_timeout)
            self._session = aiohttp.ClientSession()
            await asyncio.wait_for(self._wait_ping(), self.startup_timeout)
            self._ws = await self._session.ws_connect(
                f"ws://127.0.0.1:{self.port}/_ws_conversation/v1/conversations/stream",
                heartbeat=20,
            )
        except BaseException:
            await self.stop()
            raise
        self._tasks.append(asyncio.create_task(self._read_ws()))
        self.startup_seconds = time.monotonic() - started

    async def _wait_listening(self) -> None:
        # With a non-TTY stdout the playground prints exactly "Listening on <port>".
        assert self._proc and self._proc.stdout
        output = []
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                raise PlaygroundError(f"playground exited early:\n{b''.join(output).decode()}")
            output.append(line)
            if line.startswith(b"Listening on "):
                actual = int(line.split()[-1])
                if actual != self.port:
                    raise PlaygroundError(f"port {self.port} busy, playground took {actual}")
                self._tasks.append(asyncio.create_task(self._drain(self._proc.stdout)))
                return

    @staticmethod
    async def _drain(stream: asyncio.StreamReader) -> None:
        while await stream.read(65536):
            pass

    async def _wait_ping(self) -> None:
        # It prints "Listening" before it reads the config: a bad config shows up only in
        # its log ("Failed to start ... Reason: ..."), and /_debug/ping never answers.
        assert self._session
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with self._session.get(f"{self.base_url}/_debug/ping") as r:
                    if r.status == 200:
                        return
            failed = [
                line
                for line in self.log_text().splitlines()
                if line.startswith("error ") and "Telemetry" not in line
            ]
            if failed or (self._proc and self._proc.returncode is not None):
                raise PlaygroundError("playground failed to start:\n" + "\n".join(failed))
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()  # SIGTERM to this pid only
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def log_text(self) -> str:
        """The playground's own log file (requests to/from the bot, warnings)."""
        if self._tmp is None:
            return ""
        path = Path(self._tmp.name) / "playground.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------ bot -> client
    async def _read_ws(self) -> None:
        assert self._ws
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            self.events.append(event)
            action = event.get("action")
            if action in ("createMessage", "updateMessage"):
                m = event["message"]
                # A bot post that starts a channel thread arrives with the channel as
                # actionConversationId and the thread id in postConversationId.
                conv = m.get("postConversationId") or event["actionConversationId"]
                self._store(m["messageId"], conv, m, update=action == "updateMessage")
            self._changed.set()

    def _store(
        self, message_id: str, conversation_id: str, m: dict[str, Any], *, update: bool
    ) -> Message:
        old = self._messages.get(message_id)
        msg = Message(
            id=message_id,
            conversation_id=old.conversation_id if old else conversation_id,
            from_id=m.get("from", {}).get("id", ""),
            text=m.get("text"),
            attachments=m.get("attachments") or [],
            updates=(old.updates + 1) if (old and update) else 0,
            raw=m,
        )
        self._messages[message_id] = msg
        self._changed.set()
        return msg

    def messages(
        self, conversation: str | None = None, *, from_bot: bool | None = None
    ) -> list[Message]:
        """Messages seen so far (latest versions). ``conversation`` matches an exact
        conversation id, or a channel id to include all of its threads."""
        out = []
        for m in self._messages.values():
            if conversation is not None and conversation not in (m.conversation_id, m.channel_id):
                continue
            if from_bot is not None and m.from_bot != from_bot:
                continue
            out.append(m)
        return out

    def message(self, message_id: str) -> Message:
        return self._messages[message_id]

    async def wait_for(
        self,
        predicate: Callable[[Message], bool],
        timeout: float = 10.0,
        *,
        conversation: str | None = None,
    ) -> Message:
        """First message (in arrival order, including ones already seen) matching."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            self._changed.clear()
            for m in self.messages(conversation):
                if predicate(m):
                    return m
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                seen = [(m.conversation_id, m.from_id, m.text) for m in self.messages()]
                raise TimeoutError(f"no matching message within {timeout}s; seen: {seen}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_text(
        self, needle: str, timeout: float = 10.0, *, conversation: str | None = None
    ) -> Message:
        """First bot message whose text contains ``needle``."""
        return await self.wait_for(
            lambda m: m.from_bot and needle in (m.text or ""), timeout, conversation=conversation
        )

    # ------------------------------------------------------------ client -> bot
    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        assert self._session, "playground not started"
        async with self._session.post(f"{self.base_url}{path}", json=body) as r:
            text = await r.text()
            if r.status != 200:
                raise PlaygroundError(f"POST {path} -> {r.status}: {text}")
            return json.loads(text) if text else None

    def _check_user(self, user: str | None) -> str:
        user = user or self.me_id
        if user not in self.users:
            raise PlaygroundError(f"unknown mock user {user!r}; known: {sorted(self.users)}")
        return user

    async def send_message(
        self, conversation: str, text: str, *, mention_bot: bool = False
    ) -> dict[str, Any]:
        """Type a message into a conversation as the current user (ME).

        In a personal chat the bot always receives it.  In a channel (id = channel id)
        it starts a new thread; in a thread (id "channel;messageid=N") it replies.  In
        channels/threads the bot only receives it when ``mention_bot`` is true.
        Returns {"messageId", "timestamp", ["postConversationId"]}.
        """
        body: dict[str, Any] = {"from": {"id": self.me_id}, "textFormat": "plain"}
        if mention_bot:
            at = f"<at>{BOT_NAME}</at>"
            text = f"{at} {text}"
            body["mentions"] = [{"mentioned": {"id": BOT_ID}, "text": at}]
        body["text"] = text
        res = await self._post(f"/_conversation/v1/conversations/{conversation}/messages", body)
        conv = res.get("postConversationId") or conversation
        self._store(
            res["messageId"], conv, {"from": {"id": self.me_id}, "text": text}, update=False
        )
        return res

    async def send_personal(self, text: str, *, user: str | None = None) -> dict[str, Any]:
        """Type ``text`` into the personal chat with the bot."""
        if user not in (None, self.me_id):
            raise PlaygroundError(
                "the playground attributes typed messages to its current user only; "
                "start a Playground with build_config(me=...) to act as someone else"
            )
        return await self.send_message(self.personal_chat_id, text)

    async def submit(
        self,
        data: dict[str, Any],
        *,
        reply_to: str,
        conversation: str | None = None,
        user: str | None = None,
    ) -> None:
        """Press an Action.Submit on card message ``reply_to``: the bot gets a
        ``message`` activity with ``value=data`` and ``replyToId=reply_to``."""
        conversation = conversation or self._messages[reply_to].conversation_id
        await self._post(
            "/_conversation/v1/submit",
            {
                "conversation": {"id": conversation},
                "from": {"id": self._check_user(user)},
                "replyToId": reply_to,
                "value": data,
            },
        )

    async def execute(
        self,
        verb: str,
        data: dict[str, Any] | None = None,
        *,
        activity_id: str,
        conversation: str | None = None,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Press an Action.Execute on card message ``activity_id``: the bot gets an
        ``invoke`` named ``adaptiveCard/action``.  Returns the playground's view of the
        bot's invoke response, {"type", "value"}; like Teams, a card in ``value``
        replaces the card in the message (recorded here as an update)."""
        conversation = conversation or self._messages[activity_id].conversation_id
        res = await self._post(
            "/_conversation/v1/invoke",
            {
                "name": "adaptiveCard/action",
                "conversation": {"id": conversation},
                "from": {"id": self._check_user(user)},
                "replyToId": activity_id,
                "value": {
                    "action": {"type": "Action.Execute", "verb": verb, "data": data or {}},
                    "trigger": "manual",
                },
            },
        )
        old = self._messages.get(activity_id)
        if old and res and res.get("type") == CARD_CONTENT_TYPE and len(old.attachments) == 1:
            att = {"contentType": CARD_CONTENT_TYPE, "content": res.get("value")}
            raw = {**old.raw, "attachments": [att]}
            self._store(activity_id, old.conversation_id, raw, update=True)
        return res

    async def send_raw_activity(self, activity: dict[str, Any]) -> None:
        """Escape hatch: the playground forwards this activity to the bot verbatim
        (POST /_internal/v1/customActivities); use for anything the UI cannot do,
        e.g. a message from a user other than the current one."""
        await self._post("/_internal/v1/customActivities", activity)

    def base_activity(self, conversation: str, user: str | None = None) -> dict[str, Any]:
        """Skeleton of an activity as the playground would send it (for send_raw_activity)."""
        u = self.users[self._check_user(user)]
        conv: dict[str, Any] = {"id": conversation, "conversationType": "personal"}
        channel_data: dict[str, Any] = {"tenant": {"id": self.config["tenantId"]}}
        top = conversation.split(";", 1)[0]
        if top != self.personal_chat_id:
            conv.update(isGroup=True, conversationType="channel")
            channel_data.update(team={"id": self.config["team"]["id"]}, channel={"id": top})
        return {
            "type": "message",
            "id": str(uuid.uuid4()),
            "channelId": "msteams",
            "serviceUrl": self.service_url,
            "from": {"id": u["id"], "name": u["name"], "aadObjectId": u["aadObjectId"]},
            "recipient": {"id": BOT_ID, "name": BOT_NAME},
            "conversation": conv,
            "channelData": channel_data,
            "locale": "en-US",
        }
