# The record's store contract (issue 9), on every backend: a decision entry and its audit line
# in one transaction; chronology links that merge, rejections remembered; retention removes both.
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.store import RecordEntry, Store
from flows.concern import Concern, Reporter, Routing

pytestmark = pytest.mark.every_backend

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _concern(cid: str, school: str = "s1", route: str = "dsl_team") -> Concern:
    return Concern(
        id=cid,
        type="welfare",
        title="t",
        school_id=school,
        reporter=Reporter("R", "r"),
        status="final",
        started_at=AT.isoformat(),
        child_name="Amelia Testchild",
        routing=Routing(route, ""),
    )


async def test_an_entry_and_its_audit_line_are_written_together(store: Store) -> None:
    await store.save_concern(_concern("c1"), at=AT)
    fields = {"outcome": 'Closed: "quoted" 👍🏽 {{ x }}'}
    entry = await store.add_record_entry(
        RecordEntry("c1", AT, "aad-dsl", "Ann Robinson", "close", fields),
        audit_action="closed",
        audit_detail={"verb": "close", "fields": ["outcome"]},
        status="closed",
    )
    [read] = await store.record_entries("c1")
    assert read.fields == fields and read.actor_name == "Ann Robinson"
    assert read.id == entry.id and read.audit_id == entry.audit_id
    [audit] = [e for e in await store.audit_entries("c1") if e.action == "closed"]
    assert audit.id == entry.audit_id and "Closed" not in str(audit.detail)
    assert (await store.get_concern("c1")).status == "closed"


async def test_links_merge_chronologies_and_rejections_are_remembered(store: Store) -> None:
    for n, cid in enumerate(("a", "b", "c", "d")):
        await store.save_concern(_concern(cid), at=AT + timedelta(days=n))
    await store.link_concerns("b", "a", "s1", "dsl", AT)
    await store.link_concerns("d", "c", "s1", "dsl", AT)
    assert await store.chronology_ids("a") == ["a", "b"]
    await store.link_concerns("c", "b", "s1", "dsl", AT)  # two chronologies become one
    assert await store.chronology_ids("d") == ["a", "b", "c", "d"]
    await store.reject_link("d", "a", "dsl", AT)
    assert (await store.link_decisions("a"))["d"] == "rejected"
    assert (await store.link_decisions("c")) == {"d": "confirmed", "b": "confirmed"}
    assert set((await store.child_ids("s1")).values()) == {(await store.child_ids("s1"))["a"]}
    actions = [e.action for e in await store.audit_entries("c")]
    assert "chronology_linked" in actions


async def test_school_concerns_keep_schools_and_allegations_apart(store: Store) -> None:
    await store.save_concern(_concern("x1"), at=AT)
    await store.save_concern(_concern("x2", school="s2"), at=AT + timedelta(days=1))
    await store.save_concern(_concern("x3", route="headteacher"), at=AT + timedelta(days=2))
    await store.save_concern(_concern("x4"), at=AT + timedelta(days=3))
    assert [s.id for s in await store.school_concerns("s1")] == ["x4", "x1"]
    assert [s.id for s in await store.school_concerns("s1", allegations=True)] == ["x3"]
    before = AT + timedelta(days=3)
    assert [s.id for s in await store.school_concerns("s1", before=before)] == ["x1"]
    count, _ = await store.school_concerns_stamp("s1", before)
    assert count == 1


async def test_retention_deletes_a_closed_concerns_record_too(store: Store) -> None:
    for cid in ("old", "kept"):
        await store.save_concern(_concern(cid), status="closed", at=AT)
        await store.add_record_entry(
            RecordEntry(cid, AT, "dsl", "Ann", "close", {"outcome": "done"}),
            audit_action="closed",
            audit_detail={},
        )
    await store.link_concerns("kept", "old", "s1", "dsl", AT)
    await store.prune(AT + timedelta(days=400), closed_concerns_for=timedelta(days=365))
    assert await store.record_entries("old") == []
    assert await store.link_decisions("kept") == {}
