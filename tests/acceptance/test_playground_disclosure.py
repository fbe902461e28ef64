"""Acceptance: our real bot against the Microsoft 365 Agents Playground (an offline Teams).

The bot is `bot.server.build_server` with the Buttsbury Junior profile, on a loopback port.
The playground runs with the mock data `scripts/playground_config.py` makes from that
profile (the same as the committed `playground.yml`): the school's tenant, a member of staff
at the keyboard, the DSL team and a colleague as other users, and the DSL channel.

A member of staff reports a disclosure in their personal chat - typing, and pressing card
buttons as Teams would send them - and sends it. The alert must start a new thread in the
DSL channel, the reporter must be told it was delivered, a colleague outside the DSL team
must be refused on Acknowledge, and the DSL's Acknowledge (Action.Execute) must update the
card for everyone and tell the reporter in their personal chat.

Needs `npm ci` at the repo root (@microsoft/m365agentsplayground) and node on PATH.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.server import Server, build_server
from bot.settings import Settings
from flows.profile import load_organisation
from scripts.playground_config import render, school_config
from tests.acceptance.playground import CARD_CONTENT_TYPE, Message, Playground, _free_port
from tests.cardcheck import card_texts
from tests.e2e import Clock

if not Playground.is_installed():
    pytest.skip(
        "node_modules/@microsoft/m365agentsplayground is missing: run npm ci at the repo root",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "profiles/buttsbury-junior.yaml"
SCHOOL = load_organisation(ROOT / PROFILE).school()
CONFIG = school_config(SCHOOL)
CHANNEL = SCHOOL.dsl_channel.channel_id
ME = CONFIG["currentUser"]
USERS = {u["name"]: u for u in CONFIG["users"]}
DSL = USERS[SCHOOL.dsl.name]
COLLEAGUE = next(u for u in CONFIG["users"] if not SCHOOL.is_dsl_team_member(u["aadObjectId"]))
MESSAGE_RESPONSE = "application/vnd.microsoft.activity.message"
STEP_TIMEOUT = 10.0

CHILD = "Amelia Testchild"
# The child's words, exactly as typed: quotes, a backslash, template braces, markdown,
# a newline and an emoji must all reach the DSL unchanged.
WORDS = 'He said "don\'t tell" \\ {{ secret }} **really**\nthen he hit me 👍🏽'
# Answers by step id. A question with a button for the answer gets the button pressed
# (Action.Submit with the button's data); otherwise the answer is typed.
ANSWERS = {
    "immediate_danger": "no",  # button
    "abuser_relationship": "family",  # typed (a choice list)
    "child_name": CHILD,
    "child_year": "Y4",
    "child_status": "none",  # button: no social worker, not looked after, no SEND
    "occurred_at": "now",  # the "Now" button
    "location": "the library",
    "people_present": "skip",  # the "Skip" button
    "words": WORDS,
    "observations": "bruise left forearm",
    "injury_seen": "no",  # button
    "going_home": "no",  # button
    "siblings": "no",  # button
    "what_you_did": "Listened and said I must tell the DSL",
    "dsl_told_in_person": "yes",  # button
}


def test_committed_playground_yml_matches_the_profile() -> None:
    """`make playground` uses playground.yml: it must be what the script makes today."""
    committed = (ROOT / "playground.yml").read_text()
    assert committed == render(SCHOOL, PROFILE), (
        f"playground.yml is stale: python scripts/playground_config.py {PROFILE} > playground.yml"
    )
    assert CONFIG["tenantId"] == SCHOOL.tenant_id
    # The reporter at the keyboard is in no DSL team: not the profile's, and not the
    # Playground team's (its members are the `users` list; the current user is apart).
    assert not SCHOOL.is_dsl_team_member(ME["aadObjectId"])
    assert ME["id"] not in {u["id"] for u in CONFIG["users"]}
    dsl = {p.aad_object_id for p in SCHOOL.dsl_team()}
    assert ME["aadObjectId"] not in dsl and ME["name"] not in {p.name for p in SCHOOL.dsl_team()}
    # The person to act as by default (scripts/playground_dsl.py) is the DSL.
    assert CONFIG["users"][0]["aadObjectId"] == SCHOOL.dsl.aad_object_id
    [channel] = CONFIG["team"]["channels"]
    assert channel["id"] == CHANNEL and "DSL only" in channel["name"]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Server, Playground]]:
    """Our bot on a loopback port and a playground (school mock data) pointed at it."""
    pg_port = _free_port()
    service_url = f"http://127.0.0.1:{pg_port}/_connector"
    server = build_server(
        Settings(data_dir=tmp_path),
        SCHOOL,
        clock=Clock(),  # Monday 10:00 in term time: no out-of-hours branches
        default_service_url=service_url,
        poll_seconds=0.05,
    )
    http = TestServer(server.app, host="127.0.0.1")
    await http.start_server()
    try:
        bot_url = str(http.make_url("/api/messages"))
        async with Playground(bot_url, port=pg_port, config=CONFIG) as pg:
            assert pg.service_url == service_url
            yield server, pg
    finally:
        await http.close()


# -- helpers ---------------------------------------------------------------------------


def _summary(m: Message) -> str:
    card = m.card or {}
    return (m.text or card.get("fallbackText") or str(card))[:200]


async def _next_bot_message(
    pg: Playground, seen: set[str], what: str, predicate: Any, *, conversation: str | None = None
) -> Message:
    try:
        return await pg.wait_for(
            lambda m: m.from_bot and m.id not in seen and predicate(m),
            STEP_TIMEOUT,
            conversation=conversation,
        )
    except TimeoutError:
        recent = [_summary(m) for m in pg.messages(from_bot=True)[-4:]]
        raise AssertionError(
            f"waited {STEP_TIMEOUT}s for the bot to send {what}; its last messages: {recent}"
        ) from None


def _actions(card: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every button on a card: the card's own and those in ActionSets in its body."""
    if not card:
        return []
    found = list(card.get("actions") or [])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("selectAction"), dict):
                found.append(node["selectAction"])  # a tappable box (long choice labels)
            if node.get("type") == "ActionSet":
                found.extend(node.get("actions") or [])
            for key, value in node.items():
                if key != "actions":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card.get("body") or [])
    return found


