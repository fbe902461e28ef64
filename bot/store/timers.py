"""Durable timers: a row, not a sleep; claimed with a lease so each fires once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.store.core import StoreCore
from bot.store.model import OutboxMessage, Timer, TimerSpec, _dumps, _iso
from bot.store.rows import Connection, _insert_outbox, _insert_timer, _outbox_row, _timer


class TimersMixin(StoreCore):
    """Timers: set with what caused them, claimed with a lease, finished once."""

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

        def work(conn: Connection) -> list[Timer]:
            rows = conn.execute(
                "SELECT id FROM timers WHERE (status = 'pending' AND due_at <= ?)"
                " OR (status = 'firing' AND claimed_at <= ?) ORDER BY due_at LIMIT ?"
                + self.CLAIM_LOCK,
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

        def work(conn: Connection) -> bool:
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
