# One server for a whole trust (issue 11 s1): HERA's two schools behind one endpoint, over real
# HTTP with the fake Bot Connector. Each reporter's concern goes to their own school's DSL team,
# channel and escalation chain; another school's DSL can never act on it.
from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.teams.schools import MAX_BUTTONS, Resolution, SchoolResolver
from flows.directory import SchoolDirectory
from flows.profile import Person, load_organisation
from tests.cardcheck import assert_valid_cards
from tests.e2e import CARD, ROOT, Clock, RunningBot, User, concern_id_of
from tests.fakeconnector import FakeConnector
from tests.test_e2e import WALKS, report
from tests.test_team_commands import in_channel, said_in_channel

HERA = load_organisation(ROOT / "profiles" / "hera-trust.yaml")
KINGS = HERA.school("kings-road-primary")
LAWFORD = HERA.school("lawford-mead-primary")

LM_REPORTER = User("29:lm-teacher", "Lena Lawford", "00000000-0000-0000-0000-00000000f101")
KR_REPORTER = User("29:kr-teacher", "Kit Kings", "00000000-0000-0000-0000-00000000f201")
NEWCOMER = User("29:new", "Nia Newcomer", "00000000-0000-0000-0000-00000000f301")
KR_DSL = User("29:kr-dsl", KINGS.dsl.name, KINGS.dsl.aad_object_id)
LM_DSL = User("29:lm-dsl", LAWFORD.dsl.name, LAWFORD.dsl.aad_object_id)
# The Executive Headteacher is the trust-wide headteacher: named at both schools.
EXEC_HEAD = User("29:exec", KINGS.headteacher.name, KINGS.headteacher.aad_object_id)
TRUST_DSL = User("29:trust-dsl", "Tara Trustlead", "00000000-0000-0000-0000-00000000f401")

ASK = "Which school are you at?"
ASK_PER_REPORT = "Which school is this about?"


def trust(*, leads: tuple[Person, ...] = ()) -> SchoolDirectory:
    """HERA, with each school's staff list naming one teacher (the shipped ids are
    placeholders), and optionally a trust-level safeguarding lead."""
    schools = (
        replace(KINGS, staff_ids=frozenset({KR_REPORTER.aad})),
        replace(LAWFORD, staff_ids=frozenset({LM_REPORTER.aad})),
    )
    return SchoolDirectory.of(replace(HERA, schools=schools, trust_safeguarding_leads=leads))


@pytest.fixture
async def hera(tmp_path: Path) -> AsyncIterator[RunningBot]:
    async with FakeConnector() as connector:
        running = await RunningBot(connector, tmp_path, Clock(), served=trust()).start()
        yield running
        await running.stop()


def channel_alerts(bot: RunningBot, channel_id: str) -> list[dict]:
    return [
        r.json for r in bot.channel_posts() if r.json["channelData"]["channel"]["id"] == channel_id
    ]


def concern_ids(bot: RunningBot, channel_id: str) -> list[str]:
    return [
        concern_id_of(post["activity"]["attachments"][0]["content"])
        for post in channel_alerts(bot, channel_id)
    ]


async def test_each_reporters_alert_reaches_their_own_schools_channel_only(hera: RunningBot):
    hera.connector.default_members = []  # nobody is looked up by e-mail
    await report(hera, "disclosure", WALKS["disclosure"], user=LM_REPORTER)
    [lm_id] = concern_ids(hera, LAWFORD.dsl_channel.channel_id)
    assert channel_alerts(hera, KINGS.dsl_channel.channel_id) == []
    await report(hera, "disclosure", WALKS["disclosure"], user=KR_REPORTER)
    [kr_id] = concern_ids(hera, KINGS.dsl_channel.channel_id)
    assert concern_ids(hera, LAWFORD.dsl_channel.channel_id) == [lm_id]
    store = hera.server.store
    assert (await store.get_concern(lm_id)).concern.school_id == LAWFORD.id
    assert (await store.get_concern(kr_id)).concern.school_id == KINGS.id
    # Listed staff are never asked which school they are at.
    for user in (LM_REPORTER, KR_REPORTER):
        assert ASK not in hera.texts_to(user)
        assert "Delivered" in hera.texts_to(user)


async def test_contacts_and_dsl_names_follow_the_reporters_school(hera: RunningBot):
    await hera.say("dsl", user=KR_REPORTER)
    await hera.say("dsl", user=LM_REPORTER)
    assert KINGS.dsl.name in hera.texts_to(KR_REPORTER)
    assert LAWFORD.dsl.name not in hera.texts_to(KR_REPORTER)
    assert LAWFORD.dsl.name in hera.texts_to(LM_REPORTER)
    assert KINGS.dsl.name not in hera.texts_to(LM_REPORTER)


