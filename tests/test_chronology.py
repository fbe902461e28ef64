# The child's chronology (issue 9 s2): the bot suggests, the DSL team confirms or rejects;
# counts on the next card; `child NAME` for the DSL team only; allegations kept apart.
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bot.services.child_lookup import REFUSED, child_query
from bot.services.child_names import same_child, similar_name, year_group
from bot.services.chronology import ordinal
from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import CARD, DSL, HEAD, OUTSIDER, REPORTER, RunningBot, User
from tests.recordkit import alert_posts, press
from tests.test_e2e import CHILD, WALKS, report

SUGGESTED = "Possibly the same child"
MESSAGE = "application/vnd.microsoft.activity.message"


def _child(name: str, year: str | None, school: str = "s1") -> SimpleNamespace:
    return SimpleNamespace(child_name=name, child_year=year, school_id=school)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (_child("Amelia Testchild", "Y4"), _child("amelia testchild", "Year 4"), True),
        (_child("Amelia Testchild", "Y4"), _child("Amelie Testchild", "4C"), True),
        (_child("Amelia Testchild", "Y4"), _child("Amelia T", "4"), True),
        (_child("Amelia Testchild", "Y3"), _child("Amelia Testchild", "Y4"), True),  # moved up
        (_child("Amelia Testchild", "Y4"), _child("Amelia Testchild", "Y6"), False),
        (_child("Amelia Testchild", "Y4"), _child("Amir Testchild", "Y4"), False),
        (_child("Amelia Testchild", "Y4"), _child("Amelia Jones", "Y4"), False),
        (_child("Amelia Testchild", "Y4"), _child("Amelia Testchild", "Y4", "s2"), False),
        (_child("Amelia", "Y4"), _child("Amelia Testchild", "Y4"), True),
        (_child("Amelia", None), _child("Amelia Testchild", "Y4"), False),  # too weak
        (_child("Zoë O'Neil", "R"), _child("Zoe ONeil", "Reception"), True),
    ],
)
def test_a_match_is_suggested_for_a_similar_name_and_a_fitting_year(a, b, same):
    assert same_child(a, b) is same


def test_names_and_years_are_read_the_way_staff_type_them():
    assert year_group("Year 4") == year_group("4C") == year_group("y4") == "4"
    assert year_group("Not known") is None
    assert not similar_name("", "Amelia")
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
    ]


@pytest.mark.parametrize(
    ("text", "dsl", "name"),
    [
        ("child Amelia Testchild", True, "Amelia Testchild"),
        ("child amelia", True, "amelia"),
        ("Child: Amelia", False, "Amelia"),  # refused later, with a clear message
        ("child told me her dad hits her", True, None),  # a report, not a look-up
        ("child told me her dad hits her", False, None),
        ("child is crying in the toilets", False, None),
        ("child crying", False, None),
        ("child hurt", True, None),
        ("children", True, None),
    ],
)
def test_child_name_is_a_command_only_when_it_reads_as_one(text, dsl, name):
    assert child_query(text, None, None, dsl) == name


def test_child_name_mid_report_is_an_answer():
    assert child_query("child Amelia", None, "flow", True) is None


def _channel_cards(bot: RunningBot) -> list[dict]:
    return [card for _, _, card in alert_posts(bot)]


def _latest(bot: RunningBot, root: str) -> dict:
    updates = bot.connector.requests_to(rf"/v3/conversations/.+/activities/{root}$", "PUT")
    return updates[-1].json["attachments"][0]["content"]


def _absence(name: str = CHILD) -> list[str]:
    walk = list(WALKS["absence"])
    walk[1] = name
    return walk


async def _two_concerns(bot: RunningBot) -> tuple[str, str]:
    await report(bot, "disclosure", WALKS["disclosure"])  # Y4
    bot.clock.advance(days=20)
    await report(bot, "absence", _absence())  # class 4C
    (_, root, second) = alert_posts(bot)[1]
    return root, json.dumps(second)


async def _lookup(bot: RunningBot, text: str, user: User) -> str:
    before = len(bot.replies_to(user))
    await bot.say(text, user=user)
    shown = []
    for activity in bot.replies_to(user)[before:]:
        shown.append(activity.get("text") or "")
        for attachment in activity.get("attachments") or []:
            assert_valid_cards([attachment["content"]])
            shown.extend(card_texts(attachment["content"]))
    return "\n".join(shown)


