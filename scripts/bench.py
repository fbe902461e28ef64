"""Benchmark: what a report costs, as ratios against a bare echo bot in the same process.

    .venv/bin/python scripts/bench.py [--reports N]

Both bots run behind the same aiohttp app, CloudAdapter and fake Bot Connector on loopback,
so the ratios show what our layers (store, session, flow engine, cards, outbox) add to the
Bot Framework's own cost. Timings on a shared machine vary; ratios within one run do not
depend on the machine's speed. Memory is tracemalloc's peak while the turns run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from aiohttp.test_utils import TestServer
from botbuilder.core import ActivityHandler, MessageFactory, TurnContext

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapter import create_adapter  # noqa: E402
from bot.app import create_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.store import open_store  # noqa: E402
from tests.e2e import Clock, RunningBot, User  # noqa: E402
from tests.fakeconnector import FakeConnector  # noqa: E402
from tests.test_e2e import WALKS  # noqa: E402


class EchoBot(ActivityHandler):
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await turn_context.send_activity(MessageFactory.text(turn_context.activity.text or ""))


async def _timed_turns(bot: RunningBot, reports: int, answers: list[str]) -> list[float]:
    times = []
    for n in range(reports):
        user = User(f"29:bench-{n}", "Bench Teacher", f"00000000-0000-0000-0000-{n:012d}")
        turns = [bot.message(value={"action": "start", "flow": "disclosure"}, user=user)]
        turns += [bot.message(text, user=user) for text in [*answers, "send"]]
        for activity in turns:
            started = time.perf_counter()
            status, _ = await bot.post(activity)
            times.append(time.perf_counter() - started)
            assert status in (200, 201), status
    return times


async def measure_ours(reports: int, data: Path) -> tuple[list[float], int]:
    async with FakeConnector() as connector:
        bot = await RunningBot(connector, data, Clock()).start()
        tracemalloc.start()
        times = await _timed_turns(bot, reports, WALKS["disclosure"])
        await bot.settle(timeout=60)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        await bot.stop()
    return times, peak


async def measure_echo(reports: int, data: Path) -> tuple[list[float], int]:
    async with FakeConnector() as connector:
        settings = Settings(data_dir=data)
        store = open_store(data / "echo.sqlite3")
        app = create_app(settings, EchoBot(), store, create_adapter(settings))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        bot = RunningBot(connector, data, Clock())
        await bot.connect(str(server.make_url("/api/messages")))
        tracemalloc.start()
        times = await _timed_turns(bot, reports, WALKS["disclosure"])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        await bot.stop()
        await server.close()
        store.close()
    return times, peak


async def main(reports: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        echo_times, echo_peak = await measure_echo(reports, Path(tmp) / "echo")
        our_times, our_peak = await measure_ours(reports, Path(tmp) / "ours")
    results = {
        "turns": len(our_times),
        "echo_median_ms": statistics.median(echo_times) * 1000,
        "ours_median_ms": statistics.median(our_times) * 1000,
        "median_turn_ratio": statistics.median(our_times) / statistics.median(echo_times),
        "p95_turn_ratio": _p95(our_times) / _p95(echo_times),
        "peak_memory_ratio": our_peak / max(echo_peak, 1),
    }
    return results


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=20, help="disclosures to file (default 20)")
    args = parser.parse_args()
    for name, value in asyncio.run(main(args.reports)).items():
        print(f"{name:>20}: {value:.2f}" if isinstance(value, float) else f"{name:>20}: {value}")
