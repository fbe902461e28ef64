"""An allegation about staff never reaches the DSL channel, the DSL team or the adult it is about -
on every path (issue 7 s1). The paths are generated from the flow graphs (tests/paths.py):
every answer path of an allegation, a covering set of every choice elsewhere, switches
followed the way the conversation follows them. Then every message the bot would send for
those concerns (alert, copies, reminders, escalation, deadlines, stalled-report notices) is
produced by the real services on a real store, and checked; and a representative set goes
over HTTP to the fake Bot Connector."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from botbuilder.schema import Activity

from bot.services.alerts import AlertService
from bot.services.timekeeper import Timekeeper
from bot.services.timing import STALLED_NOTICE
from bot.store import SqliteStore, TimerSpec
from bot.teams.alert_card import FLAG_WORDS
from dialogs.replies import Event
from flows.catalogue import catalogue
from flows.concern import Concern, Reporter
from flows.graph import DSL_ROUTE, NAMES_DSL_TEAM
from flows.profile import SchoolProfile
from flows.routing import deputy_for, named_people, recipients
from tests.e2e import DEPUTY, DSL, HEAD, REPORTER, SCHOOL, Clock, RunningBot, User
from tests.flowkit import NOW, school
from tests.paths import STRANGER, generate
from tests.paths import Path as WalkedPath
from tests.test_e2e import WALKS

SCHOOLS = ["buttsbury-junior", "kings-road-primary"]  # one head; HERA: two case managers
FLOWS = sorted(catalogue())
SWITCHING = ["disclosure", "nudes", "welfare", "child_on_child"]


@cache
def paths(flow_id: str, school_id: str) -> tuple[WalkedPath, ...]:
    return tuple(generate(flow_id, school(school_id)))


def ids(people: Iterable[Any]) -> set[str]:
    return {p.aad_object_id for p in people}


def dsl_words(profile: SchoolProfile, text: str, concern: Concern | None = None) -> list[str]:
    """What in `text` names the DSL team: the words, or a DSL team member's name - except
    where it describes the adult the allegation is about (who may be on the DSL team)."""
    if concern is not None:
        for about in (concern.subject_role or "", concern.subject_name or ""):
            text = text.replace(about, "")
        text = text.replace("The adult concerned is a member of the DSL team.", "")
        text = text.replace("ACCUSED-IS-DSL", "").replace(FLAG_WORDS["ACCUSED-IS-DSL"], "")
    found = [m.group(0) for m in NAMES_DSL_TEAM.finditer(text)]
    managers = ids([profile.headteacher, *profile.case_managers, profile.chair_of_governors])
    for person in profile.dsl_team():
        if person.aad_object_id not in managers and person.name in text:
            found.append(person.name)
    return found


def school_of(concern: Concern) -> SchoolProfile:
    return school(concern.school_id)


def answer_of(path: WalkedPath, step_id: str) -> Any:
    return next((a for _, s, a in path.answers if s == step_id), None)


# -- the flows: what the reporter is shown, and who the concern says it goes to ---------------


@pytest.mark.parametrize("school_id", SCHOOLS)
@pytest.mark.parametrize("flow_id", FLOWS)
def test_no_reporter_message_on_an_allegation_route_names_the_dsl_team(
    flow_id: str, school_id: str
) -> None:
    profile = school(school_id)
    walked = paths(flow_id, school_id)
    assert walked
    checked = 0
    for path in walked:
        for shown in path.shown:
            on_dsl_route = shown.route == DSL_ROUTE
            in_dsl_flow = catalogue()[shown.flow].definition.route == DSL_ROUTE
            if shown.kind == "choice" or (on_dsl_route and in_dsl_flow):
                continue  # choices may name who it is about ("the DSL or a deputy DSL")
            checked += 1
            assert not dsl_words(profile, shown.text), (path.answers, shown)
    if flow_id in {"allegation", *SWITCHING}:
        assert checked, f"{flow_id}: no message on an allegation route was checked"


@pytest.mark.parametrize("school_id", SCHOOLS)
@pytest.mark.parametrize("flow_id", FLOWS)
def test_every_allegation_goes_only_to_case_managers_who_are_not_its_subject(
    flow_id: str, school_id: str
) -> None:
    profile = school(school_id)
    managers = ids([profile.headteacher, *profile.case_managers, profile.chair_of_governors])
    by_name = {p.name: p for p in named_people(profile)}
    allegations = [p for p in paths(flow_id, school_id) if p.concern.is_allegation]
    if flow_id in {"allegation", *SWITCHING}:
        assert allegations, f"{flow_id}: no path reaches the allegation route"
    routes = set()
    for path in allegations:
        concern = path.concern
        routes.add(concern.routing.route)
        who = ids(recipients(profile, concern))
        subjects = set(concern.subject_ids)
        assert concern.routing.route != DSL_ROUTE
        assert who <= managers, path.answers
        assert not who & subjects, path.answers
        role, name = answer_of(path, "subject_role"), answer_of(path, "subject_name")
        if name in by_name:  # a person the profile names is identified by name
            assert by_name[name].aad_object_id in subjects, path.answers
        if role == "dsl_member":
            assert not who & ids(profile.dsl_team()) - managers
            if name == STRANGER:  # which DSL member is not known: none of them
                assert ids(profile.dsl_team()) <= subjects
            assert "ACCUSED-IS-DSL" in concern.flags
        if role == "headteacher" or profile.headteacher.aad_object_id in subjects:
            assert concern.routing.route in {"chair_of_governors", "lado"}
        deputy = deputy_for(profile, concern)
        assert deputy is None or deputy.aad_object_id not in subjects
        if concern.routing.route == "headteacher" and not subjects & managers:
            # every case manager the school names has it (HERA: Executive Head AND Head of School)
            assert who == ids([profile.headteacher, *profile.case_managers])
        if answer_of(path, "adult_involved") == "school_adult":
            assert "POLICE-NOW" in concern.flags  # kept across the switch
        if answer_of(path, "what_happened") in {"rape", "assault_by_penetration"}:
            assert "POLICE-NOW" in concern.flags
    if flow_id == "allegation":
        assert routes == {"headteacher", "chair_of_governors", "lado"}


@pytest.mark.parametrize("flow_id", FLOWS)
def test_the_generated_walks_cover_every_step_and_choice(flow_id: str) -> None:
    definition = catalogue()[flow_id].definition
    walked = paths(flow_id, SCHOOLS[0])
    asked = {(f, s) for p in walked for f, s, _ in p.answers}
    assert {(flow_id, s.id) for s in definition.steps} <= asked
    given = {(f, s, str(a)) for p in walked for f, s, a in p.answers}
    for step in definition.steps:
        for choice in step.choices:
            value = choice.value if step.kind == "choice" else str(choice.value == "yes")
            same = [
                c
                for c in step.choices
                if c.effect == choice.effect and (flow_id, step.id, str(c.value)) in given
            ]
            assert (flow_id, step.id, value) in given or same, (step.id, choice.value)


def test_the_route_check_is_not_vacuous() -> None:
    """The shared immediate-danger text names the DSL: the allegation flow must override it."""
    from flows.definition import safe_load

    common = (Path(catalogue()["allegation"].definition.path).parent / "_common.yaml").read_text()
    shared = safe_load(common)["steps"]["immediate_danger"]["yes"]["say"]
    assert NAMES_DSL_TEAM.search(shared)
    allegation = catalogue()["allegation"].definition.step("immediate_danger")
    assert not NAMES_DSL_TEAM.search(allegation.choice("yes").effect.say)


# -- the delivery side: every message the services would send, for every generated concern ---


class Recorder:
    """The Teams port, recording who each message went to (channel, user, or a thread)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []  # (kind, to, text)
        self.owners: dict[str, str] = {}  # conversation id -> "channel" or user aad id

    def _text(self, activity: Activity) -> str:
        parts = [activity.text or "", activity.summary or ""]
        for attachment in activity.attachments or []:
            parts.append(str(attachment.content))
        return " ".join(parts)

    async def post_to_channel(self, service_url, tenant_id, team_id, channel_id, activity):
        conversation = f"channel-{len(self.owners)}"
        self.owners[conversation] = "channel"
        self.sent.append(("channel", "channel", self._text(activity)))
        return conversation, f"a-{len(self.sent)}"

    async def send_to_user(self, service_url, tenant_id, user_id, activity):
        conversation = f"chat-{user_id}"
        self.owners[conversation] = user_id
        self.sent.append(("user", user_id, self._text(activity)))
        return conversation, f"a-{len(self.sent)}"

    async def reply_in_thread(self, ref, activity):
        owner = self.owners.get(ref.conversation.id, "unknown")
        self.sent.append(("thread", owner, self._text(activity)))
        return f"a-{len(self.sent)}"

    async def update_activity(self, ref, activity_id, activity):
        owner = self.owners.get(ref.conversation.id, "unknown")
        self.sent.append(("update", owner, self._text(activity)))


