"""The store: everything durable - bot state, concerns, the outbox, timers, audit.

Callers import from here, never from a module inside. A newcomer's map:
- store.py: `Store`, the one interface (annotate with it), assembled from concerns.py,
  outbox.py, timers.py and upkeep.py - every query written once, in the SQL both databases
  share - over core.py (lanes, transactions, the chat turn's unit of work, botbuilder Storage).
- model.py: the records handed back (StoredConcern, OutboxItem, Timer ...); rows.py: row <->
  record; migrations.py: the schema as data; lanes.py: threads, the write gate, TurnUnit.
- sqlite.py: the embedded backend (`SqliteStore`, one file); postgres.py: the server backend
  (`PostgresStore`, DATABASE_URL), for a trust and for several replicas.
- sealing.py and keys.py seal the columns that hold what people wrote.
"""

from pathlib import Path
from typing import Any

from bot.store.lanes import CARDS_LANE, SENDS_LANE
from bot.store.migrations import SCHEMA_VERSION
from bot.store.model import (
    AlertPost,
    AlertPostRecord,
    DeliveryEffects,
    DuplicateActivity,
    OutboxItem,
    OutboxMessage,
    StoredConcern,
    Timer,
    TimerSpec,
)
from bot.store.records import RecordEntry
from bot.store.sqlite import SqliteStore
from bot.store.store import Store


def open_store(target: str | Path, **kwargs: Any) -> Store:
    """Open (creating and migrating if needed) the store: a PostgreSQL URL
    (postgresql://...) or the path of the SQLite file."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from bot.store.postgres import PostgresStore  # psycopg is loaded only when used

        return PostgresStore(target, **kwargs)
    return SqliteStore(target, **kwargs)


__all__ = [
    "CARDS_LANE",
    "SCHEMA_VERSION",
    "SENDS_LANE",
    "AlertPost",
    "AlertPostRecord",
    "DeliveryEffects",
    "DuplicateActivity",
    "OutboxItem",
    "OutboxMessage",
    "RecordEntry",
    "SqliteStore",
    "Store",
    "StoredConcern",
    "Timer",
    "TimerSpec",
    "open_store",
]
