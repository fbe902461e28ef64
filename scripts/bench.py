"""Benchmark: what staff and the DSL feel, against the SDK's plain echo bot in the same run.

    .venv/bin/python scripts/bench.py            # `make bench`: a few minutes on 2 cores
    .venv/bin/python scripts/bench.py --quick    # seconds: the smoke run tests/test_bench.py does

Both bots run as their own processes (ours: `safeguarding-bot serve`; the baseline:
scripts/echo_bot.py, the SDK sample), on loopback, with real Bot Framework activities posted
to /api/messages by simulated staff walking the disclosure procedure, and a fake Bot
Connector in this process recording replies and alert cards. Memory is the server process's
resident set as the OS reports it (/proc/<pid>/status). Measured:

- turns/s with N staff sending without pause, ours against the echo bot (the ratio matters:
  it does not depend on the machine's speed);
- turn latency p50/p99 with N staff pausing 2-4 s between turns (what a person waits);
- send -> alert card at the connector, p50/p99, while saturated (above) and when idle, and
  how many alerts were still queued 2 s after the load stopped;
- the "open concerns" command with 10 / 1,000 / 10,000 concerns stored.

`--ours-root DIR` runs another checkout of the bot (e.g. the commit before a change) with
this script, for before/after figures.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import functools
import gc
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
# The seeding subprocess runs with the checkout under test first on the path.
if not os.environ.get("BENCH_SEED"):
    sys.path.insert(0, str(ROOT))

from tests.e2e import DSL, Clock, RunningBot, User  # noqa: E402
from tests.fakeconnector import FakeConnector  # noqa: E402
from tests.test_e2e import CHILD, WALKS  # noqa: E402

WALK = WALKS["disclosure"]
CHILD_AT = WALK.index(CHILD)


def use_walk_of(root: Path) -> None:
    """Walk the disclosure as `root`'s own tests do (its flow may ask other questions)."""
    global WALK, CHILD_AT
    tree = ast.parse((root / "tests" / "test_e2e.py").read_text("utf-8"))
    names: dict[str, Any] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in ("CHILD", "WORDS", "WALKS"):
            exec(compile(ast.Module([node], []), "test_e2e", "exec"), names)
    WALK = names["WALKS"]["disclosure"]
    CHILD_AT = WALK.index(names["CHILD"])


NAME = re.compile(r"Amelia (Bench[a-z]+)")


@dataclass(frozen=True)
class Plan:
    staff: int = 100
    walks: int = 2  # disclosures each, back to back, in the saturated run
    paced_staff: int = 100
    paced_seconds: float = 30.0
    pause: tuple[float, float] = (2.0, 4.0)
    idle_alerts: int = 20
    sizes: tuple[int, ...] = (10, 1_000, 10_000)
    open_concerns_asks: int = 10


QUICK = Plan(
    staff=3,
    walks=1,
    paced_staff=3,
    paced_seconds=0.5,
    pause=(0.05, 0.1),
    idle_alerts=2,
    sizes=(10,),
    open_concerns_asks=2,
)


class TimedConnector(FakeConnector):
    """The fake Bot Connector, noting when each alert card (a new channel thread) arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.alerts: dict[str, float] = {}

    async def _create_conversation(self, request: aiohttp.web.Request) -> Any:
        response = await super()._create_conversation(request)
        params = await request.json()
        if (params.get("channelData") or {}).get("channel"):
            arrived = time.monotonic()
            text = json.dumps(params.get("activity") or {}, ensure_ascii=False)
            for code in NAME.findall(text):
                self.alerts.setdefault(code, arrived)
        return response


# -- the server processes ---------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: asyncio.subprocess.Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/messages"

    def memory_mb(self) -> tuple[float, float]:
        """(resident now, peak resident) in MB, from the OS."""
        found = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
        return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def _start(command: list[str], env: dict[str, str], cwd: Path, port: int) -> Server:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=str(cwd),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    server = Server(process, port)
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return server
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    await server.stop()
    raise RuntimeError(f"{command[1:3]} did not become ready")


async def start_ours(root: Path, data: Path) -> Server:
    port = _free_port()
    env = {**os.environ, "APP_ID": "", "PYTHONPATH": str(root)}
    env.pop("SAFEGUARDING_CLOCK_FILE", None)
    command = [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--data", str(data)]
    return await _start(command, env, root, port)


async def start_echo() -> Server:
    port = _free_port()
    command = [sys.executable, str(ROOT / "scripts" / "echo_bot.py"), str(port)]
    return await _start(command, dict(os.environ), ROOT, port)


# -- simulated staff --------------------------------------------------------------------------


def _code(n: int) -> str:
    letters = ""
    while True:
        n, rest = divmod(n, 26)
        letters = "abcdefghijklmnopqrstuvwxyz"[rest] + letters
        if n == 0:
            return "Bench" + letters


def _staff(n: int) -> User:
    return User(f"29:bench-{n}", f"Bench Teacher {n}", f"00000000-0000-0000-0000-{n:012d}")


def _walk(client: RunningBot, user: User, code: str) -> list[dict[str, Any]]:
    answers = list(WALK)
    answers[CHILD_AT] = f"Amelia {code}"
    turns = [client.message(value={"action": "start", "flow": "disclosure"}, user=user)]
    return turns + [client.message(text, user=user) for text in [*answers, "send"]]


def measured(phase: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Run a measured phase with this process's garbage collector held still.

    The simulated staff and the fake connector share this process, and the connector keeps
    every request: a full collection here paused them all for 50-120 ms, and those pauses were
    counted as the bot's turn latency (the echo bot's too) - the worst turns of the paced run
    were the ones waiting on it. What is already built is frozen out of the collector and the
    collector is off until the phase ends; the bots themselves are untouched.
    """

    @functools.wraps(phase)
    async def run(*args: Any, **kwargs: Any) -> Any:
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            return await phase(*args, **kwargs)
        finally:
            gc.enable()
            gc.unfreeze()

    return run


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    sends: dict[str, float] = field(default_factory=dict)  # child code -> when "send" was posted
    answered: dict[str, float] = field(default_factory=dict)  # ... and when it was answered
    errors: int = 0
    started: float = 0.0
    ended: float = 0.0

    @property
    def turns_per_second(self) -> float:
        return len(self.latencies) / max(self.ended - self.started, 1e-9)