def _is_prompt(m: Message) -> bool:
    """A question card or the summary: something that waits for the reporter."""
    actions = _actions(m.card)
    return any((a.get("data") or {}).get("action") in {"answer", "confirm"} for a in actions)


def _step(m: Message) -> str:
    for action in _actions(m.card):
        data = action.get("data") or {}
        if data.get("action") == "confirm":
            return "summary"
        if data.get("action") == "answer":
            return data["step"]
    raise AssertionError(f"not a question card: {_summary(m)}")


def _button(m: Message, **match: str) -> dict[str, Any] | None:
    for action in _actions(m.card):
        data = action.get("data") or {}
        if action.get("type") == "Action.Submit" and all(
            data.get(k) == v for k, v in match.items()
        ):
            return data
    return None


def _text_runs(card: Any) -> list[str]:
    return card_texts(card, ("TextRun",))


def _text_blocks(card: dict[str, Any]) -> str:
    return "\n".join(card_texts(card, ("TextBlock",)))


def _updates_of(pg: Playground, message_id: str) -> list[dict[str, Any]]:
    """updateMessage events (the bot's PUTs) for one message, oldest first."""
    return [
        e["message"]
        for e in pg.events
        if e.get("action") == "updateMessage" and e["message"].get("messageId") == message_id
    ]


# -- the scenario ----------------------------------------------------------------------


