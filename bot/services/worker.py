"""The background loop shared by the outbox and the timers: drain what is due, then wait."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)


async def run_until_stopped(
    name: str,
    drain_once: Callable[[], Awaitable[int]],
    stop: Any,
    wakeup: Any,
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


class LoopThread:
    """A worker with its own thread and event loop, so a saturated chat loop cannot delay it.

    Everything it runs must reach shared objects only through thread-safe doors: the store
    (its lanes are threads already) and a `Wakeup` made for this loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def run(self, coroutine: Awaitable[object], context: contextvars.Context) -> None:
        """Run `coroutine` in this thread's loop (in `context`); wait for it from the caller's."""

        async def task() -> object:
            return await asyncio.create_task(coroutine, context=context)

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(task(), self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class Wakeup:
    """An asyncio.Event for one loop that any thread may `set` (the others are loop-only)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def set(self) -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self._loop:
            self._event.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> bool:
        return await self._event.wait()
