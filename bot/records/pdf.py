"""The record as an accessible PDF: tagged (PDF/UA-1), real text, the child's words exact.

WeasyPrint, because it is the maintained Python library that writes TAGGED PDFs (structure
tree, MarkInfo, language, title) - fpdf2 and reportlab do not - and its text goes through
Pango/HarfBuzz, so right-to-left scripts, combining marks and emoji are shaped, not dropped.
The HTML is rendered by jinja2 with autoescape on: what anyone typed is data, never markup
or template (`{{ }}`, markdown and `<b>` appear exactly as typed).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import jinja2

from bot.records.record import Record

PDF = "application/pdf"


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.records", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("record.html.j2")


def record_html(
    records: Sequence[Record], *, title: str, cover: Sequence[tuple[str, str]] = ()
) -> str:
    if not records:
        raise ValueError("a record file needs at least one concern")
    first = records[0]
    return _template().render(
        title=title,
        school_name=first.school_name,
        generated_at=first.generated_at,
        generated_by=first.generated_by,
        cover=list(cover),
        records=list(records),
    )


def record_pdf(
    records: Sequence[Record], *, title: str, cover: Sequence[tuple[str, str]] = ()
) -> bytes:
    """One PDF holding these records in order (one for a concern; a child's chronology)."""
    from weasyprint import HTML  # imported on first use: it loads Pango and the fonts

    html = record_html(records, title=title, cover=cover)
    return HTML(string=html).write_pdf(pdf_variant="pdf/ua-1")