async def test_a_kings_road_dsl_cannot_act_on_a_lawford_mead_alert(hera: RunningBot):
    await report(hera, "disclosure", WALKS["disclosure"], user=LM_REPORTER)
    [concern_id] = concern_ids(hera, LAWFORD.dsl_channel.channel_id)
    status, body = await hera.press_on_alert(
        "acknowledge", user=KR_DSL, channel=LAWFORD.dsl_channel.channel_id
    )
    assert status == 200
    assert body["type"] == "application/vnd.microsoft.activity.message"
    assert f"This alert belongs to {LAWFORD.name}" in body["value"]
    assert "Nothing was changed" in body["value"]
    store = hera.server.store
    assert (await store.get_concern(concern_id)).acknowledged_by is None
    refused = [e for e in await store.audit_entries(concern_id) if e.action == "action_refused"]
    assert [(e.actor_aad_id, e.detail["reason"]) for e in refused] == [(KR_DSL.aad, "other_school")]
    await hera.settle()
    assert "picked up" not in hera.texts_to(LM_REPORTER)
    # Its own school's DSL can.
    status, body = await hera.press_on_alert(
        "acknowledge", user=LM_DSL, channel=LAWFORD.dsl_channel.channel_id
    )
    assert body["type"] == CARD
    assert (await store.get_concern(concern_id)).acknowledged_by == LAWFORD.dsl.name


async def test_open_concerns_shows_a_dsl_only_their_own_schools(hera: RunningBot):
    await report(hera, "disclosure", WALKS["disclosure"], user=LM_REPORTER)
    await report(hera, "disclosure", WALKS["disclosure"], user=KR_REPORTER)
    await hera.say("open concerns", user=KR_DSL)
    shown = hera.texts_to(KR_DSL)
    assert "Open concerns (1)" in shown
    assert f"{KINGS.name} (1)" in shown
    assert LAWFORD.name not in shown


async def test_a_trust_safeguarding_lead_sees_and_acts_on_every_school(tmp_path: Path):
    lead = Person(TRUST_DSL.name, TRUST_DSL.aad)
    async with FakeConnector() as connector:
        bot = await RunningBot(connector, tmp_path, Clock(), served=trust(leads=(lead,))).start()
        await report(bot, "disclosure", WALKS["disclosure"], user=LM_REPORTER)
        await report(bot, "disclosure", WALKS["disclosure"], user=KR_REPORTER)
        await bot.say("open concerns", user=TRUST_DSL)
        shown = bot.texts_to(TRUST_DSL)
        assert "Open concerns (2)" in shown
        assert f"{KINGS.name} (1)" in shown and f"{LAWFORD.name} (1)" in shown
        _, body = await bot.press_on_alert(
            "acknowledge", user=TRUST_DSL, channel=KINGS.dsl_channel.channel_id
        )
        assert body["type"] == CARD
        [kr_id] = concern_ids(bot, KINGS.dsl_channel.channel_id)
        assert (await bot.server.store.get_concern(kr_id)).acknowledged_by == TRUST_DSL.name
        await bot.stop()
    # A lead of this trust only: the directory gives them no other organisation's schools.
    other_trust = load_organisation(ROOT / "profiles" / "efspt.yaml")
    both = SchoolDirectory((*trust(leads=(lead,)).organisations, other_trust))
    assert {s.id for s in both.overseen_by(TRUST_DSL.aad)} == {KINGS.id, LAWFORD.id}


async def test_an_unknown_member_of_staff_is_asked_once_and_it_is_remembered(hera: RunningBot):
    await hera.say("help", user=NEWCOMER)
    assert hera.texts_to(NEWCOMER).count(ASK) == 1
    [question] = [a for a in hera.replies_to(NEWCOMER) if a.get("attachments")]
    buttons = [a["title"] for a in question["attachments"][0]["content"]["actions"]]
    assert buttons == [KINGS.name, LAWFORD.name]
    # Typed, not pressed: still understood; what they first wrote (help) is answered then.
    await hera.say("kings road", user=NEWCOMER)
    assert "I walk you through" in hera.texts_to(NEWCOMER)
    await hera.say("dsl", user=NEWCOMER)
    assert hera.texts_to(NEWCOMER).count(ASK) == 1  # remembered: not asked again
    assert KINGS.dsl.name in hera.texts_to(NEWCOMER)
    # `my school` shows it and changes it.
    await hera.say("my school", user=NEWCOMER)
    assert f"You are at {KINGS.name}" in hera.texts_to(NEWCOMER)
    status, _ = await hera.post(
        hera.message(value={"action": "choose_school", "school_id": LAWFORD.id}, user=NEWCOMER)
    )
    assert status in (200, 201)
    assert f"Your school is now {LAWFORD.name}" in hera.texts_to(NEWCOMER)
    assert await school_changes(hera, NEWCOMER) == [KINGS.id, LAWFORD.id]
    await report(hera, "disclosure", WALKS["disclosure"], user=NEWCOMER)
    assert len(concern_ids(hera, LAWFORD.dsl_channel.channel_id)) == 1
    assert channel_alerts(hera, KINGS.dsl_channel.channel_id) == []
    assert hera.texts_to(NEWCOMER).count(ASK) == 1