async def test_a_suggested_match_is_shown_to_the_dsl_team_only_then_confirmed(bot: RunningBot):
    root, second = await _two_concerns(bot)
    first = json.dumps(_channel_cards(bot)[0])
    assert SUGGESTED in second and "disclosure" in second
    assert SUGGESTED not in first  # nothing earlier to match
    # The reporter (a colleague) is never shown it, nor anything of the other concern.
    told = bot.texts_to(REPORTER)
    assert SUGGESTED not in told and "chronology" not in told.lower()
    # A colleague pressing it is refused; nothing is linked.
    store = bot.server.store
    (_, _, c1), (_, _, c2) = alert_posts(bot)
    from tests.e2e import concern_of

    first_id, second_id = concern_of(c1), concern_of(c2)
    status, body = await press(
        bot, "link_confirm", user=OUTSIDER, which=1, values={"other_id": first_id}
    )
    assert status == 200 and body["type"] == MESSAGE and "Only the DSL team" in body["value"]
    assert await store.chronology_ids(second_id) == []
    # The DSL team confirms: the next card shows the picture, and no longer asks.
    status, body = await press(
        bot, "link_confirm", user=DSL, which=1, values={"other_id": first_id}
    )
    assert status == 200 and body["type"] == CARD
    await bot.settle()
    assert await store.chronology_ids(second_id) == [first_id, second_id]
    card = _latest(bot, root)
    shown = "\n".join(card_texts(card))
    assert "2nd concern in 3 weeks: 1 absence, 1 disclosure" in shown
    assert SUGGESTED not in shown
    assert_valid_cards([card])
    actions = [e.action for e in await store.audit_entries(second_id)]
    assert "chronology_linked" in actions
    assert SUGGESTED not in bot.texts_to(REPORTER)


async def test_a_rejected_match_is_not_suggested_again(bot: RunningBot):
    root, _ = await _two_concerns(bot)
    from tests.e2e import concern_of

    first_id = concern_of(_channel_cards(bot)[0])
    status, body = await press(bot, "link_reject", user=DSL, which=1, values={"other_id": first_id})
    assert status == 200 and body["type"] == CARD
    await bot.settle()
    shown = "\n".join(card_texts(_latest(bot, root)))
    assert SUGGESTED not in shown and "concern in" not in shown


