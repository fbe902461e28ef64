"""The schema as data: ordered, append-only migrations, applied at start under a lock.

Written once in SQLite's dialect; a backend may translate a migration for its database."""

from __future__ import annotations

import json
import sqlite3

from bot.errors import StoreError
from bot.store.rows import Connection, _first_due

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
MIGRATIONS += (
    # 5: one person's turns in order across replicas (turnlock.py): a lease per person,
    # held for the turn, taken over when it expires. Used where replicas share the database.
    """
    CREATE TABLE turn_leases (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    """,
)
MIGRATIONS += (
    # 6: the DSL's record (issue 9). record_entries: each decision on a concern - who, when,
    # what (kind), why (fields, sealed) - beside its audit line. chronology: concerns the DSL
    # team confirmed are about one child share a child_id; chronology_decisions: confirmed
    # or rejected suggestions (not suggested again).
    """
    CREATE TABLE record_entries (
        id TEXT PRIMARY KEY,
        concern_id TEXT NOT NULL,
        at TEXT NOT NULL,
        actor_aad_id TEXT,
        actor_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        fields TEXT NOT NULL,
        audit_id INTEGER NOT NULL
    );
    CREATE INDEX record_entries_by_concern ON record_entries (concern_id, at);
    CREATE TABLE chronology (
        concern_id TEXT PRIMARY KEY,
        child_id TEXT NOT NULL,
        school_id TEXT NOT NULL,
        linked_at TEXT NOT NULL
    );
    CREATE INDEX chronology_by_child ON chronology (child_id);
    CREATE TABLE chronology_decisions (
        concern_id TEXT NOT NULL,
        other_id TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('confirmed', 'rejected')),
        actor_aad_id TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (concern_id, other_id)
    );
    """,
)
MIGRATIONS += (
    # 7: the child-name index (bot/services/child_names.py) reads only the concerns changed
    # since it last looked, not the school's whole history, for each alert card.
    """
    CREATE INDEX concerns_school_updated ON concerns (school_id, updated_at);
    """,
)
MIGRATIONS += (
    # 8: "open concerns" read by index range scans that stop at the page (issue 8), not by
    # sorting every open concern: the order depends on the time (which deadlines have
    # passed), so no one index can hold it. Each group of the list - not picked up and
    # overdue, not picked up, picked up and overdue, picked up - is a range of one of these
    # indexes, in the list's own order: overdue ones by their first deadline (the longest
    # overdue first), the rest by when raised. Partial: only open concerns, split by whether
    # someone has picked it up (acknowledged_by, as the list has always grouped them). Ties
    # go by rowid (insertion), which SQLite keeps at the end of every index entry
    # (PostgreSQL sorts only the rows that tie).
    """
    CREATE INDEX concerns_open_waiting_due ON concerns (school_id, routing, first_due_at,
        created_at) WHERE status IN ('raised', 'acknowledged') AND acknowledged_by IS NULL;
    CREATE INDEX concerns_open_waiting_age ON concerns (school_id, routing, created_at)
        WHERE status IN ('raised', 'acknowledged') AND acknowledged_by IS NULL;
    CREATE INDEX concerns_open_picked_due ON concerns (school_id, routing, first_due_at,
        created_at) WHERE status IN ('raised', 'acknowledged') AND acknowledged_by IS NOT NULL;
    CREATE INDEX concerns_open_picked_age ON concerns (school_id, routing, created_at)
        WHERE status IN ('raised', 'acknowledged') AND acknowledged_by IS NOT NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
FIRST_DUE_MIGRATION = 4


def _backfill_first_due(conn: Connection) -> None:
    for row in conn.execute("SELECT id, payload FROM concerns").fetchall():
        try:
            deadlines = json.loads(row["payload"]).get("deadlines") or []
        except (ValueError, AttributeError):
            continue  # not readable here: only its place in the list is affected
        conn.execute(
            "UPDATE concerns SET first_due_at = ? WHERE id = ?", (_first_due(deadlines), row["id"])
        )


def statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole (SQLite's rules: the
    one list is written in SQLite's dialect, and the PostgreSQL backend translates each)."""
    found, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                found.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise StoreError("migration ends with an incomplete statement")
    return found