def signature(concern: Concern) -> tuple[Any, ...]:
    """What the services read to decide who is told what, and when (free text aside)."""
    return (
        concern.routing.route,
        tuple(sorted(concern.subject_ids)),
        concern.priority,
        tuple(sorted(d.id for d in concern.deadlines)),
        "ACCUSED-IS-DSL" in concern.flags,
        bool(dsl_words(school_of(concern), concern.subject_role or "")),  # shown on the card
    )


@cache
def distinct_allegations(school_id: str) -> tuple[Concern, ...]:
    found: dict[tuple[Any, ...], Concern] = {}
    for flow_id in FLOWS:
        for path in paths(flow_id, school_id):
            if path.concern.is_allegation:
                found.setdefault(signature(path.concern), path.concern)
    return tuple(found.values())


@cache
def distinct_partial_states(school_id: str) -> tuple[dict[str, Any], ...]:
    """Allegation reports left part-way: one per distinct route and subject so far (and
    whether the adult has been named yet)."""
    profile = school(school_id)
    keys = ("subject_role", "subject_name", "harm_test", "conflict_of_interest")
    by_answers: dict[tuple[Any, ...], dict[str, Any]] = {}
    for flow_id in FLOWS:
        for path in paths(flow_id, school_id):
            for state in path.partial_states:
                answers = state["answers"]
                key = (*(str(answers.get(k)) for k in (*keys, "low_level_conflict")),)
                by_answers.setdefault(key, state)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for state in by_answers.values():
        partial = _partial_concern(profile, state)
        named = {"subject_role", "subject_name"} <= set(state["answers"])
        found.setdefault((named, *signature(partial)[:2]), state)
    return tuple(found.values())


