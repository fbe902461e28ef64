"""One person's turns one after another - within a process, and across replicas.

A turn writes which card is live after its replies are sent, and a quick next answer must
read that, not the one before. In one process an asyncio lock per person is enough. Replicas
behind a load balancer share the database, so there (PostgreSQL: `SHARED_LEASES`) the turn
also holds a lease row: taken with one conditional upsert, given back with one delete, and
taken over once it expires (a replica that died mid-turn blocks that person for one lease at
most). SQLite serves one process, so it keeps to the in-process lock and pays nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import ClassVar

from bot.errors import StoreError
from bot.store.core import StoreCore
from bot.store.rows import Connection

# Longer than any turn (a turn's own sends time out well inside it); renewed never.
TURN_LEASE = timedelta(seconds=60)
_FIRST_WAIT, _LONGEST_WAIT = 0.01, 0.25


class TurnLockMixin(StoreCore):
    """`person_lock(key)`: the order of one person's turns."""

    #: Replicas share this database: hold a lease row as well as the in-process lock.
    SHARED_LEASES: ClassVar[bool] = False

    @asynccontextmanager
    async def person_lock(self, key: str) -> AsyncIterator[None]:
        lock = self._person_locks.get(key)
        if lock is None:
            lock = self._person_locks[key] = asyncio.Lock()
        async with lock:
            if not self.SHARED_LEASES:
                yield
                return
            owner = await self._take_turn_lease(key)
            try:
                yield
            finally:
                await self._write(
                    lambda conn: conn.execute(
                        "DELETE FROM turn_leases WHERE key = ? AND owner = ?", (key, owner)
                    )
                )

    async def _take_turn_lease(self, key: str) -> str:
        owner = uuid.uuid4().hex
        wait = _FIRST_WAIT
        loop = asyncio.get_running_loop()
        give_up = loop.time() + TURN_LEASE.total_seconds() + 5
        while True:
            now = self._clock()
            row = (key, owner, self._now(now + TURN_LEASE), self._now(now))

            def take(conn: Connection, row: tuple = row) -> bool:
                cur = conn.execute(
                    "INSERT INTO turn_leases (key, owner, expires_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET owner = excluded.owner,"
                    " expires_at = excluded.expires_at WHERE turn_leases.expires_at <= ?",
                    row,
                )
                return cur.rowcount == 1

            if await self._write(take):
                return owner
            if loop.time() > give_up:
                raise StoreError("another replica holds this person's turn")
            await asyncio.sleep(wait)
            wait = min(wait * 2, _LONGEST_WAIT)
