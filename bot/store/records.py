"""The store's part for the DSL's record: decision entries and the child's chronology links.

A mixin of `Store` over `StoreCore`; the SQL is the subset SQLite and PostgreSQL share
(`INSERT ... RETURNING`, `ON CONFLICT ... DO ...`). What people wrote (the entry's fields, the
actor's name) is sealed at rest like every other such column (sealing.py SEALED_COLUMNS).
bot/services/records.py describes the model for readers of the record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.store.core import StoreCore
from bot.store.model import StoredConcern
from bot.store.rows import Connection, _stored_concern
from bot.store.sealing import Sensitive

# Everything of the record about one concern is deleted with it (rows.py _CONCERN_ROWS) under
# a retention setting; the schema is migration 5 (migrations.py).


@dataclass(frozen=True)
class RecordEntry:
    """One timestamped entry of a concern's record: who, when, what (kind), why (fields)."""

    concern_id: str
    at: datetime
    actor_aad_id: str | None
    actor_name: str
    kind: str  # a decision verb (bot/services/decisions.py), e.g. "referred_social_care"
    fields: dict[str, str] = field(default_factory=dict)  # field id -> what was entered
    id: str = ""
    audit_id: int | None = None


def _entry(row: Any) -> RecordEntry:
    return RecordEntry(
        concern_id=row["concern_id"],
        at=datetime.fromisoformat(row["at"]),
        actor_aad_id=row["actor_aad_id"],
        actor_name=row["actor_name"],
        kind=row["kind"],
        fields=json.loads(row["fields"]),
        id=row["id"],
        audit_id=row["audit_id"],
    )


def _audit(
    conn: Connection, now: str, actor: str | None, action: str, concern_id: str, detail
) -> int:
    detail_text = json.dumps(dict(detail), sort_keys=True, separators=(",", ":"))
    return int(
        conn.execute(
            "INSERT INTO audit (at, actor_aad_id, action, concern_id, detail)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (now, actor, action, concern_id, detail_text),
        ).fetchone()[0]
    )