async def run_services(
    profile: SchoolProfile, concerns: Iterable[Concern], partials: Iterable[dict], tmp: Path
) -> dict[str, list[tuple[str, str, str]]]:
    """Every message the bot sends for each concern: the alert, then every timer fired in turn
    (escalation, deadlines, chases) until none is left; and each stalled-report notice."""
    clock = Clock(NOW)
    store = SqliteStore(tmp / "bot.sqlite3", clock=clock)
    recorder = Recorder()
    alerts = AlertService(store, recorder, profile, clock=clock)
    keeper = Timekeeper(store, alerts, clock=clock)
    sent: dict[str, list[tuple[str, str, str]]] = {}

    async def drain(concern_id: str | None = None) -> None:
        """Send all that is due; messages waiting on a retry (a card update queued before its
        alert was out) are waited for, so each concern's messages are its own."""
        for _ in range(20):
            while await keeper.fire_due() or await alerts.deliver_due():
                pass
            waiting = [
                o
                for o in await store.outbox_for_concern(concern_id or "")
                if o.status not in {"delivered", "failed"}
            ]
            if not waiting:
                return
            clock.now += timedelta(seconds=5)

    try:
        for concern in concerns:
            before = len(recorder.sent)
            await alerts.on_event(Event("concern_final", concern), "https://connector.test/")
            await drain(concern.id)
            # a case manager records a social care referral: the chase must stay with them
            for person in recipients(profile, concern)[:1]:
                referral = {
                    "referred_social_care:how": "Phone",
                    "referred_social_care:when_date": "2026-11-23",
                    "referred_social_care:when_time": "10:00",
                }
                done = await alerts.act(
                    concern.id, "referred_social_care", person.aad_object_id, values=referral
                )
                assert done.allowed, done.message
                await drain(concern.id)
            for _ in range(12):  # walk the clock to each pending timer of this concern
                pending = [
                    t for t in await store.timers(concern_id=concern.id) if t.status == "pending"
                ]
                if not pending:
                    break
                clock.now = max(clock.now, min(t.due_at for t in pending)) + timedelta(seconds=1)
                await drain(concern.id)
            sent[concern.id] = recorder.sent[before:]
        for i, state in enumerate(partials):
            before = len(recorder.sent)
            key = f"session-{i}"
            session = {"mode": "flow", "flow": state, "concern_id": f"partial-{i}", "raised": False}
            await store.write({key: {"session": session}})
            who = {"storage_key": key, "aad": REPORTER.aad, "name": REPORTER.name}
            await store.schedule(TimerSpec(STALLED_NOTICE, clock.now, who, f"notice:{key}"))
            await drain()
            sent[f"partial-{i}"] = recorder.sent[before:]
    finally:
        store.close()
    return sent