async def test_the_first_message_is_kept_while_the_school_is_asked(hera: RunningBot):
    # A report started before the school is known starts, in that school, once it is given.
    await hera.post(hera.message(value={"action": "start", "flow": "disclosure"}, user=NEWCOMER))
    assert ASK in hera.texts_to(NEWCOMER)
    await hera.post(
        hera.message(value={"action": "choose_school", "school_id": KINGS.id}, user=NEWCOMER)
    )
    await hera.say(*WALKS["disclosure"], "send", user=NEWCOMER)
    await hera.settle()
    assert len(concern_ids(hera, KINGS.dsl_channel.channel_id)) == 1


async def test_a_member_of_staff_at_two_schools_is_asked_for_each_report(hera: RunningBot):
    async def report_for(school_id: str) -> None:
        await hera.say("hello", user=EXEC_HEAD)
        asked = hera.texts_to(EXEC_HEAD).count(ASK_PER_REPORT)
        await hera.post(
            hera.message(value={"action": "choose_school", "school_id": school_id}, user=EXEC_HEAD)
        )
        await report(hera, "disclosure", WALKS["disclosure"], user=EXEC_HEAD)
        assert hera.texts_to(EXEC_HEAD).count(ASK_PER_REPORT) == asked

    await report_for(KINGS.id)
    assert hera.texts_to(EXEC_HEAD).count(ASK_PER_REPORT) == 1
    await report_for(LAWFORD.id)
    assert hera.texts_to(EXEC_HEAD).count(ASK_PER_REPORT) == 2
    assert len(concern_ids(hera, KINGS.dsl_channel.channel_id)) == 1
    assert len(concern_ids(hera, LAWFORD.dsl_channel.channel_id)) == 1


async def test_a_kings_road_escalation_goes_down_kings_roads_chain(hera: RunningBot):
    await report(hera, "disclosure", WALKS["disclosure"], user=KR_REPORTER)
    [thread] = [
        c
        for c in hera.connector.conversations.values()
        if c.channel_id == KINGS.dsl_channel.channel_id
    ]
    for _ in range(2):  # step 1: deputies @mentioned in the thread; step 2: each of them 1:1
        hera.clock.advance(minutes=KINGS.escalation.normal_minutes + 1)
        await hera.settle()
    replies = [a for a in thread.activities.values() if "Not picked up" in (a.get("text") or "")]
    [nudge] = replies
    mentioned = {e["mentioned"]["id"] for e in nudge.get("entities") or []}
    assert mentioned == {p.aad_object_id for p in KINGS.deputies}
    told = {
        m["id"]
        for c in hera.connector.conversations.values()
        if not c.is_group
        and any("not been picked up" in (a.get("text") or "") for a in c.activities.values())
        for m in c.members
    }
    assert {p.aad_object_id for p in KINGS.dsl_team()} <= told
    assert not told & {p.aad_object_id for p in LAWFORD.dsl_team()}
    assert not any(
        c.channel_id == LAWFORD.dsl_channel.channel_id
        for c in hera.connector.conversations.values()
    )


async def test_one_tenant_guard_lists_every_tenant_the_profiles_name(tmp_path: Path):
    other = "11111111-2222-3333-4444-555555555555"
    buttsbury = load_organisation(ROOT / "profiles" / "buttsbury-junior.yaml")
    elsewhere = replace(buttsbury, schools=(replace(buttsbury.schools[0], tenant_id=other),))
    served = SchoolDirectory((HERA, elsewhere))
    assert served.tenant_ids() == {HERA.schools[0].tenant_id, other}
    async with FakeConnector() as connector:
        bot = await RunningBot(connector, tmp_path, Clock(), served=served).start()
        try:
            for tenant, accepted in (
                (HERA.schools[0].tenant_id, True),
                (other, True),
                ("99999999-9999-9999-9999-999999999999", False),
            ):
                bot.tenant = tenant
                status, _ = await bot.post(bot.message("help", user=NEWCOMER))
                assert (status in (200, 201)) == accepted, (tenant, status)
                assert (status == 403) == (not accepted)
            # The only school in the second tenant: its staff are never asked which.
            assert bot.texts_to(NEWCOMER).count(ASK) == 1
        finally:
            await bot.stop()


