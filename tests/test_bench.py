# The shipped benchmark runs end to end (its numbers are read by people, not asserted here).
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


async def test_benchmark_reports_ratios_against_the_echo_baseline():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = await bench.main(reports=1)
    assert results["turns"] == len(bench.WALKS["disclosure"]) + 2
    for key in ("median_turn_ratio", "p95_turn_ratio", "peak_memory_ratio"):
        assert results[key] > 0