def assert_sealed(
    profile: SchoolProfile, concern: Concern, messages: list[tuple[str, str, str]]
) -> None:
    allowed = ids(recipients(profile, concern)) | {concern.reporter.aad_object_id}
    deputy = deputy_for(profile, concern)
    if deputy is not None:
        allowed.add(deputy.aad_object_id)
    for kind, to, text in messages:
        assert kind != "channel" and to != "channel", (concern.id, kind)
        assert to not in concern.subject_ids, (concern.id, kind, "reached the subject")
        assert to in allowed, (concern.id, kind, to)
        assert not dsl_words(profile, text, concern), (concern.id, kind, text[:300])


@pytest.mark.parametrize("school_id", SCHOOLS)
async def test_every_allegation_message_the_services_send_is_sealed(
    school_id: str, tmp_path: Path
) -> None:
    profile = school(school_id)
    concerns = [
        dataclasses.replace(c, id=f"c-{i}", reporter=Reporter(REPORTER.name, REPORTER.aad))
        for i, c in enumerate(distinct_allegations(school_id))
    ]
    partials = distinct_partial_states(school_id)
    sent = await run_services(profile, concerns, partials, tmp_path)
    kinds = set()
    for concern in concerns:
        messages = sent[concern.id]
        assert messages, f"{concern.id}: nothing was sent at all"
        kinds.update(k for k, _, _ in messages)
        assert_sealed(profile, concern, messages)
        # ...and every case manager who is not the subject has the alert itself
        alerted = {
            to for k, to, text in messages if k == "user" and "safeguarding alert" in text.lower()
        }
        assert alerted == ids(recipients(profile, concern)), concern.id
    assert {"user", "update"} <= kinds  # alerts, reminders and card updates were all checked
    notices = 0
    for i, state in enumerate(partials):
        messages = sent[f"partial-{i}"]
        notices += len(messages)
        answers = state["answers"]
        partial = _partial_concern(profile, state)
        if not {"subject_role", "subject_name"} <= set(answers):
            assert messages == [], "a notice went out before we knew who it is about"
        assert_sealed(profile, partial, messages)
    assert notices, "no stalled-report notice was produced to check"


def _partial_concern(profile: SchoolProfile, state: dict[str, Any]) -> Concern:
    from flows.calendar import working_days_for
    from flows.engine import FlowContext

    context = FlowContext(profile, Reporter(REPORTER.name, REPORTER.aad), working_days_for(profile))
    with catalogue()[state["flow"]].attach(state, context) as run:
        return run.concern("partial", NOW)


async def test_the_accused_dsl_who_is_also_the_deputy_head_gets_nothing(tmp_path: Path) -> None:
    """The deputy head is also a deputy DSL; the reporter picks 'a teacher' or 'the DSL' and
    names them: no reminder, escalation or card reaches them, whichever role was picked."""
    base = school("buttsbury-junior")
    accused = base.deputies[0]
    profile = dataclasses.replace(base, deputy_head=accused)
    concerns = []
    for i, role in enumerate(["dsl_member", "teacher", "deputy_head"]):
        walked = next(
            p
            for p in generate("allegation", profile)
            if answer_of(p, "subject_role") == role
            and answer_of(p, "harm_test") == "harmed"
            and answer_of(p, "conflict_of_interest") is False
            and answer_of(p, "subject_name") in {accused.name, STRANGER}
            and (role != "teacher" or answer_of(p, "subject_name") == accused.name)
        )
        concerns.append(dataclasses.replace(walked.concern, id=f"dep-{i}"))
    sent = await run_services(profile, concerns, (), tmp_path)
    for concern in concerns:
        assert accused.aad_object_id in concern.subject_ids
        assert deputy_for(profile, concern) is None
        to = {t for _, t, _ in sent[concern.id]}
        assert accused.aad_object_id not in to
        assert profile.headteacher.aad_object_id in to
        assert_sealed(profile, concern, sent[concern.id])