async def test_disclosure_reaches_the_dsl_channel_and_the_acknowledgement_the_reporter(
    running: tuple[Server, Playground], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server, pg = running
    personal = pg.personal_chat_id
    seen: set[str] = set()

    def mark() -> None:
        seen.update(m.id for m in pg.messages())

    # 1. The member of staff types what happened; the bot suggests the disclosure flow.
    await pg.send_personal("a child told me her dad hits her")
    menu = await _next_bot_message(pg, seen, "the suggestions card", lambda m: m.card)
    assert menu.conversation_id == personal
    start = _button(menu, action="start", flow="disclosure")
    assert start, f"no disclosure suggestion: {_summary(menu)}"
    mark()
    await pg.submit(start, reply_to=menu.id)

    # 2. Every question: press the answer's button when the card has one, else type it.
    # A pressed card is replaced in place by the next question, so a prompt is new when
    # it asks a step not yet answered (answered cards lose their buttons).
    answered: list[str] = []
    while True:
        prompt = await pg.wait_for(
            lambda m: m.from_bot and _is_prompt(m) and _step(m) not in answered,
            STEP_TIMEOUT,
        )
        assert prompt.conversation_id == personal
        step = _step(prompt)
        mark()
        if step == "summary":
            break
        assert step not in answered, f"asked {step!r} again: {_summary(prompt)}"
        assert step in ANSWERS, f"unexpected question {step!r}: {_summary(prompt)}"
        answered.append(step)
        answer = ANSWERS[step]
        button = _button(prompt, action="answer", step=step, value=answer)
        if button:
            await pg.submit(button, reply_to=prompt.id)
        else:
            await pg.send_personal(answer)
    assert answered == list(ANSWERS)
    summary = prompt
    live = [m.id for m in pg.messages(personal, from_bot=True) if _actions(m.card)]
    assert live == [summary.id], "an answered card still has buttons"
    assert CHILD in _text_runs(summary.card)

    # 3. Send (the "Send now" button): saved first, then a NEW THREAD in the DSL channel.
    send = _button(summary, action="confirm")
    assert send, f"no Send button on the summary: {_summary(summary)}"
    await pg.submit(send, reply_to=summary.id)
    # ... the summary is replaced in place by what was done and "Saved. Sending ..."
    saved = await pg.wait_for(lambda m: m.id == summary.id and "Saved" in _summary(m))
    assert not _actions(saved.card), "the sent summary still has buttons"
    alert = await _next_bot_message(
        pg, seen, "the alert in the DSL channel", lambda m: m.card, conversation=CHANNEL
    )
    assert alert.conversation_id == f"{CHANNEL};messageid={alert.id}", "not a new thread"
    [posted] = [
        e
        for e in pg.events
        if e.get("action") == "createMessage" and e["message"]["messageId"] == alert.id
    ]
    assert posted["actionConversationId"] == CHANNEL
    assert alert.attachments[0]["contentType"] == CARD_CONTENT_TYPE
    runs = _text_runs(alert.card)
    assert CHILD in runs
    assert [line for line in WORDS.split("\n") if line in runs] == WORDS.split("\n"), runs
    delivered = await _next_bot_message(
        pg,
        seen,
        "'Delivered' to the reporter",
        lambda m: "Delivered" in (m.text or ""),
        conversation=personal,
    )
    assert "DSL team" in delivered.text
    mark()

    acknowledge = next(
        a
        for a in _actions(alert.card)
        if a.get("type") == "Action.Execute" and a.get("verb") == "acknowledge"
    )
    concern_id = acknowledge["data"]["concern_id"]
    queued = {o.id for o in await server.store.outbox_for_concern(concern_id)}

    # 4. A colleague outside the DSL team presses Acknowledge: refused, nothing changes.
    refused = await pg.execute(
        "acknowledge", acknowledge["data"], activity_id=alert.id, user=COLLEAGUE["id"]
    )
    assert refused["type"] == MESSAGE_RESPONSE, refused
    assert "Only the DSL team" in refused["value"]
    stored = await server.store.get_concern(concern_id)
    assert stored.acknowledged_by is None
    assert {o.id for o in await server.store.outbox_for_concern(concern_id)} == queued, (
        "a refused press queued something"
    )
    # No PUT of the card. (The playground itself copies a message response's text into
    # the clicked card, where Teams only shows a notice; the DSL's press replaces it.)
    assert _updates_of(pg, alert.id) == []

    # 5. The DSL presses Acknowledge (Action.Execute through the playground's invoke).
    response = await pg.execute(
        "acknowledge", acknowledge["data"], activity_id=alert.id, user=DSL["id"]
    )
    assert response["type"] == CARD_CONTENT_TYPE, response
    picked = f"Picked up by {SCHOOL.dsl.name}"
    assert picked in _text_blocks(response["value"])
    stored = await server.store.get_concern(concern_id)
    assert stored.acknowledged_by == SCHOOL.dsl.name
    # ... the card in the channel is updated for everyone (the outbox's PUT) ...
    updated = await _next_bot_message(
        pg,
        set(),
        "the updated alert card",
        lambda m: m.id == alert.id and bool(_updates_of(pg, alert.id)),
        conversation=CHANNEL,
    )
    assert picked in _text_blocks(_updates_of(pg, alert.id)[-1]["attachments"][0]["content"])
    assert picked in _text_blocks(updated.card)
    assert updated.conversation_id == alert.conversation_id
    # ... and the reporter hears in their personal chat, through the saved reference.
    told = await _next_bot_message(
        pg,
        seen,
        "'picked up' to the reporter",
        lambda m: f"picked up by {SCHOOL.dsl.name}" in (m.text or ""),
        conversation=personal,
    )
    assert told.conversation_id == personal
    # The colleague's refused press told the reporter nothing.
    picked_up = [
        m for m in pg.messages(personal, from_bot=True) if "picked up by" in (m.text or "")
    ]
    assert picked_up == [told]

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


async def _send_a_report(pg: Playground) -> None:
    """The walk above, without its checks: type, press the answer buttons, send."""
    await pg.send_personal("a child told me her dad hits her")
    menu = await pg.wait_for(lambda m: m.from_bot and bool(_button(m, flow="disclosure")))
    await pg.submit(_button(menu, flow="disclosure"), reply_to=menu.id)
    answered: list[str] = []
    while True:
        prompt = await pg.wait_for(
            lambda m: m.from_bot and _is_prompt(m) and _step(m) not in answered, STEP_TIMEOUT
        )
        step = _step(prompt)
        if step == "summary":
            return await pg.submit(_button(prompt, action="confirm"), reply_to=prompt.id)
        answered.append(step)
        button = _button(prompt, action="answer", step=step, value=ANSWERS[step])
        if button:
            await pg.submit(button, reply_to=prompt.id)
        else:
            await pg.send_personal(ANSWERS[step])


async def test_the_demo_helper_presses_acknowledge_as_the_dsl(
    running: tuple[Server, Playground],
) -> None:
    """`make playground` tells people to act as the DSL with scripts/playground_dsl.py: it
    must press the alert's button as Ann Robinson (from playground.yml) through the
    Playground, and the reporter must hear who picked it up."""
    _, pg = running
    helper = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "playground_dsl.py"),
        "--url", pg.base_url, "--press", "acknowledge", "--once",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert helper.stdout is not None
        first = await asyncio.wait_for(helper.stdout.readline(), 15)
        assert b"Watching the DSL channel" in first, first
        await _send_a_report(pg)
        told = await pg.wait_for_text(f"picked up by {SCHOOL.dsl.name}", 20)
        assert told.conversation_id == pg.personal_chat_id
        output = (await asyncio.wait_for(helper.stdout.read(), 10)).decode()
        assert await helper.wait() == 0, output
        assert f"as {SCHOOL.dsl.name}" in output
    finally:
        if helper.returncode is None:
            helper.terminate()
            await helper.wait()


def test_make_playground_says_how_to_act_as_the_dsl() -> None:
    shown = subprocess.run(
        ["make", "-n", "playground"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "scripts/playground_dsl.py" in shown and SCHOOL.dsl.name in shown
    readme = (ROOT / "README.md").read_text()
    assert "scripts/playground_dsl.py" in readme and "switch to" not in readme.lower()
