# The shipped benchmark runs end to end, fast (its figures are read by people, not asserted).
from __future__ import annotations

import gc
import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    return bench


async def test_the_benchmark_measures_every_figure_against_the_echo_bot():
    bench = _bench()
    results = await bench.main(bench.QUICK)
    quick = bench.QUICK
    assert results["turns"] == quick.staff * quick.walks * (len(bench.WALK) + 2)
    assert results["echo_errors"] == results["ours_errors"] == 0
    assert results["alerts"] == quick.staff * quick.walks and results["alerts_lost"] == 0
    for key in (
        "turns_ratio",
        "echo_peak_rss_mb",
        "ours_peak_rss_mb",
        "ours_paced_p99_ms",
        "echo_paced_p99_ms",
        "alert_saturated_p99_s",
        "alert_idle_p99_s",
        "open_concerns_10_ms",
        "db_bytes_per_report",
    ):
        assert results[key] > 0, key
    assert "turns/s" in bench.table(results)


async def test_the_load_generators_own_collector_is_still_while_it_measures():
    # Its full collections (50-120 ms) were counted as the bot's worst turns.
    bench = _bench()
    seen = []

    @bench.measured
    async def phase() -> None:
        seen.append((gc.isenabled(), gc.get_freeze_count() > 0))

    assert gc.isenabled()
    await phase()
    assert seen == [(False, True)]
    assert gc.isenabled() and gc.get_freeze_count() == 0