async def _post(client: RunningBot, activity: dict[str, Any], load: Load) -> float:
    began = time.monotonic()
    status, _ = await client.post(activity)
    load.latencies.append(time.monotonic() - began)
    if status not in (200, 201):
        load.errors += 1
    return began


@measured
async def saturate(url: str, connector: FakeConnector, plan: Plan, tag: str) -> Load:
    """`plan.staff` people each walking `plan.walks` disclosures, no pauses."""
    load = Load()
    client = await RunningBot(connector, Path("."), Clock()).connect(url)

    async def person(n: int) -> None:
        for w in range(plan.walks):
            code = _code((10**6 if tag == "ours" else 0) + n * plan.walks + w)
            turns = _walk(client, _staff(n), code)
            for activity in turns[:-1]:
                await _post(client, activity, load)
            load.sends[code] = await _post(client, turns[-1], load)
            load.answered[code] = time.monotonic()

    load.started = time.monotonic()
    await asyncio.gather(*(person(n) for n in range(plan.staff)))
    load.ended = time.monotonic()
    await client.stop()
    return load


@measured
async def paced(url: str, connector: FakeConnector, plan: Plan) -> Load:
    """`plan.paced_staff` people walking disclosures, pausing 2-4 s before every turn."""
    load = Load()
    client = await RunningBot(connector, Path("."), Clock()).connect(url)
    rng = random.Random(8)
    deadline = time.monotonic() + plan.paced_seconds

    async def person(n: int) -> None:
        w = 0
        while time.monotonic() < deadline:
            for activity in _walk(client, _staff(10_000 + n), _code(10**9 + n * 1000 + w)):
                await asyncio.sleep(rng.uniform(*plan.pause))
                if time.monotonic() >= deadline:
                    return
                await _post(client, activity, load)
            w += 1

    load.started = time.monotonic()
    await asyncio.gather(*(person(n) for n in range(plan.paced_staff)))
    load.ended = time.monotonic()
    await client.stop()
    return load


async def _wait_for_alerts(connector: TimedConnector, codes: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(c in connector.alerts for c in codes):
        await asyncio.sleep(0.005)


@measured
async def idle_alerts(url: str, connector: TimedConnector, plan: Plan) -> list[float]:
    """One person, nobody else: each report's send -> alert card at the connector."""
    client = await RunningBot(connector, Path("."), Clock()).connect(url)
    load = Load()
    latencies = []
    for n in range(plan.idle_alerts):
        code = _code(2 * 10**9 + n)
        turns = _walk(client, _staff(20_000), code)
        for activity in turns[:-1]:
            await _post(client, activity, load)
        sent = await _post(client, turns[-1], load)
        await _wait_for_alerts(connector, [code], 30)
        if code in connector.alerts:
            latencies.append(connector.alerts[code] - sent)
    await client.stop()
    return latencies


@measured
async def open_concerns(url: str, connector: FakeConnector, asks: int) -> list[float]:
    client = await RunningBot(connector, Path("."), Clock()).connect(url)
    load = Load()
    for _ in range(asks):
        await _post(client, client.message("open concerns", user=DSL), load)
    await client.stop()
    return load.latencies


def seed(data: Path, count: int) -> None:
    """Store `count` open DSL-team concerns (runs with the checkout under test's modules)."""
    from datetime import UTC, datetime

    from bot.store import open_store
    from bot.store.rows import _concern_row, _upsert_concern
    from tests.test_store import make_concern

    data.mkdir(parents=True, exist_ok=True)
    store = open_store(data / "safeguarding.sqlite3")
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = [_concern_row(make_concern(f"seed-{i:06d}"), "raised", now) for i in range(count)]

    def work(conn: Any) -> None:
        for row in rows:
            _upsert_concern(conn, row)

    asyncio.run(store._write(work))
    store.close()


def _seed_in(root: Path, data: Path, count: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(root), "BENCH_SEED": "1"}
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--seed", str(data), str(count)],
        env=env,
        cwd=str(root),
        check=True,
    )


