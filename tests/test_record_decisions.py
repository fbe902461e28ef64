# The DSL's decisions over HTTP (issue 9 s1): each requires its fields, lands in the record and
# the audit log in one go, updates the card for everyone, tells the reporter without detail.
from __future__ import annotations

import json

import pytest

from bot.services.decisions import DECISIONS, decisions_for
from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import ALERT_UPDATES, CARD, DSL, HEAD, OUTSIDER, REPORTER, RunningBot
from tests.recordkit import alert_posts, filled, press, typed
from tests.test_e2e import WALKS, WORDS, report

MESSAGE = "application/vnd.microsoft.activity.message"
TEAMS_LIMIT = 28_000  # bytes of one message Teams accepts, about
DSL_VERBS = [d.verb for d in decisions_for("dsl_team")] + ["add_note", "close"]
ALLEGATION_VERBS = [d.verb for d in decisions_for("headteacher")] + ["add_note", "close"]


async def _state(bot: RunningBot, concern_id: str) -> tuple:
    store = bot.server.store
    stored = await store.get_concern(concern_id)
    actions = [e.action for e in await store.audit_entries(concern_id)]
    return stored.status, len(await store.record_entries(concern_id)), actions


def _concern_id(bot: RunningBot, chat_of=None) -> str:
    from tests.e2e import concern_of

    return concern_of(alert_posts(bot, chat_of)[0][2])


async def _decide_and_check(bot: RunningBot, verb: str, user, chat_of=None) -> None:
    decision = DECISIONS[verb]
    concern_id = _concern_id(bot, chat_of)
    before = await _state(bot, concern_id)
    told_before = bot.texts_to(REPORTER)
    updates_before = len(bot.connector.requests_to(ALERT_UPDATES, "PUT"))

    # Without its fields: refused with a clear message, shown only to the presser.
    status, body = await press(bot, verb, user=user, chat_of=chat_of)
    assert status == 200 and body["type"] == MESSAGE, body
    assert "fill in" in body["value"] and "Nothing was changed" in body["value"]
    for f in decision.fields:
        if f.required:
            assert f.label in body["value"]
    await bot.settle()
    assert await _state(bot, concern_id) == before
    assert len(bot.connector.requests_to(ALERT_UPDATES, "PUT")) == updates_before
    assert bot.texts_to(REPORTER) == told_before

    # With them: one record entry, one audit line (ids only), the card for everyone.
    values = filled(decision)
    status, body = await press(bot, verb, user=user, values=values, chat_of=chat_of)
    assert status == 200 and body["type"] == CARD, body
    await bot.settle()
    store = bot.server.store
    [entry] = [e for e in await store.record_entries(concern_id) if e.kind == verb]
    assert entry.actor_aad_id == user.aad and entry.actor_name == user.name
    assert set(entry.fields) >= {f.id for f in decision.fields if f.required}
    for text in typed(decision, values):
        assert text in entry.fields.values()
    audit = [e for e in await store.audit_entries(concern_id) if e.action == decision.audit]
    assert len(audit) == 1 and audit[0].id == entry.audit_id
    assert not any(t in json.dumps(audit[0].detail) for t in typed(decision, values))
    updates = bot.connector.requests_to(ALERT_UPDATES, "PUT")
    assert len(updates) > updates_before, "the card was not updated for everyone"
    card = updates[-1].json["attachments"][0]["content"]
    shown = "\n".join(card_texts(card))
    for text in typed(decision, values):
        assert text in shown, "the record's entry is not on the card"
    if verb not in {"add_note"}:
        assert decision.entry in shown
    assert_valid_cards([card, body["value"]])
    # The reporter: told that someone acted (not for a note), never what or why.
    told = bot.texts_to(REPORTER)[len(told_before) :]
    if decision.tells_reporter:
        assert "Update on your report" in told
    else:
        assert "Update on your report" not in told
    for text in typed(decision, values):
        assert text not in told
    for word in ("social care", "police", "LADO", "early help", "parents", "low-level"):
        assert word.lower() not in told.lower()
    if verb == "close":
        assert (await store.get_concern(concern_id)).status == "closed"
        assert "actions" not in card


@pytest.mark.parametrize("verb", DSL_VERBS)
async def test_each_dsl_decision_requires_its_fields_and_lands_in_the_record(
    bot: RunningBot, verb: str
):
    await report(bot, "disclosure", WALKS["disclosure"])
    await _decide_and_check(bot, verb, DSL)


