"""The DSL's record of a concern, for the child's file: one value, read out as PDF, JSON, CSV."""

from bot.records.export import records_csv, records_from_csv, records_from_json, records_json
from bot.records.pdf import PDF, record_pdf
from bot.records.record import Record, build_record, short_reference

__all__ = [
    "PDF",
    "Record",
    "build_record",
    "record_pdf",
    "records_csv",
    "records_from_csv",
    "records_from_json",
    "records_json",
    "short_reference",
]
