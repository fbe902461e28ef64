"""The store's machinery, written once for every database: lanes, transactions, the chat
turn's unit of work, and botbuilder's `Storage`. A backend (sqlite.py, postgres.py) supplies
only what differs: how to connect, how a write transaction begins, the migration lock and
version, and a few SQL fragments (`json_text`, `claim_lock`).

The store owns its threads: each *lane* is one thread with its own connection, so the event
loop never waits on the database, a lane's calls run in order, and nothing queues in asyncio's
shared default executor. Chat turns use the "turns" lane; the outbox and the timers run in
their own lanes (see `lane_context`), so a flood of chat never delays an alert. On SQLite,
writers inside one process pass through one gate that lets the delivery lanes go first;
several processes may share the database: conditional updates decide races.

A chat turn collects its writes in a `TurnUnit` and commits them - with the activity's
seen-mark - in ONE transaction (see `StoreCore.turn`).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from botbuilder.core import Storage, StoreItem

from bot.errors import ConflictError, StoreError
from bot.store.lanes import (
    _INLINE,
    _LANE,
    _LOW_PRIORITY,
    _UNIT,
    LANES,
    TURNS,
    TurnUnit,
    _Lane,
    _WriteGate,
)
from bot.store.migrations import SCHEMA_VERSION
from bot.store.model import DEFAULT_LEASE, DELIVERY_LEASE, _iso, _utcnow
from bot.store.rows import Connection, _read_state, _state_dict
from bot.store.sealing import FieldCodec, Sensitive, reseal

T = TypeVar("T")


class StoreCore(Storage):
    """The store's plumbing. Also a botbuilder `Storage` for ConversationState/UserState.

    Etags follow CosmosDbPartitionedStorage/BlobStorage: every write assigns a new etag,
    `read` returns it as `e_tag`, and a write carrying a different etag raises ConflictError.
    A missing etag or `"*"` overwrites. (MemoryStorage only checks etags once an item was
    first written with one; we always do.) After a successful write the new etag is put
    back into the written dict, so BotState can save twice in one turn.
    """

    # -- what a backend supplies -----------------------------------------------------------

    #: The statement that opens a write transaction.
    BEGIN: ClassVar[str] = "BEGIN"
    #: Appended to the SELECT that picks rows to claim (PostgreSQL: FOR UPDATE SKIP LOCKED).
    CLAIM_LOCK: ClassVar[str] = ""
    #: One writer at a time (SQLite): in-process writers queue at a gate, deliveries first.
    SINGLE_WRITER: ClassVar[bool] = False
    #: The database driver's errors, reported to callers as StoreError.
    DB_ERRORS: ClassVar[tuple[type[BaseException], ...]] = ()

    def _connect(self, lane: str) -> Connection:
        raise NotImplementedError

    def _migrate(self, conn: Connection) -> None:
        """Apply the migrations this database lacks, under the database's own lock."""
        raise NotImplementedError

    def _version(self, conn: Connection) -> int:
        raise NotImplementedError

    def _shares_one_connection(self) -> bool:
        """True when every lane must use the first connection (an in-memory database)."""
        return False

    @staticmethod
    def json_text(column: str, key: str) -> str:
        """SQL for the text of `key` in the JSON object held in `column`."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = _utcnow,
        lease: timedelta = DEFAULT_LEASE,
        delivery_lease: timedelta = DELIVERY_LEASE,
        codec: FieldCodec | None = None,
    ) -> None:
        super().__init__()
        # Seals the columns holding words and names (bot/store/sealing.py); None only in unit tests.
        self._codec = codec
        self._clock = clock
        self._lease = lease
        self.delivery_lease = delivery_lease
        self._closed = False
        self._lanes: dict[str, _Lane] = {}
        self._lanes_lock = threading.Lock()
        self._gate = _WriteGate()
        # Called (with the lane's name) after every COMMIT: tests count transactions with it.
        self.commit_hooks: list[Callable[[str], None]] = []
        # Conversation references as last written, so an unchanged one is not written again.
        self._refs_written: OrderedDict[tuple[str, str], str] = OrderedDict()
        # One person's turns in order (turnlock.py): a lock per person while in use.
        self._person_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _open(self) -> None:
        """Connect the first lane and bring the schema up to date (backends call this)."""
        try:
            conn = self._connect(TURNS)
            try:
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
        except self.DB_ERRORS as exc:
            raise StoreError(f"cannot open store ({type(exc).__name__})") from exc
        self._lanes[TURNS] = _Lane(TURNS, conn)

    @property
    def schema_version(self) -> int:
        lane = self._lane()
        with lane.lock:
            return self._version(lane.conn)

    def close(self) -> None:
        with self._lanes_lock:
            self._closed = True
            lanes = list(self._lanes.values())
            self._lanes.clear()
        for lane in lanes:
            lane.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def ready(self) -> bool:
        """True when the database is open, readable and at the expected schema version."""
        try:
            return await self._run(lambda c: self._version(c) == SCHEMA_VERSION)
        except (StoreError, *self.DB_ERRORS):
            return False

    async def reseal(self) -> dict[str, int]:
        """Re-encrypt every sealed column under the current data key (`rotate-key`)."""
        codec = self._codec
        if codec is None:
            raise StoreError("this store was opened without a data key")
        return await self._write(lambda conn: reseal(conn, codec))

    # -- lanes -----------------------------------------------------------------------------

    def lane_context(self, name: str, *, inline: bool = False) -> contextvars.Context:
        """A context whose store calls run in lane `name` (its own thread and connection).
        Pass it to `asyncio.create_task(..., context=...)` for a background worker.

        `inline`: the calls run on the worker's own thread instead, blocking it (under the
        lane's lock, on the lane's connection) - for a worker with a thread and event loop of
        its own (the outbox), which then waits on nothing else: each call saves two hops
        between threads, and under a saturated chat loop each hop waits ~15 ms for the GIL."""
        if name not in LANES:
            raise ValueError(f"unknown store lane {name!r}; expected one of {', '.join(LANES)}")
        context = contextvars.copy_context()
        context.run(_LANE.set, name)
        context.run(_UNIT.set, None)
        context.run(_INLINE.set, inline)
        return context

    def _lane(self) -> _Lane:
        name = _LANE.get()
        lane = self._lanes.get(name)
        if lane is not None:
            return lane
        with self._lanes_lock:
            if self._closed:
                raise StoreError("store is closed")
            lane = self._lanes.get(name)
            if lane is None:
                if self._shares_one_connection():
                    lane = self._lanes[TURNS]  # one connection is the whole database
                else:
                    try:
                        lane = _Lane(name, self._connect(name))
                    except self.DB_ERRORS as exc:
                        raise StoreError(f"cannot open store ({type(exc).__name__})") from exc
                self._lanes[name] = lane
            return lane

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        lane = self._lane()
        with lane.lock:
            if lane.closed:
                raise StoreError("store is closed")
            yield lane.conn

    async def _run(self, work: Callable[[Connection], T]) -> T:
        lane = self._lane()

        def call() -> T:
            with lane.lock:
                if lane.closed:
                    raise StoreError("store is closed")
                return work(lane.conn)

        try:
            # Inline only on the lane asked for (not on the turns lane a one-connection store
            # shares between all of them).
            if _INLINE.get() and lane.name == _LANE.get():
                return call()
            return await asyncio.get_running_loop().run_in_executor(lane.executor, call)
        except self.DB_ERRORS as exc:
            raise StoreError(f"store operation failed ({type(exc).__name__})") from exc
        except RuntimeError as exc:  # the lane's executor was shut down by close()
            raise StoreError("store is closed") from exc

    def _transaction(self, conn: Connection, work: Callable[[Connection], T], name: str) -> T:
        """`work` inside one write transaction (all or nothing), then the commit hooks.
        Runs in lane `name`'s thread (context variables do not follow it there)."""
        if self.SINGLE_WRITER:
            with self._gate.open(priority=name not in _LOW_PRIORITY):
                result = self._commit(conn, work)
        else:
            result = self._commit(conn, work)
        for hook in list(self.commit_hooks):
            hook(name)
        return result

    def _commit(self, conn: Connection, work: Callable[[Connection], T]) -> T:
        conn.execute(self.BEGIN)
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _write(
        self, work: Callable[[Connection], T], *, deferrable: bool = False
    ) -> T | None:
        """Run `work` in one transaction now - or, inside a chat turn and when the caller
        needs no answer from the database (`deferrable`), add it to the turn's transaction."""
        unit = _UNIT.get()
        lane = _LANE.get()
        if unit is not None and unit.open and unit.store is self:
            if deferrable:
                unit.writes.append(work)
                return None
            # An answer is needed now: what the turn collected so far goes first, together.
            pending, unit.writes = unit.writes, []

            def flush_then(conn: Connection) -> T:
                for earlier in pending:
                    earlier(conn)
                return work(conn)

            return await self._run(lambda conn: self._transaction(conn, flush_then, lane))
        return await self._run(lambda conn: self._transaction(conn, work, lane))

    def _now(self, at: datetime | None = None) -> str:
        return _iso(at or self._clock())

    # -- one transaction per chat turn -----------------------------------------------------

    @asynccontextmanager
    async def turn(
        self, activity_id: str | None, conversation_id: str = "", state_keys: Sequence[str] = ()
    ):
        """A chat turn's unit of work. One read (has this activity been applied? the state
        rows the turn will use) on entry; every deferrable write the turn makes is collected
        and committed in ONE transaction with the activity's seen-mark - by `unit.commit()`
        (before anyone is told anything) or on leaving the block. An exception leaves nothing
        written. `unit.duplicate` is True when the activity was already applied: do nothing."""
        keys = list(state_keys)

        def read(conn: Connection) -> tuple[bool, dict[str, dict[str, Any]]]:
            seen = bool(
                activity_id
                and conn.execute(
                    "SELECT 1 FROM processed_activities"
                    " WHERE conversation_id = ? AND activity_id = ?",
                    (conversation_id, activity_id),
                ).fetchone()
            )
            return seen, (_read_state(conn, keys) if keys and not seen else {})

        seen, found = await self._run(read)
        unit = TurnUnit(self, activity_id, conversation_id, keys, found, duplicate=seen)
        token = _UNIT.set(unit if not seen else None)
        try:
            yield unit
            if not seen:
                await unit.commit()
        finally:
            unit.open = False
            _UNIT.reset(token)

    @contextmanager
    def in_lane(self, name: str):
        """Run this task's store calls in lane `name` for the block (writes at once)."""
        if name not in LANES:
            raise ValueError(f"unknown store lane {name!r}; expected one of {', '.join(LANES)}")
        tokens = _LANE.set(name), _UNIT.set(None), _INLINE.set(False)
        try:
            yield
        finally:
            for var, token in zip((_LANE, _UNIT, _INLINE), tokens, strict=True):
                var.reset(token)

    @contextmanager
    def immediate(self):
        """Inside a turn, write at once (for actions that read back what they just wrote)."""
        token = _UNIT.set(None)
        try:
            yield
        finally:
            _UNIT.reset(token)

    # -- botbuilder Storage ----------------------------------------------------------------

    async def read(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        keys = list(keys)
        unit = _UNIT.get()
        if unit is not None and unit.store is self and unit.state_keys.issuperset(keys):
            # Read once at the start of the turn, with the seen-check.
            return {k: copy.deepcopy(unit.state[k]) for k in keys if k in unit.state}
        return await self._run(lambda conn: _read_state(conn, keys))

    async def write(self, changes: Mapping[str, Any]) -> None:
        if changes is None:
            raise StoreError("changes are required when writing")
        if not changes:
            return
        encoded: list[tuple[str, str | None, str, str]] = []
        for key, change in changes.items():
            data = _state_dict(change)
            etag = data.pop("e_tag", None)
            if etag == "":
                raise StoreError("write(): etag is empty; use None or '*' to overwrite")
            try:
                text = json.dumps(data, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise StoreError(
                    f"state for a key is not JSON-serialisable ({exc.__class__.__name__})"
                ) from exc
            encoded.append((key, etag, Sensitive(text), uuid.uuid4().hex))
        now = self._now()

        def work(conn: Connection) -> None:
            for key, etag, text, new_etag in encoded:
                if etag is None or etag == "*":
                    conn.execute(
                        "INSERT INTO bot_state (key, etag, data, updated_at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET etag = excluded.etag,"
                        " data = excluded.data, updated_at = excluded.updated_at",
                        (key, new_etag, text, now),
                    )
                else:
                    cur = conn.execute(
                        "UPDATE bot_state SET etag = ?, data = ?, updated_at = ?"
                        " WHERE key = ? AND etag = ?",
                        (new_etag, text, now, key, etag),
                    )
                    if cur.rowcount == 0:
                        exists = conn.execute(
                            "SELECT 1 FROM bot_state WHERE key = ?", (key,)
                        ).fetchone()
                        if exists:
                            raise ConflictError("etag conflict: the item changed since it was read")
                        # Like MemoryStorage: nothing stored yet means nothing to conflict with
                        # (unless another writer inserts it first: that is a conflict too).
                        cur = conn.execute(
                            "INSERT INTO bot_state (key, etag, data, updated_at)"
                            " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                            (key, new_etag, text, now),
                        )
                        if cur.rowcount == 0:
                            raise ConflictError("etag conflict: the item changed since it was read")

        await self._write(work, deferrable=True)
        # The new etags are decided before the write, so a deferred write can hand them back.
        for (_, _, _, new_etag), change in zip(encoded, changes.values(), strict=True):
            if isinstance(change, dict):
                change["e_tag"] = new_etag
            elif isinstance(change, StoreItem) or hasattr(change, "e_tag"):
                change.e_tag = new_etag

    async def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return

        def work(conn: Connection) -> None:
            conn.executemany("DELETE FROM bot_state WHERE key = ?", [(k,) for k in keys])

        await self._write(work, deferrable=True)