# -- over HTTP: a representative set through the real endpoint and the fake Bot Connector -----

# the shared end-to-end walk (tests/test_e2e.py): a teacher, harm test met, no conflict
TEACHER_ALLEGATION = list(WALKS["allegation"])
TAIL = ["send"]


def everything_sent(bot: RunningBot) -> list[tuple[set[str], dict]]:
    out = []
    for conversation in bot.connector.conversations.values():
        members = {m.get("id") for m in conversation.members}
        if conversation.channel_id:
            members.add("channel")
        if conversation.id.startswith("a:personal-"):  # a chat someone started with the bot
            members.add(conversation.id.removeprefix("a:personal-"))
        for activity in conversation.activities.values():
            out.append((members, activity))
    return out


def assert_http_sealed(
    bot: RunningBot, reporter: User, may_receive: set[str], subject: str = "", about_name: str = ""
):
    assert bot.channel_posts() == []
    for members, _activity in everything_sent(bot):
        if reporter.id in members or reporter.aad in members:
            continue  # the reporter's own chat: checked for DSL words below
        assert "channel" not in members
        assert members & may_receive, members
        if subject:
            assert subject not in members
    texts = [
        (a.get("text") or "") + str(a.get("attachments") or "")
        for a in [*bot.replies_to(reporter), *bot.direct_messages(reporter)]
    ]
    # from the moment it is an allegation (a switch says so), nothing names the DSL team
    start = next((i for i, t in enumerate(texts) if "allegation against staff" in t), 0)
    roles = catalogue()["allegation"].definition.step("subject_role").choices
    for text in texts[start:]:
        for about in [c.label for c in roles] + [about_name]:  # who it is about may be the DSL
            text = text.replace(about, "") if about else text
        assert not dsl_words(SCHOOL, text), text[:300]


@pytest.mark.parametrize(
    ("start", "answers", "to", "subject"),
    [
        ("allegation", TEACHER_ALLEGATION, HEAD, None),
        # the DSL named as the adult: the head only, the DSL never
        (
            "allegation",
            ["no", "The DSL or a deputy DSL", DSL.name, *TEACHER_ALLEGATION[3:]],
            HEAD,
            DSL,
        ),
        # a nude image sent by a member of staff: the allegation route, POLICE-NOW kept
        (
            "nudes",
            [
                "no",
                "Yes - an adult who works or volunteers at this school",
                *TEACHER_ALLEGATION[1:],
            ],
            HEAD,
            None,
        ),
    ],
)
async def test_over_http_an_allegation_and_its_reminders_reach_only_the_case_manager(
    bot: RunningBot, start, answers, to, subject
) -> None:
    await bot.post(bot.message(value={"action": "start", "flow": start}))
    await bot.say(*answers, *TAIL)
    await bot.settle()
    [alert] = [a for a in bot.direct_messages(to) if a.get("attachments")]
    if start == "nudes":
        assert FLAG_WORDS["POLICE-NOW"] in str(alert["attachments"][0]["content"])
    for _ in range(4):  # escalation and reminders fire; nobody acknowledges
        bot.clock.advance(minutes=31)
        await bot.settle()
    may = {to.aad, to.id}
    if SCHOOL.deputy_head and (subject is None or subject.aad != SCHOOL.deputy_head.aad_object_id):
        may.add(SCHOOL.deputy_head.aad_object_id)
    assert_http_sealed(
        bot, REPORTER, may, subject.aad if subject else "", subject.name if subject else ""
    )
    assert bot.direct_messages(DSL) == [] and bot.direct_messages(DEPUTY) == []
    reminders = [a for a in bot.direct_messages(to) if "Reminder" in (a.get("text") or "")]
    assert reminders, "the escalation reminder was not produced, so not checked"
