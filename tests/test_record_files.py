# The record delivered the Teams way (issue 9 s3): `record <ref>` in the DSL's 1:1 chat gives
# a file consent card; accepting uploads the bytes (HTTP PUT) to the URL Teams gives, once,
# and only for the person who asked; declining sends nothing. Transfer is recorded (s4).
from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from pypdf import PdfReader

from bot.records.requests import ALREADY, NOT_YOURS, REFUSED_ACCEPT
from bot.teams.files import FILE_CONSENT, FILE_INFO, upload_url_allowed
from tests.cardcheck import assert_valid_cards
from tests.e2e import CARD, DSL, HEAD, OUTSIDER, SCHOOL, RunningBot, User
from tests.test_e2e import CHILD, WALKS, report


async def concern_id(bot: RunningBot) -> str:
    assert bot.server is not None
    [stored] = await bot.server.store.list_open_concerns(SCHOOL.id)
    return stored.id


async def say(bot: RunningBot, user: User, text: str) -> list[dict[str, Any]]:
    before = len(bot.replies_to(user))
    await bot.say(text, user=user)
    return bot.replies_to(user)[before:]


def consent_in(sent: list[dict[str, Any]]) -> dict[str, Any]:
    cards = [
        a for s in sent for a in s.get("attachments") or [] if a["contentType"] == FILE_CONSENT
    ]
    assert len(cards) == 1, sent
    return cards[0]


async def answer(
    bot: RunningBot, user: User, action: str, context: dict[str, Any], name: str = "f.pdf"
) -> tuple[int, list[dict[str, Any]]]:
    before = len(bot.replies_to(user))
    info = {
        "contentUrl": f"https://onedrive.example/{name}",
        "name": name,
        "uploadUrl": bot.connector.upload_url(name),
        "uniqueId": "unique-1",
        "fileType": name.rsplit(".", 1)[-1],
    }
    activity = bot.base(
        user,
        bot.personal(user),
        type="invoke",
        name="fileConsent/invoke",
        value={"type": "fileUpload", "action": action, "context": context, "uploadInfo": info},
    )
    status, _ = await bot.post(activity)
    return status, bot.replies_to(user)[before:]


def texts(sent: list[dict[str, Any]]) -> str:
    return " ".join(s.get("text") or "" for s in sent)


async def test_the_dsl_gets_the_pdf_through_a_file_consent_card_once(bot: RunningBot, caplog):
    caplog.set_level(logging.DEBUG)
    await report(bot, "disclosure", WALKS["disclosure"])
    cid = await concern_id(bot)

    offered = consent_in(await say(bot, DSL, f"record {cid[:8].upper()}"))

    assert offered["name"] == f"safeguarding-record-{cid[:8].upper()}.pdf"
    assert CHILD.split()[0] not in offered["name"]
    card = offered["content"]
    assert card["sizeInBytes"] > 1000 and card["acceptContext"]["by"] == DSL.aad
    assert bot.connector.uploads == []  # nothing leaves before the DSL accepts

    status, sent = await answer(bot, DSL, "accept", card["acceptContext"], offered["name"])

    assert status == 200
    [(_name, data)] = bot.connector.uploads
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert "{{ secret }}" in text and "**really**" in text and CHILD in text
    [info] = [a for s in sent for a in s.get("attachments") or [] if a["contentType"] == FILE_INFO]
    assert info["contentUrl"].startswith("https://onedrive.example/")
    assert info["content"]["uniqueId"] == "unique-1"
    entries = await bot.server.store.audit_entries(cid)
    delivered = [e for e in entries if e.action == "record_delivered"]
    assert [e.actor_aad_id for e in delivered] == [DSL.aad]
    assert delivered[0].detail["bytes"] == len(data)

    # The same consent answered again (a second tap, a replay): nothing more is uploaded.
    status, sent = await answer(bot, DSL, "accept", card["acceptContext"], offered["name"])
    assert status == 200 and len(bot.connector.uploads) == 1
    assert ALREADY.split(".")[0] in texts(sent)
    # Never a name or a word of the child's in the logs.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert CHILD not in logged and "secret" not in logged


