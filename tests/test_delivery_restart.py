# A real server process killed with SIGKILL in the middle of posting an alert (issue 10 s1-2):
# after a restart the alert goes again within seconds - the clock does not move, so no lease
# runs out - the re-sent card says it may be a second copy, and acting on the copy the store
# never heard of updates the other one.
from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e import CHANNEL, DSL, Clock, RunningBot, concern_id_of
from tests.fakeconnector import FakeConnector
from tests.test_e2e import WALKS
from tests.test_restart import free_port, kill, start_server, wait_for

RESEND = "Sent again"


def channel_threads(connector: FakeConnector) -> list:
    return [c for c in connector.conversations.values() if c.channel_id == CHANNEL]


def alert_body(conversation) -> list:
    _, activity = next(iter(conversation.activities.items()))
    return activity["attachments"][0]["content"]["body"]


async def start(tmp_path: Path, connector: FakeConnector, clock: Clock):
    clock_file = tmp_path / "now.txt"
    clock_file.write_text(clock.now.isoformat(), "utf-8")
    data, port = tmp_path / "data", free_port()
    server = await start_server(data, clock_file, port)
    client = await RunningBot(connector, data, clock).connect(
        f"http://127.0.0.1:{port}/api/messages"
    )
    return server, client, (data, clock_file, port)


async def report(client: RunningBot) -> None:
    await client.post(client.message(value={"action": "start", "flow": "disclosure"}))
    await client.say(*WALKS["disclosure"])
    await client.post(client.message("send"))


async def test_killed_after_teams_took_the_alert_the_resent_card_says_so_and_both_update(
    tmp_path: Path,
):
    async with FakeConnector() as connector:
        held = connector.hold_answer(r"^/v3/conversations$")  # the thread is created...
        server, client, where = await start(tmp_path, connector, Clock())
        try:
            await report(client)
            await asyncio.wait_for(held.arrived.wait(), 10)
            await kill(server)  # ...and the bot dies before it hears so
            held.release.set()
            assert len(channel_threads(connector)) == 1

            server = await start_server(*where)
            await wait_for(lambda: len(channel_threads(connector)) == 2, timeout=5)
            first, second = channel_threads(connector)
            assert RESEND not in str(alert_body(first))
            assert alert_body(second)[0]["text"].startswith(RESEND)

            # The DSL acknowledges on the first card, which the store never recorded.
            root = next(iter(first.activities))
            card = first.activities[root]["attachments"][0]["content"]
            concern_id = concern_id_of(card)
            status, _ = await client.post(
                client.press("acknowledge", concern_id, user=DSL, thread=first.id, reply_to=root)
            )
            assert status == 200
            second_root = next(iter(second.activities))

            def second_updated() -> bool:
                return any(
                    r.method == "PUT" and r.path.endswith(second_root) and DSL.name in str(r.json)
                    for r in connector.requests
                )

            await wait_for(second_updated, timeout=5)
            # ...and later updates reach the first copy too: it is now known to the concern.
            await wait_for(
                lambda: any(
                    r.method == "PUT" and r.path.endswith(f"/activities/{root}")
                    for r in connector.requests
                ),
                timeout=5,
            )
        finally:
            await client.stop()
            if server.returncode is None:
                await kill(server)


async def test_killed_mid_send_the_alert_reaches_teams_within_seconds_of_the_restart(
    tmp_path: Path,
):
    async with FakeConnector() as connector:
        release = connector.hold(r"^/v3/conversations$")  # no answer: the send is in flight
        server, client, where = await start(tmp_path, connector, Clock())
        try:
            await report(client)
            await wait_for(lambda: connector.held, timeout=10)
            await kill(server)
            release.set()
            await asyncio.sleep(0.2)
            before = len(channel_threads(connector))  # what the dead send did, if anything

            server = await start_server(*where)  # the clock has not moved: no lease ran out
            await wait_for(lambda: len(channel_threads(connector)) > before, timeout=5)
            assert alert_body(channel_threads(connector)[-1])[0]["text"].startswith(RESEND)
        finally:
            await client.stop()
            if server.returncode is None:
                await kill(server)
