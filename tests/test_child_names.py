"""The child-name index (bot/services/child_names.py): the same suggestions as comparing every
earlier concern, while opening each concern once - not the school's history for every card."""

from __future__ import annotations

import asyncio
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.child_names import OVERLAP, ChildKey, NameIndex, same_child
from bot.services.chronology import Chronology
from bot.store import open_store
from flows.concern import Concern, Reporter
from tests.e2e import SCHOOL, RunningBot

pytestmark = pytest.mark.every_backend

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)
_RNG = random.Random(9)
# Forty made-up names no two of which are alike.
NAMES = [
    "".join(_RNG.choice("bcdfghjklmnpqrstvwxz") + _RNG.choice("aeiou") for _ in range(4)).title()
    + " Smith"
    for _ in range(40)
]


def _concern(cid: str, name: str | None, year: str | None = "Y4") -> Concern:
    return Concern(
        id=cid,
        type="welfare",
        title="t",
        school_id=SCHOOL.id,
        reporter=Reporter("R", "aad-reporter"),
        status="final",
        started_at=AT.isoformat(),
        child_name=name,
        child_year=year,
    )


class Opened:
    """Counts the concerns the chronology's name index opens (reads whole, names unsealed)."""

    def __init__(self, chronology: Chronology) -> None:
        self.ids: list[str] = []
        ids, store = self.ids, chronology.names.store

        class Counting:
            def __getattr__(self, name):
                return getattr(store, name)

            async def concerns_by_id(self, wanted):
                ids.extend(wanted)
                return await store.concerns_by_id(wanted)

        chronology.names.store = Counting()


async def test_a_card_opens_only_the_concerns_new_or_changed_since_the_last(store) -> None:
    for n in range(40):
        await store.save_concern(_concern(f"c{n:02d}", NAMES[n]), at=AT + timedelta(n))
    chronology = Chronology(store, SCHOOL, lambda: AT)
    opened = Opened(chronology)
    await store.save_concern(_concern("new", NAMES[3]), at=AT + timedelta(days=41))
    found = await chronology.suggestions(await store.get_concern("new"))
    assert [s.id for s in found] == ["c03"]
    assert len(opened.ids) == 41  # the first card reads the school's history once
    opened.ids.clear()
    await store.save_concern(_concern("newer", NAMES[7]), at=AT + timedelta(days=42))
    found = await chronology.suggestions(await store.get_concern("newer"))
    assert [s.id for s in found] == ["c07"]
    assert opened.ids == ["newer"]  # ... and each later card only what changed
    opened.ids.clear()
    assert [s.id for s in await chronology.suggestions(await store.get_concern("newer"))] == ["c07"]
    assert opened.ids == []


async def test_cards_rendered_at_once_read_the_history_once(store) -> None:
    for n in range(20):
        await store.save_concern(_concern(f"c{n:02d}", NAMES[n]), at=AT + timedelta(n))
    chronology = Chronology(store, SCHOOL, lambda: AT)
    opened = Opened(chronology)
    later = [await store.get_concern(f"c{n:02d}") for n in range(10, 20)]
    found = await asyncio.gather(*(chronology.suggestions(stored) for stored in later))
    assert found == [[]] * 10
    assert sorted(opened.ids) == [f"c{n:02d}" for n in range(20)]


def count_version_reads(store) -> list[str]:
    """Each read of a school's concern versions (one hop to the store's thread)."""
    reads: list[str] = []
    real = store.concern_versions

    async def counted(school_id, since=None):
        reads.append(school_id)
        return await real(school_id, since=since)

    store.concern_versions = counted
    return reads


async def test_cards_rendered_at_once_share_their_reads_of_the_store(store) -> None:
    for n in range(20):
        await store.save_concern(_concern(f"c{n:02d}", NAMES[n]), at=AT + timedelta(n))
    chronology = Chronology(store, SCHOOL, lambda: AT)
    later = [await store.get_concern(f"c{n:02d}") for n in range(10, 20)]
    reads = count_version_reads(store)
    await asyncio.gather(*(chronology.suggestions(stored) for stored in later))
    # The first card reads; the nine that asked while it was reading share one more read.
    assert len(reads) == 2


async def test_a_card_opens_its_suggestions_in_one_store_call(store) -> None:
    chronology = Chronology(store, SCHOOL, lambda: AT)
    for n in range(5):
        await store.save_concern(_concern(f"e{n}", "Amelia Jones"), at=AT + timedelta(hours=n))
    await store.save_concern(_concern("now", "Amelia Jones"), at=AT + timedelta(days=1))
    now = await store.get_concern("now")
    await chronology.names.refresh(SCHOOL.id)
    calls = []
    for name in ("get_concern", "concerns_by_id"):
        real = getattr(store, name)

        async def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return await _real(*args, **kwargs)

        setattr(store, name, counted)
    assert [s.id for s in await chronology.suggestions(now)] == ["e4", "e3", "e2"]
    assert calls == ["concerns_by_id"]


