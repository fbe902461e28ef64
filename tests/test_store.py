# The store on SQLite and on PostgreSQL (tests/stores.py): botbuilder Storage etags,
# migrations, concerns, outbox, audit, de-duplication.
from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botbuilder.core import ConversationState, StoreItem, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
)

from bot.errors import ConflictError, StoreError
from bot.store import SCHEMA_VERSION, OutboxMessage, SqliteStore, Store
from flows.concern import Concern, Reporter, Routing
from tests.stores import DB_ERRORS, is_postgres, raw

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.every_backend


def make_concern(concern_id: str = "c-1", *, reporter: str = "aad-reporter") -> Concern:
    return Concern(
        id=concern_id,
        type="disclosure",
        title="Disclosure of abuse",
        school_id="buttsbury-junior",
        reporter=Reporter(name="A Teacher", aad_object_id=reporter),
        status="final",
        started_at=T0.isoformat(),
        words="He said 'don't tell'",
        flags=["URGENT"],
        routing=Routing("dsl_team", "child protection concern"),
    )


# -- botbuilder Storage ----------------------------------------------------------------------


async def test_read_returns_written_items_with_an_etag(store: Store) -> None:
    await store.write({"a": {"count": 1}, "b": StoreItem(name="x")})

    items = await store.read(["a", "b", "missing"])

    assert set(items) == {"a", "b"}
    assert items["a"]["count"] == 1
    assert items["b"]["name"] == "x"
    assert items["a"]["e_tag"] and items["a"]["e_tag"] != items["b"]["e_tag"]


async def test_write_with_a_stale_etag_raises_conflict(store: Store) -> None:
    await store.write({"k": {"v": 1}})
    first = (await store.read(["k"]))["k"]
    second = (await store.read(["k"]))["k"]
    first["v"] = 2
    await store.write({"k": first})

    second["v"] = 3
    with pytest.raises(ConflictError, match="etag conflict"):
        await store.write({"k": second})
    assert (await store.read(["k"]))["k"]["v"] == 2


async def test_star_etag_overwrites(store: Store) -> None:
    await store.write({"k": {"v": 1}})
    await store.write({"k": {"v": 2, "e_tag": "*"}})

    assert (await store.read(["k"]))["k"]["v"] == 2


async def test_write_puts_the_new_etag_back_so_a_second_save_works(store: Store) -> None:
    await store.write({"k": {"v": 1}})
    item = (await store.read(["k"]))["k"]
    item["v"] = 2
    await store.write({"k": item})
    item["v"] = 3
    await store.write({"k": item})

    assert (await store.read(["k"]))["k"]["v"] == 3


async def test_empty_etag_and_non_json_state_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="etag is empty"):
        await store.write({"k": {"e_tag": ""}})
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        await store.write({"k": {"when": datetime.now(UTC)}})


async def test_delete_removes_items(store: Store) -> None:
    await store.write({"a": {"v": 1}, "b": {"v": 2}})
    await store.delete(["a"])

    assert list(await store.read(["a", "b"])) == ["b"]


async def test_conversation_state_round_trips_through_the_store(make_store) -> None:
    activity = Activity(
        type="message",
        channel_id="msteams",
        conversation=ConversationAccount(id="conv-1"),
        from_property=ChannelAccount(id="29:user"),
        recipient=ChannelAccount(id="28:bot"),
    )

    first = make_store()
    state = ConversationState(first)
    session = state.create_property("session")
    context = TurnContext(TestAdapter(), activity)
    await state.load(context)
    await session.set(context, {"flow": "disclosure", "step": 3})
    await state.save_changes(context)
    first.close()

    reopened = make_store()
    state = ConversationState(reopened)
    context = TurnContext(TestAdapter(), activity)
    await state.load(context)
    assert await state.create_property("session").get(context) == {
        "flow": "disclosure",
        "step": 3,
    }
    reopened.close()


