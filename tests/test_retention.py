# Retention (issue 9 s4): the school's records policy, in its profile, decides how long a closed
# concern's record is kept; nothing is deleted by default; every deletion is audited; one
# school's setting never deletes another school's records.
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.server import maintain, retention_days
from bot.settings import Settings
from bot.store import SqliteStore
from flows.profile import ProfileError, load_organisation
from tests.e2e import ROOT, SCHOOL
from tests.test_store import make_concern

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)


def keeping(days: int | None):
    return replace(SCHOOL, rules=replace(SCHOOL.rules, closed_record_retention_days=days))


async def closed_long_ago(store: SqliteStore) -> None:
    for concern_id, school_id in (("ours", SCHOOL.id), ("theirs", "another-school")):
        await store.save_concern(replace(make_concern(concern_id), school_id=school_id), at=OLD)
        await store.set_concern_status(concern_id, "closed", at=OLD)
    await store.save_concern(make_concern("recent"), at=NOW - timedelta(days=3))
    await store.set_concern_status("recent", "closed", at=NOW - timedelta(days=3))


async def run_maintenance_once(store: SqliteStore, school, settings: Settings | None = None):
    stop = asyncio.Event()
    task = asyncio.create_task(
        maintain(store, settings or Settings(), stop, lambda: NOW, schools=school)
    )
    for _ in range(200):
        await asyncio.sleep(0.01)
        if (await store.get_concern("ours")) is None or task.done():
            break
    await asyncio.sleep(0.05)
    stop.set()
    await task


async def test_by_default_nothing_is_ever_deleted(store: SqliteStore):
    assert SCHOOL.rules.closed_record_retention_days is None  # the example profiles keep all
    await closed_long_ago(store)
    await run_maintenance_once(store, SCHOOL)
    for concern_id in ("ours", "theirs", "recent"):
        assert await store.get_concern(concern_id) is not None
        assert "concern_deleted" not in {e.action for e in await store.audit_entries(concern_id)}


async def test_the_profiles_period_deletes_long_closed_records_of_that_school_and_audits(
    store: SqliteStore,
):
    await closed_long_ago(store)
    await run_maintenance_once(store, keeping(365))

    assert await store.get_concern("ours") is None
    assert await store.get_concern("theirs") is not None  # another school's policy, not ours
    assert await store.get_concern("recent") is not None  # closed 3 days ago
    [deleted] = [e for e in await store.audit_entries("ours") if e.action == "concern_deleted"]
    assert deleted.detail == {"retention_days": 365} and deleted.actor_aad_id is None


def test_the_longer_of_two_settings_wins_because_deleting_cannot_be_undone():
    assert retention_days(Settings(), SCHOOL) is None
    assert retention_days(Settings(), keeping(3650)) == 3650
    assert retention_days(Settings(closed_concern_retention_days=30), SCHOOL) == 30
    assert retention_days(Settings(closed_concern_retention_days=30), keeping(3650)) == 3650
    assert retention_days(Settings(closed_concern_retention_days=9000), keeping(3650)) == 9000


def test_the_profile_setting_is_read_and_checked(tmp_path):
    source = (ROOT / "profiles" / "buttsbury-junior.yaml").read_text()
    (tmp_path / "national.yaml").write_text((ROOT / "profiles" / "national.yaml").read_text())
    key = "closed_record_retention_days: null"
    assert key in source  # the example profile says so, explicitly
    good = source.replace(key, "closed_record_retention_days: 9125", 1)
    (tmp_path / "good.yaml").write_text(good)
    school = load_organisation(tmp_path / "good.yaml").school()
    assert school.rules.closed_record_retention_days == 9125
    for bad in ("0", "-5", "'ten years'", "true"):
        text = source.replace(key, f"closed_record_retention_days: {bad}", 1)
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(ProfileError, match="closed_record_retention_days"):
            load_organisation(tmp_path / "bad.yaml")
