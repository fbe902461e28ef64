"""The outbox: claiming, leasing and closing messages to Teams (at-least-once delivery)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.errors import StoreError
from bot.store.core import StoreCore
from bot.store.model import (
    AlertPostRecord,
    DeliveryEffects,
    OutboxItem,
    OutboxMessage,
    _dumps,
    _iso,
    _time,
)
from bot.store.rows import (
    Connection,
    _fetch_outbox,
    _first_milestone,
    _insert_outbox,
    _insert_timer,
    _outbox_item,
    _outbox_row,
)
from bot.store.sealing import Sensitive


class OutboxMixin(StoreCore):
    """Messages to Teams: queued with what caused them, claimed with a lease, closed once."""

    def _waits_its_turn(self) -> str:
        """SQL: this row waits while an older message to the same person is undelivered
        (messages to one person arrive in the order they were queued: "Saved - sending
        now" before "Delivered")."""
        user = self.json_text("{}.target", "user_id")
        return (
            "(kind = 'direct_message' AND EXISTS (SELECT 1 FROM outbox AS earlier"
            " WHERE earlier.kind = 'direct_message' AND earlier.status IN ('pending', 'sending')"
            " AND earlier.rowid < outbox.rowid"
            f" AND {user.format('earlier')} = {user.format('outbox')}))"
        )

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

        def work(conn: Connection) -> list[OutboxItem]:
            rows = conn.execute(
                "SELECT id, status FROM outbox WHERE ((status = 'pending' AND next_attempt_at <= ?)"
                " OR (status = 'sending' AND claimed_at <= ?)) AND NOT "
                + self._waits_its_turn()
                + " ORDER BY priority, next_attempt_at, created_at LIMIT ?"
                + self.CLAIM_LOCK,
                (now_text, expired, limit),
            ).fetchall()
            ids = [r["id"] for r in rows]
            conn.executemany(
                "UPDATE outbox SET status = 'sending', claimed_at = ?, claimed_by = ?,"
                " attempts = attempts + 1, updated_at = ?,"
                " unknown_outcome = CASE WHEN ? THEN 1 ELSE unknown_outcome END WHERE id = ?",
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

        def work(conn: Connection) -> list[OutboxItem]:
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

        def work(conn: Connection) -> int:
            return conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE (status = 'pending' AND next_attempt_at <= ?"
                " AND NOT " + self._waits_its_turn() + ") OR status = 'sending'",
                (now_text,),
            ).fetchone()[0]

        return await self._run(work)

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """(messages not yet delivered, when the oldest undelivered alert was queued) for
        /metrics. A failed alert still counts as undelivered."""

        def work(conn: Connection) -> tuple[int, datetime | None]:
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
            " updated_at = ?, unknown_outcome = CASE WHEN ? THEN 1 ELSE unknown_outcome END",
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

        def work(conn: Connection) -> bool:
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

        def work(conn: Connection) -> bool:
            cur = conn.execute(
                "UPDATE outbox SET status = 'delivered', delivered_activity_id = ?,"
                " last_error = NULL, claimed_at = NULL, updated_at = ?"
                " WHERE id = ? AND status != 'delivered'",
                (activity_id, now, outbox_id),
            )
            if post is not None:
                conn.execute(
                    "INSERT INTO alert_posts (concern_id, activity_id, reference,"
                    " resend, source, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
        def work(conn: Connection) -> None:
            cur = conn.execute(
                f"UPDATE outbox SET {assignments} WHERE id = ?", (*params, outbox_id)
            )
            if cur.rowcount != 1:
                raise StoreError(f"no outbox message {outbox_id}")

        await self._write(work)

    async def get_outbox(self, outbox_id: str) -> OutboxItem | None:
        def work(conn: Connection) -> OutboxItem | None:
            row = _fetch_outbox(conn, outbox_id)
            return _outbox_item(row) if row else None

        return await self._run(work)

    async def outbox_for_concern(self, concern_id: str) -> list[OutboxItem]:
        def work(conn: Connection) -> list[OutboxItem]:
            rows = conn.execute(
                "SELECT * FROM outbox WHERE concern_id = ? ORDER BY created_at, rowid",
                (concern_id,),
            ).fetchall()
            return [_outbox_item(r) for r in rows]

        return await self._run(work)
