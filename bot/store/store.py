"""`Store`: the one interface callers use, whichever database is behind it."""

from __future__ import annotations

from bot.store.concerns import ConcernsMixin
from bot.store.outbox import OutboxMixin
from bot.store.records import RecordsMixin
from bot.store.timers import TimersMixin
from bot.store.turnlock import TurnLockMixin
from bot.store.upkeep import UpkeepMixin


class Store(ConcernsMixin, OutboxMixin, TimersMixin, UpkeepMixin, TurnLockMixin, RecordsMixin):
    """Bot state, concerns, the outbox, timers, audit and references: every query written
    once (the mixins), over a backend that says how to reach its database (sqlite.py)."""
