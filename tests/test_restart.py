# A real server process killed with SIGKILL while a timer is pending: after a restart the
# timer fires exactly once. Time is moved through the server's file clock. On SQLite and on
# PostgreSQL (`serve` with DATABASE_URL).
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import aiohttp
import psycopg
import pytest

from tests.e2e import CHANNEL, Clock, RunningBot
from tests.fakeconnector import FakeConnector
from tests.test_timers import URGENT_DISCLOSURE

BIN = Path(sys.executable).parent / "safeguarding-bot"

pytestmark = pytest.mark.every_backend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_server(
    data: Path, clock_file: Path, port: int, database_url: str = ""
) -> asyncio.subprocess.Process:
    env = {**os.environ, "SAFEGUARDING_CLOCK_FILE": str(clock_file), "APP_ID": ""}
    env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        str(BIN),
        "serve",
        "--port",
        str(port),
        "--data",
        str(data),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not become ready")


async def kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


async def wait_for(predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


def nudges(connector: FakeConnector) -> list:
    return [
        r
        for r in connector.requests
        if r.method == "POST"
        and CHANNEL in r.path
        and "/activities" in r.path
        and "Can one of you take this" in str((r.json or {}).get("text"))
    ]


async def test_a_pending_timer_survives_sigkill_and_fires_exactly_once(
    tmp_path: Path, store_backend: str, request: pytest.FixtureRequest
):
    url = request.getfixturevalue("pg_cluster").database() if store_backend != "sqlite" else ""
    clock_file = tmp_path / "now.txt"
    clock = Clock()
    clock_file.write_text(clock.now.isoformat(), "utf-8")
    data = tmp_path / "data"
    port = free_port()
    async with FakeConnector() as connector:
        server = await start_server(data, clock_file, port, url)
        client = await RunningBot(connector, data, clock).connect(
            f"http://127.0.0.1:{port}/api/messages"
        )
        try:
            await client.post(client.message(value={"action": "start", "flow": "disclosure"}))
            await client.say(*URGENT_DISCLOSURE, "send")
            await wait_for(lambda: client.channel_posts())
            await asyncio.sleep(0.3)
            await kill(server)  # the escalation timer (due in five minutes) is pending

            clock.advance(minutes=6)
            clock_file.write_text(clock.now.isoformat(), "utf-8")
            server = await start_server(data, clock_file, port, url)
            await wait_for(lambda: nudges(connector))
            await asyncio.sleep(1.0)  # many scheduler passes: it must not fire again
            await kill(server)

            server = await start_server(data, clock_file, port, url)  # and once more
            await asyncio.sleep(1.0)
            assert len(nudges(connector)) == 1
        finally:
            await client.stop()
            if server.returncode is None:
                await kill(server)
    with psycopg.connect(url) if url else sqlite3.connect(data / "safeguarding.sqlite3") as db:
        fired = db.execute(
            "SELECT COUNT(*) FROM timers WHERE kind = 'escalate' AND status = 'done'"
        ).fetchone()[0]
        steps = db.execute("SELECT COUNT(*) FROM audit WHERE action = 'escalated'").fetchone()[0]
    assert (fired, steps) == (1, 1)
