"""The outbox's sends in flight: a new one starts the moment a slot frees.

The outbox used to claim up to ten due messages, send them side by side and claim again only
when all ten were done, so under load each alert waited for the slowest send of the batch
before it. Here up to `width` sends are in flight at any time and the worker claims as soon as
one ends. One concern's messages still go in the order they were claimed (the alert, then its
words, then its updates): a message waits for the one claimed before it for the same concern.
While a message is in flight its claim (a lease, in seconds) is renewed, so another worker or
replica does not take it; if the process dies the lease runs out and it is sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self,
        claim: Callable[[int], Awaitable[Sequence[Any]]],
        deliver: Callable[[Any], Awaitable[None]],
        renew: Callable[[list[str]], Awaitable[None]],
        *,
        key: Callable[[Any], str],
        width: int,
        renew_every: float,
        slot_freed: Callable[[], None] = lambda: None,
    ) -> None:
        self._claim, self._deliver, self._renew = claim, deliver, renew
        self._key, self.width, self._renew_every = key, width, renew_every
        self._slot_freed = slot_freed
        self._running: set[asyncio.Task] = set()
        self._last: dict[str, asyncio.Task] = {}  # concern -> its newest send in flight
        self._claimed: dict[str, None] = {}  # ids in flight (an ordered set)
        self._renewing: asyncio.Task | None = None

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def fill(self) -> int:
        """Claim what is due, up to the free slots, and start sending it; how many started."""
        room = self.width - len(self._running)
        if room <= 0:
            return 0
        items = await self._claim(room)
        for item in items:
            self._start(item)
        if items and self._renewing is None:
            self._renewing = asyncio.create_task(self._keep_claims())
        return len(items)

    async def idle(self) -> None:
        """Wait until nothing is in flight."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def close(self) -> None:
        """Let the sends in flight finish, then stop renewing."""
        await self.idle()
        if self._renewing is not None:
            self._renewing.cancel()
            self._renewing = None

    def _start(self, item: Any) -> None:
        key = self._key(item)
        task = asyncio.create_task(self._send(item, self._last.get(key)))
        self._last[key] = task
        self._running.add(task)
        self._claimed[item.id] = None
        task.add_done_callback(lambda done: self._finished(done, item.id, key))

    async def _send(self, item: Any, before: asyncio.Task | None) -> None:
        if before is not None:
            await asyncio.wait([before])  # in order within a concern, whatever became of it
        await self._deliver(item)

    def _finished(self, task: asyncio.Task, item_id: str, key: str) -> None:
        self._running.discard(task)
        self._claimed.pop(item_id, None)
        if self._last.get(key) is task:
            del self._last[key]
        if not task.cancelled() and task.exception() is not None:
            # The row stays claimed until its lease ends, then goes again.
            logger.error("outbox %s send failed: %s", item_id, type(task.exception()).__name__)
        self._slot_freed()

    async def _keep_claims(self) -> None:
        while True:
            await asyncio.sleep(self._renew_every)
            if self._claimed:
                try:
                    await self._renew(list(self._claimed))
                except Exception as exc:
                    logger.warning("outbox lease renewal failed: %s", type(exc).__name__)
