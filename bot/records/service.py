"""Who may have a concern's record, and the record files: one concern, or a child's chronology.

The DSL team has the records of concerns sent to the DSL team; an allegation's record goes
only to the case managers it was sent to (never the DSL team, never its subject). Every file
made is audited (ids, format, size and checksum - never what it says).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.records.export import records_csv, records_json
from bot.records.pdf import PDF, record_pdf
from bot.records.record import Record, build_record, short_reference
from bot.store import Store, StoredConcern
from flows.directory import SchoolDirectory
from flows.routing import named_people, recipients

logger = logging.getLogger(__name__)

# Laying out a PDF takes a CPU for up to a second or so: one at a time, off the event loop,
# so chat turns (and the outbox, on its own loop) never wait for it.
_PDF_MAKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record-pdf")

# KCSIE part 2 (within 5 days of an in-year move, or the first 5 days of a new term) and the
# seed policies' records sections ("Confidential", for the receiving DSL, proof of receipt).
TRANSFER_RULE = (
    "Send within 5 school days of the move (an in-year move), or within the first 5 days of "
    "the new term; separately from the main pupil file, marked Confidential, for the receiving "
    "school's DSL. Get evidence that it was received, then destroy any copies held here."
)
FORMATS = {
    "pdf": PDF,
    "json": "application/json",
    "csv": "text/csv",
}


@dataclass(frozen=True)
class RecordFile:
    """A file ready to hand over: its name never carries a child's name (file names show up
    in OneDrive, notifications and recent-file lists)."""

    name: str
    content_type: str
    data: bytes
    concern_ids: tuple[str, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class RecordsService:
    def __init__(self, schools: Any, store: Store, clock: Callable[[], datetime]) -> None:
        # Every school served (one, or a trust's): a concern's record follows its own school.
        self.schools = SchoolDirectory.of(schools)
        self.store = store
        self.clock = clock

    # -- who may have it -------------------------------------------------------------------

    def may_have(self, stored: StoredConcern, aad_object_id: str | None) -> bool:
        """The concern's own school's DSL team (and its trust's safeguarding leads) for DSL
        concerns; for an allegation, only the case managers it went to (a LADO-route
        allegation - conflict of interest - has no one in school)."""
        school = self.schools.find(stored.concern.school_id)
        if not aad_object_id or school is None or stored.status == "draft":
            return False
        if stored.concern.routing.route == "dsl_team":
            return school.is_dsl_team_member(aad_object_id) or self.schools.is_trust_lead(
                aad_object_id, school.id
            )
        wanted = aad_object_id.strip().lower()
        if wanted in {s.lower() for s in stored.concern.subject_ids}:
            return False
        return any(p.aad_object_id.lower() == wanted for p in recipients(school, stored.concern))

    async def find(self, reference: str, aad_object_id: str | None) -> StoredConcern | None:
        """The concern this person may have, by its full id or its short reference."""
        reference = reference.strip()
        stored = await self.store.get_concern(reference) if reference else None
        found = [stored] if stored else []
        if not found:
            for school in self.schools.schools:
                found += await self.store.concerns_by_reference(school.id, reference)
        allowed = [s for s in found if self.may_have(s, aad_object_id)]
        return allowed[0] if len(allowed) == 1 else None

    def school_of(self, stored: StoredConcern) -> Any:
        return self.schools.get(stored.concern.school_id)

    def name_of(self, aad_object_id: str | None) -> str:
        wanted = (aad_object_id or "").lower()
        for school in self.schools.schools:
            for person in named_people(school):
                if person.aad_object_id.lower() == wanted:
                    return person.name
        return "unknown"

    # -- the record ------------------------------------------------------------------------

    async def record(self, stored: StoredConcern, generated_by: str) -> Record:
        entries = getattr(self.store, "record_entries", None)  # the DSL's decisions (issue 9)
        return build_record(
            self.school_of(stored),
            stored.concern,
            status=stored.status,
            audit=await self.store.audit_entries(stored.id),
            decisions=await entries(stored.id) if entries else (),
            now=self.clock(),
            generated_by=generated_by,
        )

    async def chronology(
        self, stored: StoredConcern, aad_object_id: str | None
    ) -> list[StoredConcern]:
        """The concerns confirmed to be about this concern's child, oldest first - only those
        this person may have (an allegation's record stays with its case manager)."""
        linked = getattr(self.store, "chronology_ids", None)  # confirmed links (issue 9 s2)
        ids = await linked(stored.id) if linked else []
        found: list[StoredConcern] = []
        for concern_id in ids or [stored.id]:
            other = stored if concern_id == stored.id else await self.store.get_concern(concern_id)
            if other is not None and self.may_have(other, aad_object_id):
                found.append(other)
        return found or [stored]

    async def file(
        self,
        concerns: Sequence[StoredConcern],
        fmt: str,
        aad_object_id: str | None,
        *,
        transfer_to: str | None = None,
    ) -> RecordFile:
        if fmt not in FORMATS:
            raise ValueError(f"unknown record format {fmt!r}")
        by = self.name_of(aad_object_id)
        records = [await self.record(s, by) for s in concerns]
        first = concerns[0]
        ref = short_reference(first.id)
        if transfer_to is not None:
            title = "Child protection file: chronology for transfer"
            cover = [
                ("For the attention of", f"the Designated Safeguarding Lead, {transfer_to}"),
                ("Concerns in this chronology", str(len(records))),
                ("How to send", TRANSFER_RULE),
            ]
            stem = f"child-protection-transfer-{ref}"
        else:
            title = f"Safeguarding record {ref}: {first.concern.title}"
            cover = []
            stem = f"safeguarding-record-{ref}"
        if fmt == "pdf":
            data = await asyncio.get_running_loop().run_in_executor(
                _PDF_MAKER, lambda: record_pdf(records, title=title, cover=cover)
            )
        elif fmt == "json":
            data = records_json(records)
        else:
            data = records_csv(records)
        return RecordFile(f"{stem}.{fmt}", FORMATS[fmt], data, tuple(s.id for s in concerns))
