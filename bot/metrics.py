"""Counters and gauges for GET /metrics, in the Prometheus text format (version 0.0.4).

Only counts, ages and fixed codes: no label ever holds an id, a name or anything anyone
wrote, so the page is safe to scrape from outside the safeguarding team.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The activity types a turn is counted under; anything else counts as "other".
TURN_TYPES = frozenset(
    {"message", "invoke", "conversationUpdate", "installationUpdate", "messageReaction", "event"}
)

Gauge = Callable[[], Awaitable[float | None]]


@dataclass(frozen=True)
class _Help:
    name: str
    kind: str
    text: str


REFUSALS = _Help(
    "safeguarding_refusals_total",
    "counter",
    "Requests to /api/messages refused at the edge, by HTTP status and reason code.",
)
TURNS = _Help("safeguarding_turns_total", "counter", "Activities handled, by activity type.")


class Metrics:
    """One per app. Counters are kept here; gauges are read when /metrics is asked for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refusals: dict[tuple[int, str], int] = {}
        self._turns: dict[str, int] = {}
        # name -> (help text, async reader). Other parts of the bot add theirs with `gauge`.
        self._gauges: dict[str, tuple[str, Gauge]] = {}

    def refused(self, status: int, code: str) -> None:
        with self._lock:
            self._refusals[(status, code)] = self._refusals.get((status, code), 0) + 1

    def turn(self, activity_type: object) -> None:
        kind = activity_type if activity_type in TURN_TYPES else "other"
        with self._lock:
            self._turns[kind] = self._turns.get(kind, 0) + 1

    def gauge(self, name: str, help_text: str, read: Gauge) -> None:
        """Expose `read()` as gauge `name` (None from `read` leaves the sample out)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"bad metric name {name!r}")
        self._gauges[name] = (help_text, read)

    def refusal_count(self, status: int, code: str) -> int:
        with self._lock:
            return self._refusals.get((status, code), 0)

    async def render(self) -> str:
        with self._lock:
            refusals = sorted(self._refusals.items())
            turns = sorted(self._turns.items())
        lines = _header(REFUSALS)
        lines += [f'{REFUSALS.name}{{status="{s}",reason="{c}"}} {n}' for (s, c), n in refusals]
        lines += _header(TURNS)
        lines += [f'{TURNS.name}{{type="{t}"}} {n}' for t, n in turns]
        for name, (help_text, read) in sorted(self._gauges.items()):
            lines += _header(_Help(name, "gauge", help_text))
            value = await read()
            if value is not None:
                lines.append(f"{name} {_number(value)}")
        return "\n".join(lines) + "\n"


def _header(metric: _Help) -> list[str]:
    return [f"# HELP {metric.name} {metric.text}", f"# TYPE {metric.name} {metric.kind}"]


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def watch_store(metrics: Metrics, store: Any, clock: Callable[[], datetime]) -> None:
    """The delivery gauges, read from the store when /metrics is scraped."""

    async def outbox_depth() -> float:
        return (await store.outbox_backlog())[0]

    async def oldest_alert_age() -> float:
        oldest = (await store.outbox_backlog())[1]
        return max(0.0, (clock() - oldest).total_seconds()) if oldest else 0.0

    async def timers_due() -> float:
        return await store.count_due_timers(clock())

    metrics.gauge(
        "safeguarding_outbox_depth", "Messages queued and not yet delivered.", outbox_depth
    )
    metrics.gauge(
        "safeguarding_oldest_undelivered_alert_age_seconds",
        "Age of the oldest alert not yet delivered (0 when none).",
        oldest_alert_age,
    )
    metrics.gauge("safeguarding_timers_due", "Timers due now and not yet finished.", timers_due)
