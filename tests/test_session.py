# The dialog session: triage, commands, contacts, summary and events, through Session.handle.
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialogs.replies import Reply, TurnResult
from dialogs.session import Session
from flows.catalogue import catalogue
from flows.concern import Reporter
from flows.profile import load_organisation

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
LONDON = ZoneInfo("Europe/London")
MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=LONDON)


class Chat:
    """A staff member talking to a session; the state goes through JSON between turns."""

    def __init__(self, school: str = "buttsbury-junior.yaml", now: datetime = MONDAY_10AM):
        self.profile = load_organisation(PROFILES / school).school(None)
        self.state: dict = {}
        self.now = now
        self.events: list = []
        self.ids = iter(f"concern-{i}" for i in range(100))

    def send(self, text: str | None = None, value: dict | None = None) -> TurnResult:
        session = Session(
            self.profile,
            Reporter("Test Teacher", "aad-reporter"),
            json.loads(json.dumps(self.state)),
            new_id=lambda: next(self.ids),
        )
        result = session.handle(text, value, now=self.now)
        self.state = json.loads(json.dumps(result.state))  # must be JSON-serialisable
        self.events.extend(result.events)
        return result

    def say(self, *texts: str) -> TurnResult:
        result = None
        for text in texts:
            result = self.send(text)
        assert result is not None
        return result

    @property
    def step(self) -> str | None:
        return self.state.get("flow", {}).get("step") if self.state.get("mode") == "flow" else None


def last_question(result: TurnResult) -> Reply:
    return [r for r in result.replies if r.kind == "question"][-1]


def all_text(result: TurnResult) -> str:
    return "\n".join(
        " ".join([r.title or "", r.text, *r.rules, *(f"{a} {b}" for a, b in r.facts)])
        for r in result.replies
    )


# -- triage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a child told me her dad hits her", "disclosure"),
        ("year 9 nudes going round", "nudes"),
        ("can't find Ben from 3B", "missing_child"),
        ("I think a girl is going abroad for FGM", "fgm"),
    ],
)
def test_free_text_is_triaged_to_a_suggestion_that_must_be_confirmed(text, expected):
    chat = Chat()
    result = chat.send(text)
    menu = result.replies[-1]
    assert menu.kind == "menu"
    assert menu.options[0].value == expected
    assert chat.state["mode"] == "triage"  # nothing started: never silently guessed
    assert "Nothing has been sent" in menu.text
    chat.send(value={"action": "start", "flow": expected})
    # a missing child's alert goes on the first answer, so "which child" comes first
    assert chat.step == ("child_name" if expected == "missing_child" else "immediate_danger")


def test_unrecognised_free_text_shows_the_full_menu():
    chat = Chat()
    result = chat.send("hello")
    assert result.replies[-1].kind == "menu"
    assert len(result.replies[-1].options) == len(catalogue())


def test_typing_the_number_of_a_suggestion_starts_it():
    chat = Chat()
    chat.send("she told me he touched her")
    chat.send("1")
    assert chat.state["flow"]["flow"] == "disclosure"


# -- running a flow -----------------------------------------------------------------------


def test_hard_rules_arrive_with_the_first_question_of_the_nudes_flow():
    chat = Chat()
    result = chat.send(value={"action": "start", "flow": "nudes"})
    question = last_question(result)
    rules = " ".join(question.rules).lower()
    assert "never view" in rules and "delete" in rules and "share" in rules
    assert question.submit == {"action": "answer", "step": "immediate_danger"}


def test_immediate_danger_yes_tells_them_to_phone_999_before_the_next_question():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "welfare"})
    result = chat.send("yes")
    texts = [r.text for r in result.replies]
    first_999 = next(i for i, t in enumerate(texts) if "999" in t)
    assert result.replies[first_999].urgent
    assert first_999 < len(texts) - 1 and result.replies[-1].kind == "question"


def test_invalid_answer_re_asks_with_a_clear_message_and_changes_nothing():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    before = json.dumps(chat.state, sort_keys=True)
    result = chat.send("perhaps")
    assert "yes or no" in result.replies[0].text
    assert result.replies[-1].kind == "question"
    assert json.dumps(chat.state, sort_keys=True) == before


def test_back_returns_to_the_previous_question():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.say("no", "family")
    assert chat.step == "child_name"
    chat.send("back")
    assert chat.step == "abuser_relationship"
    assert "abuser_relationship" not in chat.state["flow"]["answers"]