async def test_a_different_child_is_not_suggested(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    await report(bot, "absence", _absence("Bartholomew Otherchild"))
    assert SUGGESTED not in json.dumps(_channel_cards(bot)[1])


async def test_child_name_lists_the_chronology_for_the_dsl_team_and_refuses_others(
    bot: RunningBot,
):
    await _two_concerns(bot)
    shown = await _lookup(bot, f"child {CHILD}", DSL)
    assert "disclosure" in shown and "absence" in shown
    assert "Amelia" in shown
    refused = await _lookup(bot, f"child {CHILD}", REPORTER)
    assert REFUSED in refused and "disclosure" not in refused
    refused = await _lookup(bot, f"child {CHILD}", OUTSIDER)
    assert REFUSED in refused
    # "child told me ..." from a colleague is a report starting, never refused.
    opening = await _lookup(bot, "child told me her dad hits her", OUTSIDER)
    assert REFUSED not in opening


async def test_an_allegation_never_appears_in_a_chronology_others_can_see(bot: RunningBot):
    await report(bot, "allegation", WALKS["allegation"])  # about the same child, to the head
    bot.clock.advance(days=3)
    await report(bot, "disclosure", WALKS["disclosure"])
    # The DSL's card: no suggestion of the allegation, no count.
    [dsl_card] = _channel_cards(bot)
    assert SUGGESTED not in json.dumps(dsl_card)
    # The allegation's card (the case manager's): no chronology at all.
    [(_, _, head_card)] = alert_posts(bot, HEAD)
    assert "chronology" not in json.dumps(head_card).lower()
    # `child NAME`: the DSL team does not see the allegation; its case manager does, apart.
    dsl_view = await _lookup(bot, f"child {CHILD}", DSL)
    assert "disclosure" in dsl_view and "Allegation about" not in dsl_view
    assert " - allegation - " not in dsl_view
    head_view = await _lookup(bot, f"child {CHILD}", HEAD)
    assert "Allegation about a member of staff" in head_view
    assert "disclosure" not in head_view  # the head is not in the DSL team
    # Linking an allegation is refused even when asked for directly.
    from tests.e2e import concern_of

    allegation_id = concern_of(head_card)
    status, body = await press(bot, "link_confirm", user=DSL, values={"other_id": allegation_id})
    assert status == 200
    assert body["type"] == MESSAGE and "cannot be linked" in body["value"]
    assert await bot.server.store.chronology_ids(allegation_id) == []


# Every allegation route, every person of the school: an allegation is seen in a chronology
# (card, suggestion, `child NAME`) only by a case manager it was routed to.
ROUTES = ("headteacher", "chair_of_governors", "lado")


@pytest.mark.parametrize("route", ROUTES)
async def test_no_one_but_its_case_manager_ever_sees_an_allegation_in_a_chronology(
    store, route: str
):
    from datetime import UTC, datetime, timedelta

    from bot.services.chronology import Chronology
    from flows.concern import Concern, Reporter, Routing
    from flows.routing import named_people, recipients
    from tests.e2e import SCHOOL

    at = datetime(2026, 11, 2, 9, tzinfo=UTC)

    def concern(cid: str, on: str) -> Concern:
        return Concern(
            id=cid,
            type="allegation" if on != "dsl_team" else "welfare",
            title="t",
            school_id=SCHOOL.id,
            reporter=Reporter("R", REPORTER.aad),
            status="final",
            started_at=at.isoformat(),
            child_name=CHILD,
            child_year="Y4",
            routing=Routing(on, ""),
        )

    await store.save_concern(concern("alleg", route), at=at)
    await store.save_concern(concern("dsl-1", "dsl_team"), at=at + timedelta(days=1))
    await store.save_concern(concern("dsl-2", "dsl_team"), at=at + timedelta(days=2))
    chronology = Chronology(store, SCHOOL, lambda: at)
    later = await store.get_concern("dsl-2")
    assert [s.id for s in await chronology.suggestions(later)] == ["dsl-1"]
    view = await chronology.for_card(later)
    assert all(other != "alleg" for other, _ in view.suggestions)
    allowed = {
        p.aad_object_id for p in recipients(SCHOOL, (await store.get_concern("alleg")).concern)
    }
    people = {p.aad_object_id for p in named_people(SCHOOL) if p} | {OUTSIDER.aad, REPORTER.aad}
    for person in people:
        found = await chronology.lookup(CHILD, person)
        sees = any("Allegation about a member of staff" in title for title, _ in found)
        assert sees == (person in allowed), (route, person)
    # Linking it is refused whoever asks.
    refused = await chronology.act(later, "link_confirm", {"other_id": "alleg"}, DSL.aad, at)
    assert refused and await store.chronology_ids("alleg") == []


async def test_linking_and_looking_up_never_log_a_name(bot: RunningBot, caplog):
    from tests.e2e import concern_of

    caplog.set_level("DEBUG")
    await _two_concerns(bot)
    first_id = concern_of(_channel_cards(bot)[0])
    await press(bot, "link_confirm", user=DSL, which=1, values={"other_id": first_id})
    await _lookup(bot, f"child {CHILD}", DSL)
    await bot.settle()
    assert "chronology link_confirm" in caplog.text and "child lookup" in caplog.text
    for secret in (CHILD, "Amelia", "Testchild"):
        assert secret not in caplog.text


async def test_in_a_trust_each_school_keeps_its_own_chronology(store):
    from datetime import UTC, datetime, timedelta

    from bot.services.chronology import Chronology
    from flows.concern import Concern, Reporter
    from flows.directory import SchoolDirectory
    from tests.e2e import ROOT

    trust = SchoolDirectory.load(ROOT / "profiles" / "hera-trust.yaml")
    a, b = trust.schools[:2]
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    for n, school in enumerate((a, b, a)):
        concern = Concern(
            id=f"c{n}",
            type="welfare",
            title="t",
            school_id=school.id,
            reporter=Reporter("R", REPORTER.aad),
            status="final",
            started_at=at.isoformat(),
            child_name=CHILD,
            child_year="Y4",
        )
        await store.save_concern(concern, at=at + timedelta(days=n))
    chronology = Chronology(store, trust, lambda: at)
    # The same name at another school of the trust is never suggested.
    latest = await store.get_concern("c2")
    assert [s.id for s in await chronology.suggestions(latest)] == ["c0"]
    assert await chronology.act(latest, "link_confirm", {"other_id": "c1"}, a.dsl.aad_object_id, at)
    # `child NAME`: each DSL sees their own school's concerns only.
    seen_by_a = "\n".join(
        t + "\n" + "\n".join(lines)
        for t, lines in await chronology.lookup(CHILD, a.dsl.aad_object_id)
    )
    assert a.name in seen_by_a and b.name not in seen_by_a
    assert "Mon 02 Nov 2026" in seen_by_a and "Tue 03 Nov 2026" not in seen_by_a