# -- the run ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _with(server_factory: Callable[[], Awaitable[Server]], work: Callable) -> Any:
    server = await server_factory()
    try:
        return await work(server)
    finally:
        await server.stop()


async def main(plan: Plan = Plan(), ours_root: Path = ROOT) -> dict[str, Any]:
    if ours_root != ROOT:
        use_walk_of(ours_root)
    results: dict[str, Any] = {"staff": plan.staff, "paced_staff": plan.paced_staff}
    async with TimedConnector() as connector:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)

            async def echo_run(server: Server) -> None:
                load = await saturate(server.url, connector, plan, "echo")
                results["echo_turns_per_s"] = load.turns_per_second
                results["echo_rss_mb"], results["echo_peak_rss_mb"] = server.memory_mb()
                pace = await paced(server.url, connector, plan)
                results["echo_paced_p50_ms"] = pct(pace.latencies, 50) * 1000
                results["echo_paced_p99_ms"] = pct(pace.latencies, 99) * 1000
                results["echo_errors"] = load.errors + pace.errors

            await _with(start_echo, echo_run)

            async def ours_run(server: Server) -> None:
                load = await saturate(server.url, connector, plan, "ours")
                results["turns"] = len(load.latencies)
                results["ours_turns_per_s"] = load.turns_per_second
                codes = list(load.sends)
                await asyncio.sleep(max(0.0, load.ended + 2 - time.monotonic()))
                results["alerts"] = len(codes)
                results["alerts_queued_2s_after"] = sum(c not in connector.alerts for c in codes)
                await _wait_for_alerts(connector, codes, 180)
                arrived = [c for c in codes if c in connector.alerts]
                saturated = [connector.alerts[c] - load.sends[c] for c in arrived]
                results["alerts_lost"] = len(codes) - len(saturated)
                results["alert_saturated_p50_s"] = pct(saturated, 50)
                results["alert_saturated_p99_s"] = pct(saturated, 99)
                # From the moment the reporter was told "saved" (the turn's queueing excluded).
                after = [max(0.0, connector.alerts[c] - load.answered[c]) for c in arrived]
                results["alert_after_reply_p50_s"] = pct(after, 50)
                results["alert_after_reply_p99_s"] = pct(after, 99)
                results["ours_rss_mb"], results["ours_peak_rss_mb"] = server.memory_mb()
                pace = await paced(server.url, connector, plan)
                results["ours_paced_p50_ms"] = pct(pace.latencies, 50) * 1000
                results["ours_paced_p99_ms"] = pct(pace.latencies, 99) * 1000
                idle = await idle_alerts(server.url, connector, plan)
                results["alert_idle_p50_s"] = pct(idle, 50)
                results["alert_idle_p99_s"] = pct(idle, 99)
                results["ours_errors"] = load.errors + pace.errors
                results["reports"] = len(codes) + len(idle)

            await _with(lambda: start_ours(ours_root, tmp_path / "ours"), ours_run)
            size, pruned = _db_size_in(ours_root, tmp_path / "ours")
            results["db_bytes_per_report"] = size / max(1, results["reports"])
            if pruned is not None:
                results["db_bytes_per_report_pruned"] = pruned / max(1, results["reports"])

            for size in plan.sizes:
                data = tmp_path / f"open-{size}"
                _seed_in(ours_root, data, size)

                async def ask(server: Server, size: int = size) -> None:
                    times = await open_concerns(server.url, connector, plan.open_concerns_asks)
                    results[f"open_concerns_{size}_ms"] = statistics.median(times) * 1000

                await _with(lambda data=data: start_ours(ours_root, data), ask)
    results["turns_ratio"] = results["ours_turns_per_s"] / results["echo_turns_per_s"]
    return results


