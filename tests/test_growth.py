# Bounded growth (issue 8 s5): pruning removes what only grows and nothing else; the retention
# setting for closed concerns; "open concerns" ordered and limited in SQL; nothing per turn
# rebuilt that is the same every turn.
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import ConfigError
from bot.server import maintain
from bot.settings import Settings
from bot.store import OutboxMessage, Store, TimerSpec
from flows import engine
from flows.calendar import working_days_for
from flows.concern import Deadline
from tests.e2e import SCHOOL
from tests.stores import is_postgres, raw
from tests.test_store import make_concern

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)

pytestmark = pytest.mark.every_backend


def _count(store: Store, sql: str) -> int:
    with raw(store) as db:
        return db.execute(sql).fetchone()[0]


async def _history(store: Store) -> None:
    """A year of use: what should go and what must stay, all old."""
    await store.mark_activity_seen("old", "c", at=OLD)
    await store.mark_activity_seen("new", "c", at=NOW - timedelta(hours=1))
    for n, status in enumerate(["done", "cancelled", "pending", "firing"]):
        timer_id = await store.schedule(TimerSpec("escalate", OLD, {}, f"k{n}", None))
        with raw(store) as db:
            db.execute(
                "UPDATE timers SET status = ?, updated_at = ? WHERE id = ?",
                (status, OLD.isoformat(), timer_id),
            )
    # Concerns: open; closed long ago; closed long ago but with a message still to send;
    # closed recently.
    for concern_id in ("open", "closed-old", "closed-pending", "closed-new"):
        await store.save_concern_and_enqueue(
            make_concern(concern_id), [OutboxMessage("post_alert", {}, {})], at=OLD
        )
        await store.audit("aad-reporter", "concern_raised", concern_id, {}, at=OLD)
    with raw(store) as db:
        db.execute("UPDATE outbox SET status = 'delivered' WHERE concern_id != 'closed-pending'")
    for concern_id in ("closed-old", "closed-pending"):
        await store.set_concern_status(concern_id, "closed", at=OLD)
    await store.set_concern_status("closed-new", "closed", at=NOW - timedelta(days=3))


async def test_pruning_removes_seen_ids_and_finished_timers_and_nothing_else(store: Store):
    await _history(store)
    audit_before = _count(store, "SELECT COUNT(*) FROM audit")
    done = await store.prune(NOW)
    assert done == {"activities": 1, "timers": 2, "concerns": 0}
    assert not await store.mark_activity_seen("new", "c")  # a recent one is still known
    statuses = {t.status for t in await store.timers()}
    assert statuses == {"pending", "firing"}  # live timers are never pruned, however old
    assert _count(store, "SELECT COUNT(*) FROM concerns") == 4  # default: kept for ever
    assert _count(store, "SELECT COUNT(*) FROM audit") == audit_before
    assert await store.prune(NOW) == {"activities": 0, "timers": 0, "concerns": 0}


async def test_retention_deletes_only_long_closed_concerns_and_audits_each(store: Store):
    await _history(store)
    audit_before = _count(store, "SELECT COUNT(*) FROM audit")
    done = await store.prune(NOW, closed_concerns_for=timedelta(days=365))
    assert done["concerns"] == 1
    assert await store.get_concern("closed-old") is None
    assert await store.outbox_for_concern("closed-old") == []
    for kept in ("open", "closed-pending", "closed-new"):  # open; still sending; recent
        assert await store.get_concern(kept) is not None
    entries = await store.audit_entries("closed-old")
    assert [e.action for e in entries] == ["concern_raised", "concern_deleted"]
    assert entries[-1].detail == {"retention_days": 365}
    assert _count(store, "SELECT COUNT(*) FROM audit") == audit_before + 1


async def test_the_maintenance_loop_prunes_at_start_up_with_the_configured_retention(
    store: Store,
):
    await _history(store)
    stop = asyncio.Event()
    task = asyncio.create_task(
        maintain(store, Settings(closed_concern_retention_days=365), stop, lambda: NOW),
        context=store.lane_context("maintenance"),
    )
    for _ in range(100):
        if await store.get_concern("closed-old") is None:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert await store.get_concern("closed-old") is None
    assert await store.get_concern("open") is not None


def test_the_retention_setting_is_read_and_checked():
    assert Settings.from_environ({}).closed_concern_retention_days is None
    env = {"CLOSED_CONCERN_RETENTION_DAYS": "2555"}
    assert Settings.from_environ(env).closed_concern_retention_days == 2555
    for bad in ("0", "-1", "seven years"):
        with pytest.raises(ConfigError, match="CLOSED_CONCERN_RETENTION_DAYS"):
            Settings.from_environ({"CLOSED_CONCERN_RETENTION_DAYS": bad})


async def test_open_concerns_are_counted_ordered_and_limited_by_the_store(make_store):
    store = make_store()
    try:
        overdue = Deadline("x", "Due", (NOW - timedelta(hours=1)).isoformat(), "dsl", "s")
        later = Deadline("x", "Due", (NOW + timedelta(days=1)).isoformat(), "dsl", "s")
        plan = [
            ("a-acked", [], True),
            ("b-plain", [later], False),
            ("c-overdue", [overdue], False),
            ("d-acked-overdue", [overdue], True),
            ("e-plain", [], False),
        ]
        for n, (concern_id, deadlines, acked) in enumerate(plan):
            concern = replace(make_concern(concern_id), deadlines=deadlines)
            await store.save_concern(concern, at=OLD + timedelta(minutes=n))
            if acked:
                await store.acknowledge(concern_id, "Ann", at=OLD)
        allegation = make_concern("z-allegation")
        allegation = replace(allegation, routing=replace(allegation.routing, route="headteacher"))
        await store.save_concern(allegation, at=OLD)
        total, page = await store.open_concerns_page(
            "buttsbury-junior", {"dsl_team"}, now=NOW, limit=3
        )
        assert total == 5
        assert [s.id for s in page] == ["c-overdue", "b-plain", "e-plain"]
        total, page = await store.open_concerns_page(
            "buttsbury-junior", {"dsl_team"}, now=NOW, limit=10
        )
        assert [s.id for s in page][3:] == ["d-acked-overdue", "a-acked"]
        if is_postgres(store):
            return  # the query plan below is SQLite's
        with raw(store) as db:
            plan_text = " ".join(
                str(r)
                for r in db.execute(
                    "EXPLAIN QUERY PLAN SELECT * FROM concerns WHERE school_id = ? AND status IN"
                    " ('raised', 'acknowledged') AND routing IN (?) ORDER BY created_at",
                    ("s", "dsl_team"),
                )
            )
        assert "concerns_open_list" in plan_text
    finally:
        store.close()


def test_prompt_templates_are_compiled_once_not_every_turn():
    engine._compiled.cache_clear()
    context = engine.template_context(SCHOOL)
    for _ in range(5):
        engine.render("Phone {{ number('emergency') }} now.", context)
    info = engine._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_the_bank_holiday_calendar_is_built_once_per_school():
    assert working_days_for(SCHOOL) is working_days_for(SCHOOL)
