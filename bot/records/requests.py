"""Asking for a record in chat: `record <ref>` (and `json` / `csv`), `transfer <ref> to <school>`.

Teams-neutral: what was asked, whether this person may have it, the file to offer, and what
to audit when the file is accepted, delivered or declined (bot/teams/files.py does the Teams
part). The reply to someone who may not have a record never says whether it exists.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.records.record import short_reference
from bot.records.service import RecordFile, RecordsService
from bot.teams.cards import card, heading, submit, verbatim
from flows.concern import Action

logger = logging.getLogger(__name__)

IN_PROGRESS = {"flow", "summary", "confirm_cancel"}  # a report is being answered

_RECORD = re.compile(
    r"^\s*(?:record|export)\s+([0-9a-f]{6,8}|[0-9a-f-]{36})(?:\s+(pdf|json|csv))?\s*$", re.I
)
_TRANSFER = re.compile(
    r"^\s*transfer\s+([0-9a-f]{6,8}|[0-9a-f-]{36})\s+to\s+(\S.{0,119}?)\s*$", re.I
)
NOT_YOURS = (
    "I cannot find a record with that reference that you may have. A concern's record goes "
    "only to the DSL team, and an allegation's only to its case manager. The reference is the "
    "8 characters shown on the alert (e.g. record 3F2A9C1B)."
)
NOT_HERE = "Ask me in our 1:1 chat: I send files only there, never in a channel or group chat."
FAILED = "The file did not reach your OneDrive (nothing was saved there). Ask again: record {ref}."
REFUSED_ACCEPT = "That file was offered to someone else. Nothing was sent."
ALREADY = "That file was already sent (or declined). Ask again for a fresh copy: record {ref}."


@dataclass(frozen=True)
class RecordAsk:
    reference: str
    fmt: str = "pdf"
    transfer_to: str | None = None


LIST = "list"  # `record` alone: the concerns whose record this person may have
MAX_LISTED = 15


def record_command(
    text: str | None, value: Mapping[str, Any] | None = None, mode: str | None = None
) -> RecordAsk | None:
    """What was asked for, or None when the message is not about records. `record` alone is
    a command only when no report is in progress (it could be someone's answer)."""
    if value:
        if value.get("action") == "record_file" and value.get("concern_id"):
            return RecordAsk(str(value["concern_id"]), str(value.get("format") or "pdf"))
        return None
    said = text or ""
    if said.strip().lower() in {"record", "records"} and mode not in IN_PROGRESS:
        return RecordAsk(LIST)
    found = _RECORD.match(said)
    if found:
        return RecordAsk(found.group(1), (found.group(2) or "pdf").lower())
    found = _TRANSFER.match(said)
    if found:
        return RecordAsk(found.group(1), "pdf", found.group(2))
    return None


@dataclass(frozen=True)
class Offer:
    """A file to offer: its name, size, what the card says, and the context Teams returns."""

    file: RecordFile
    description: str
    context: dict[str, str]


class RecordRequests:
    def __init__(self, service: RecordsService) -> None:
        self.service = service
        self.store = service.store

    async def offer(self, ask: RecordAsk, aad: str | None) -> Offer | str | dict[str, Any]:
        """The file to offer; a refusal (text); or, for `record` alone, a card listing the
        open concerns whose record this person may have, each with its button."""
        if ask.reference == LIST:
            return await self.listing(aad)
        stored = await self.service.find(ask.reference, aad)
        if stored is None:
            await self.store.audit(aad, "record_refused", None, {"format": ask.fmt})
            logger.warning("record refused format=%s", ask.fmt)
            return NOT_YOURS
        concerns = [stored]
        if ask.transfer_to is not None:
            concerns = await self.service.chronology(stored, aad)
        made = await self.service.file(concerns, ask.fmt, aad, transfer_to=ask.transfer_to)
        ref = short_reference(stored.id)
        if ask.transfer_to is not None:
            description = (
                f"Child protection file for transfer ({len(concerns)} concern(s)). Confidential: "
                "send it to the new school's DSL separately from the pupil file."
            )
        else:
            description = f"Safeguarding record {ref} ({ask.fmt.upper()}). Confidential."
        context = {
            "kind": "transfer" if ask.transfer_to is not None else "record",
            "request": uuid.uuid4().hex,
            "concern_id": stored.id,
            "format": ask.fmt,
            "by": aad or "",
        }
        if ask.transfer_to is not None:
            context["to"] = ask.transfer_to
        await self.store.audit(
            aad, "record_offered", stored.id, {"format": ask.fmt, "request": context["request"]}
        )
        return Offer(made, description, context)

    async def listing(self, aad: str | None) -> dict[str, Any] | str:
        found = [
            s
            for school in self.service.schools.schools
            for s in await self.store.list_open_concerns(school.id)
            if self.service.may_have(s, aad)
        ]
        if not found:
            return (
                "There are no open concerns whose record you may have. For a closed one, type "
                "record and its reference (the 8 characters on the alert)."
            )
        body: list[dict[str, Any]] = [heading("Records you can have (open concerns, newest first)")]
        for stored in sorted(found, key=lambda s: s.created_at, reverse=True)[:MAX_LISTED]:
            ref = short_reference(stored.id)
            school = self.service.school_of(stored)
            raised = stored.created_at.astimezone(school.timezone).strftime("%a %d %b %H:%M")
            items: list[dict[str, Any]] = [heading(f"{stored.concern.title} - {ref}")]
            if self.service.schools.single is None:
                items.append({"type": "TextBlock", "text": school.name, "wrap": True})
            items.append({"type": "TextBlock", "text": f"Raised {raised}", "wrap": True})
            if stored.concern.child_name:
                items += verbatim(stored.concern.child_name)
            items.append(
                {
                    "type": "ActionSet",
                    "actions": [
                        submit(
                            "PDF for the file", {"action": "record_file", "concern_id": stored.id}
                        ),
                        submit(
                            "JSON",
                            {"action": "record_file", "concern_id": stored.id, "format": "json"},
                        ),
                        submit(
                            "CSV",
                            {"action": "record_file", "concern_id": stored.id, "format": "csv"},
                        ),
                    ],
                }
            )
            body.append({"type": "Container", "separator": True, "items": items})
        body.append(
            {
                "type": "TextBlock",
                "text": "For a closed concern: record and its reference. For a child moving "
                "school: transfer and the reference, then 'to' and the new school.",
                "wrap": True,
                "isSubtle": True,
            }
        )
        return card(body)

    async def accepted(self, context: Mapping[str, Any], aad: str | None) -> RecordFile | str:
        """The file to upload now - or why not. Only the person it was offered to, only if
        they still may have it, and only once per offer."""
        concern_id = str(context.get("concern_id") or "")
        request = str(context.get("request") or "")
        if not aad or not request or str(context.get("by") or "").lower() != aad.lower():
            await self.store.audit(aad, "record_refused", concern_id or None, {"why": "not_asker"})
            logger.warning("record file accept refused: not the person it was offered to")
            return REFUSED_ACCEPT
        stored = await self.store.get_concern(concern_id)
        if stored is None or not self.service.may_have(stored, aad):
            await self.store.audit(
                aad, "record_refused", concern_id or None, {"why": "not_allowed"}
            )
            return NOT_YOURS
        ref = short_reference(stored.id)
        if not await self.store.first_milestone(concern_id, f"file:{request}"):
            return ALREADY.format(ref=ref)
        fmt = str(context.get("format") or "pdf")
        transfer_to = context.get("to") if context.get("kind") == "transfer" else None
        concerns = [stored]
        if transfer_to is not None:
            concerns = await self.service.chronology(stored, aad)
        return await self.service.file(concerns, fmt, aad, transfer_to=transfer_to)

    async def delivered(self, context: Mapping[str, Any], aad: str, made: RecordFile) -> str:
        """Audit the delivery; a transfer is also written on each concern's record."""
        detail = {
            "format": str(context.get("format") or "pdf"),
            "request": str(context.get("request") or ""),
            "bytes": len(made.data),
            "sha256": made.sha256,
        }
        ref = short_reference(str(context.get("concern_id") or ""))
        if context.get("kind") != "transfer":
            await self.store.audit(aad, "record_delivered", str(context["concern_id"]), detail)
            logger.info("record file delivered request=%s", detail["request"])
            return (
                f"Here is the record {ref}, saved in your OneDrive. Keep it with the child's file."
            )
        now = self.service.clock()
        name = self.service.name_of(aad)
        to = str(context.get("to") or "")
        for concern_id in made.concern_ids:
            await self.store.audit(
                aad, "record_transferred", concern_id, {**detail, "concerns": len(made.concern_ids)}
            )
            stored = await self.store.get_concern(concern_id)
            if stored is not None:
                concern = stored.concern
                concern.notes.append(
                    Action(
                        name,
                        f"Child protection file ({len(made.concern_ids)} concern(s)) made for "
                        f"transfer to {to}; to be sent to their DSL and receipt confirmed.",
                        now.isoformat(),
                    )
                )
                await self.store.save_concern(concern, status=stored.status, at=now)
        logger.info(
            "record transfer delivered request=%s concerns=%d",
            detail["request"],
            len(made.concern_ids),
        )
        return (
            f"Here is the child protection file for {to}, saved in your OneDrive "
            f"({len(made.concern_ids)} concern(s)). Send it to their DSL within 5 school days, "
            "separately from the main pupil file, and get confirmation that it arrived. The "
            "transfer is written on the record."
        )

    async def declined(self, context: Mapping[str, Any], aad: str | None) -> str:
        concern_id = str(context.get("concern_id") or "") or None
        request = str(context.get("request") or "")
        if concern_id and request:
            await self.store.first_milestone(concern_id, f"file:{request}")  # never later
        await self.store.audit(aad, "record_declined", concern_id, {"request": request})
        return "No file was sent. Ask again any time: record and the reference."

    @staticmethod
    def failed(context: Mapping[str, Any]) -> str:
        return FAILED.format(ref=short_reference(str(context.get("concern_id") or "")))