def db_size(data: Path) -> tuple[int, int | None]:
    """The database's size in use (WAL folded in), and after a prune a month later."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    from bot.store import open_store

    path = data / "safeguarding.sqlite3"

    def in_use() -> int:
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages, free = (
                db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count")
            )
            return (pages - free) * db.execute("PRAGMA page_size").fetchone()[0]

    before = in_use()
    store = open_store(path)
    if not hasattr(store, "prune"):
        store.close()
        return before, None
    asyncio.run(store.prune(datetime.now(UTC) + timedelta(days=31)))
    store.close()
    return before, in_use()


def _db_size_in(root: Path, data: Path) -> tuple[int, int | None]:
    env = {**os.environ, "PYTHONPATH": str(root), "BENCH_SEED": "1"}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--db-size", str(data)],
        env=env,
        cwd=str(root),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


def table(r: dict[str, Any]) -> str:
    n, p = r["staff"], r["paced_staff"]
    rows = [
        ("figure", "echo bot", "ours", "ours / goal"),
        (
            f"turns/s, {n} staff, no pauses",
            f"{r['echo_turns_per_s']:.0f}",
            f"{r['ours_turns_per_s']:.0f}",
            f"{r['turns_ratio']:.2f}x echo (goal >= 1.2x)",
        ),
        (
            "resident memory after that, MB (peak)",
            f"{r['echo_rss_mb']:.0f} ({r['echo_peak_rss_mb']:.0f})",
            f"{r['ours_rss_mb']:.0f} ({r['ours_peak_rss_mb']:.0f})",
            f"{r['ours_peak_rss_mb'] / max(r['echo_peak_rss_mb'], 1):.2f}x echo",
        ),
        (
            f"turn p50 / p99, {p} staff pausing 2-4 s, ms",
            f"{r['echo_paced_p50_ms']:.0f} / {r['echo_paced_p99_ms']:.0f}",
            f"{r['ours_paced_p50_ms']:.0f} / {r['ours_paced_p99_ms']:.0f}",
            "p99 goal < 50 ms",
        ),
        (
            f"send -> alert card p50 / p99, saturated ({r['alerts']} alerts), s",
            "",
            f"{r['alert_saturated_p50_s']:.2f} / {r['alert_saturated_p99_s']:.2f}",
            f"p99 goal < 1 s; {r['alerts_queued_2s_after']} queued 2 s after the load, "
            f"{r['alerts_lost']} lost",
        ),
        (
            "reporter told 'saved' -> alert card p50 / p99, saturated, s",
            "",
            f"{r['alert_after_reply_p50_s']:.2f} / {r['alert_after_reply_p99_s']:.2f}",
            "the send turn's own wait excluded",
        ),
        (
            "send -> alert card p50 / p99, idle, s",
            "",
            f"{r['alert_idle_p50_s']:.3f} / {r['alert_idle_p99_s']:.3f}",
            "",
        ),
    ]
    for key in sorted(k for k in r if k.startswith("open_concerns_")):
        size = int(key.split("_")[2])
        rows.append(
            (f"'open concerns', {size:,} stored, ms", "", f"{r[key]:.0f}", "goal flat, < 20 ms")
        )
    pruned = r.get("db_bytes_per_report_pruned")
    rows.append(
        (
            "database bytes per report filed",
            "",
            f"{r['db_bytes_per_report']:,.0f}",
            f"{pruned:,.0f} after the pruning a month later"
            if pruned is not None
            else "no pruning",
        )
    )
    return (
        markdown_table(rows)
        + f"\n\nMachine: {machine()}; errors: echo {r['echo_errors']}, ours {r['ours_errors']}."
    )


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    """The rows as a Markdown table, the first row its heading, columns padded to line up."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--staff", type=int, help="concurrent staff (default 100)")
    parser.add_argument("--paced-seconds", type=float, help="length of the paced run (30)")
    parser.add_argument("--ours-root", type=Path, default=ROOT, help="checkout of the bot to run")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    parser.add_argument("--seed", nargs=2, metavar=("DATA", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--db-size", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.db_size:
        print(json.dumps(db_size(args.db_size)))
        sys.exit(0)
    if args.seed:
        seed(Path(args.seed[0]), int(args.seed[1]))
        sys.exit(0)
    chosen = QUICK if args.quick else Plan()
    if args.staff:
        chosen = Plan(**{**chosen.__dict__, "staff": args.staff, "paced_staff": args.staff})
    if args.paced_seconds:
        chosen = Plan(**{**chosen.__dict__, "paced_seconds": args.paced_seconds})
    figures = asyncio.run(main(chosen, args.ours_root.resolve()))
    print(table(figures))
    if args.json:
        print(json.dumps(figures, indent=1))
