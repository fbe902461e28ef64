# The record for the child's file (issue 9 s3): built from the store, written as a tagged PDF
# whose text reads back word for word, and as JSON / CSV that read back to the same record.
from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import replace

try:
    from pypdf import PdfReader
except ImportError as missing:  # an older .venv: the project now needs pypdf and weasyprint
    raise ImportError(f"{missing}: run .venv/bin/pip install -e '.[test]'") from missing

from bot.records import records_csv, records_from_csv, records_from_json, records_json
from bot.records.pdf import record_html
from bot.records.service import RecordsService
from bot.store import SqliteStore
from flows.concern import Action, Deadline, Detail, Reporter, Routing
from tests.e2e import DSL, SCHOOL, Clock
from tests.test_store import make_concern

# Everything a child's words or a member of staff's answer may hold that a renderer could
# break: quotes of every kind, template and markdown syntax, markup, emoji (with skin tone),
# right-to-left Hebrew and Arabic, a formula, and length.
HOSTILE = (
    'She said "don\'t tell mum" and ‘he’ “hurt” me. {{ school.name }} {% if x %}x{% endif %} '
    "**not bold** _not italic_ # not a heading [not a link](https://example.org) "
    "<b>not markup</b> &amp; 5 < 6 > 4 =SUM(A1:A9) @mention 😀 👍🏽 😢 "
    "שלום אמא אני מפחד مرحبا أنا خائفة جدا "
)


def hostile_words(length: int = 5_000) -> str:
    # Emoji in the first parts only: each is drawn as a colour bitmap, which costs time, and
    # a few prove the point as well as a hundred.
    text, n = "", 0
    while len(text) < length:
        n += 1
        part = HOSTILE if n <= 3 else re.sub(r"[\U0001F300-\U0001FAFF]", "", HOSTILE)
        text += f"part{n} " + part
    return text[:length].rsplit(" ", 1)[0]


def hostile_concern(concern_id: str | None = None):
    concern = make_concern(concern_id or str(uuid.uuid4()))
    words = hostile_words()
    return replace(
        concern,
        child_name='Ayşe "Ash" O\'Brien-אביב',
        child_year="Year 4 {{ x }}",
        words=words,
        raised_at=concern.started_at,
        details=[
            Detail("injury", "Any marks or injuries seen?", "**bruise** on arm 🤕 كدمة"),
            Detail("said_next", "What did you say?", 'I said "I can\'t keep secrets"'),
        ],
        actions_taken=[Action("Phoned 999", "Yes - at 10:05 'police came'", concern.started_at)],
        notes=[Action("Ann Robinson", "Spoke to Y4 teacher; {{ note }} 👍", concern.started_at)],
        deadlines=[
            Deadline(
                "lado_one_working_day", "Tell the LADO", concern.started_at, "dsl_team", "KCSIE"
            ),
            Deadline(
                "written_record", "Written record", "2099-01-01T10:00:00+00:00", "reporter", "Seed"
            ),
        ],
    )


async def stored_record(store: SqliteStore, clock: Clock):
    concern = hostile_concern()
    await store.save_concern(concern, status="raised", at=clock())
    await store.audit(concern.reporter.aad_object_id, "concern_raised", concern.id, {}, at=clock())
    await store.audit(None, "escalated", concern.id, {"step": 1, "to": "deputies"}, at=clock())
    clock.advance(minutes=20)
    await store.audit(DSL.aad, "acknowledged", concern.id, {"verb": "acknowledge"}, at=clock())
    clock.advance(
        days=2
    )  # the LADO was told two days later: that deadline was missed... then met late
    await store.audit(DSL.aad, "referred_lado", concern.id, {"verb": "referred_lado"}, at=clock())
    service = RecordsService(SCHOOL, store, clock)
    stored = await store.get_concern(concern.id)
    return service, stored, concern


FOOTER = re.compile(r"^CONFIDENTIAL - child protection record - .* Page \d+ of \d+$", re.M)


def pdf_text(data: bytes) -> str:
    """The text of every page, without the running footer (an artifact a page break puts in
    the middle of whatever paragraph crosses it)."""
    reader = PdfReader(io.BytesIO(data))
    return FOOTER.sub("", "\n".join(page.extract_text() for page in reader.pages))