async def test_no_one_but_the_dsl_who_asked_gets_the_file(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    cid = await concern_id(bot)

    refused = await say(bot, OUTSIDER, f"record {cid[:8]}")
    assert NOT_YOURS in texts(refused)
    assert not [a for s in refused for a in s.get("attachments") or []]
    # A colleague who replays the DSL's consent answer gets nothing.
    offered = consent_in(await say(bot, DSL, f"record {cid[:8]}"))
    status, sent = await answer(bot, OUTSIDER, "accept", offered["content"]["acceptContext"])
    assert status == 200 and REFUSED_ACCEPT in texts(sent)
    assert bot.connector.uploads == []
    entries = await bot.server.store.audit_entries(cid)
    assert "record_refused" in {e.action for e in entries}


async def test_declining_sends_nothing_and_the_offer_cannot_be_accepted_later(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    cid = await concern_id(bot)
    offered = consent_in(await say(bot, DSL, f"record {cid[:8]} csv"))
    assert offered["name"].endswith(".csv")

    status, sent = await answer(bot, DSL, "decline", offered["content"]["declineContext"])
    assert status == 200 and "No file was sent" in texts(sent)
    status, _ = await answer(bot, DSL, "accept", offered["content"]["acceptContext"])
    assert bot.connector.uploads == []
    assert "record_declined" in {e.action for e in await bot.server.store.audit_entries(cid)}


async def test_a_failed_upload_says_so_and_can_be_asked_again(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    cid = await concern_id(bot)
    offered = consent_in(await say(bot, DSL, f"record {cid[:8]} json"))
    bot.connector.fail_next(r"^/upload/", [500])

    _, sent = await answer(bot, DSL, "accept", offered["content"]["acceptContext"], "r.json")
    assert "did not reach your OneDrive" in texts(sent)
    assert "record_delivered" not in {e.action for e in await bot.server.store.audit_entries(cid)}

    offered = consent_in(await say(bot, DSL, f"record {cid[:8]} json"))
    await answer(bot, DSL, "accept", offered["content"]["acceptContext"], "r.json")
    assert len(bot.connector.uploads) == 1


async def test_an_allegations_record_goes_only_to_its_case_manager(bot: RunningBot):
    await report(bot, "allegation", WALKS["allegation"])
    assert bot.server is not None
    [stored] = [
        s
        for s in await bot.server.store.list_open_concerns(SCHOOL.id)
        if s.concern.routing.route != "dsl_team"
    ]
    ref = stored.id[:8]
    assert NOT_YOURS in texts(await say(bot, DSL, f"record {ref}"))
    offered = consent_in(await say(bot, HEAD, f"record {ref}"))
    await answer(bot, HEAD, "accept", offered["content"]["acceptContext"])
    assert len(bot.connector.uploads) == 1


async def test_transfer_sends_the_chronology_and_is_written_on_the_record(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    cid = await concern_id(bot)

    offered = consent_in(await say(bot, DSL, f"transfer {cid[:8]} to Kings Road Primary"))
    assert offered["name"].startswith("child-protection-transfer-")
    await answer(bot, DSL, "accept", offered["content"]["acceptContext"])

    [(_, data)] = bot.connector.uploads
    text = " ".join("".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())
    assert "Kings Road Primary" in text and "5 school days" in text
    entries = await bot.server.store.audit_entries(cid)
    assert [e.action for e in entries].count("record_transferred") == 1
    stored = await bot.server.store.get_concern(cid)
    assert any("Kings Road Primary" in n.value for n in stored.concern.notes)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://contoso-my.sharepoint.com/personal/x/upload?x=1", True),
        ("http://127.0.0.1:1234/upload/x", True),
        ("http://localhost:1234/upload/x", True),
        ("http://contoso.example/upload", False),
        ("ftp://contoso.example/upload", False),
        ("", False),
        (None, False),
    ],
)
def test_records_are_uploaded_only_over_https(url, allowed):
    assert upload_url_allowed(url) is allowed


async def test_record_alone_lists_what_this_person_may_have_with_a_button_each(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    cid = await concern_id(bot)

    sent = await say(bot, DSL, "record")
    [card] = [
        a["content"] for s in sent for a in s.get("attachments") or [] if a["contentType"] == CARD
    ]
    assert cid[:8].upper() in str(card)
    assert_valid_cards([card])
    before = len(bot.replies_to(DSL))
    await bot.post(bot.message(value={"action": "record_file", "concern_id": cid}, user=DSL))
    consent_in(bot.replies_to(DSL)[before:])
    # A colleague sees no list, and pressing a copied button gets nothing.
    assert "no open concerns" in texts(await say(bot, OUTSIDER, "record"))
    before = len(bot.replies_to(OUTSIDER))
    await bot.post(bot.message(value={"action": "record_file", "concern_id": cid}, user=OUTSIDER))
    assert NOT_YOURS in texts(bot.replies_to(OUTSIDER)[before:])


@pytest.mark.parametrize(
    "value",
    [
        {"action": "steal"},
        "accept",
        {"action": "accept", "context": "x"},
        {"action": "accept", "uploadInfo": {"uploadUrl": 5}},
    ],
)
async def test_a_malformed_file_consent_answer_is_refused_at_the_edge(bot: RunningBot, value):
    activity = bot.base(
        DSL, bot.personal(DSL), type="invoke", name="fileConsent/invoke", value=value
    )
    status, _ = await bot.post(activity)
    assert status == 400
    assert bot.connector.uploads == []
