"""Activity de-duplication, bounded growth (pruning) and conversation references."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from botbuilder.schema import ConversationReference

from bot.store.core import StoreCore
from bot.store.lanes import _UNIT
from bot.store.model import _dumps, _iso
from bot.store.rows import (
    _CONCERN_ROWS,
    FINISHED_TIMERS_KEPT,
    REFS_REMEMBERED,
    SEEN_KEPT,
    Connection,
)
from bot.store.sealing import Sensitive


class UpkeepMixin(StoreCore):
    """Seen activities, pruning what only grows, and conversation references."""

    # -- processed activities (Teams re-delivers) ------------------------------------------

    async def mark_activity_seen(
        self, activity_id: str, conversation_id: str = "", at: datetime | None = None
    ) -> bool:
        """True the first time an activity is seen; False for a re-delivery."""
        now = self._now(at)

        def work(conn: Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO processed_activities (conversation_id, activity_id, at)"
                " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
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
        school_id: str | None = None,
    ) -> dict[str, int]:
        """Remove what only grows: seen activity ids (Teams re-sends within minutes, not
        days), finished or cancelled timers, and - only when the school sets a retention -
        concerns closed longer than it, each deletion audited. Never touched: open concerns,
        pending or firing timers, undelivered messages, the audit log. `school_id`: the
        retention applies to that school's concerns only (each school's policy decides)."""
        at = now or self._clock()
        seen_cutoff, timers_cutoff = _iso(at - seen_for), _iso(at - finished_timers_for)
        concerns_cutoff = _iso(at - closed_concerns_for) if closed_concerns_for else None
        days = closed_concerns_for.days if closed_concerns_for else None
        now_text = _iso(at)

        def work(conn: Connection) -> dict[str, int]:
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
                    "  AND t.status IN ('pending', 'firing'))"
                    + (" AND school_id = ?" if school_id is not None else ""),
                    (concerns_cutoff, *([school_id] if school_id is not None else [])),
                ).fetchall()
            ]
            for concern_id in ids:
                for sql in _CONCERN_ROWS:
                    conn.execute(sql, (concern_id,) * sql.count("?"))
                conn.execute(
                    "INSERT INTO audit (at, actor_aad_id, action, concern_id, detail)"
                    " VALUES (?, NULL, 'concern_deleted', ?, ?)",
                    (now_text, concern_id, _dumps({"retention_days": days})),
                )
            done["concerns"] = len(ids)
            return done

        return await self._write(work)

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
        def work(conn: Connection) -> str | None:
            row = conn.execute(
                "SELECT reference FROM conversation_refs WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
            return row["reference"] if row else None

        text = await self._run(work)
        if text is None:
            return None
        self._remember_ref(kind, key, text)
        return ConversationReference().deserialize(json.loads(text))