async def test_a_concern_committed_during_a_refresh_is_read_by_the_card_that_asks_after(
    store,
) -> None:
    chronology = Chronology(store, SCHOOL, lambda: AT)
    await store.save_concern(_concern("first", "Ben Carter"), at=AT + timedelta(hours=1))
    reading, go_on = asyncio.Event(), asyncio.Event()
    real = store.concern_versions

    async def slow_first(school_id, since=None):
        found = await real(school_id, since=since)
        if not reading.is_set():
            reading.set()
            await go_on.wait()  # this refresh read before "now" was committed
        return found

    store.concern_versions = slow_first
    first = asyncio.create_task(chronology.suggestions(await store.get_concern("first")))
    await reading.wait()
    await store.save_concern(_concern("old", "Amelia Jones"), at=AT + timedelta(hours=2))
    await store.save_concern(_concern("now", "Amelia Jones"), at=AT + timedelta(days=1))
    second = asyncio.create_task(chronology.suggestions(await store.get_concern("now")))
    await asyncio.sleep(0)
    go_on.set()
    assert await first == []
    assert [s.id for s in await second] == ["old"]


async def test_a_restarted_server_reads_the_names_before_any_card_needs_them(
    bot: RunningBot,
) -> None:
    for n in range(5):
        await bot.server.store.save_concern(_concern(f"c{n}", NAMES[n]), at=AT + timedelta(n))
    await bot.stop()
    await bot.start()
    names = bot.server.alerts.chronology.names
    for _ in range(500):
        school = names._schools.get(SCHOOL.id)
        if school is not None and len(school.entries) == 5:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the first alert after a restart would read the whole history")
    # ... and until it has, the server tells a platform's warm-up it is still starting.
    readyz = bot.url.replace("/api/messages", "/readyz")
    assert bot.server.alerts.names_read.is_set()
    async with aiohttp.ClientSession() as http:
        assert (await http.get(readyz)).status == 200
        bot.server.alerts.names_read.clear()
        assert (await http.get(readyz)).status == 503


async def test_a_corrected_name_and_a_late_commit_are_both_seen(store) -> None:
    chronology = Chronology(store, SCHOOL, lambda: AT)
    await store.save_concern(_concern("a", "Amelia Jones"), at=AT)
    await store.save_concern(_concern("b", "Ben Carter"), at=AT + timedelta(days=1))
    await store.save_concern(_concern("c", "Zed Rowe"), at=AT + timedelta(days=1, hours=1))
    await store.save_concern(_concern("now", "Ben Carter"), at=AT + timedelta(days=2))
    now = await store.get_concern("now")
    assert [s.id for s in await chronology.suggestions(now)] == ["b"]
    # The DSL corrects the first concern's name: it is read again.
    await store.save_concern(_concern("a", "Ben Carter"), at=AT + timedelta(days=3))
    assert [s.id for s in await chronology.suggestions(now)] == ["b", "a"]
    # A change stamped a little before the newest one seen (another replica's transaction
    # that committed late) is still read: each refresh looks back OVERLAP.
    late = AT + timedelta(days=3) - OVERLAP / 2
    await store.save_concern(_concern("c", "Ben Carter"), at=late)
    assert [s.id for s in await chronology.suggestions(now)] == ["c", "b", "a"]


async def test_a_deleted_concern_is_never_suggested(store) -> None:
    from tests.stores import raw

    chronology = Chronology(store, SCHOOL, lambda: AT)
    await store.save_concern(_concern("old", "Amelia Jones"), at=AT)
    await store.save_concern(_concern("now", "Amelia Jones"), at=AT + timedelta(days=1))
    now = await store.get_concern("now")
    assert [s.id for s in await chronology.suggestions(now)] == ["old"]
    with raw(store) as db:
        db.execute("DELETE FROM concerns WHERE id = ?", ("old",))
    assert await chronology.suggestions(now) == []


async def test_a_report_another_replica_sends_later_is_found(make_store) -> None:
    one, two = make_store(), make_store()
    chronology = Chronology(one, SCHOOL, lambda: AT)
    # Started (a draft) before today's concern, sent through the other replica after it.
    await two.save_concern(_concern("there", "Amelie Jones"), status="draft", at=AT)
    await one.save_concern(_concern("first", "Amelia Jones"), at=AT + timedelta(hours=1))
    await one.save_concern(_concern("now", "Amelia Jones"), at=AT + timedelta(days=2))
    now = await one.get_concern("now")
    assert [s.id for s in await chronology.suggestions(now)] == ["first"]
    await two.save_concern(_concern("there", "Amelie Jones"), at=AT + timedelta(days=3))
    assert [s.id for s in await chronology.suggestions(now)] == ["first", "there"]


# Names drawn from a small alphabet, so typos, initials and shared first names are common.
_WORD = st.text(alphabet="abem", min_size=1, max_size=5)
_NAME = st.one_of(st.none(), st.lists(_WORD, min_size=1, max_size=3).map(" ".join))
_YEAR = st.sampled_from([None, "Y3", "Y4", "Year 5", "Reception", "Nursery", "not known"])


@settings(max_examples=60, deadline=None)
@given(people=st.lists(st.tuples(_NAME, _YEAR), min_size=1, max_size=25))
def test_the_index_suggests_exactly_what_comparing_every_concern_would(people) -> None:
    concerns = [_concern(f"k{n:02d}", name, year) for n, (name, year) in enumerate(people)]

    async def check(store) -> None:
        for n, concern in enumerate(concerns):
            await store.save_concern(concern, at=AT + timedelta(hours=n))
        index = NameIndex(store)
        await index.refresh(SCHOOL.id)
        for n, later in enumerate(concerns):
            expected = [c.id for c in reversed(concerns[:n]) if same_child(c, later)]
            found = index.matches(SCHOOL.id, ChildKey.of(later), before=AT + timedelta(hours=n))
            assert found == expected

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "db.sqlite3")
        try:
            asyncio.run(check(store))
        finally:
            store.close()
