# Bounded growth (issue 8 s5): pruning removes what only grows and nothing else; the retention
# setting for closed concerns; "open concerns" ordered and limited in SQL; nothing per turn
# rebuilt that is the same every turn.
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.errors import ConfigError
from bot.server import maintain
from bot.settings import Settings
from bot.store import OutboxMessage, Store, TimerSpec
from bot.store.model import _iso
from bot.store.rows import _concern_row, _upsert_concern
from flows import procedure_text
from flows.calendar import working_days_for
from flows.concern import Deadline
from tests.e2e import SCHOOL
from tests.stores import raw
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


def _due(hours: float) -> list[Deadline]:
    return [Deadline("x", "Due", (NOW + timedelta(hours=hours)).isoformat(), "dsl", "s")]


async def _open(
    store: Store,
    concern_id: str,
    *,
    due: list[Deadline] | None = None,
    acked: bool = False,
    minute: int = 0,
    route: str = "dsl_team",
    school: str = "buttsbury-junior",
) -> None:
    concern = make_concern(concern_id)
    concern = replace(
        concern,
        school_id=school,
        deadlines=due or [],
        routing=replace(concern.routing, route=route),
    )
    await store.save_concern(concern, at=OLD + timedelta(minutes=minute))
    if acked:
        await store.acknowledge(concern_id, "Ann", at=OLD + timedelta(days=1))


async def test_open_concerns_come_in_four_groups_each_in_its_order(store: Store):
    """Not picked up and overdue (the longest overdue first), not picked up (oldest first),
    picked up and overdue, picked up; merged across the routes a person sees; a page of any
    size is the start of the whole list."""
    await _open(store, "w-late-1h", due=_due(-1), minute=0)
    await _open(store, "w-late-3h", due=_due(-3), minute=5)  # raised later, more overdue
    await _open(store, "h-late-2h", due=_due(-2), minute=9, route="headteacher")
    await _open(store, "w-later", due=_due(24), minute=1)
    await _open(store, "w-none", minute=2)
    await _open(store, "w-due-now", due=_due(0), minute=3)  # due this instant: not yet late
    await _open(store, "p-late", due=_due(-1), acked=True, minute=4)
    await _open(store, "p-b", acked=True, minute=6)  # same minute as p-a, saved first
    await _open(store, "p-a", acked=True, minute=6)
    await _open(store, "p-later", due=_due(5), acked=True, minute=7)
    # Never listed: closed, a draft, another school's, a route this person does not see.
    await _open(store, "x-closed", due=_due(-5))
    await store.set_concern_status("x-closed", "closed")
    draft = replace(make_concern("x-draft"), deadlines=_due(-5))
    await store.save_concern(draft, status="draft", at=OLD)
    await _open(store, "x-other-school", due=_due(-5), school="another-school")
    await _open(store, "x-chair", due=_due(-5), route="chair_of_governors")

    routes = {"dsl_team", "headteacher"}
    expected = [
        "w-late-3h",
        "h-late-2h",
        "w-late-1h",
        "w-later",
        "w-none",
        "w-due-now",
        "p-late",
        "p-b",
        "p-a",
        "p-later",
    ]
    for limit in range(len(expected) + 2):
        total, page = await store.open_concerns_page(
            "buttsbury-junior", routes, now=NOW, limit=limit
        )
        assert total == len(expected)
        assert [s.id for s in page] == expected[:limit], limit
    total, page = await store.open_concerns_page(
        "buttsbury-junior", ["dsl_team"], now=NOW, limit=20
    )
    assert total == len(expected) - 1
    assert [s.id for s in page] == [c for c in expected if c != "h-late-2h"]
    assert [s.acknowledged_by for s in page][-4:] == ["Ann"] * 4
    # Time moves on: the one due now is late an hour later, and goes first (3h + 1h late).
    _, page = await store.open_concerns_page(
        "buttsbury-junior", ["dsl_team"], now=NOW + timedelta(hours=1), limit=3
    )
    assert [s.id for s in page] == ["w-late-3h", "w-late-1h", "w-due-now"]


async def _seed(store: Store, count: int, overdue: str) -> None:
    """`count` open concerns (and no others), raised at distinct times, in one transaction:
    none overdue, only the 3 newest overdue, every one overdue, or every one overdue and
    picked up."""
    rows = []
    for n in range(count):
        late = overdue in ("all", "all picked up") or (overdue == "newest" and n >= count - 3)
        concern = replace(make_concern(f"c{n:06d}"), deadlines=_due(-1 if late else 24))
        rows.append(_concern_row(concern, "raised", _iso(OLD + timedelta(seconds=n))))

    def work(conn: Any) -> None:
        conn.execute("DELETE FROM concerns")
        for row in rows:
            _upsert_concern(conn, row)
        if overdue == "all picked up":
            conn.execute("UPDATE concerns SET status = 'acknowledged', acknowledged_by = 'Ann'")

    await store._write(work)


async def _page_work(store: Store) -> list[tuple[str, int]]:
    """Each statement the page ran, and how many SQLite VM instructions it took."""
    conn = store._lane().conn
    steps = [0]
    ran: list[tuple[str, int]] = []

    def step() -> int:
        steps[0] += 1
        return 0

    conn.set_trace_callback(lambda sql: ran.append((sql, steps[0])))
    conn.set_progress_handler(step, 1)
    try:
        await store.open_concerns_page("buttsbury-junior", {"dsl_team"}, now=NOW, limit=20)
    finally:
        conn.set_progress_handler(None, 1)
        conn.set_trace_callback(None)
    ends = [at for _, at in ran[1:]] + [steps[0]]
    return [(sql, end - at) for (sql, at), end in zip(ran, ends, strict=True)]


@pytest.mark.every_backend(backends=("sqlite",))  # the plan and the VM are SQLite's
@pytest.mark.parametrize("overdue", ["none", "newest", "all", "all picked up"])
async def test_the_open_concerns_page_reads_index_ranges_and_sorts_nothing(
    make_store, overdue: str
):
    store = make_store()
    work_at, plans = {}, []
    for count in (100, 10_000):
        await _seed(store, count, overdue)
        ran = await _page_work(store)
        page = [(sql, steps) for sql, steps in ran if "COUNT(*)" not in sql]
        work_at[count] = sum(steps for _, steps in page)
        with raw(store) as db:
            for sql, _ in ran:
                plans.append(
                    (sql, " | ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql)))
                )
    # 100 times as many open concerns, the same work (it was ~100 times as much: a sort).
    assert work_at[10_000] <= work_at[100] * 1.2 + 50, work_at
    for sql, plan in plans:
        if "COUNT(*)" in sql:
            assert "COVERING INDEX" in plan, plan  # the count reads one index alone
            continue
        assert "TEMP B-TREE" not in plan, plan
        assert "SCAN concerns" not in plan, plan
        assert "USING INDEX concerns_open_" in plan, plan


def test_prompt_templates_are_compiled_once_not_every_turn():
    procedure_text._compiled.cache_clear()
    context = procedure_text.template_context(SCHOOL)
    for _ in range(5):
        procedure_text.render("Phone {{ number('emergency') }} now.", context)
    info = procedure_text._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_the_bank_holiday_calendar_is_built_once_per_school():
    assert working_days_for(SCHOOL) is working_days_for(SCHOOL)
