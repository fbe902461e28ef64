# One transaction per chat turn, with the activity's seen-mark in it: a turn commits once, and
# a turn killed mid-way then re-sent by Teams is applied exactly once, answers on the right
# questions (issue 8 s2, issue 10 s3).
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path

import aiohttp
import pytest

from bot.settings import Settings
from bot.store.keys import load_codec
from tests.e2e import REPORTER, Clock, RunningBot
from tests.fakeconnector import FakeConnector
from tests.stores import raw
from tests.test_e2e import CHILD, WALKS, alert_card, text_runs
from tests.test_restart import free_port, kill, start_server, wait_for

WALK = WALKS["disclosure"]
KEY = f"msteams/users/{REPORTER.id}"
IMAGE = {"contentType": "image/png", "contentUrl": "https://example.invalid/i.png"}
REPLIES = rf"/v3/conversations/a:personal-{REPORTER.id}/activities"


def _turns_commits(bot: RunningBot) -> list[str]:
    commits: list[str] = []
    bot.server.store.commit_hooks.append(commits.append)
    return commits


async def test_a_turn_that_writes_commits_once(bot: RunningBot):
    start = bot.message(value={"action": "start", "flow": "disclosure"})
    commits = _turns_commits(bot)
    await bot.post(start)
    # One fsync-ed transaction; which card is live is written after the replies on the
    # "cards" lane (no fsync: see bot/teams/handler.py), so it is not counted here.
    assert commits.count("turns") == 1  # session, stalled-report timers, seen-mark
    for answer in WALK:
        commits.clear()
        await bot.say(answer)
        assert commits.count("turns") == 1, answer
    commits.clear()
    await bot.say("send")  # the concern, its outbox, its timers, the session, the seen-mark
    # ... on the "sends" lane: the Send turn jumps the chat queue (bot/teams/lanes.py).
    assert commits.count("sends") == 1 and commits.count("turns") == 0
    await bot.settle()
    assert len(bot.channel_posts()) == 1


async def test_the_outbox_writes_on_its_own_thread_with_no_hop_to_another(bot: RunningBot):
    # Under a saturated chat loop each hop between threads waits ~15 ms for the GIL, and an
    # alert's delivery makes a dozen store calls (README, Performance).
    threads: list[tuple[str, str]] = []
    bot.server.store.commit_hooks.append(
        lambda lane: threads.append((lane, threading.current_thread().name))
    )
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    for answer in [*WALK, "send"]:
        await bot.say(answer)
    await bot.settle()
    assert len(bot.channel_posts()) == 1
    assert {thread for lane, thread in threads if lane == "outbox"} == {"outbox"}


async def test_a_known_persons_next_turn_rewrites_no_conversation_reference(bot: RunningBot):
    def refs() -> list[tuple]:
        with raw(bot.server.store) as db:
            return db.execute(
                "SELECT kind, key, updated_at FROM conversation_refs ORDER BY kind, key"
            ).fetchall()

    await bot.post(bot.message("lado"))
    first = refs()
    assert [kind for kind, _, _ in first] == ["service", "user"]
    bot.clock.advance(minutes=5)
    await bot.post(bot.message("out of hours"))  # another activity, so another activity id
    assert refs() == first


async def test_a_read_only_turn_commits_once_and_a_resent_activity_not_at_all(bot: RunningBot):
    commits = _turns_commits(bot)
    activity = bot.message("lado")
    await bot.post(activity)
    assert commits.count("turns") == 1  # the seen-mark (and where to reach this person)
    commits.clear()
    await bot.post(activity)
    assert commits.count("turns") == 0


def _session(db_path: Path) -> dict:
    # The session is sealed at rest (bot/store/sealing.py): read it with the data folder's key.
    db = load_codec(Settings(data_dir=db_path.parent)).connect(db_path)
    try:
        row = db.execute("SELECT data FROM bot_state WHERE key = ?", (KEY,)).fetchone()
    finally:
        db.close()
    flow = json.loads(row[0])["session"]["flow"]
    return {"step": flow["step"], "answers": flow["answers"]}


async def _reference(tmp_path: Path, attachment: bool) -> dict:
    """The session after the same answers, on a bot nobody killed."""
    async with FakeConnector() as connector:
        bot = await RunningBot(connector, tmp_path / "reference", Clock()).start()
        try:
            await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
            await bot.say(*WALK[:6])
            await bot.post(bot.message(WALK[6], attachments=[IMAGE] if attachment else None))
        finally:
            await bot.stop()
    return _session(tmp_path / "reference" / "safeguarding.sqlite3")


@pytest.mark.parametrize(
    "attachment",
    [True, False],
    ids=["killed-before-the-turn-committed", "killed-after-it-committed"],
)
async def test_sigkill_inside_a_turn_then_the_same_activity_resent_is_applied_once(
    tmp_path: Path, attachment: bool
):
    # With an image attached, the bot warns about it (a connector call, held here) BEFORE it
    # applies the answer; without, the held call is the reply AFTER the turn committed.
    expected = await _reference(tmp_path, attachment)
    clock_file = tmp_path / "now.txt"
    clock = Clock()
    clock_file.write_text(clock.now.isoformat(), "utf-8")
    data = tmp_path / "data"
    port = free_port()
    async with FakeConnector() as connector:
        server = await start_server(data, clock_file, port)
        client = await RunningBot(connector, data, clock).connect(
            f"http://127.0.0.1:{port}/api/messages"
        )
        try:
            await client.post(client.message(value={"action": "start", "flow": "disclosure"}))
            await client.say(*WALK[:6])
            release = connector.hold(REPLIES)
            activity = client.message(WALK[6], attachments=[IMAGE] if attachment else None)
            posting = asyncio.create_task(client.post(activity))
            await wait_for(lambda: connector.held)
            await kill(server)  # inside the turn
            with contextlib.suppress(aiohttp.ClientError):
                await posting
            release.set()

            server = await start_server(data, clock_file, port)
            status, _ = await client.post(activity)  # Teams re-sends the same activity
            assert status in (200, 201)
            assert _session(data / "safeguarding.sqlite3") == expected
            status, _ = await client.post(activity)  # and once more: still applied once
            assert _session(data / "safeguarding.sqlite3") == expected

            # The rest of the walk lands on the right questions: one alert with the answers.
            await client.say(*WALK[7:], "send")
            await wait_for(lambda: client.channel_posts())
            [post] = client.channel_posts()
            runs = text_runs(alert_card(post))
            assert CHILD in runs and "the library" in runs and "bruise left forearm" in runs
        finally:
            await client.stop()
            if server.returncode is None:
                await kill(server)