async def test_two_turns_saving_the_same_conversation_conflict(store: Store) -> None:
    activity = Activity(
        type="message",
        channel_id="msteams",
        conversation=ConversationAccount(id="conv-1"),
        from_property=ChannelAccount(id="29:user"),
        recipient=ChannelAccount(id="28:bot"),
    )
    state = ConversationState(store)
    first, second = TurnContext(TestAdapter(), activity), TurnContext(TestAdapter(), activity)
    await state.load(first)
    await state.create_property("n").set(first, 0)
    await state.save_changes(first)
    await state.load(first, force=True)
    await state.load(second, force=True)

    await state.create_property("n").set(first, 1)
    await state.save_changes(first)
    await state.create_property("n").set(second, 2)
    with pytest.raises(ConflictError):
        await state.save_changes(second)


# -- lifecycle and migrations ----------------------------------------------------------------


def test_a_new_file_is_created_at_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "bot.sqlite3"
    store = SqliteStore(path)

    assert path.exists()
    assert store.schema_version == SCHEMA_VERSION
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopening_is_idempotent_and_keeps_data(make_store) -> None:
    store = make_store()
    await store.save_concern(make_concern())
    store.close()

    for _ in range(2):
        store = make_store()
        assert store.schema_version == SCHEMA_VERSION
        assert await store.get_concern("c-1") is not None
        store.close()


def test_a_database_from_newer_code_is_refused(make_store) -> None:
    store = make_store()
    store.close()
    with raw(store) as conn:
        if is_postgres(store):
            conn.execute(
                "INSERT INTO store_schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,)
            )
        else:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(StoreError, match="newer than this code"):
        make_store()


async def test_ready_until_closed(store: Store) -> None:
    assert await store.ready()
    store.close()
    assert not await store.ready()
    with pytest.raises(StoreError, match="closed"):
        await store.get_concern("c-1")


# -- concerns --------------------------------------------------------------------------------


async def test_concern_round_trips_with_its_columns(store: Store) -> None:
    await store.save_concern(make_concern(), at=T0)

    stored = await store.get_concern("c-1")

    assert stored is not None
    assert stored.concern == make_concern()
    assert (stored.status, stored.priority, stored.routing) == ("raised", "urgent", "dsl_team")
    assert stored.created_at == T0
    assert await store.get_concern("nope") is None


async def test_lists_by_reporter_and_open_by_school(store: Store) -> None:
    await store.save_concern(make_concern("c-1"), at=T0)
    await store.save_concern(make_concern("c-2"), at=T0 + timedelta(minutes=1))
    await store.save_concern(make_concern("c-3", reporter="someone-else"), status="draft")
    await store.set_concern_status("c-2", "closed")

    mine = await store.list_concerns_by_reporter("aad-reporter")
    open_ = await store.list_open_concerns("buttsbury-junior")

    assert [c.id for c in mine] == ["c-2", "c-1"]
    assert [c.id for c in open_] == ["c-1"]


async def test_alert_posts_of_many_concerns_in_one_call(store: Store) -> None:
    for concern_id, activity in (("c-2", "b1"), ("c-1", "a1"), ("c-2", "b2"), ("c-1", "a2")):
        reference = {"conversation": {"id": f"19:x;messageid={activity}"}}
        assert await store.record_alert_post(concern_id, activity, reference)

    found = await store.alert_posts_for(["c-1", "c-2", "c-never-posted", "c-1"])

    assert {k: [p.activity_id for p in v] for k, v in found.items()} == {
        "c-1": ["a1", "a2"],  # each concern's copies oldest first, as alert_posts gives them
        "c-2": ["b1", "b2"],
    }
    assert found["c-2"][1].reference.conversation.id == "19:x;messageid=b2"
    assert [p.activity_id for p in await store.alert_posts("c-2")] == ["b1", "b2"]
    assert await store.alert_posts("c-never-posted") == []
    assert await store.alert_posts_for([]) == {}


async def test_concurrent_acknowledgements_exactly_one_wins(store: Store) -> None:
    await store.save_concern(make_concern())

    results = await asyncio.gather(
        *(store.acknowledge("c-1", by=f"dsl-{n}", at=T0) for n in range(5))
    )

    assert sorted(results) == [False, False, False, False, True]
    stored = await store.get_concern("c-1")
    assert stored is not None and stored.status == "acknowledged"
    assert stored.acknowledged_by == f"dsl-{results.index(True)}"