@pytest.mark.parametrize("verb", ALLEGATION_VERBS)
async def test_each_allegation_decision_is_the_case_managers_and_lands_in_the_record(
    bot: RunningBot, verb: str
):
    await report(bot, "allegation", WALKS["allegation"])
    # The DSL is not the case manager: refused, nothing changed.
    concern_id = _concern_id(bot, HEAD)
    before = await _state(bot, concern_id)
    status, body = await press(bot, verb, user=DSL, chat_of=HEAD, values=filled(DECISIONS[verb]))
    assert status == 200
    assert body["type"] == MESSAGE and "Only the case manager" in body["value"]
    assert (await _state(bot, concern_id))[:2] == before[:2]
    await _decide_and_check(bot, verb, HEAD, chat_of=HEAD)


async def test_record_a_decision_opens_each_routes_decisions_for_the_presser_only(
    bot: RunningBot,
):
    await report(bot, "disclosure", WALKS["disclosure"])
    await report(bot, "allegation", WALKS["allegation"])
    await bot.settle()
    updates = len(bot.connector.requests_to(ALERT_UPDATES, "PUT"))
    status, body = await press(bot, "decision_form", user=DSL)
    assert status == 200 and body["type"] == CARD
    dsl_form = json.dumps(body["value"])
    status, body = await press(bot, "decision_form", user=HEAD, chat_of=HEAD)
    assert status == 200 and body["type"] == CARD
    head_form = json.dumps(body["value"])
    assert_valid_cards([json.loads(dsl_form), json.loads(head_form)])
    for verb in DSL_VERBS[:-2]:
        assert f'"verb": "{verb}"' in dsl_form
    for verb in ALLEGATION_VERBS[:-2]:
        assert f'"verb": "{verb}"' in head_form
    assert '"verb": "referred_lado"' not in dsl_form
    assert '"verb": "no_further_action"' not in head_form
    # Opening the form changes nothing and updates no one else's card; a colleague is refused.
    await bot.settle()
    assert len(bot.connector.requests_to(ALERT_UPDATES, "PUT")) == updates
    status, body = await press(bot, "decision_form", user=OUTSIDER)
    assert body["type"] == MESSAGE and "Only the DSL team" in body["value"]
    # Back to the alert, as it stands.
    status, body = await press(bot, "show_alert", user=DSL)
    assert body["type"] == CARD and "Record a decision" in json.dumps(body["value"])
    # A decision of the other route, sent anyway, is refused at the server.
    values = filled(DECISIONS["no_further_action"])
    status, body = await press(bot, "no_further_action", user=HEAD, chat_of=HEAD, values=values)
    assert status == 200
    assert body["type"] == MESSAGE and "not a decision for this kind" in body["value"]


async def test_the_alert_stays_under_teams_size_limit_however_long_the_record(
    bot: RunningBot,
):
    from bot.teams.cards import card_bytes

    long_words = "".join(f"line {i}: she said it again and again.\n" for i in range(600))
    answers = list(WALKS["disclosure"])
    answers[answers.index(WORDS)] = long_words
    await report(bot, "disclosure", answers)
    reason = "Because " + "x" * 1990
    for n in range(8):
        values = {"no_further_action:outcome": "Monitor in school"}
        values["no_further_action:reason"] = f"{n} {reason}"[:2000]
        status, body = await press(bot, "no_further_action", user=DSL, values=values)
        assert status == 200 and body["type"] == CARD, body
    await bot.settle()
    cards = [r.json for r in bot.connector.requests_to(ALERT_UPDATES, "PUT")]
    # Teams refuses a message over about 28 KB. (The alert of such long words is already
    # at MAX_CARD_BYTES without any record: the record must not add more than its newest.)
    assert cards and all(card_bytes(c) < TEAMS_LIMIT for c in cards)
    last = "\n".join(card_texts(cards[-1]["attachments"][0]["content"]))
    assert "not shown here (card size)" in last and "cut here on the card" in last
    assert "7 Because" in last  # the newest entry is the one kept
    entries = await bot.server.store.record_entries(_concern_id(bot))
    assert len(entries) == 8 and all(len(e.fields["reason"]) == 2000 for e in entries[1:])


async def test_a_close_without_an_outcome_changes_nothing_and_a_colleague_cannot_close(
    bot: RunningBot,
):
    await report(bot, "disclosure", WALKS["disclosure"])
    concern_id = _concern_id(bot)
    status, body = await press(bot, "close", user=DSL, values={"close:outcome": "   "})
    assert status == 200
    assert body["type"] == MESSAGE and "Outcome" in body["value"]
    assert (await bot.server.store.get_concern(concern_id)).status == "raised"
    values = filled(DECISIONS["close"])
    status, body = await press(bot, "close", user=OUTSIDER, values=values)
    assert status == 200
    assert body["type"] == MESSAGE and "Only the DSL team" in body["value"]
    assert (await bot.server.store.get_concern(concern_id)).status == "raised"
    assert await bot.server.store.record_entries(concern_id) == []


