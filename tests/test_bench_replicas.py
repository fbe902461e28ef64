# The replicas benchmark runs end to end, fast: SQLite, PostgreSQL, two PostgreSQL replicas and
# the echo bot in one run (its figures are read by people, not asserted).
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_the_replicas_benchmark_measures_each_store_against_the_echo_bot(pg_cluster):
    if "bench" not in sys.modules:
        load("bench")
    bench_replicas = load("bench_replicas")
    results = await bench_replicas.main(bench_replicas.QUICK, cluster=pg_cluster)
    quick = bench_replicas.QUICK
    assert results["echo"]["turns_per_s"] > 0
    for name in ("sqlite_1", "postgresql_1", "postgresql_2"):
        figures = results[name]
        assert figures["alerts"] == quick.staff * quick.walks, name
        assert figures["alerts_lost"] == figures["errors"] == 0, name
        assert figures["turns_per_s"] > 0 and figures["alert_p99_s"] > 0, name
    assert "PostgreSQL, 2 replicas" in bench_replicas.table(results)