async def test_acknowledgement_race_across_two_connections(make_store) -> None:
    one, two = make_store(), make_store()
    await one.save_concern(make_concern())

    results = await asyncio.gather(one.acknowledge("c-1", "dsl-a"), two.acknowledge("c-1", "dsl-b"))

    assert sorted(results) == [False, True]
    one.close()
    two.close()


async def test_resaving_an_acknowledged_concern_keeps_it_acknowledged(store: Store) -> None:
    await store.save_concern(make_concern())
    await store.acknowledge("c-1", "dsl-a")
    await store.save_concern(make_concern())

    stored = await store.get_concern("c-1")
    assert stored is not None
    assert (stored.status, stored.acknowledged_by) == ("acknowledged", "dsl-a")


# -- outbox ----------------------------------------------------------------------------------


def alert(kind: str = "post_alert") -> OutboxMessage:
    return OutboxMessage(kind, {"channel_id": "19:dsl"}, {"type": "message"})


async def test_concern_and_its_messages_are_saved_together(store: Store) -> None:
    ids = await store.save_concern_and_enqueue(
        make_concern(), [alert(), alert("notify_reporter")], at=T0
    )

    items = await store.outbox_for_concern("c-1")
    assert [i.id for i in items] == ids
    assert [(i.kind, i.status, i.attempts) for i in items] == [
        ("post_alert", "pending", 0),
        ("notify_reporter", "pending", 0),
    ]


async def test_nothing_is_saved_when_an_enqueue_fails(store: Store) -> None:
    bad = OutboxMessage(None, {}, {})  # type: ignore[arg-type]  # kind is NOT NULL
    with pytest.raises(StoreError):
        await store.save_concern_and_enqueue(make_concern(), [bad])
    assert await store.get_concern("c-1") is None


async def test_claim_marks_sending_and_a_second_claim_gets_nothing(store: Store) -> None:
    (outbox_id,) = await store.save_concern_and_enqueue(make_concern(), [alert()], at=T0)

    claimed = await store.claim_due(T0, limit=10)
    again = await store.claim_due(T0 + timedelta(seconds=1))

    assert [(i.id, i.status, i.attempts) for i in claimed] == [(outbox_id, "sending", 1)]
    assert again == []


async def test_not_yet_due_messages_wait(store: Store) -> None:
    await store.enqueue(None, "post_alert", {}, {}, not_before=T0 + timedelta(minutes=5), at=T0)

    assert await store.claim_due(T0) == []
    assert len(await store.claim_due(T0 + timedelta(minutes=5))) == 1


async def test_a_crashed_claim_is_reclaimed_after_a_lease_of_seconds(make_store) -> None:
    store = make_store(delivery_lease=timedelta(seconds=30))
    outbox_id = await store.enqueue(None, "post_alert", {}, {}, at=T0)
    await store.claim_due(T0)

    await store.renew_claims([outbox_id], at=T0 + timedelta(seconds=20))  # still sending
    assert await store.claim_due(T0 + timedelta(seconds=40)) == []
    reclaimed = await store.claim_due(T0 + timedelta(seconds=50))
    assert [(i.id, i.attempts, i.unknown_outcome) for i in reclaimed] == [(outbox_id, 2, True)]
    store.close()


async def test_at_start_up_a_server_reclaims_its_own_unfinished_sends_at_once(
    store: Store,
) -> None:
    mine = await store.enqueue(None, "post_alert", {}, {}, at=T0)
    await store.claim_due(T0, owner="host-a")
    theirs = await store.enqueue(None, "post_alert", {}, {}, at=T0)
    await store.claim_due(T0, owner="host-b")

    assert await store.reclaim_own("host-a", at=T0 + timedelta(seconds=1)) == 1
    again = await store.claim_due(T0 + timedelta(seconds=1), owner="host-a")
    assert [(i.id, i.unknown_outcome) for i in again] == [(mine, True)]
    assert theirs not in {i.id for i in again}  # another server's lease is left to run out


