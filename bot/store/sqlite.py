"""The durable store: one SQLite file holding bot state, concerns, the outbox, audit and references.

The store owns its threads: each *lane* is one thread with its own connection, so the event
loop never waits on the disk, a lane's calls run in order, and nothing queues in asyncio's
shared default executor. Chat turns use the "turns" lane; the outbox and the timers run in
their own lanes (see `lane_context`), so a flood of chat never delays an alert. Writers
inside one process pass through one gate that lets the delivery lanes go first; several
processes may share the file: writes take `BEGIN IMMEDIATE` and conditional updates decide
races.

A chat turn collects its writes in a `TurnUnit` and commits them - with the activity's
seen-mark - in ONE transaction (see `SqliteStore.turn`).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import logging
import os
import sqlite3
import stat
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from botbuilder.core import Storage, StoreItem
from botbuilder.schema import ConversationReference

from bot.errors import ConflictError, StoreError
from bot.store.sealing import FieldCodec, Sensitive, reseal
from flows.concern import Concern

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONCERN_STATUSES = ("draft", "raised", "acknowledged", "closed")
OUTBOX_STATUSES = ("pending", "sending", "delivered", "failed")
DEFAULT_LEASE = timedelta(minutes=5)

# Ordered, append-only: never edit a migration that has shipped; add a new one.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE bot_state (
        key TEXT PRIMARY KEY,
        etag TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE concerns (
        id TEXT PRIMARY KEY,
        school_id TEXT NOT NULL,
        type TEXT NOT NULL,
        reporter_aad_id TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('draft', 'raised', 'acknowledged', 'closed')),
        priority TEXT NOT NULL,
        routing TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        acknowledged_by TEXT,
        acknowledged_at TEXT
    );
    CREATE INDEX concerns_by_reporter ON concerns (reporter_aad_id, created_at);
    CREATE INDEX concerns_open ON concerns (school_id, status);
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        concern_id TEXT REFERENCES concerns (id),
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        claimed_at TEXT,
        last_error TEXT,
        delivered_activity_id TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    CREATE INDEX outbox_by_concern ON outbox (concern_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor_aad_id TEXT,
        action TEXT NOT NULL,
        concern_id TEXT,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_by_concern ON audit (concern_id, id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TABLE processed_activities (
        conversation_id TEXT NOT NULL,
        activity_id TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (conversation_id, activity_id)
    );
    CREATE INDEX processed_activities_at ON processed_activities (at);
    CREATE TABLE conversation_refs (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        reference TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    );
    """,
)
MIGRATIONS += (
    # 2: durable timers (escalation, deadlines, stalled reports). A timer is a row, not a
    # sleep: it survives restarts, and claiming it is a conditional update, so it fires once.
    """
    CREATE TABLE timers (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        key TEXT,
        concern_id TEXT,
        due_at TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'firing', 'done', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        claimed_at TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX timers_due ON timers (status, due_at);
    CREATE INDEX timers_by_concern ON timers (concern_id);
    CREATE UNIQUE INDEX timers_pending_key ON timers (key)
        WHERE key IS NOT NULL AND status = 'pending';
    """,
)
MIGRATIONS += (
    # 3: one alert per report, whatever the timing (issue 10).
    # - concern_milestones: a report is raised / confirmed / delivered once. The first turn to
    #   insert the milestone wins; a concurrent duplicate queues nothing.
    # - alert_posts: every activity an alert was posted as (a crash or a slow answer can leave
    #   two copies); acting on any copy updates them all.
    # - outbox.priority (alerts first), claimed_by (whose lease), unknown_outcome (an earlier
    #   attempt may have reached Teams: the re-sent card says so).
    """
    CREATE TABLE concern_milestones (
        concern_id TEXT NOT NULL,
        milestone TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (concern_id, milestone)
    );
    CREATE TABLE alert_posts (
        concern_id TEXT NOT NULL,
        activity_id TEXT NOT NULL,
        reference TEXT NOT NULL,
        resend INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (concern_id, activity_id)
    );
    ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN unknown_outcome INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX outbox_claim ON outbox (status, priority, next_attempt_at);
    """,
)
MIGRATIONS += (
    # 4: bounded growth and lists answered in SQL (issue 8).
    # - concerns.first_due_at: the earliest deadline (UTC), so "open concerns" is ordered and
    #   limited by the database - unacknowledged, then overdue, then oldest - not in Python.
    # - indexes for that list, for "my reports", and for pruning finished timers.
    """
    ALTER TABLE concerns ADD COLUMN first_due_at TEXT;
    CREATE INDEX concerns_open_list ON concerns (school_id, status, routing, created_at);
    CREATE INDEX concerns_by_reporter_status ON concerns (reporter_aad_id, status, created_at);
    CREATE INDEX timers_finished ON timers (status, updated_at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
FIRST_DUE_MIGRATION = 4

# Outbox order: alerts first, then messages to people, then card refreshes.
PRIORITY = {"post_alert": 0, "update_card": 2}
DEFAULT_PRIORITY = 1
# Messages to one person arrive in the order they were queued ("Saved - sending now" before
# "Delivered"): a message waits while an older one to the same person is undelivered.
_WAITS_ITS_TURN = (
    "(kind = 'direct_message' AND EXISTS (SELECT 1 FROM outbox AS earlier"
    " WHERE earlier.kind = 'direct_message' AND earlier.status IN ('pending', 'sending')"
    " AND earlier.rowid < outbox.rowid"
    " AND json_extract(earlier.target, '$.user_id') = json_extract(outbox.target, '$.user_id')))"
)
# A send holds its row for this long; the sender renews it while the request is in flight.
DELIVERY_LEASE = timedelta(seconds=30)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(at: datetime) -> str:
    """UTC ISO-8601 with fixed width, so text order is time order inside SQLite."""
    if at.tzinfo is None:
        raise ValueError("store times must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class StoredConcern:
    """A concern as the store holds it: the record plus its delivery-side status."""

    concern: Concern
    status: str
    priority: str
    routing: str
    created_at: datetime
    updated_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.concern.id


@dataclass(frozen=True)
class OutboxMessage:
    """Something to deliver: what kind, to where (ids, service URL), and the activity payload."""

    kind: str
    target: Mapping[str, Any]
    payload: Mapping[str, Any]
    not_before: datetime | None = None


@dataclass(frozen=True)
class OutboxItem:
    id: str
    concern_id: str | None
    kind: str
    target: dict[str, Any]
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None
    delivered_activity_id: str | None = None
    priority: int = DEFAULT_PRIORITY
    # An earlier attempt may have reached Teams (a crash or time-out mid-send).
    unknown_outcome: bool = False


@dataclass(frozen=True)
class AlertPost:
    """One activity an alert was posted as (a channel thread, or a 1:1 fallback copy)."""

    concern_id: str
    activity_id: str
    reference: ConversationReference
    resend: bool
    source: str


@dataclass(frozen=True)
class AlertPostRecord:
    """A copy of an alert just posted: `thread` when thread replies should go to it."""

    concern_id: str
    activity_id: str
    reference: Mapping[str, Any]
    resend: bool = False
    source: str = "sent"
    thread: bool = False


@dataclass(frozen=True)
class DeliveryEffects:
    """What a first delivery causes, once per concern (see record_delivery)."""

    concern_id: str
    messages: Sequence[OutboxMessage] = ()
    timers: Sequence[TimerSpec] = ()
    audit: Sequence[tuple[str | None, str, Mapping[str, Any]]] = ()


@dataclass(frozen=True)
class TimerSpec:
    """A timer to set: `key` makes it replace a live timer with the same key (reschedule)."""

    kind: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    concern_id: str | None = None


@dataclass(frozen=True)
class Timer:
    id: str
    kind: str
    key: str | None
    concern_id: str | None
    due_at: datetime
    payload: dict[str, Any]
    status: str
    attempts: int


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_aad_id: str | None
    action: str
    concern_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)


TURNS = "turns"
# Bookkeeping written after a turn's replies (which card is live, that the reply went out
# in the turn): committed without fsync - a power cut can only leave a card pressable or
# repeat a reply, never lose anything anyone was told was sent.
CARDS_LANE = "cards"
LANES = (TURNS, "outbox", "timers", "maintenance", CARDS_LANE)
_LOW_PRIORITY = frozenset({TURNS, CARDS_LANE})
_LANE: contextvars.ContextVar[str] = contextvars.ContextVar("store_lane", default=TURNS)
_UNIT: contextvars.ContextVar[TurnUnit | None] = contextvars.ContextVar("store_unit", default=None)
REFS_REMEMBERED = 10_000
SEEN_KEPT = timedelta(days=2)
FINISHED_TIMERS_KEPT = timedelta(days=30)
# Everything stored about one concern except its audit entries (kept for ever: ids only).
_CONCERN_ROWS = (
    "DELETE FROM outbox WHERE concern_id = ?",
    "DELETE FROM timers WHERE concern_id = ?",
    "DELETE FROM conversation_refs WHERE kind = 'alert' AND key = ?",
    "DELETE FROM alert_posts WHERE concern_id = ?",
    "DELETE FROM concern_milestones WHERE concern_id = ?",
    "DELETE FROM concerns WHERE id = ?",
)


class DuplicateActivity(StoreError):
    """The activity was applied by another turn first: this turn's writes are dropped."""


class _Lane:
    """One thread and one connection: a lane's calls reach the file one at a time, in order."""

    def __init__(self, name: str, conn: sqlite3.Connection) -> None:
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
    """What one chat turn writes, committed once (see SqliteStore.turn)."""

    def __init__(
        self,
        store: SqliteStore,
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
        self.writes: list[Callable[[sqlite3.Connection], Any]] = []
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

        def work(conn: sqlite3.Connection) -> None:
            if self.activity_id:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO processed_activities (conversation_id, activity_id, at)"
                    " VALUES (?, ?, ?)",
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


def _read_state(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT key, etag, data FROM bot_state WHERE key IN ({marks})", list(keys)
    ).fetchall()
    found = {}
    for row in rows:
        item = json.loads(row["data"])
        item["e_tag"] = row["etag"]
        found[row["key"]] = item
    return found


class SqliteStore(Storage):
    """One SQLite file in WAL mode. Also a botbuilder `Storage` for ConversationState/UserState.

    Etags follow CosmosDbPartitionedStorage/BlobStorage: every write assigns a new etag,
    `read` returns it as `e_tag`, and a write carrying a different etag raises ConflictError.
    A missing etag or `"*"` overwrites. (MemoryStorage only checks etags once an item was
    first written with one; we always do.) After a successful write the new etag is put
    back into the written dict, so BotState can save twice in one turn.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], datetime] = _utcnow,
        lease: timedelta = DEFAULT_LEASE,
        delivery_lease: timedelta = DELIVERY_LEASE,
        codec: FieldCodec | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
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
        try:
            if str(self.path) != ":memory:":
                _make_private(self.path)
            conn = self._connect()
            self._migrate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store ({type(exc).__name__})") from exc
        self._lanes[TURNS] = _Lane(TURNS, conn)

    # -- lifecycle -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connect = self._codec.connect if self._codec else sqlite3.connect
        conn = connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        if self._codec is None:
            conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before anyone is told "saved" (README, Performance).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store schema version {version} is newer than this code ({SCHEMA_VERSION})"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[number - 1]):
                    conn.execute(statement)
                if number == FIRST_DUE_MIGRATION:
                    _backfill_first_due(conn)
                conn.execute(f"PRAGMA user_version = {number}")
                logger.info("store migrated to schema version %d", number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        lane = self._lane()
        with lane.lock:
            return lane.conn.execute("PRAGMA user_version").fetchone()[0]

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
        """True when the file is open, readable and at the expected schema version."""
        try:
            return await self._run(
                lambda c: c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            )
        except (StoreError, sqlite3.Error):
            return False

    async def reseal(self) -> dict[str, int]:
        """Re-encrypt every sealed column under the current data key (`rotate-key`)."""
        codec = self._codec
        if codec is None:
            raise StoreError("this store was opened without a data key")
        return await self._write(lambda conn: reseal(conn, codec))

    # -- lanes -----------------------------------------------------------------------------

    def lane_context(self, name: str) -> contextvars.Context:
        """A context whose store calls run in lane `name` (its own thread and connection).
        Pass it to `asyncio.create_task(..., context=...)` for a background worker."""
        if name not in LANES:
            raise ValueError(f"unknown store lane {name!r}; expected one of {', '.join(LANES)}")
        context = contextvars.copy_context()
        context.run(_LANE.set, name)
        context.run(_UNIT.set, None)
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
                if str(self.path) == ":memory:":
                    lane = self._lanes[TURNS]  # one connection is the whole database
                else:
                    try:
                        conn = self._connect()
                        if name == CARDS_LANE:
                            # Lost only on an OS crash or power cut, never on a process crash;
                            # nothing on this lane is anything anyone was told was sent.
                            conn.execute("PRAGMA synchronous=NORMAL")
                        lane = _Lane(name, conn)
                    except sqlite3.Error as exc:
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

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        lane = self._lane()

        def call() -> T:
            with lane.lock:
                if lane.closed:
                    raise StoreError("store is closed")
                return work(lane.conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(lane.executor, call)
        except sqlite3.Error as exc:
            raise StoreError(f"store operation failed ({type(exc).__name__})") from exc
        except RuntimeError as exc:  # the lane's executor was shut down by close()
            raise StoreError("store is closed") from exc

    def _transaction(
        self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], name: str
    ) -> T:
        """`work` inside one IMMEDIATE transaction (all or nothing), then the commit hooks.
        Runs in lane `name`'s thread (context variables do not follow it there)."""
        with self._gate.open(priority=name not in _LOW_PRIORITY):
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        for hook in list(self.commit_hooks):
            hook(name)
        return result

    async def _write(
        self, work: Callable[[sqlite3.Connection], T], *, deferrable: bool = False
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

            def flush_then(conn: sqlite3.Connection) -> T:
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

        def read(conn: sqlite3.Connection) -> tuple[bool, dict[str, dict[str, Any]]]:
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
        lane_token, unit_token = _LANE.set(name), _UNIT.set(None)
        try:
            yield
        finally:
            _UNIT.reset(unit_token)
            _LANE.reset(lane_token)

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

        def work(conn: sqlite3.Connection) -> None:
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
                        # Like MemoryStorage: nothing stored yet means nothing to conflict with.
                        conn.execute(
                            "INSERT INTO bot_state (key, etag, data, updated_at)"
                            " VALUES (?, ?, ?, ?)",
                            (key, new_etag, text, now),
                        )

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

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM bot_state WHERE key = ?", [(k,) for k in keys])

        await self._write(work, deferrable=True)

    # -- concerns --------------------------------------------------------------------------

    async def save_concern(
        self, concern: Concern, *, status: str = "raised", at: datetime | None = None
    ) -> None:
        """Insert or update a concern. An acknowledged or closed concern keeps its status."""
        row = _concern_row(concern, status, self._now(at))
        await self._write(lambda conn: _upsert_concern(conn, row), deferrable=True)

    async def save_concern_and_enqueue(
        self,
        concern: Concern,
        messages: Sequence[OutboxMessage],
        *,
        status: str = "raised",
        at: datetime | None = None,
        timers: Sequence[TimerSpec] = (),
    ) -> list[str]:
        """Save the concern, its outgoing messages and its timers in ONE transaction."""
        now = self._now(at)
        row = _concern_row(concern, status, now)
        rows = [_outbox_row(concern.id, message, now) for message in messages]

        def work(conn: sqlite3.Connection) -> None:
            _upsert_concern(conn, row)
            for timer in timers:
                _insert_timer(conn, timer, now)
            for outbox_row in rows:
                _insert_outbox(conn, outbox_row)

        await self._write(work, deferrable=True)
        return [outbox_row[0] for outbox_row in rows]

    async def raise_concern(
        self,
        concern: Concern,
        milestones: Sequence[str],
        messages: Sequence[OutboxMessage],
        *,
        status: str = "raised",
        at: datetime | None = None,
        timers: Sequence[TimerSpec] = (),
        audit: Sequence[tuple[str | None, str, Mapping[str, Any]]] = (),
    ) -> bool:
        """Raise (or confirm) a report once. The first caller to record the `milestones` for
        this concern (e.g. 'created', 'concern_final') writes it, its messages, timers and
        audit in ONE transaction and gets True; a concurrent duplicate (the same "Send" twice,
        0 ms apart) gets False and writes nothing: the conflict is decided here, before
        anything is queued. The first milestone decides (the later ones follow from it)."""
        now = self._now(at)
        row = _concern_row(concern, status, now)
        rows = [_outbox_row(concern.id, message, now) for message in messages]
        unit = _UNIT.get()
        in_turn = unit is not None and unit.open and unit.store is self

        def work(conn: sqlite3.Connection) -> bool:
            for milestone in milestones:
                if not _first_milestone(conn, concern.id, milestone, now):
                    if in_turn:  # the whole turn is the duplicate: it writes nothing at all
                        raise DuplicateActivity("report already raised by another turn")
                    return False
            _upsert_concern(conn, row)
            for timer in timers:
                _insert_timer(conn, timer, now)
            for outbox_row in rows:
                _insert_outbox(conn, outbox_row)
            for actor, action, detail in audit:
                conn.execute(
                    "INSERT INTO audit (at, actor_aad_id, action, concern_id, detail)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (now, actor, action, concern.id, _dumps(dict(detail))),
                )
            return True

        # Inside a chat turn this joins the turn's transaction (True here; a duplicate fails
        # that commit instead, and the turn says nothing).
        applied = await self._write(work, deferrable=True)
        return True if applied is None else applied

    async def first_milestone(self, concern_id: str, milestone: str) -> bool:
        """True for exactly one caller per (concern, milestone), e.g. 'delivered'."""
        now = self._now()
        return await self._write(lambda conn: _first_milestone(conn, concern_id, milestone, now))

    async def record_alert_post(
        self,
        concern_id: str,
        activity_id: str,
        reference: Mapping[str, Any],
        *,
        resend: bool = False,
        source: str = "sent",
    ) -> bool:
        """Remember one more activity this concern's alert was posted as; False if known."""
        row = (
            concern_id,
            activity_id,
            Sensitive(_dumps(dict(reference))),
            int(resend),
            source,
            self._now(),
        )
        return await self._write(
            lambda conn: (
                conn.execute(
                    "INSERT OR IGNORE INTO alert_posts (concern_id, activity_id, reference,"
                    " resend, source, at) VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                ).rowcount
                == 1
            )
        )

    async def alert_posts(self, concern_id: str) -> list[AlertPost]:
        """Every copy of the alert, oldest first (all of them are updated together)."""

        def work(conn: sqlite3.Connection) -> list[AlertPost]:
            rows = conn.execute(
                "SELECT * FROM alert_posts WHERE concern_id = ? ORDER BY at, rowid", (concern_id,)
            ).fetchall()
            return [
                AlertPost(
                    concern_id=r["concern_id"],
                    activity_id=r["activity_id"],
                    reference=ConversationReference().deserialize(json.loads(r["reference"])),
                    resend=bool(r["resend"]),
                    source=r["source"],
                )
                for r in rows
            ]

        return await self._run(work)

    async def refused_alerts(self) -> int:
        """Alerts the channel refused (4xx) and not yet posted there: the operator alarm."""
        return await self._run(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE kind = 'post_alert' AND status != 'delivered'"
                " AND last_error LIKE 'refused%'"
            ).fetchone()[0]
        )

    async def get_concern(self, concern_id: str) -> StoredConcern | None:
        def work(conn: sqlite3.Connection) -> StoredConcern | None:
            row = conn.execute("SELECT * FROM concerns WHERE id = ?", (concern_id,)).fetchone()
            return _stored_concern(row) if row else None

        return await self._run(work)

    async def list_concerns_by_reporter(
        self, reporter_aad_id: str, *, limit: int = 50
    ) -> list[StoredConcern]:
        def work(conn: sqlite3.Connection) -> list[StoredConcern]:
            rows = conn.execute(
                "SELECT * FROM concerns WHERE reporter_aad_id = ? AND status != 'draft'"
                " ORDER BY created_at DESC LIMIT ?",
                (reporter_aad_id, limit),
            ).fetchall()
            return [_stored_concern(r) for r in rows]

        return await self._run(work)

    async def list_open_concerns(self, school_id: str) -> list[StoredConcern]:
        """Raised but not yet closed (including acknowledged), oldest first."""

        def work(conn: sqlite3.Connection) -> list[StoredConcern]:
            rows = conn.execute(
                "SELECT * FROM concerns WHERE school_id = ?"
                " AND status IN ('raised', 'acknowledged') ORDER BY created_at",
                (school_id,),
            ).fetchall()
            return [_stored_concern(r) for r in rows]

        return await self._run(work)

    async def open_concerns_page(
        self, school_id: str, routes: Iterable[str], *, now: datetime, limit: int
    ) -> tuple[int, list[StoredConcern]]:
        """How many concerns are open on these routes, and the first `limit` of them:
        nobody has picked it up, then a deadline has passed, then the rest; oldest first.
        Counted, ordered and limited by the database (index concerns_open_list)."""
        routes = sorted(set(routes))
        if not routes:
            return 0, []
        marks = ",".join("?" * len(routes))
        where = f"school_id = ? AND status IN ('raised', 'acknowledged') AND routing IN ({marks})"
        params = [school_id, *routes]

        def work(conn: sqlite3.Connection) -> tuple[int, list[StoredConcern]]:
            total = conn.execute(f"SELECT COUNT(*) FROM concerns WHERE {where}", params).fetchone()
            # Sort small keys, then fetch only the page's rows (never sort 10,000 payloads).
            rows = conn.execute(
                "SELECT c.* FROM (SELECT id, acknowledged_by IS NOT NULL AS acked,"
                " NOT (first_due_at IS NOT NULL AND first_due_at < ?) AS later, created_at"
                f" FROM concerns WHERE {where} ORDER BY acked, later, created_at LIMIT ?) AS k"
                " JOIN concerns AS c ON c.id = k.id ORDER BY k.acked, k.later, k.created_at",
                [_iso(now), *params, limit],
            ).fetchall()
            return total[0], [_stored_concern(r) for r in rows]

        return await self._run(work)

    async def acknowledge(self, concern_id: str, by: str, at: datetime | None = None) -> bool:
        """Record the first acknowledgement. Exactly one concurrent caller gets True."""
        now = self._now(at)

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE concerns SET acknowledged_by = ?, acknowledged_at = ?,"
                " status = 'acknowledged', updated_at = ?"
                " WHERE id = ? AND acknowledged_by IS NULL AND status = 'raised'",
                (Sensitive(by), now, now, concern_id),
            )
            return cur.rowcount == 1

        return await self._write(work)

    async def set_concern_status(
        self, concern_id: str, status: str, at: datetime | None = None
    ) -> bool:
        _check(status, CONCERN_STATUSES, "concern status")
        now = self._now(at)

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE concerns SET status = ?, updated_at = ? WHERE id = ?",
                (status, now, concern_id),
            )
            return cur.rowcount == 1

        return await self._write(work)

    # -- outbox ----------------------------------------------------------------------------

    async def enqueue(
        self,
        concern_id: str | None,
        kind: str,
        target: Mapping[str, Any],
        payload: Mapping[str, Any],
        *,
        not_before: datetime | None = None,
        at: datetime | None = None,
    ) -> str:
        row = _outbox_row(
            concern_id, OutboxMessage(kind, target, payload, not_before), self._now(at)
        )
        await self._write(lambda conn: _insert_outbox(conn, row), deferrable=True)
        return row[0]

    async def claim_due(
        self, now: datetime | None = None, limit: int = 10, *, owner: str = ""
    ) -> list[OutboxItem]:
        """Mark up to `limit` due messages 'sending' (held by `owner`) and return them, alerts
        first (`priority`), then oldest first.

        A 'sending' row whose lease (seconds, renewed while the send is in flight) ran out -
        its worker died mid-send - is due again, marked `unknown_outcome`: the earlier attempt
        may have reached Teams, so a re-sent alert says so on its card.
        """
        at = now or self._clock()
        now_text = _iso(at)
        expired = _iso(at - self.delivery_lease)

        def work(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                "SELECT id, status FROM outbox WHERE ((status = 'pending' AND next_attempt_at <= ?)"
                " OR (status = 'sending' AND claimed_at <= ?)) AND NOT "
                + _WAITS_ITS_TURN
                + " ORDER BY priority, next_attempt_at, created_at LIMIT ?",
                (now_text, expired, limit),
            ).fetchall()
            ids = [r["id"] for r in rows]
            conn.executemany(
                "UPDATE outbox SET status = 'sending', claimed_at = ?, claimed_by = ?,"
                " attempts = attempts + 1, updated_at = ?,"
                " unknown_outcome = unknown_outcome OR ? WHERE id = ?",
                [(now_text, owner, now_text, r["status"] == "sending", r["id"]) for r in rows],
            )
            return [_outbox_item(_fetch_outbox(conn, i)) for i in ids]

        return await self._write(work)

    async def claim_ids(
        self, outbox_ids: Sequence[str], now: datetime | None = None, *, owner: str = ""
    ) -> list[OutboxItem]:
        """Claim these pending rows now, whenever they were due (a turn sending its own
        replies at once); rows already claimed or done are left out."""
        now_text = _iso(now or self._clock())

        def work(conn: sqlite3.Connection) -> list[OutboxItem]:
            claimed = []
            for outbox_id in outbox_ids:
                cur = conn.execute(
                    "UPDATE outbox SET status = 'sending', claimed_at = ?, claimed_by = ?,"
                    " attempts = attempts + 1, updated_at = ? WHERE id = ? AND status = 'pending'",
                    (now_text, owner, now_text, outbox_id),
                )
                if cur.rowcount == 1:
                    claimed.append(_outbox_item(_fetch_outbox(conn, outbox_id)))
            return claimed

        return await self._write(work)

    async def mark_sent_in_turn(self, outbox_ids: Sequence[str]) -> None:
        """A turn sent its own queued replies itself: close their rows (if the worker has
        not taken them) and drop the copy of what they said."""
        if not outbox_ids:
            return
        now = self._now()
        await self._write(
            lambda conn: conn.executemany(
                "UPDATE outbox SET status = 'delivered', payload = '{}', updated_at = ?"
                " WHERE id = ? AND status = 'pending'",
                [(now, i) for i in outbox_ids],
            )
        )

    async def renew_claims(self, outbox_ids: Sequence[str], at: datetime | None = None) -> None:
        """Keep holding rows whose send is still in flight (the lease is only seconds)."""
        if not outbox_ids:
            return
        now = self._now(at)
        await self._write(
            lambda conn: conn.executemany(
                "UPDATE outbox SET claimed_at = ? WHERE id = ? AND status = 'sending'",
                [(now, i) for i in outbox_ids],
            )
        )

    async def reclaim_own(self, owner: str, at: datetime | None = None) -> int:
        """At start-up: sends this server left unfinished when it stopped (crash, kill) are due
        again at once, instead of after the lease. Their outcome is unknown."""
        now = self._now(at)
        return await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE outbox SET status = 'pending', next_attempt_at = ?, claimed_at = NULL,"
                    " unknown_outcome = 1, updated_at = ? WHERE status = 'sending'"
                    " AND claimed_by = ?",
                    (now, now, owner),
                ).rowcount
            )
        )

    async def count_due(self, now: datetime | None = None) -> int:
        """How many messages could be sent now (pending and due and not waiting behind an
        older one to the same person, or in flight)."""
        now_text = _iso(now or self._clock())

        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE (status = 'pending' AND next_attempt_at <= ?"
                " AND NOT " + _WAITS_ITS_TURN + ") OR status = 'sending'",
                (now_text,),
            ).fetchone()[0]

        return await self._run(work)

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """(messages not yet delivered, when the oldest undelivered alert was queued) for
        /metrics. A failed alert still counts as undelivered."""

        def work(conn: sqlite3.Connection) -> tuple[int, datetime | None]:
            depth = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')"
            ).fetchone()[0]
            oldest = conn.execute(
                "SELECT MIN(created_at) FROM outbox WHERE kind = 'post_alert'"
                " AND status IN ('pending', 'sending', 'failed')"
            ).fetchone()[0]
            return depth, _time(oldest)

        return await self._run(work)

    async def mark_delivered(
        self, outbox_id: str, activity_id: str | None, at: datetime | None = None
    ) -> None:
        now = self._now(at)
        await self._update_outbox(
            "status = 'delivered', delivered_activity_id = ?, last_error = NULL,"
            " claimed_at = NULL, updated_at = ?",
            (activity_id, now),
            outbox_id,
        )

    async def mark_retry(
        self,
        outbox_id: str,
        next_at: datetime,
        error: str,
        at: datetime | None = None,
        *,
        unknown_outcome: bool = False,
    ) -> None:
        """Back to pending until `next_at`. `error` is a status code or id, never content.
        `unknown_outcome`: this attempt may have been carried out (the re-send says so)."""
        await self._update_outbox(
            "status = 'pending', next_attempt_at = ?, last_error = ?, claimed_at = NULL,"
            " updated_at = ?, unknown_outcome = unknown_outcome OR ?",
            (_iso(next_at), error[:200], self._now(at), unknown_outcome),
            outbox_id,
        )

    async def enqueue_once(
        self, concern_id: str, milestone: str, messages: Sequence[OutboxMessage]
    ) -> bool:
        """Queue `messages` only the first time `milestone` is reached for this concern
        (e.g. the fallback route), in one transaction; True when they were queued."""
        now = self._now()
        rows = [_outbox_row(concern_id, message, now) for message in messages]

        def work(conn: sqlite3.Connection) -> bool:
            if not _first_milestone(conn, concern_id, milestone, now):
                return False
            for row in rows:
                _insert_outbox(conn, row)
            return True

        return await self._write(work)

    async def record_delivery(
        self,
        outbox_id: str,
        activity_id: str | None,
        *,
        post: AlertPostRecord | None = None,
        once: Mapping[str, DeliveryEffects] | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Close a delivered row and commit what follows from it in ONE transaction: the copy
        of the alert it made (`post`), and effects that must happen once per concern however
        many copies there are (`once`: milestone -> messages, timers, audit). A row already
        delivered (a slow answer arriving after a re-send) still records its copy."""
        now = self._now(at)

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE outbox SET status = 'delivered', delivered_activity_id = ?,"
                " last_error = NULL, claimed_at = NULL, updated_at = ?"
                " WHERE id = ? AND status != 'delivered'",
                (activity_id, now, outbox_id),
            )
            if post is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO alert_posts (concern_id, activity_id, reference,"
                    " resend, source, at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        post.concern_id,
                        post.activity_id,
                        Sensitive(_dumps(dict(post.reference))),
                        int(post.resend),
                        post.source,
                        now,
                    ),
                )
                if post.thread:  # where thread replies go (the latest channel copy)
                    conn.execute(
                        "INSERT INTO conversation_refs (kind, key, reference, updated_at)"
                        " VALUES ('alert', ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET"
                        " reference = excluded.reference, updated_at = excluded.updated_at",
                        (post.concern_id, Sensitive(_dumps(dict(post.reference))), now),
                    )
            for milestone, effects in (once or {}).items():
                concern_id = effects.concern_id
                if not _first_milestone(conn, concern_id, milestone, now):
                    continue
                for message in effects.messages:
                    _insert_outbox(conn, _outbox_row(concern_id, message, now))
                for timer in effects.timers:
                    _insert_timer(conn, timer, now)
                for actor, action, detail in effects.audit:
                    conn.execute(
                        "INSERT INTO audit (at, actor_aad_id, action, concern_id, detail)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (now, actor, action, concern_id, _dumps(dict(detail))),
                    )
            return cur.rowcount == 1

        return await self._write(work)

    async def mark_failed(self, outbox_id: str, error: str, at: datetime | None = None) -> None:
        await self._update_outbox(
            "status = 'failed', last_error = ?, claimed_at = NULL, updated_at = ?",
            (error[:200], self._now(at)),
            outbox_id,
        )

    async def _update_outbox(self, assignments: str, params: tuple, outbox_id: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                f"UPDATE outbox SET {assignments} WHERE id = ?", (*params, outbox_id)
            )
            if cur.rowcount != 1:
                raise StoreError(f"no outbox message {outbox_id}")

        await self._write(work)

    async def get_outbox(self, outbox_id: str) -> OutboxItem | None:
        def work(conn: sqlite3.Connection) -> OutboxItem | None:
            row = _fetch_outbox(conn, outbox_id)
            return _outbox_item(row) if row else None

        return await self._run(work)

    async def outbox_for_concern(self, concern_id: str) -> list[OutboxItem]:
        def work(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                "SELECT * FROM outbox WHERE concern_id = ? ORDER BY created_at, rowid",
                (concern_id,),
            ).fetchall()
            return [_outbox_item(r) for r in rows]

        return await self._run(work)

    # -- audit (append-only) ---------------------------------------------------------------

    async def audit(
        self,
        actor_aad_id: str | None,
        action: str,
        concern_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> int | None:
        """Append one entry. `detail` holds ids and states only, never what anyone wrote.
        Returns its id (None inside a chat turn: it is written with the turn)."""
        row = (self._now(at), actor_aad_id, action, concern_id, _dumps(dict(detail or {})))

        def work(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO audit (at, actor_aad_id, action, concern_id, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                row,
            )
            return int(cur.lastrowid)

        return await self._write(work, deferrable=True)

    async def audit_entries(self, concern_id: str) -> list[AuditEntry]:
        def work(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute(
                "SELECT * FROM audit WHERE concern_id = ? ORDER BY id", (concern_id,)
            ).fetchall()
            return [
                AuditEntry(
                    id=r["id"],
                    at=datetime.fromisoformat(r["at"]),
                    actor_aad_id=r["actor_aad_id"],
                    action=r["action"],
                    concern_id=r["concern_id"],
                    detail=json.loads(r["detail"]),
                )
                for r in rows
            ]

        return await self._run(work)

    # -- processed activities (Teams re-delivers) ------------------------------------------

    async def mark_activity_seen(
        self, activity_id: str, conversation_id: str = "", at: datetime | None = None
    ) -> bool:
        """True the first time an activity is seen; False for a re-delivery."""
        now = self._now(at)

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO processed_activities (conversation_id, activity_id, at)"
                " VALUES (?, ?, ?)",
                (conversation_id, activity_id, now),
            )
            return cur.rowcount == 1

        return await self._write(work)

    async def forget_activities_before(self, before: datetime) -> int:
        """Prune the de-duplication table; Teams retries within minutes, not days."""
        cutoff = _iso(before)
        return await self._write(
            lambda conn: (
                conn.execute("DELETE FROM processed_activities WHERE at < ?", (cutoff,)).rowcount
            )
        )

    # -- bounded growth --------------------------------------------------------------------

    async def prune(
        self,
        now: datetime | None = None,
        *,
        seen_for: timedelta = SEEN_KEPT,
        finished_timers_for: timedelta = FINISHED_TIMERS_KEPT,
        closed_concerns_for: timedelta | None = None,
    ) -> dict[str, int]:
        """Remove what only grows: seen activity ids (Teams re-sends within minutes, not
        days), finished or cancelled timers, and - only when the school sets a retention -
        concerns closed longer than it, each deletion audited. Never touched: open concerns,
        pending or firing timers, undelivered messages, the audit log."""
        at = now or self._clock()
        seen_cutoff, timers_cutoff = _iso(at - seen_for), _iso(at - finished_timers_for)
        concerns_cutoff = _iso(at - closed_concerns_for) if closed_concerns_for else None
        days = closed_concerns_for.days if closed_concerns_for else None
        now_text = _iso(at)

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            done = {
                "activities": conn.execute(
                    "DELETE FROM processed_activities WHERE at < ?", (seen_cutoff,)
                ).rowcount,
                "timers": conn.execute(
                    "DELETE FROM timers WHERE status IN ('done', 'cancelled') AND updated_at < ?",
                    (timers_cutoff,),
                ).rowcount,
                "concerns": 0,
            }
            if concerns_cutoff is None:
                return done
            # A closed concern with anything still to send or fire waits for the next pass.
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM concerns c WHERE status = 'closed' AND updated_at < ?"
                    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.concern_id = c.id"
                    "  AND o.status IN ('pending', 'sending'))"
                    " AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.concern_id = c.id"
                    "  AND t.status IN ('pending', 'firing'))",
                    (concerns_cutoff,),
                ).fetchall()
            ]
            for concern_id in ids:
                for sql in _CONCERN_ROWS:
                    conn.execute(sql, (concern_id,))
                conn.execute(
                    "INSERT INTO audit (at, actor_aad_id, action, concern_id, detail)"
                    " VALUES (?, NULL, 'concern_deleted', ?, ?)",
                    (now_text, concern_id, _dumps({"retention_days": days})),
                )
            done["concerns"] = len(ids)
            return done

        return await self._write(work)

    # -- timers ----------------------------------------------------------------------------

    async def schedule(self, timer: TimerSpec) -> str | None:
        """Set a timer (moving a live one with the same key, in place); returns its id
        (None inside a chat turn: it is written with the turn)."""
        now = self._now()
        return await self._write(lambda conn: _insert_timer(conn, timer, now), deferrable=True)

    async def cancel_timers(
        self, *, key: str | None = None, concern_id: str | None = None, kinds: Sequence[str] = ()
    ) -> int | None:
        """Cancel pending timers by key, or by concern (optionally only these kinds); returns
        how many (None inside a chat turn: it is written with the turn)."""
        if key is None and concern_id is None:
            raise ValueError("cancel_timers needs a key or a concern_id")
        clauses, params = ["status = 'pending'"], [self._now()]
        if key is not None:
            clauses.append("key = ?")
            params.append(key)
        if concern_id is not None:
            clauses.append("concern_id = ?")
            params.append(concern_id)
        if kinds:
            clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
            params.extend(kinds)
        sql = (
            f"UPDATE timers SET status = 'cancelled', updated_at = ? WHERE {' AND '.join(clauses)}"
        )
        return await self._write(lambda conn: conn.execute(sql, params).rowcount, deferrable=True)

    async def claim_due_timers(self, now: datetime | None = None, limit: int = 20) -> list[Timer]:
        """Mark due timers 'firing' and return them. A firing timer whose worker died (its
        claim is older than the lease) is due again; a finished one never fires twice."""
        at = now or self._clock()
        now_text, expired = _iso(at), _iso(at - self._lease)

        def work(conn: sqlite3.Connection) -> list[Timer]:
            rows = conn.execute(
                "SELECT id FROM timers WHERE (status = 'pending' AND due_at <= ?)"
                " OR (status = 'firing' AND claimed_at <= ?) ORDER BY due_at LIMIT ?",
                (now_text, expired, limit),
            ).fetchall()
            ids = [r["id"] for r in rows]
            conn.executemany(
                "UPDATE timers SET status = 'firing', claimed_at = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ?",
                [(now_text, now_text, i) for i in ids],
            )
            return [
                _timer(conn.execute("SELECT * FROM timers WHERE id = ?", (i,)).fetchone())
                for i in ids
            ]

        return await self._write(work)

    async def finish_timer(
        self,
        timer_id: str,
        *,
        messages: Sequence[tuple[str | None, OutboxMessage]] = (),
        then: Sequence[TimerSpec] = (),
        audit: Sequence[tuple[str | None, str, str | None, Mapping[str, Any]]] = (),
    ) -> bool:
        """Close a fired timer and commit what it caused - outgoing messages, follow-up timers,
        audit entries - in ONE transaction, so a timer's effects happen exactly once."""
        now = self._now()

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE timers SET status = 'done', claimed_at = NULL, updated_at = ?"
                " WHERE id = ? AND status = 'firing'",
                (now, timer_id),
            )
            if cur.rowcount != 1:
                return False  # cancelled meanwhile, or already finished elsewhere
            for concern_id, message in messages:
                _insert_outbox(conn, _outbox_row(concern_id, message, now))
            for spec in then:
                _insert_timer(conn, spec, now)
            for actor, action, concern_id, detail in audit:
                conn.execute(
                    "INSERT INTO audit (at, actor_aad_id, action, concern_id, detail)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (now, actor, action, concern_id, _dumps(dict(detail))),
                )
            return True

        return await self._write(work)

    async def count_due_timers(self, now: datetime | None = None) -> int:
        """Timers due now that have not finished (pending and due, or firing)."""
        now_text = _iso(now or self._clock())
        return await self._run(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM timers WHERE (status = 'pending' AND due_at <= ?)"
                " OR status = 'firing'",
                (now_text,),
            ).fetchone()[0]
        )

    async def retry_timer(self, timer_id: str, next_at: datetime, error: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE timers SET status = 'pending', due_at = ?, last_error = ?,"
                " claimed_at = NULL, updated_at = ? WHERE id = ? AND status = 'firing'",
                (_iso(next_at), error[:200], self._now(), timer_id),
            )
        )

    async def timers(self, *, concern_id: str | None = None, key: str | None = None) -> list[Timer]:
        """Every timer for a concern or key, oldest due first (for tests and the card)."""
        clauses, params = [], []
        if concern_id is not None:
            clauses.append("concern_id = ?")
            params.append(concern_id)
        if key is not None:
            clauses.append("key = ?")
            params.append(key)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return await self._run(
            lambda conn: [
                _timer(r)
                for r in conn.execute(f"SELECT * FROM timers {where} ORDER BY due_at", params)
            ]
        )

    # -- conversation references -----------------------------------------------------------

    async def save_conversation_ref(
        self,
        kind: str,
        key: str,
        reference: ConversationReference | Mapping[str, Any],
        at: datetime | None = None,
    ) -> None:
        """Upsert where to reach a channel ('channel', id) or a person ('user', aad id)."""
        data = (
            reference.serialize()
            if isinstance(reference, ConversationReference)
            else dict(reference)
        )
        text = _dumps(data)
        if self._refs_written.get((kind, key)) == text:
            return  # unchanged since this process last wrote it: nothing to write
        row = (kind, key, Sensitive(text), self._now(at))
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO conversation_refs (kind, key, reference, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET"
                " reference = excluded.reference, updated_at = excluded.updated_at",
                row,
            ),
            deferrable=True,
        )
        unit = _UNIT.get()
        if unit is not None and unit.open and unit.store is self:
            unit.after_commit.append(lambda: self._remember_ref(kind, key, text))
        else:
            self._remember_ref(kind, key, text)

    def _remember_ref(self, kind: str, key: str, text: str) -> None:
        self._refs_written[(kind, key)] = text
        self._refs_written.move_to_end((kind, key))
        while len(self._refs_written) > REFS_REMEMBERED:
            self._refs_written.popitem(last=False)

    async def get_conversation_ref(self, kind: str, key: str) -> ConversationReference | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT reference FROM conversation_refs WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
            return row["reference"] if row else None

        text = await self._run(work)
        if text is None:
            return None
        self._remember_ref(kind, key, text)
        return ConversationReference().deserialize(json.loads(text))