class RecordsMixin(StoreCore):
    """Record entries and chronology links; each change is ONE transaction with its audit."""

    async def add_record_entry(
        self,
        entry: RecordEntry,
        *,
        audit_action: str,
        audit_detail: Mapping[str, Any],
        status: str | None = None,
    ) -> RecordEntry:
        """Write the entry and its audit line together (and the concern's new status, for a
        close). The audit detail holds ids and states only; the entry holds what was typed."""
        now = self._now(entry.at)
        entry_id = entry.id or uuid.uuid4().hex
        fields_text = Sensitive(json.dumps(entry.fields, ensure_ascii=False, sort_keys=True))

        def work(conn: Connection) -> int:
            audit_id = _audit(
                conn, now, entry.actor_aad_id, audit_action, entry.concern_id, audit_detail
            )
            conn.execute(
                "INSERT INTO record_entries (id, concern_id, at, actor_aad_id, actor_name, kind,"
                " fields, audit_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry_id,
                    entry.concern_id,
                    now,
                    entry.actor_aad_id,
                    Sensitive(entry.actor_name),
                    entry.kind,
                    fields_text,
                    audit_id,
                ),
            )
            if status is not None:
                conn.execute(
                    "UPDATE concerns SET status = ?, updated_at = ? WHERE id = ?",
                    (status, now, entry.concern_id),
                )
            return audit_id

        audit_id = await self._write(work)
        return RecordEntry(
            entry.concern_id,
            datetime.fromisoformat(now),
            entry.actor_aad_id,
            entry.actor_name,
            entry.kind,
            dict(entry.fields),
            entry_id,
            audit_id,
        )

    async def record_entries(self, concern_id: str) -> list[RecordEntry]:
        """The concern's record, oldest first."""
        return await self._run(
            lambda conn: [
                _entry(r)
                for r in conn.execute(
                    "SELECT * FROM record_entries WHERE concern_id = ? ORDER BY at, audit_id",
                    (concern_id,),
                ).fetchall()
            ]
        )

    async def school_concerns(
        self,
        school_id: str,
        *,
        allegations: bool = False,
        before: datetime | None = None,
        limit: int = 2000,
    ) -> list[StoredConcern]:
        """A school's raised concerns (not drafts), newest first, at most `limit`: DSL-team
        concerns, or (`allegations`) those that went to a case manager - never both."""
        route = "routing != 'dsl_team'" if allegations else "routing = 'dsl_team'"
        params: list[Any] = [school_id]
        since = ""
        if before is not None:
            since = " AND created_at < ?"
            params.append(self._now(before))

        def work(conn: Connection) -> list[StoredConcern]:
            rows = conn.execute(
                f"SELECT * FROM concerns WHERE school_id = ? AND {route} AND status != 'draft'"
                f"{since} ORDER BY created_at DESC, id LIMIT ?",
                (*params, limit),
            ).fetchall()
            return [_stored_concern(r) for r in rows]

        return await self._run(work)

    async def school_concerns_stamp(self, school_id: str, before: datetime) -> tuple[int, str]:
        """How many DSL-team concerns the school raised before `before`, and when any of them
        last changed: a matcher's cached answer is good while this is unchanged."""
        since = self._now(before)
        row = await self._run(
            lambda conn: conn.execute(
                "SELECT COUNT(*), MAX(updated_at) FROM concerns WHERE school_id = ?"
                " AND routing = 'dsl_team' AND status != 'draft' AND created_at < ?",
                (school_id, since),
            ).fetchone()
        )
        return int(row[0]), row[1] or ""

    async def concern_versions(self, school_id: str, since: str | None) -> list[tuple[str, str]]:
        """(id, updated_at) of the school's raised DSL-team concerns changed at or after
        `since` (every one when None): what a name index must read again (index
        concerns_school_updated, so the cost follows the changes, not the history)."""
        after, params = (
            ("", [school_id]) if since is None else (" AND updated_at >= ?", [school_id, since])
        )
        return await self._run(
            lambda conn: [
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT id, updated_at FROM concerns WHERE school_id = ?"
                    f"{after} AND routing = 'dsl_team' AND status != 'draft'",
                    params,
                ).fetchall()
            ]
        )

    async def concerns_by_id(self, concern_ids: Sequence[str]) -> list[StoredConcern]:
        """These concerns (those still stored), in no particular order."""
        if not concern_ids:
            return []
        marks = ",".join("?" * len(concern_ids))
        return await self._run(
            lambda conn: [
                _stored_concern(r)
                for r in conn.execute(
                    f"SELECT * FROM concerns WHERE id IN ({marks})", list(concern_ids)
                ).fetchall()
            ]
        )

    async def child_ids(self, school_id: str) -> dict[str, str]:
        """concern id -> child id, for every linked concern of the school."""
        return await self._run(
            lambda conn: {
                r[0]: r[1]
                for r in conn.execute(
                    "SELECT concern_id, child_id FROM chronology WHERE school_id = ?",
                    (school_id,),
                ).fetchall()
            }
        )

    async def link_concerns(
        self, concern_id: str, other_id: str, school_id: str, actor: str | None, at: datetime
    ) -> str:
        """Confirm that two concerns are about the same child: both join one chronology (two
        chronologies merge). Audited in the same transaction; returns the child's id."""
        now = self._now(at)

        def work(conn: Connection) -> str:
            found = {
                r[0]: r[1]
                for r in conn.execute(
                    "SELECT concern_id, child_id FROM chronology WHERE concern_id IN (?, ?)",
                    (concern_id, other_id),
                ).fetchall()
            }
            child = found.get(other_id) or found.get(concern_id) or uuid.uuid4().hex
            for merged in {found.get(concern_id), found.get(other_id)} - {None, child}:
                conn.execute(
                    "UPDATE chronology SET child_id = ? WHERE child_id = ?", (child, merged)
                )
            for cid in (concern_id, other_id):
                conn.execute(
                    "INSERT INTO chronology (concern_id, child_id, school_id, linked_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (concern_id) DO UPDATE"
                    " SET child_id = excluded.child_id",
                    (cid, child, school_id, now),
                )
            _decide(conn, concern_id, other_id, "confirmed", actor, now)
            _audit(conn, now, actor, "chronology_linked", concern_id, {"other": other_id})
            return child

        return await self._write(work)

    async def reject_link(
        self, concern_id: str, other_id: str, actor: str | None, at: datetime
    ) -> None:
        """Not the same child: the suggestion is not made again. Audited."""
        now = self._now(at)

        def work(conn: Connection) -> None:
            _decide(conn, concern_id, other_id, "rejected", actor, now)
            _audit(conn, now, actor, "chronology_rejected", concern_id, {"other": other_id})

        await self._write(work)

    async def link_decisions(self, concern_id: str) -> dict[str, str]:
        """other concern id -> 'confirmed' | 'rejected', for pairs involving this concern."""

        def work(conn: Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT concern_id, other_id, decision FROM chronology_decisions"
                " WHERE concern_id = ? OR other_id = ?",
                (concern_id, concern_id),
            ).fetchall()
            return {(r[1] if r[0] == concern_id else r[0]): r[2] for r in rows}

        return await self._run(work)

    async def chronology_ids(self, concern_id: str) -> list[str]:
        """The concerns confirmed to be about this concern's child (itself included), oldest
        first; [] when it is linked to none."""
        return await self._run(
            lambda conn: [
                r[0]
                for r in conn.execute(
                    "SELECT c.id FROM chronology AS mine"
                    " JOIN chronology AS ch ON ch.child_id = mine.child_id"
                    " JOIN concerns AS c ON c.id = ch.concern_id"
                    " WHERE mine.concern_id = ? ORDER BY c.created_at, c.id",
                    (concern_id,),
                ).fetchall()
            ]
        )


def _decide(
    conn: Connection, concern_id: str, other_id: str, decision: str, actor, now: str
) -> None:
    conn.execute(
        "DELETE FROM chronology_decisions WHERE concern_id = ? AND other_id = ?",
        (other_id, concern_id),
    )
    conn.execute(
        "INSERT INTO chronology_decisions (concern_id, other_id, decision, actor_aad_id, at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (concern_id, other_id) DO UPDATE"
        " SET decision = excluded.decision, actor_aad_id = excluded.actor_aad_id,"
        " at = excluded.at",
        (concern_id, other_id, decision, actor, now),
    )