def assert_in_order(words: str, text: str) -> None:
    """Every whitespace-separated word of `words` appears in `text`, in order. Whitespace is
    ignored: the layout may wrap a line inside a long word (a URL), never change a letter."""
    flat = "".join(text.split())
    at = 0
    for word in words.split():
        found = flat.find(word, at)
        assert found >= 0, (
            f"missing or out of order: {word!r} after ...{flat[max(0, at - 60) : at]!r}"
        )
        at = found + len(word)


async def test_the_pdf_holds_the_childs_words_exactly_every_word_in_order(store: SqliteStore):
    clock = Clock()
    service, stored, concern = await stored_record(store, clock)

    made = await service.file([stored], "pdf", DSL.aad)

    assert made.data.startswith(b"%PDF-") and made.name.endswith(".pdf")
    assert concern.child_name.split()[0] not in made.name  # no child's name in a file name
    text = pdf_text(made.data)
    assert len(concern.words) > 4_900
    assert_in_order(concern.words, text)
    # Template, markdown and markup syntax are shown as typed, never evaluated or interpreted.
    for literal in (
        "{{ school.name }}",
        "{% if x %}",
        "**not bold**",
        "<b>not markup</b>",
        "&amp;",
    ):
        assert literal in text
    assert SCHOOL.name not in text.split("The child's own words")[1].split("Every answer")[0]
    for _label, value in concern.record_fields():
        assert_in_order(value, text)
    for detail in concern.details:
        assert_in_order(detail.value, text)


async def test_the_pdf_says_everything_the_record_must(store: SqliteStore):
    clock = Clock()
    service, stored, concern = await stored_record(store, clock)
    record = await service.record(stored, "Ann Robinson")

    data = (await service.file([stored], "pdf", DSL.aad)).data
    text = " ".join(pdf_text(data).split())

    assert SCHOOL.name in text and record.generated_at in text and record.reference in text
    assert record.rules_shown, "a disclosure shows hard rules before the first question"
    for rule in record.rules_shown:
        assert_in_order(rule, text)
    assert "Acknowledged (picked up)" in text and "LADO informed" in text
    assert "Escalated: not picked up in time" in text
    statuses = {d.label: d.status for d in record.deadlines}
    assert statuses == {"Tell the LADO": "met late", "Written record": "open"}
    assert "MET LATE" in text and "OPEN" in text
    assert "Audit trail" in text and "concern_raised" in text
    assert_in_order(concern.notes[0].value, text)
    assert_pdf_is_accessible(data)


def assert_pdf_is_accessible(data: bytes) -> None:

    reader = PdfReader(io.BytesIO(data))
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root  # tagged: headings, tables, paragraphs have structure
    assert bool(root["/MarkInfo"]["/Marked"]) is True
    assert root["/Lang"] == "en-GB"
    assert "/Metadata" in root  # PDF/UA identification and the title
    assert reader.metadata.title and "Safeguarding record" in reader.metadata.title
    assert b"pdfuaid" in root["/Metadata"].get_object().get_data()
    # Real text, not a picture of text: every page has fonts and extractable words.
    for page in reader.pages:
        assert "/Font" in page["/Resources"]
        assert page.extract_text().strip()


async def test_a_deadline_passed_with_nothing_done_is_missed(store: SqliteStore):
    clock = Clock()
    concern = replace(
        hostile_concern(),
        deadlines=[
            Deadline("written_record", "Written record", clock().isoformat(), "reporter", "S")
        ],
    )
    await store.save_concern(concern, status="raised", at=clock())
    clock.advance(hours=1)
    service = RecordsService(SCHOOL, store, clock)
    record = await service.record(await store.get_concern(concern.id), "x")
    assert [d.status for d in record.deadlines] == ["missed"]