# -- helpers ---------------------------------------------------------------------------------


def open_store(path: str | Path, **kwargs: Any) -> SqliteStore:
    """Open (creating and migrating if needed) the store file at `path`."""
    return SqliteStore(path, **kwargs)


def _make_private(path: Path) -> None:
    """The data folder 0700 and the database 0600 whatever the umask; SQLite gives the -wal
    and -shm files the database file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for each, wanted in ((path.parent, 0o700), (path, 0o600)):
        try:
            if stat.S_IMODE(each.stat().st_mode) != wanted:
                each.chmod(wanted)
        except OSError as exc:  # e.g. a mounted share that ignores modes: say so, carry on
            logger.warning("could not make %s private (%s)", each, type(exc).__name__)


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise StoreError("migration ends with an incomplete statement")
    return statements


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _state_dict(change: Any) -> dict[str, Any]:
    if isinstance(change, dict):
        return dict(change)
    if isinstance(change, StoreItem) or hasattr(change, "__dict__"):
        return {k: v for k, v in vars(change).items() if not k.startswith("_")}
    raise StoreError(f"cannot store a {type(change).__name__}; use a dict or StoreItem")


def _concern_row(concern: Concern, status: str, now: str) -> dict[str, Any]:
    _check(status, CONCERN_STATUSES, "concern status")
    return {
        "id": concern.id,
        "school_id": concern.school_id,
        "type": concern.type,
        "reporter_aad_id": concern.reporter.aad_object_id,
        "status": status,
        "priority": concern.priority,
        "routing": concern.routing.route,
        "payload": Sensitive(_dumps(concern.to_dict())),
        "first_due_at": _first_due(concern.deadlines),
        "now": now,
    }


def _first_due(deadlines: Iterable[Any]) -> str | None:
    """The earliest deadline as fixed-width UTC text (None without one)."""
    due = []
    for deadline in deadlines:
        at = deadline.get("due_at") if isinstance(deadline, Mapping) else deadline.due_at
        try:
            due.append(_iso(datetime.fromisoformat(at)))
        except (TypeError, ValueError):
            continue
    return min(due) if due else None


def _backfill_first_due(conn: sqlite3.Connection) -> None:
    for row in conn.execute("SELECT id, payload FROM concerns").fetchall():
        try:
            deadlines = json.loads(row["payload"]).get("deadlines") or []
        except (ValueError, AttributeError):
            continue  # not readable here: only its place in the list is affected
        conn.execute(
            "UPDATE concerns SET first_due_at = ? WHERE id = ?", (_first_due(deadlines), row["id"])
        )


def _upsert_concern(conn: sqlite3.Connection, row: Mapping[str, Any]) -> None:
    conn.execute(
        "INSERT INTO concerns (id, school_id, type, reporter_aad_id, status, priority, routing,"
        " payload, first_due_at, created_at, updated_at)"
        " VALUES (:id, :school_id, :type, :reporter_aad_id, :status, :priority, :routing,"
        " :payload, :first_due_at, :now, :now)"
        " ON CONFLICT (id) DO UPDATE SET type = excluded.type, priority = excluded.priority,"
        " routing = excluded.routing, payload = excluded.payload,"
        " first_due_at = excluded.first_due_at,"
        " updated_at = excluded.updated_at,"
        " status = CASE WHEN concerns.status IN ('acknowledged', 'closed')"
        " THEN concerns.status ELSE excluded.status END",
        row,
    )


def _stored_concern(row: sqlite3.Row) -> StoredConcern:
    return StoredConcern(
        concern=Concern.from_dict(json.loads(row["payload"])),
        status=row["status"],
        priority=row["priority"],
        routing=row["routing"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=_time(row["acknowledged_at"]),
    )


def _outbox_row(concern_id: str | None, message: OutboxMessage, now: str) -> tuple:
    return (
        str(uuid.uuid4()),
        concern_id,
        message.kind,
        _dumps(dict(message.target)),  # ids and routes only: queried in SQL, not sealed
        Sensitive(_dumps(dict(message.payload))),
        _iso(message.not_before) if message.not_before else now,
        now,
    )


def _insert_outbox(conn: sqlite3.Connection, row: tuple) -> str:
    priority = PRIORITY.get(row[2], DEFAULT_PRIORITY)
    conn.execute(
        "INSERT INTO outbox (id, concern_id, kind, target, payload, status, next_attempt_at,"
        " created_at, updated_at, priority) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (*row, row[-1], priority),
    )
    return row[0]


def _first_milestone(conn: sqlite3.Connection, concern_id: str, milestone: str, now: str) -> bool:
    cur = conn.execute(
        "INSERT OR IGNORE INTO concern_milestones (concern_id, milestone, at) VALUES (?, ?, ?)",
        (concern_id, milestone, now),
    )
    return cur.rowcount == 1


def _insert_timer(conn: sqlite3.Connection, spec: TimerSpec, now: str) -> str:
    if spec.key is not None:
        # Rescheduling moves the live timer in place: no cancelled row left behind per turn.
        moved = conn.execute(
            "UPDATE timers SET kind = ?, concern_id = ?, due_at = ?, payload = ?, attempts = 0,"
            " last_error = NULL, updated_at = ? WHERE key = ? AND status = 'pending'"
            " RETURNING id",
            (
                spec.kind,
                spec.concern_id,
                _iso(spec.due_at),
                Sensitive(_dumps(dict(spec.payload))),
                now,
                spec.key,
            ),
        ).fetchall()
        if moved:
            return moved[0][0]
    timer_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO timers (id, kind, key, concern_id, due_at, payload, status, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        (
            timer_id,
            spec.kind,
            spec.key,
            spec.concern_id,
            _iso(spec.due_at),
            Sensitive(_dumps(dict(spec.payload))),
            now,
            now,
        ),
    )
    return timer_id


def _timer(row: sqlite3.Row) -> Timer:
    return Timer(
        id=row["id"],
        kind=row["kind"],
        key=row["key"],
        concern_id=row["concern_id"],
        due_at=datetime.fromisoformat(row["due_at"]),
        payload=json.loads(row["payload"]),
        status=row["status"],
        attempts=row["attempts"],
    )


def _fetch_outbox(conn: sqlite3.Connection, outbox_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()


def _outbox_item(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        concern_id=row["concern_id"],
        kind=row["kind"],
        target=json.loads(row["target"]),
        payload=json.loads(row["payload"]),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=datetime.fromisoformat(row["next_attempt_at"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        last_error=row["last_error"],
        delivered_activity_id=row["delivered_activity_id"],
        priority=row["priority"],
        unknown_outcome=bool(row["unknown_outcome"]),
    )