async def test_alerts_are_claimed_before_card_updates_and_reminders(store: Store) -> None:
    update = await store.enqueue(None, "update_card", {}, {}, at=T0)
    reminder = await store.enqueue(None, "direct_message", {}, {}, at=T0)
    alert = await store.enqueue(None, "post_alert", {}, {}, at=T0 + timedelta(seconds=1))

    claimed = await store.claim_due(T0 + timedelta(seconds=2), limit=1)
    assert [i.id for i in claimed] == [alert]
    rest = await store.claim_due(T0 + timedelta(seconds=2), limit=5)
    assert [i.id for i in rest] == [reminder, update]


async def test_retry_then_delivered(store: Store) -> None:
    outbox_id = await store.enqueue(None, "post_alert", {}, {}, at=T0)
    await store.claim_due(T0)
    await store.mark_retry(outbox_id, T0 + timedelta(seconds=30), "http 429")

    assert await store.claim_due(T0 + timedelta(seconds=29)) == []
    (item,) = await store.claim_due(T0 + timedelta(seconds=30))
    assert (item.attempts, item.last_error) == (2, "http 429")
    await store.mark_delivered(outbox_id, "1700000000001")

    delivered = await store.get_outbox(outbox_id)
    assert delivered is not None
    assert (delivered.status, delivered.delivered_activity_id) == ("delivered", "1700000000001")
    assert await store.claim_due(T0 + timedelta(days=1)) == []


async def test_failed_messages_are_not_claimed_again(store: Store) -> None:
    outbox_id = await store.enqueue(None, "post_alert", {}, {}, at=T0)
    await store.claim_due(T0)
    await store.mark_failed(outbox_id, "http 403")

    assert await store.claim_due(T0 + timedelta(days=1)) == []
    failed = await store.get_outbox(outbox_id)
    assert failed is not None and (failed.status, failed.last_error) == ("failed", "http 403")


# -- audit -----------------------------------------------------------------------------------


async def test_audit_appends_and_lists_in_order(store: Store) -> None:
    await store.audit("aad-reporter", "concern.raised", "c-1", {"status": "raised"}, at=T0)
    await store.audit("aad-dsl", "concern.acknowledged", "c-1", at=T0 + timedelta(minutes=2))

    entries = await store.audit_entries("c-1")

    assert [(e.actor_aad_id, e.action, e.detail) for e in entries] == [
        ("aad-reporter", "concern.raised", {"status": "raised"}),
        ("aad-dsl", "concern.acknowledged", {}),
    ]


@pytest.mark.parametrize("statement", ["UPDATE audit SET action = 'x'", "DELETE FROM audit"])
async def test_audit_rows_cannot_be_changed_or_deleted(store: Store, statement: str) -> None:
    await store.audit("aad-dsl", "concern.acknowledged", "c-1")
    store.close()

    with raw(store) as conn, pytest.raises(DB_ERRORS, match="append-only"):
        conn.execute(statement)


# -- processed activities and conversation references ----------------------------------------


async def test_a_redelivered_activity_is_seen_once(store: Store) -> None:
    assert await store.mark_activity_seen("act-1", "conv-1")
    assert not await store.mark_activity_seen("act-1", "conv-1")
    assert await store.mark_activity_seen("act-1", "conv-2")


async def test_old_activity_ids_can_be_forgotten(store: Store) -> None:
    await store.mark_activity_seen("act-1", "conv-1", at=T0)

    assert await store.forget_activities_before(T0 + timedelta(days=1)) == 1
    assert await store.mark_activity_seen("act-1", "conv-1")


async def test_conversation_references_are_upserted(store: Store) -> None:
    first = ConversationReference(
        channel_id="msteams",
        service_url="https://smba.example/uk/",
        conversation=ConversationAccount(id="19:dsl@thread.tacv2"),
    )
    await store.save_conversation_ref("channel", "19:dsl@thread.tacv2", first)
    await store.save_conversation_ref(
        "channel", "19:dsl@thread.tacv2", {**first.serialize(), "serviceUrl": "https://new/"}
    )

    found = await store.get_conversation_ref("channel", "19:dsl@thread.tacv2")

    assert found is not None
    assert (found.service_url, found.conversation.id) == ("https://new/", "19:dsl@thread.tacv2")
    assert await store.get_conversation_ref("user", "nobody") is None
