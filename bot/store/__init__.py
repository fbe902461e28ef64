"""The store: everything durable - bot state, concerns, the outbox, timers, audit.

`SqliteStore` (sqlite.py) is the embedded backend; `sealing` and `keys` seal the columns that
hold what people wrote. Callers import from here, never from a backend module.
"""

from bot.store.sqlite import (
    CARDS_LANE,
    SCHEMA_VERSION,
    AlertPost,
    AlertPostRecord,
    DeliveryEffects,
    DuplicateActivity,
    OutboxItem,
    OutboxMessage,
    SqliteStore,
    StoredConcern,
    Timer,
    TimerSpec,
    open_store,
)

__all__ = [
    "CARDS_LANE",
    "SCHEMA_VERSION",
    "AlertPost",
    "AlertPostRecord",
    "DeliveryEffects",
    "DuplicateActivity",
    "OutboxItem",
    "OutboxMessage",
    "SqliteStore",
    "StoredConcern",
    "Timer",
    "TimerSpec",
    "open_store",
]