async def test_a_member_of_staff_is_placed_by_their_e_mail_domain(tmp_path: Path):
    domains = replace(KINGS, email_domains=("kingsroad.essex.sch.uk",))
    served = SchoolDirectory.of(replace(HERA, schools=(domains, LAWFORD)))
    async with FakeConnector() as connector:
        connector.default_members = [
            {
                "id": NEWCOMER.id,
                "name": NEWCOMER.name,
                "aadObjectId": NEWCOMER.aad,
                "email": "Nia.Newcomer@KingsRoad.essex.sch.uk",
            }
        ]
        bot = await RunningBot(connector, tmp_path, Clock(), served=served).start()
        try:
            await bot.say("dsl", "lado", user=NEWCOMER)
            assert ASK not in bot.texts_to(NEWCOMER)
            assert KINGS.dsl.name in bot.texts_to(NEWCOMER)
            # Looked up once, then remembered.
            assert len(connector.requests_to(r"/members/", "GET")) == 1
        finally:
            await bot.stop()


def test_the_school_question_cards_pass_the_official_renderer() -> None:
    """Buttons for a few schools; a drop-down for a local authority's many."""
    many = SchoolDirectory.load(ROOT / "profiles")
    assert len(many.schools) > MAX_BUTTONS
    cards = []
    for served in (trust(), many):
        resolver = SchoolResolver(served, Clock())
        for per_report in (False, True):
            asked = Resolution(None, served.schools, per_report=per_report)
            cards.append(resolver.question(asked).attachments[0].content)
        shown = resolver.shown(
            Resolution(None), {"id": served.schools[0].id}, NEWCOMER.aad, None, mid_report=False
        )
        cards.append(shown.attachments[0].content)
    dropdowns = [c for c in cards if any(b["type"] == "Input.ChoiceSet" for b in c["body"])]
    assert len(dropdowns) >= 2
    assert_valid_cards(cards)


async def test_a_report_left_unfinished_is_noticed_in_the_reporters_own_schools_channel(
    hera: RunningBot,
):
    await hera.post(hera.message(value={"action": "start", "flow": "welfare"}, user=KR_REPORTER))
    await hera.say("no", user=KR_REPORTER)
    await hera.say("my school", user=KR_REPORTER)  # mid-report: still Kings Road's report
    hera.clock.advance(minutes=KINGS.rules.incomplete_report_notice_minutes + 1)
    await hera.settle()
    [notice] = hera.channel_posts()
    assert notice.json["channelData"]["channel"]["id"] == KINGS.dsl_channel.channel_id
    assert "INCOMPLETE REPORT" in str(notice.json)


async def test_a_team_command_runs_in_the_senders_school_or_asks_privately(hera: RunningBot):
    await hera.post(in_channel(hera, "report", KR_REPORTER))  # listed: never asked
    assert "What is your concern about?" in str(hera.direct_messages(KR_REPORTER))
    assert ASK not in str(hera.direct_messages(KR_REPORTER))
    # Not known yet: the school question goes to the private chat, never the channel.
    await hera.post(in_channel(hera, "report", NEWCOMER))
    assert ASK in str(hera.direct_messages(NEWCOMER))
    assert ASK not in str(said_in_channel(hera))
    await hera.post(
        hera.message(value={"action": "choose_school", "school_id": LAWFORD.id}, user=NEWCOMER)
    )
    assert "What is your concern about?" in str(hera.replies_to(NEWCOMER))


async def test_school_hours_follow_the_reporters_school(tmp_path: Path):
    early = replace(KINGS, school_end=time(14, 0), staff_ids=frozenset({KR_REPORTER.aad}))
    lawford = replace(LAWFORD, staff_ids=frozenset({LM_REPORTER.aad}))
    served = SchoolDirectory.of(replace(HERA, schools=(early, lawford)))
    monday_1430 = Clock(datetime(2026, 11, 23, 14, 30, tzinfo=ZoneInfo("Europe/London")))
    async with FakeConnector() as connector:
        bot = await RunningBot(connector, tmp_path, monday_1430, served=served).start()
        try:
            for user in (KR_REPORTER, LM_REPORTER):
                await bot.post(
                    bot.message(value={"action": "start", "flow": "disclosure"}, user=user)
                )
            assert "outside school hours" in str(bot.replies_to(KR_REPORTER))
            assert "outside school hours" not in str(bot.replies_to(LM_REPORTER))
        finally:
            await bot.stop()


async def school_changes(bot: RunningBot, user: User) -> list[str]:
    """The audited school choices of one person (ids only), oldest first."""
    with sqlite3.connect(bot.server.store.path) as db:
        rows = db.execute(
            "SELECT detail FROM audit WHERE action = 'school_set' AND actor_aad_id = ? ORDER BY id",
            (user.aad,),
        ).fetchall()
    return [json.loads(detail)["school"] for (detail,) in rows]
