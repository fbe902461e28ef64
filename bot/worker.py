"""The background loop shared by the outbox and the timers: drain what is due, then wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def run_until_stopped(
    name: str,
    drain_once: Callable[[], Awaitable[int]],
    stop: asyncio.Event,
    wakeup: asyncio.Event,
    poll_seconds: float,
) -> None:
    """Call `drain_once` until it finds nothing, then sleep until woken or `poll_seconds`.
    An error never ends the loop: the rows stay in the store for the next pass."""
    while not stop.is_set():
        # Cleared before draining, so a wake-up that arrives mid-pass is not lost.
        wakeup.clear()
        try:
            while await drain_once():
                pass
        except Exception as exc:
            logger.error("%s pass failed: %s", name, type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), poll_seconds)
