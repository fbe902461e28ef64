"""SQL shared by every backend: one row in, one record out (no I/O of its own)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from botbuilder.core import StoreItem

from bot.errors import StoreError
from bot.store.model import (
    CONCERN_STATUSES,
    DEFAULT_PRIORITY,
    PRIORITY,
    OutboxItem,
    OutboxMessage,
    StoredConcern,
    Timer,
    TimerSpec,
    _dumps,
    _iso,
    _time,
)
from bot.store.sealing import Sensitive
from flows.concern import Concern


class Connection(Protocol):
    """What the SQL needs of a connection (sqlite3, or a backend's adapter)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Any: ...


Row = Any

REFS_REMEMBERED = 10_000
SEEN_KEPT = timedelta(days=2)
FINISHED_TIMERS_KEPT = timedelta(days=30)
# Everything stored about one concern except its audit entries (kept for ever: ids only).
_CONCERN_ROWS = (
    "DELETE FROM record_entries WHERE concern_id = ?",
    "DELETE FROM chronology WHERE concern_id = ?",
    "DELETE FROM chronology_decisions WHERE concern_id = ? OR other_id = ?",
    "DELETE FROM outbox WHERE concern_id = ?",
    "DELETE FROM timers WHERE concern_id = ?",
    "DELETE FROM conversation_refs WHERE kind = 'alert' AND key = ?",
    "DELETE FROM alert_posts WHERE concern_id = ?",
    "DELETE FROM concern_milestones WHERE concern_id = ?",
    "DELETE FROM concerns WHERE id = ?",
)


def _read_state(conn: Connection, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
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


def _upsert_concern(conn: Connection, row: Mapping[str, Any]) -> None:
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


def _stored_concern(row: Row) -> StoredConcern:
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


def _insert_outbox(conn: Connection, row: tuple) -> str:
    priority = PRIORITY.get(row[2], DEFAULT_PRIORITY)
    conn.execute(
        "INSERT INTO outbox (id, concern_id, kind, target, payload, status, next_attempt_at,"
        " created_at, updated_at, priority) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (*row, row[-1], priority),
    )
    return row[0]


def _first_milestone(conn: Connection, concern_id: str, milestone: str, now: str) -> bool:
    cur = conn.execute(
        "INSERT INTO concern_milestones (concern_id, milestone, at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (concern_id, milestone, now),
    )
    return cur.rowcount == 1


def _insert_timer(conn: Connection, spec: TimerSpec, now: str) -> str:
    """Set a timer; one with a key moves the live (pending) timer with that key in place - no
    cancelled row left behind per turn - in ONE statement, so two writers setting the same
    key at once (two replicas) move one timer instead of colliding on the unique index."""
    return conn.execute(
        "INSERT INTO timers (id, kind, key, concern_id, due_at, payload, status, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)"
        " ON CONFLICT (key) WHERE key IS NOT NULL AND status = 'pending' DO UPDATE SET"
        " kind = excluded.kind, concern_id = excluded.concern_id, due_at = excluded.due_at,"
        " payload = excluded.payload, attempts = 0, last_error = NULL,"
        " updated_at = excluded.updated_at RETURNING id",
        (
            str(uuid.uuid4()),
            spec.kind,
            spec.key,
            spec.concern_id,
            _iso(spec.due_at),
            Sensitive(_dumps(dict(spec.payload))),
            now,
            now,
        ),
    ).fetchone()[0]


def _timer(row: Row) -> Timer:
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


def _fetch_outbox(conn: Connection, outbox_id: str) -> Row | None:
    return conn.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()


def _outbox_item(row: Row) -> OutboxItem:
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