def test_cancel_asks_first_says_nothing_was_sent_and_can_be_withdrawn():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.say("no", "family", "Amy")
    result = chat.send("cancel")
    assert result.replies[-1].kind == "confirm"
    assert "Nothing has been sent yet" in result.replies[-1].text
    chat.send("no")
    assert chat.step == "child_year"  # carried on where they were
    chat.send("cancel")
    result = chat.send("yes")
    assert chat.state == {"mode": "idle"}
    assert "Nothing was sent" in result.replies[-1].text
    assert chat.events == []


def test_help_explains_and_repeats_the_current_question():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    result = chat.send("help")
    assert "back" in result.replies[0].text and "cancel" in result.replies[0].text
    assert last_question(result).submit["step"] == "immediate_danger"


def test_menu_during_a_report_does_not_lose_it():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.send("no")
    result = chat.send("menu")
    assert "cancel" in result.replies[0].text
    assert chat.step == "abuser_relationship"


def test_a_button_from_an_earlier_question_changes_nothing():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.send("no")
    before = json.dumps(chat.state, sort_keys=True)
    result = chat.send(value={"action": "answer", "step": "immediate_danger", "value": "yes"})
    assert "earlier question" in result.replies[0].text
    assert json.dumps(chat.state, sort_keys=True) == before


DISCLOSURE = [
    "no",
    "family",
    "Amy Example",
    "Y4",
    "Not known",
    "now",
    "the playground",
    "skip",
    'She said "daddy hurt me" {{ x }}',
    "bruise on her left forearm",
    "no",
    "no",
    "no",
    "Listened, told her I must tell the DSL",
    "yes",
]


def test_summary_confirm_produces_one_final_concern_for_the_dsl_team():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    result = chat.say(*DISCLOSURE)
    summary = result.replies[-1]
    assert summary.kind == "summary" and chat.events == []
    assert ("9. The child's words (verbatim)", 'She said "daddy hurt me" {{ x }}') in summary.facts
    assert "Ann Robinson" in summary.text
    result = chat.send(value={"action": "confirm"})
    [event] = chat.events
    assert event.kind == "concern_final"
    assert event.concern.routing.route == "dsl_team"
    assert event.concern.words == 'She said "daddy hurt me" {{ x }}'
    assert chat.state["mode"] == "idle"


def test_correcting_an_answer_from_the_summary_keeps_the_others():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.say(*DISCLOSURE)
    result = chat.send("change 4")  # year / class
    assert last_question(result).submit["step"] == "child_year"
    result = chat.send("Y5")
    assert result.replies[-1].kind == "summary"  # nothing else re-asked
    chat.send("send")
    assert chat.events[0].concern.child_year == "Y5"
    assert chat.events[0].concern.child_name == "Amy Example"


def test_disclosure_about_staff_moves_to_the_allegation_route_without_re_asking():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.send("no")
    result = chat.send("staff")
    assert chat.state["flow"]["flow"] == "allegation"
    assert chat.step == "subject_role"  # immediate danger was not asked again
    said = " ".join(r.text or "" for r in result.replies)
    assert "It goes only to" in said and "DSL" not in said
    chat.say("teacher", "Mr Example", "harmed", "no", "Amy", "Y4", "not known", "now")
    result = chat.say("classroom", "He grabbed her arm", "no", "skip", "skip", "Nobody yet")
    assert result.replies[-1].kind == "summary"
    assert "headteacher" in result.replies[-1].text and "DSL" not in result.replies[-1].text
    chat.send("send")
    concern = chat.events[-1].concern
    assert concern.type == "allegation"
    assert concern.routing.route == "headteacher"
    assert [d.id for d in concern.deadlines] == ["lado_one_working_day"]


def test_missing_child_alert_is_raised_on_the_first_answer():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "missing_child"})
    assert chat.events == []
    result = chat.send("Ben Example")
    assert [e.kind for e in chat.events] == ["concern_raised"]
    assert chat.events[0].concern.child_name == "Ben Example"
    assert last_question(result).submit["step"] == "immediate_danger"
    chat.say("no", "3B", "09:40", "field, by Mrs Example", "red jumper, grey trousers")
    chat.send("Searched - not found")
    assert {e.kind for e in chat.events[1:]} == {"concern_updated"}
    assert chat.events[-1].concern.timeline[-1].label == "Premises and surrounding area searched"


# -- contacts -----------------------------------------------------------------------------


def _numbers(text: str) -> set[str]:
    return {re.sub(r"\D", "", m) for m in re.findall(r"[\d() ]{3,}\d", text)}


