"""What the store holds and hands back: the records callers see, statuses and leases."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botbuilder.schema import ConversationReference

from bot.errors import StoreError
from flows.concern import Concern

CONCERN_STATUSES = ("draft", "raised", "acknowledged", "closed")
OUTBOX_STATUSES = ("pending", "sending", "delivered", "failed")
DEFAULT_LEASE = timedelta(minutes=5)

# Outbox order: alerts first, then messages to people, then card refreshes.
PRIORITY = {"post_alert": 0, "update_card": 2}
DEFAULT_PRIORITY = 1
# A send holds its row for this long; the sender renews it while the request is in flight.
DELIVERY_LEASE = timedelta(seconds=30)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(at: datetime) -> str:
    """UTC ISO-8601 with fixed width, so text order is time order inside SQLite."""
    if at.tzinfo is None:
        raise ValueError("store times must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class StoredConcern:
    """A concern as the store holds it: the record plus its delivery-side status."""

    concern: Concern
    status: str
    priority: str
    routing: str
    created_at: datetime
    updated_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.concern.id


@dataclass(frozen=True)
class OutboxMessage:
    """Something to deliver: what kind, to where (ids, service URL), and the activity payload."""

    kind: str
    target: Mapping[str, Any]
    payload: Mapping[str, Any]
    not_before: datetime | None = None


@dataclass(frozen=True)
class OutboxItem:
    id: str
    concern_id: str | None
    kind: str
    target: dict[str, Any]
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None
    delivered_activity_id: str | None = None
    priority: int = DEFAULT_PRIORITY
    # An earlier attempt may have reached Teams (a crash or time-out mid-send).
    unknown_outcome: bool = False


@dataclass(frozen=True)
class AlertPost:
    """One activity an alert was posted as (a channel thread, or a 1:1 fallback copy)."""

    concern_id: str
    activity_id: str
    reference: ConversationReference
    resend: bool
    source: str


@dataclass(frozen=True)
class AlertPostRecord:
    """A copy of an alert just posted: `thread` when thread replies should go to it."""

    concern_id: str
    activity_id: str
    reference: Mapping[str, Any]
    resend: bool = False
    source: str = "sent"
    thread: bool = False


@dataclass(frozen=True)
class DeliveryEffects:
    """What a first delivery causes, once per concern (see record_delivery)."""

    concern_id: str
    messages: Sequence[OutboxMessage] = ()
    timers: Sequence[TimerSpec] = ()
    audit: Sequence[tuple[str | None, str, Mapping[str, Any]]] = ()


@dataclass(frozen=True)
class TimerSpec:
    """A timer to set: `key` makes it replace a live timer with the same key (reschedule)."""

    kind: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    concern_id: str | None = None


@dataclass(frozen=True)
class Timer:
    id: str
    kind: str
    key: str | None
    concern_id: str | None
    due_at: datetime
    payload: dict[str, Any]
    status: str
    attempts: int


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_aad_id: str | None
    action: str
    concern_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)


class DuplicateActivity(StoreError):
    """The activity was applied by another turn first: this turn's writes are dropped."""
