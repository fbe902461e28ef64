"""Benchmark: the bot on SQLite, on PostgreSQL, and as two replicas on PostgreSQL, against the
SDK's echo bot in the same run (issue 11, "Measure").

    .venv/bin/python scripts/bench_replicas.py           # `make bench-replicas`: a few minutes
    .venv/bin/python scripts/bench_replicas.py --quick   # seconds (tests/test_bench.py)

The load is scripts/bench.py's: N simulated staff each walking the disclosure procedure
without pauses, real activities over HTTP on loopback, a fake Bot Connector recording each
alert card's arrival. With two replicas every request goes to the next one in turn, as a load
balancer without session affinity does (any replica takes any turn). PostgreSQL is a
throwaway local server (tests/pgcluster.py: fsync off, so it flatters PostgreSQL's absolute
figures a little; SQLite keeps its synchronous=FULL). Measured for each: turns/s (and the
ratio to the echo bot's), and send -> alert card at the connector, p50 / p99, under that load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402
from bench import (  # noqa: E402
    Load,
    Plan,
    Server,
    TimedConnector,
    _post,
    _staff,
    _walk,
    machine,
    markdown_table,
    pct,
)

from tests.e2e import Clock, RunningBot  # noqa: E402

QUICK = Plan(staff=4, walks=1)
# Every replica must read what the others sealed: one data key for all (as in production).
DATA_KEY = base64.b64encode(b"b" * 32).decode()


async def start_replica(data: Path, database_url: str = "") -> Server:
    port = bench._free_port()
    env = {**os.environ, "APP_ID": "", "PYTHONPATH": str(ROOT), "DATA_KEY": DATA_KEY}
    env["DATABASE_URL"] = database_url
    env.pop("SAFEGUARDING_CLOCK_FILE", None)
    command = [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--data", str(data)]
    return await bench._start(command, env, ROOT, port)


@bench.measured
async def saturate_across(
    urls: list[str], connector: TimedConnector, plan: Plan, offset: int
) -> Load:
    """`plan.staff` people each walking `plan.walks` disclosures; request i to urls[i % n]."""
    load = Load()
    clients = [await RunningBot(connector, Path("."), Clock()).connect(u) for u in urls]
    turn = 0

    async def person(n: int) -> None:
        nonlocal turn
        for w in range(plan.walks):
            code = bench._code(offset + n * plan.walks + w)
            activities = _walk(clients[0], _staff(offset + n), code)
            for i, activity in enumerate(activities):
                turn += 1
                client = clients[turn % len(clients)]
                began = await _post(client, activity, load)
                if i == len(activities) - 1:
                    load.sends[code] = began
                    load.answered[code] = time.monotonic()

    load.started = time.monotonic()
    await asyncio.gather(*(person(n) for n in range(plan.staff)))
    load.ended = time.monotonic()
    for client in clients:
        await client.stop()
    return load


async def measure(
    servers: list[Server], connector: TimedConnector, plan: Plan, offset: int
) -> dict[str, float]:
    load = await saturate_across([s.url for s in servers], connector, plan, offset)
    codes = list(load.sends)
    await bench._wait_for_alerts(connector, codes, 180)
    arrived = [c for c in codes if c in connector.alerts]
    latencies = [connector.alerts[c] - load.sends[c] for c in arrived]
    return {
        "turns_per_s": load.turns_per_second,
        "alert_p50_s": pct(latencies, 50),
        "alert_p99_s": pct(latencies, 99),
        "alerts": len(codes),
        "alerts_lost": len(codes) - len(arrived),
        "errors": load.errors,
    }


async def main(plan: Plan | None = None, cluster: Any = None) -> dict[str, Any]:
    from tests.pgcluster import Cluster

    plan = plan or Plan()
    own_cluster = cluster is None
    cluster = cluster or Cluster()
    results: dict[str, Any] = {"staff": plan.staff}
    try:
        async with TimedConnector() as connector:
            with tempfile.TemporaryDirectory() as tmp:
                tmp_path = Path(tmp)
                echo = await bench.start_echo()
                try:
                    load = await saturate_across([echo.url], connector, plan, 0)
                    results["echo"] = {"turns_per_s": load.turns_per_second}
                finally:
                    await echo.stop()
                runs = [
                    ("sqlite_1", ["" for _ in range(1)]),
                    ("postgresql_1", [cluster.database()]),
                ]
                shared = cluster.database()
                runs.append(("postgresql_2", [shared, shared]))
                for n, (name, urls) in enumerate(runs, start=1):
                    servers = [
                        await start_replica(tmp_path / f"{name}-{i}", url)
                        for i, url in enumerate(urls)
                    ]
                    try:
                        results[name] = await measure(servers, connector, plan, n * 10**6)
                    finally:
                        for server in servers:
                            await server.stop()
    finally:
        if own_cluster:
            cluster.stop()
    echo_rate = results["echo"]["turns_per_s"]
    for name in ("sqlite_1", "postgresql_1", "postgresql_2"):
        results[name]["ratio_to_echo"] = results[name]["turns_per_s"] / echo_rate
    return results


def table(r: dict[str, Any]) -> str:
    rows = [("store, replicas", "turns/s", "vs echo bot", "send -> alert p50 / p99, s")]
    rows.append(("echo bot (baseline)", f"{r['echo']['turns_per_s']:.0f}", "1.00x", ""))
    for name, label in (
        ("sqlite_1", "SQLite, 1 replica"),
        ("postgresql_1", "PostgreSQL, 1 replica"),
        ("postgresql_2", "PostgreSQL, 2 replicas"),
    ):
        x = r[name]
        lost = f" ({x['alerts_lost']} of {x['alerts']} lost)" if x["alerts_lost"] else ""
        rows.append(
            (
                label,
                f"{x['turns_per_s']:.0f}",
                f"{x['ratio_to_echo']:.2f}x",
                f"{x['alert_p50_s']:.2f} / {x['alert_p99_s']:.2f}{lost}",
            )
        )
    return markdown_table(rows) + f"\n\n{r['staff']} staff, no pauses. Machine: {machine()}."


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--staff", type=int, help="concurrent staff (default 100)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args()
    chosen = QUICK if args.quick else Plan()
    if args.staff:
        chosen = Plan(**{**chosen.__dict__, "staff": args.staff})
    figures = asyncio.run(main(chosen))
    print(table(figures))
    if args.json:
        print(json.dumps(figures, indent=1))
