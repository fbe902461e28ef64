"""The DSL's record of a concern: every action and decision as a timestamped entry.

The model (for the card, `child NAME`, and the PDF / JSON / CSV exports):

- `record_entries` (bot/store/records.py, `RecordEntry`): one row per action on a concern -
  `concern_id`, `at` (UTC), `actor_aad_id` and `actor_name` (who, the name as it was then),
  `kind` (what: a verb of bot/services/decisions.py DECISIONS - acknowledge, no_further_action,
  early_help, referred_social_care, referred_police, referred_lado, low_level_concern,
  parents_informed, add_note, close) and `fields` (why: field id -> the text entered; labels
  in DECISIONS[kind].fields), `audit_id` (the audit line written in the same transaction).
  Read with `store.record_entries(concern_id)`, oldest first; `entry_lines` labels them.
- `chronology` / `chronology_decisions`: concerns confirmed to be about the same child share
  a `child_id` (`store.chronology_ids(concern_id)` lists them, oldest first); rejected
  suggestions are remembered so they are not made again. Allegations are never linked: they
  stay with their case manager (bot/services/chronology.py).

Nothing here is logged but ids and kinds. The reporter is told that the DSL acted, in plain
words and without the decision's detail (`feedback`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.services.decisions import DECISIONS, Decision, short_label
from bot.store import RecordEntry, StoredConcern

logger = logging.getLogger(__name__)


async def record(
    store: Any,
    stored: StoredConcern,
    decision: Decision,
    fields: dict[str, str],
    actor_aad_id: str | None,
    actor_name: str,
    at: datetime,
) -> RecordEntry:
    """Write the entry with its audit line (and, for a close, the status) in one transaction."""
    entry = await store.add_record_entry(
        RecordEntry(stored.id, at, actor_aad_id, actor_name, decision.verb, fields),
        audit_action=decision.audit,
        audit_detail={"verb": decision.verb, "fields": sorted(fields)},
        status="closed" if decision.verb == "close" else None,
    )
    logger.info("record entry concern=%s kind=%s", stored.id, decision.verb)
    return entry


def entry_lines(
    entries: Sequence[RecordEntry], when: Any, *, skip: frozenset[str] = frozenset()
) -> list[tuple[str, list[tuple[str, str]]]]:
    """(heading "when - what - who", [(label, value), ...]) per entry, oldest first.
    `when` turns a datetime into the school's local text."""
    out = []
    for entry in entries:
        if entry.kind in skip:
            continue
        decision = DECISIONS.get(entry.kind)
        what = decision.entry if decision else entry.kind
        labels = {f.id: f.label for f in decision.fields} if decision else {}
        fields = [(short_label(labels.get(k, k)), v) for k, v in entry.fields.items()]
        if decision:  # in the decision's own order
            order = [f.id for f in decision.fields]
            fields = [(short_label(labels[k]), entry.fields[k]) for k in order if k in entry.fields]
        out.append((f"{when(entry.at)} - {what} - {entry.actor_name}", fields))
    return out


def feedback(concern: Any, decision: Decision, at: str) -> str:
    """What the reporter is told: that it was acted on, never what was decided or why. An
    allegation's reporter is never pointed to the DSL (it may be about them)."""
    if concern.routing.route == "dsl_team":
        who, tell = "The DSL team", "the DSL"
    else:
        who, tell = "The person dealing with it", "the person dealing with it"
    if decision.verb == "close":
        return (
            f"Update on your report: {who} finished their work on it and closed it at {at}. "
            f"If you are still worried, or anything new happens, tell {tell} or report "
            "again - every new worry counts."
        )
    return (
        f"Update on your report: {who} recorded a decision on it at {at}. You may not be "
        f"told the details - that is normal. If anything new happens, tell {tell}."
    )
