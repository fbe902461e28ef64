"""Concerns, milestones, alert copies and the append-only audit log."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from botbuilder.schema import ConversationReference

from bot.store.core import StoreCore
from bot.store.lanes import _UNIT
from bot.store.model import (
    CONCERN_STATUSES,
    AlertPost,
    AuditEntry,
    DuplicateActivity,
    OutboxMessage,
    StoredConcern,
    TimerSpec,
    _dumps,
    _iso,
)
from bot.store.rows import (
    Connection,
    Row,
    _check,
    _concern_row,
    _first_milestone,
    _insert_outbox,
    _insert_timer,
    _outbox_row,
    _stored_concern,
    _upsert_concern,
)
from bot.store.sealing import Sensitive
from flows.concern import Concern


class ConcernsMixin(StoreCore):
    """Concerns (raised once, acknowledged once), alert copies and the audit log."""

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

        def work(conn: Connection) -> None:
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

        def work(conn: Connection) -> bool:
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
                    "INSERT INTO alert_posts (concern_id, activity_id, reference,"
                    " resend, source, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    row,
                ).rowcount
                == 1
            )
        )

    async def alert_posts(self, concern_id: str) -> list[AlertPost]:
        """Every copy of the alert, oldest first (all of them are updated together)."""
        return (await self.alert_posts_for([concern_id])).get(concern_id, [])

    async def alert_posts_for(self, concern_ids: Iterable[str]) -> dict[str, list[AlertPost]]:
        """Every copy of each of these concerns' alerts, oldest first, in one query (a list
        of concerns links each to its thread); a concern never posted is absent."""
        ids = sorted(set(concern_ids))
        if not ids:
            return {}
        sql = (
            f"SELECT * FROM alert_posts WHERE concern_id IN ({','.join('?' * len(ids))})"
            " ORDER BY concern_id, at, rowid"
        )

        def work(conn: Connection) -> dict[str, list[AlertPost]]:
            found: dict[str, list[AlertPost]] = {}
            for r in conn.execute(sql, ids).fetchall():
                found.setdefault(r["concern_id"], []).append(
                    AlertPost(
                        concern_id=r["concern_id"],
                        activity_id=r["activity_id"],
                        reference=ConversationReference().deserialize(json.loads(r["reference"])),
                        resend=bool(r["resend"]),
                        source=r["source"],
                    )
                )
            return found

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
        def work(conn: Connection) -> StoredConcern | None:
            row = conn.execute("SELECT * FROM concerns WHERE id = ?", (concern_id,)).fetchone()
            return _stored_concern(row) if row else None

        return await self._run(work)

    async def list_concerns_by_reporter(
        self, reporter_aad_id: str, *, limit: int = 50
    ) -> list[StoredConcern]:
        def work(conn: Connection) -> list[StoredConcern]:
            rows = conn.execute(
                "SELECT * FROM concerns WHERE reporter_aad_id = ? AND status != 'draft'"
                " ORDER BY created_at DESC LIMIT ?",
                (reporter_aad_id, limit),
            ).fetchall()
            return [_stored_concern(r) for r in rows]

        return await self._run(work)

    async def concerns_by_reference(
        self, school_id: str, reference: str, *, limit: int = 5
    ) -> list[StoredConcern]:
        """A school's raised concerns whose id starts with `reference` (what staff type: the
        first 8 characters of the id), newest first."""
        prefix = "".join(c for c in reference.lower() if c in "0123456789abcdef-")
        if len(prefix) < 6:  # too short to name one concern
            return []

        def work(conn: Connection) -> list[StoredConcern]:
            rows = conn.execute(
                "SELECT * FROM concerns WHERE school_id = ? AND id LIKE ? AND status != 'draft'"
                " ORDER BY created_at DESC LIMIT ?",
                (school_id, prefix + "%", limit),
            ).fetchall()
            return [_stored_concern(r) for r in rows]

        return await self._run(work)

    async def list_open_concerns(self, school_id: str) -> list[StoredConcern]:
        """Raised but not yet closed (including acknowledged), oldest first."""

        def work(conn: Connection) -> list[StoredConcern]:
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
        """How many concerns are open on these routes, and the first `limit` of them: nobody
        has picked it up, then a deadline has passed (the longest overdue first), then the
        rest (oldest first). Each group is read from its index in that order and stops when
        the page is full (`_OPEN_GROUPS`): the cost does not grow with the number open. The
        count is read from an index alone."""
        routes = sorted(set(routes))
        if not routes:
            return 0, []
        marks = ",".join("?" * len(routes))
        count_sql = (
            "SELECT COUNT(*) FROM concerns WHERE school_id = ?"
            f" AND status IN ('raised', 'acknowledged') AND routing IN ({marks})"
        )
        at = _iso(now)

        def work(conn: Connection) -> tuple[int, list[StoredConcern]]:
            total = conn.execute(count_sql, [school_id, *routes]).fetchone()[0]
            page: dict[str, Any] = {}
            for sql, key in _OPEN_GROUPS:
                room = limit - len(page)
                if room <= 0:
                    break
                # One ordered range per route, merged; a later group starts only when the
                # earlier ones did not fill the page, so what it skips is fewer than a page.
                ranges = [conn.execute(sql, (school_id, r, at, room)).fetchall() for r in routes]
                for row in heapq.merge(*ranges, key=key):
                    if len(page) == limit:
                        break
                    # Statements apart may see a concern picked up in between: listed once.
                    page.setdefault(row["id"], row)
            return total, [_stored_concern(r) for r in page.values()]

        return await self._run(work)

    async def acknowledge(self, concern_id: str, by: str, at: datetime | None = None) -> bool:
        """Record the first acknowledgement. Exactly one concurrent caller gets True."""
        now = self._now(at)

        def work(conn: Connection) -> bool:
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

        def work(conn: Connection) -> bool:
            cur = conn.execute(
                "UPDATE concerns SET status = ?, updated_at = ? WHERE id = ?",
                (status, now, concern_id),
            )
            return cur.rowcount == 1

        return await self._write(work)

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

        def work(conn: Connection) -> int:
            cur = conn.execute(
                "INSERT INTO audit (at, actor_aad_id, action, concern_id, detail)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                row,
            )
            return int(cur.fetchone()[0])

        return await self._write(work, deferrable=True)

    async def audit_entries(self, concern_id: str) -> list[AuditEntry]:
        def work(conn: Connection) -> list[AuditEntry]:
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


# "open concerns", group by group, each a range of one index of migration 8 (school, route,
# then the group's order), read in that order: nothing sorts every open concern, whose order
# depends on the time. The longest overdue first (by first deadline), the rest oldest first.
def _open_group(who: str, due: str, order: str) -> str:
    return (
        "SELECT rowid, * FROM concerns WHERE school_id = ? AND routing = ?"
        f" AND status IN ('raised', 'acknowledged') AND acknowledged_by {who} AND {due}"
        f" ORDER BY {order} LIMIT ?"
    )


def _by_deadline(row: Row) -> tuple[str, str, int]:
    return row["first_due_at"], row["created_at"], row["rowid"]


def _by_age(row: Row) -> tuple[str, int]:
    return row["created_at"], row["rowid"]


_OVERDUE = "first_due_at < ?"
_NOT_OVERDUE = "(first_due_at IS NULL OR first_due_at >= ?)"
_OPEN_GROUPS: tuple[tuple[str, Callable[[Row], tuple[Any, ...]]], ...] = (
    (_open_group("IS NULL", _OVERDUE, "first_due_at, created_at, rowid"), _by_deadline),
    (_open_group("IS NULL", _NOT_OVERDUE, "created_at, rowid"), _by_age),
    (_open_group("IS NOT NULL", _OVERDUE, "first_due_at, created_at, rowid"), _by_deadline),
    (_open_group("IS NOT NULL", _NOT_OVERDUE, "created_at, rowid"), _by_age),
)