@pytest.mark.parametrize("query", ["lado", "police", "out of hours", "nspcc", "childline"])
def test_contact_lookup_only_shows_numbers_from_the_profile(query):
    chat = Chat("griffin-primary.yaml")
    result = chat.send(query)
    reply = result.replies[0]
    assert reply.kind == "contacts" and reply.contacts
    known = {re.sub(r"\D", "", c.number or "") for c in chat.profile.contacts}
    for contact in reply.contacts:
        assert contact.number is None or re.sub(r"\D", "", contact.number) in known


def test_lado_lookup_gives_the_local_lado_number():
    chat = Chat()
    reply = chat.send("lado").replies[0]
    assert reply.contacts[0].number == "03330 139 797"
    assert reply.contacts[0].tel == "tel:03330139797"


def test_contact_lookup_mid_flow_keeps_the_place():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    result = chat.send("lado")
    assert result.replies[0].kind == "contacts"
    assert last_question(result).submit["step"] == "immediate_danger"
    assert chat.state["flow"]["answers"] == {}


def test_a_bare_contact_word_in_a_free_text_answer_is_an_answer():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.say("no", "family", "Amy", "Y4", "not known", "now")
    assert chat.step == "location"
    chat.send("police")  # e.g. "where": at the police station
    assert chat.state["flow"]["answers"]["location"] == "police"
    result = chat.send("lado number?")  # an explicit request still works
    assert result.replies[0].kind == "contacts"


def test_numbers_outside_their_hours_are_marked():
    sunday_night = datetime(2026, 11, 22, 21, 0, tzinfo=LONDON)
    chat = Chat(now=sunday_night)
    reply = chat.send("nspcc whistleblowing").replies[0]
    line = next(c for c in reply.contacts if "histleblowing" in c.name)
    assert line.open_now is False
    assert "Closed now" in reply.text


def test_dsl_lookup_names_the_team_and_never_invents_a_number():
    chat = Chat()
    reply = chat.send("dsl").replies[0]
    assert "Ann Robinson" in reply.text and "Adam Graves" in reply.text
    for contact in reply.contacts:
        assert contact.number in {c.number for c in chat.profile.contacts}


def test_an_old_menu_button_never_throws_away_a_report_in_progress():
    chat = Chat()
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.say("no", "family", "Amy")
    before = json.dumps(chat.state, sort_keys=True)
    result = chat.send(value={"action": "start", "flow": "nudes"})
    assert "part-way through a report" in result.replies[0].text
    assert json.dumps(chat.state, sort_keys=True) == before


# -- allegations: worded by who receives them ---------------------------------------------

SATURDAY = datetime(2026, 11, 21, 11, 0, tzinfo=LONDON)


def test_out_of_hours_text_names_who_the_report_goes_to():
    chat = Chat(now=SATURDAY)
    result = chat.send(value={"action": "start", "flow": "allegation"})
    [ooh] = [r for r in result.replies if r.title == "It is outside school hours"]
    assert "I will still send the report to the headteacher" in ooh.text
    assert "chair of governors if it is about the headteacher" in ooh.text
    assert "DSL" not in ooh.text
    dsl = Chat(now=SATURDAY).send(value={"action": "start", "flow": "welfare"})
    [ooh] = [r for r in dsl.replies if r.title == "It is outside school hours"]
    assert "I will still send the report to the DSL team" in ooh.text


@pytest.mark.parametrize(
    ("flow", "answers", "flag"),
    [
        ("nudes", ["no", "Yes - an adult who works or volunteers at this school"], "POLICE-NOW"),
        ("welfare", ["yes", "now", "yes"], "URGENT"),
        ("child_on_child", ["no", "rape", "yes"], "POLICE-NOW"),
    ],
)
def test_an_adult_at_the_school_in_a_dsl_flow_switches_to_the_allegation_route(flow, answers, flag):
    chat = Chat()
    chat.send(value={"action": "start", "flow": flow})
    result = chat.say(*answers)
    said = " ".join(r.text or "" for r in result.replies)
    assert chat.state["flow"]["flow"] == "allegation"
    assert chat.step == "subject_role"
    assert "It goes only to" in said and "DSL" not in said
    chat.say("A teacher", "Mr Example", "harmed", "no", "Amy", "Y4", "not known", "now")
    result = chat.say("classroom", "He sent her pictures", "no", "skip", "skip", "Nobody yet")
    assert result.replies[-1].kind == "summary"
    assert "DSL" not in result.replies[-1].text
    chat.send("send")
    concern = chat.events[-1].concern
    assert concern.routing.route == "headteacher"
    assert flag in concern.flags  # the flag raised before the switch is kept
