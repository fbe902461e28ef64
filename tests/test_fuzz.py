# Fuzzing the edge: hypothesis mutates real Teams activities (wrong types, missing fields,
# deep nesting, unknown invokes, garbage bytes) and posts them to the running bot. Whatever
# arrives: never a 5xx, never a traceback in the log, nothing stored for a refused request,
# and the staff member's session still works afterwards. Bounded (FUZZ_EXAMPLES, default
# 120 per test, derandomised) so it runs in CI in seconds; raise it for a longer hunt.
from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e import CHANNEL, REPORTER, Clock, RunningBot
from tests.fakeconnector import FakeConnector

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DELETE = object()

# The fields of an activity Teams sends and this bot reads.
PATHS: tuple[tuple[str, ...], ...] = (
    ("type",),
    ("id",),
    ("name",),
    ("timestamp",),
    ("localTimestamp",),
    ("serviceUrl",),
    ("channelId",),
    ("from",),
    ("from", "id"),
    ("from", "name"),
    ("from", "aadObjectId"),
    ("conversation",),
    ("conversation", "id"),
    ("conversation", "conversationType"),
    ("conversation", "tenantId"),
    ("conversation", "isGroup"),
    ("recipient",),
    ("recipient", "id"),
    ("text",),
    ("textFormat",),
    ("value",),
    ("value", "action"),
    ("value", "action", "verb"),
    ("value", "action", "data"),
    ("value", "action", "data", "concern_id"),
    ("attachments",),
    ("entities",),
    ("channelData",),
    ("channelData", "tenant"),
    ("channelData", "tenant", "id"),
    ("channelData", "channel"),
    ("channelData", "channel", "id"),
    ("replyToId",),
    ("membersAdded",),
    ("locale",),
    ("suggestedActions",),
    ("relatesTo",),
    ("historyDisclosed",),
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
mutations = st.lists(
    st.tuples(st.sampled_from(PATHS), st.just(DELETE) | json_values), min_size=1, max_size=3
)
kinds = st.sampled_from(["message", "card_action", "conversation_update"])


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


class BotThread:
    """The whole bot on its own event loop in a thread, so hypothesis can drive it from a
    plain (synchronous) test and one bot lives through every generated example."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connector = FakeConnector()
        self.call(self.connector.__aenter__())
        self.bot = self.call(RunningBot(self.connector, data_dir, Clock()).start())
        self.database = data_dir / "safeguarding.sqlite3"

    def call(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)

    def close(self) -> None:
        self.call(self.bot.stop())
        self.call(self.connector.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def post_bytes(self, data: bytes) -> int:
        async def post() -> int:
            assert self.bot._session is not None
            async with self.bot._session.post(
                self.bot.url, data=data, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                return response.status

        return self.call(post())

    def snapshot(self) -> dict[str, list[str]]:
        conn = sqlite3.connect(self.database)
        try:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return {n: sorted(map(repr, conn.execute(f"SELECT * FROM {n}"))) for n in names}
        finally:
            conn.close()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if r.exc_info or "Traceback" in r.getMessage()
        ]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotThread]:
    bot = BotThread(tmp_path_factory.mktemp("fuzz"))
    yield bot
    bot.close()


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def base_activity(bot: RunningBot, kind: str) -> dict[str, Any]:
    if kind == "card_action":
        return bot.press(
            "acknowledge", "no-such-concern", user=REPORTER, thread="19:t", reply_to="1"
        )
    activity = bot.message("hello")
    if kind == "conversation_update":
        activity.update(type="conversationUpdate", membersAdded=[{"id": "28:bot"}])
        activity.pop("text")
    return activity


def mutate(activity: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> Any:
    for path, value in changes:
        target: Any = activity
        for key in path[:-1]:
            if not isinstance(target, dict):
                break
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        else:
            if not isinstance(target, dict):
                continue
            if value is DELETE:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = copy.deepcopy(value)
    return activity


def check_one(
    running: BotThread, records: Records, data: bytes, *, refused_means_untouched: bool = True
) -> int:
    before = running.snapshot()
    records.records.clear()
    status = running.post_bytes(data)
    assert status < 500, f"{status} for {data[:300]!r}"
    assert not records.tracebacks(), records.tracebacks()
    if status >= 400 and refused_means_untouched:
        assert running.snapshot() == before, f"a refused request ({status}) changed the store"
    return status


@FUZZ
@given(kind=kinds, changes=mutations)
@example(kind="message", changes=[(("from",), "someone")])
@example(kind="message", changes=[(("from", "name"), 5)])
@example(kind="message", changes=[(("conversation",), ["a"])])
@example(kind="message", changes=[(("recipient",), 7)])
@example(kind="message", changes=[(("timestamp",), "yesterday-ish")])
@example(kind="message", changes=[(("attachments",), {"contentType": "image/png"})])
@example(kind="message", changes=[(("entities",), "mention")])
@example(kind="message", changes=[(("value",), nested(60))])
@example(kind="message", changes=[(("type",), "invoke"), (("name",), "composeExtension/query")])
@example(kind="message", changes=[(("type",), "invoke"), (("name",), DELETE)])
@example(kind="card_action", changes=[(("value", "action"), "acknowledge")])
@example(kind="card_action", changes=[(("value", "action", "data"), [1])])
@example(kind="card_action", changes=[(("from",), DELETE)])
@example(kind="message", changes=[(("channelData", "tenant"), "ours")])
@example(kind="conversation_update", changes=[(("membersAdded",), {"id": "x"})])
def test_mutated_activities_never_5xx_never_traceback_refusals_store_nothing(
    running: BotThread, records: Records, kind: str, changes: list
) -> None:
    activity = mutate(base_activity(running.bot, kind), changes)
    try:
        data = json.dumps(activity).encode()
    except (ValueError, RecursionError):
        return
    check_one(running, records, data)


@FUZZ
@given(body=json_values)
def test_any_json_body_never_5xx(running: BotThread, records: Records, body: Any) -> None:
    check_one(running, records, json.dumps(body).encode())


@FUZZ
@given(data=st.binary(max_size=200))
@example(data=b"{" * 50_000)
@example(data=b'{"type": "message", "text": "\xff\xfe"}')
def test_any_bytes_never_5xx(running: BotThread, records: Records, data: bytes) -> None:
    check_one(running, records, data)


def test_after_the_fuzzing_the_same_staff_member_can_still_report(
    running: BotThread, records: Records
) -> None:
    bot = running.bot
    for text in ("cancel", "yes"):
        running.call(bot.say(text))
    running.call(bot.post(bot.message(value={"action": "start", "flow": "disclosure"})))
    from tests.test_e2e import WALKS

    running.call(bot.say(*WALKS["disclosure"], "send"))
    running.call(bot.settle())

    assert any(
        ((r.json or {}).get("channelData") or {}).get("channel", {}).get("id") == CHANNEL
        for r in bot.channel_posts()
    )
    assert "Delivered" in bot.texts_to(REPORTER)
    assert not records.tracebacks()
