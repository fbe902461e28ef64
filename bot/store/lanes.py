"""Lanes (one thread + one connection each, so the event loop never waits on the database),
the in-process write gate, and the chat turn's unit of work."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from bot.store.model import DuplicateActivity
from bot.store.rows import Connection

if TYPE_CHECKING:
    from bot.store.core import StoreCore

T = TypeVar("T")

TURNS = "turns"
# Bookkeeping written after a turn's replies (which card is live, that the reply went out
# in the turn): committed without fsync - a power cut can only leave a card pressable or
# repeat a reply, never lose anything anyone was told was sent.
CARDS_LANE = "cards"
# A chat turn that sends a report (bot/teams/lanes.py): its own thread and connection, and a
# writer that goes before the chat turns, as the outbox does.
SENDS_LANE = "sends"
LANES = (TURNS, "outbox", "timers", "maintenance", CARDS_LANE, SENDS_LANE)
_LOW_PRIORITY = frozenset({TURNS, CARDS_LANE})
_LANE: contextvars.ContextVar[str] = contextvars.ContextVar("store_lane", default=TURNS)
# The lane's calls run on the calling thread (a worker with a thread and loop of its own).
_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("store_inline", default=False)
_UNIT: contextvars.ContextVar[TurnUnit | None] = contextvars.ContextVar("store_unit", default=None)


class _Lane:
    """One thread and one connection: a lane's calls reach the file one at a time, in order
    (on the lane's thread, or under its lock on a caller's own thread - `inline`)."""

    def __init__(self, name: str, conn: Connection) -> None:
        self.name = name
        self.conn = conn
        self.lock = threading.Lock()
        self.closed = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-{name}")

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        with self.lock:
            if not self.closed:
                self.closed = True
                self.conn.close()


class _WriteGate:
    """In-process writers take turns here instead of spinning on SQLite's busy handler; a
    waiting delivery writer (outbox, timers) goes before the next chat turn's transaction."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._priority_waiting = 0

    @contextmanager
    def open(self, *, priority: bool):
        with self._cond:
            if priority:
                self._priority_waiting += 1
                try:
                    while self._busy:
                        self._cond.wait()
                finally:
                    self._priority_waiting -= 1
            else:
                while self._busy or self._priority_waiting:
                    self._cond.wait()
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class TurnUnit:
    """What one chat turn writes, committed once (see StoreCore.turn)."""

    def __init__(
        self,
        store: StoreCore,
        activity_id: str | None,
        conversation_id: str,
        state_keys: Sequence[str],
        state: dict[str, dict[str, Any]],
        *,
        duplicate: bool,
    ) -> None:
        self.store = store
        self.activity_id = activity_id
        self.conversation_id = conversation_id
        self.state_keys = frozenset(state_keys)
        self.state = state
        self.duplicate = duplicate
        self.writes: list[Callable[[Connection], Any]] = []
        self.after_commit: list[Callable[[], None]] = []
        self.open = not duplicate
        self.committed = False

    async def commit(self) -> None:
        """Write everything collected, with the seen-mark, in ONE transaction. Later writes in
        the same turn are written at once, each in its own transaction."""
        if not self.open:
            return
        self.open = False
        writes, self.writes = self.writes, []
        store = self.store
        seen = (self.conversation_id, self.activity_id, store._now())

        def work(conn: Connection) -> None:
            if self.activity_id:
                cur = conn.execute(
                    "INSERT INTO processed_activities (conversation_id, activity_id, at)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    seen,
                )
                if cur.rowcount != 1:
                    raise DuplicateActivity("activity already applied")
            for write in writes:
                write(conn)

        if self.activity_id or writes:
            lane = _LANE.get()
            await store._run(lambda conn: store._transaction(conn, work, lane))
        self.committed = True
        for callback in self.after_commit:
            callback()