async def test_parents_not_informed_needs_the_reason_why_not(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    concern_id = _concern_id(bot)
    no_reason = {"parents_informed:informed": "No - not informed"}
    status, body = await press(bot, "parents_informed", user=DSL, values=no_reason)
    assert status == 200
    assert body["type"] == MESSAGE and "Why not" in body["value"]
    informed = {"parents_informed:informed": "Yes - informed"}
    status, body = await press(bot, "parents_informed", user=DSL, values=informed)
    assert status == 200
    assert body["type"] == CARD
    [entry] = await bot.server.store.record_entries(concern_id)
    assert entry.fields == {"informed": "Yes - informed"}


async def test_an_acknowledgement_is_a_record_entry_too(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    concern_id = _concern_id(bot)
    status, body = await press(bot, "acknowledge", user=DSL)
    assert status == 200
    assert body["type"] == CARD
    [entry] = await bot.server.store.record_entries(concern_id)
    assert (entry.kind, entry.actor_name) == ("acknowledge", DSL.name)


async def test_decisions_never_put_what_was_typed_in_the_logs(bot: RunningBot, caplog):
    caplog.set_level("DEBUG")
    await report(bot, "disclosure", WALKS["disclosure"])
    values = filled(DECISIONS["no_further_action"])
    await press(bot, "no_further_action", user=DSL, values=values)
    await bot.settle()
    for text in typed(DECISIONS["no_further_action"], values):
        assert text not in caplog.text
    assert "record entry" in caplog.text


async def test_what_the_dsl_typed_is_sealed_at_rest(bot: RunningBot):
    from tests.test_at_rest import raw_bytes

    await report(bot, "disclosure", WALKS["disclosure"])
    values = filled(DECISIONS["referred_social_care"])
    values["referred_social_care:social_worker"] = "Priya Socialworker"
    status, body = await press(bot, "referred_social_care", user=DSL, values=values)
    assert status == 200 and body["type"] == CARD
    await bot.settle()
    [entry] = await bot.server.store.record_entries(_concern_id(bot))
    assert entry.fields["social_worker"] == "Priya Socialworker"  # stored, and read back
    on_disk = raw_bytes(bot.data_dir)
    for secret in ("Priya Socialworker", "referred_social_care reference"):
        assert secret.encode() not in on_disk, secret


async def test_older_clients_action_submit_decides_the_same_way(bot: RunningBot):
    from tests.e2e import CHANNEL, TENANT, concern_of

    await report(bot, "disclosure", WALKS["disclosure"])
    conversation, root, card = alert_posts(bot)[0]
    concern_id = concern_of(card)

    def submit(values: dict) -> dict:
        activity = bot.base(
            DSL,
            {"id": conversation.id, "conversationType": "channel", "tenantId": TENANT},
            type="message",
            replyToId=root,
            value={"verb": "close", "concern_id": concern_id, **values},
        )
        activity["channelData"].update({"channel": {"id": CHANNEL}})
        return activity

    before = len(bot.connector.sent_activities(conversation.id))
    status, _ = await bot.post(submit({}))
    assert status in (200, 201)
    said = bot.connector.sent_activities(conversation.id)[before:]
    assert any("Outcome" in (a.get("text") or "") for a in said)
    assert (await bot.server.store.get_concern(concern_id)).status == "raised"
    status, _ = await bot.post(submit({"close:outcome": "Spoke to mum; monitoring ended"}))
    assert status in (200, 201)
    await bot.settle()
    assert (await bot.server.store.get_concern(concern_id)).status == "closed"
    [entry] = await bot.server.store.record_entries(concern_id)
    assert entry.fields == {"outcome": "Spoke to mum; monitoring ended"}


async def test_each_decision_is_in_the_exported_record_once_with_its_reasons(bot: RunningBot):
    from bot.records.export import records_json
    from bot.records.service import RecordsService
    from tests.e2e import SCHOOL

    await report(bot, "disclosure", WALKS["disclosure"])
    for verb in ("acknowledge", "referred_social_care", "add_note", "parents_informed"):
        status, body = await press(bot, verb, user=DSL, values=filled(DECISIONS[verb]))
        assert status == 200 and body["type"] == CARD, body
    store = bot.server.store
    stored = await store.get_concern(_concern_id(bot))
    service = RecordsService(SCHOOL, store, bot.clock)
    timeline = json.loads(records_json([await service.record(stored, DSL.name)]))
    text = json.dumps(timeline, ensure_ascii=False)
    assert text.count("Referred to children's social care") == 1
    assert text.count("add_note note") == 1  # the note once, not twice
    assert "How was the referral made: In person" in text
    assert "Why not: parents_informed why_not" in text