def test_html_escapes_what_people_typed():
    from bot.records.record import Record

    fields = {f: "" for f in Record.__dataclass_fields__}
    fields.update(
        {
            f: []
            for f in (
                "flags",
                "fields",
                "answers",
                "actions_taken",
                "rules_shown",
                "timeline",
                "deadlines",
                "escalations",
                "audit",
                "sources",
                "notes",
            )
        }
    )
    fields.update(words="<script>alert(1)</script>", school_name="S", title="T")
    html = record_html([Record(**fields)], title="T")
    assert "<script>" not in html and "&lt;script&gt;" in html


async def test_json_and_csv_exports_read_back_to_the_same_record(store: SqliteStore):
    clock = Clock()
    service, stored, concern = await stored_record(store, clock)
    record = await service.record(stored, "Ann Robinson")

    as_json = await service.file([stored], "json", DSL.aad)
    as_csv = await service.file([stored], "csv", DSL.aad)

    assert records_from_json(as_json.data) == [record]
    assert records_from_csv(as_csv.data) == [record]
    assert records_from_json(records_json([record, record])) == [record, record]
    assert records_from_csv(records_csv([record, record])) == [record, record]
    # The CSV opens safely in a spreadsheet: no cell starts a formula.
    rows = list(csv.reader(io.StringIO(as_csv.data.decode("utf-8-sig"))))
    assert rows[0] == ["record", "section", "at", "who", "what", "detail"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    words = [r for r in rows if r[1] == "words"]
    assert words[0][5] == concern.words  # verbatim: it does not start with a formula character


def test_csv_cells_that_look_like_formulas_are_defused_and_read_back_exactly():
    from bot.records.export import _cell, _uncell

    for value in ("=1+1", "+44 1234", "-3", "@x", "'quoted", "''", "\tTab", "plain", ""):
        cell = _cell(value)
        assert not re.match(r"^[=+\-@\t\r]", cell)
        assert _uncell(cell) == value


async def test_only_the_dsl_team_has_a_dsl_concerns_record_and_only_case_managers_an_allegation(
    store: SqliteStore,
):
    from tests.e2e import DEPUTY, HEAD, OUTSIDER

    clock = Clock()
    service = RecordsService(SCHOOL, store, clock)
    dsl_concern = make_concern(str(uuid.uuid4()))
    allegation = replace(
        make_concern(str(uuid.uuid4())),
        type="allegation",
        routing=Routing("headteacher", "allegation"),
        reporter=Reporter("A Teacher", "aad-reporter"),
    )
    for c in (dsl_concern, allegation):
        await store.save_concern(c, status="raised", at=clock())
    d = await store.get_concern(dsl_concern.id)
    a = await store.get_concern(allegation.id)
    assert service.may_have(d, DSL.aad) and service.may_have(d, DEPUTY.aad)
    assert not service.may_have(d, OUTSIDER.aad) and not service.may_have(d, "aad-reporter")
    assert service.may_have(a, HEAD.aad)
    assert not service.may_have(a, DSL.aad)  # an allegation's record stays with its case manager
    # By the short reference staff type, and never someone else's.
    assert (await service.find(dsl_concern.id[:8].upper(), DSL.aad)).id == dsl_concern.id
    assert await service.find(dsl_concern.id[:8], OUTSIDER.aad) is None
    assert await service.find(allegation.id[:8], DSL.aad) is None


async def test_in_a_trust_a_record_goes_only_to_its_own_schools_dsl_team(store: SqliteStore):
    from flows.directory import SchoolDirectory
    from tests.e2e import ROOT

    trust = SchoolDirectory.load(ROOT / "profiles" / "hera-trust.yaml")
    ours, theirs = trust.schools[:2]
    service = RecordsService(trust, store, Clock())
    concern = replace(make_concern(str(uuid.uuid4())), school_id=theirs.id)
    await store.save_concern(concern, status="raised")
    stored = await store.get_concern(concern.id)

    assert service.may_have(stored, theirs.dsl.aad_object_id)
    assert not service.may_have(stored, ours.dsl.aad_object_id)
    assert await service.find(concern.id[:8], ours.dsl.aad_object_id) is None
    assert (await service.find(concern.id[:8], theirs.dsl.aad_object_id)).id == concern.id
    record = await service.record(stored, "x")
    assert record.school_name == theirs.name
