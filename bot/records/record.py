"""The DSL's record of one concern as a plain value, assembled from the store for export.

Every reader (the PDF, JSON, CSV) takes a `Record`, never the store: what the file says is
decided here once. Answers and the child's words are carried verbatim; the audit trail holds
ids, actions and states only, as the audit log itself does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.services.decisions import DECISIONS, short_label
from bot.services.timing import deadline_met_at
from flows.catalogue import catalogue
from flows.concern import ROUTES, Concern
from flows.procedure_text import render, template_context
from flows.routing import named_people

RECORD_FORMAT = "safeguarding-record/1"

# How the record names what the audit log calls an action (the DSL's words, not ours).
ACTIONS = {
    "concern_raised": "Report raised",
    "acknowledged": "Acknowledged (picked up)",
    "referred_social_care": "Referred to children's social care",
    "referred_police": "Referred to the police",
    "referred_lado": "LADO informed",
    "note": "Note added",
    "closed": "Closed",
    "escalated": "Escalated: not picked up in time",
    "deadline_reminder": "Deadline reminder sent",
    "chase_social_care": "Reminder: chase children's social care",
    "add_police_reference": "Police reference added by the reporter",
    "written_record_done": "Written record done (reporter)",
    "report_abandoned": "Stopped by the reporter before it was finished",
    "report_moved": "Reporter went on under another procedure",
    "report_stalled": "Reporter stopped answering part-way",
    "reconsideration_requested": "Reporter asked for this to be looked at again",
    "action_refused": "Action refused: not allowed for this person",
    "record_exported": "Record exported",
    "record_delivered": "Record file delivered",
    "record_declined": "Record file declined",
    "record_transferred": "Child's chronology sent to a new school",
    "concern_deleted": "Deleted under the retention policy",
}
# Audit actions that are decisions or steps by a person: they go on the timeline.
TIMELINE_ACTIONS = frozenset(
    {
        "acknowledged",
        "referred_social_care",
        "referred_police",
        "referred_lado",
        "closed",
        "add_police_reference",
        "written_record_done",
        "reconsideration_requested",
        "record_transferred",
    }
)
ESCALATION_ACTIONS = frozenset(
    {"escalated", "deadline_reminder", "chase_social_care", "report_stalled"}
)


@dataclass(frozen=True)
class Entry:
    """One line of the record: when, who, what, and the words that go with it (verbatim)."""

    at: str
    who: str
    what: str
    why: str = ""


@dataclass(frozen=True)
class DeadlineLine:
    label: str
    due_at: str
    owner: str
    source: str
    status: str  # met, met late, missed, open
    met_at: str = ""


@dataclass(frozen=True)
class AuditLine:
    at: str
    who: str
    action: str
    detail: str


@dataclass(frozen=True)
class Record:
    """Everything the file for this concern says, in the order a reader needs it."""

    school_id: str
    school_name: str
    generated_at: str
    generated_by: str
    concern_id: str
    reference: str
    kind: str
    title: str
    status: str
    priority: str
    route: str
    route_reason: str
    reporter: str
    started_at: str
    raised_at: str
    finished_at: str
    flags: list[str]
    fields: list[tuple[str, str]]  # the typed facts: child, year, when, where...
    words: str  # the child's own words, verbatim ("" when none were recorded)
    answers: list[tuple[str, str]]  # every other answer, label and value, verbatim
    actions_taken: list[Entry]
    rules_shown: list[str]
    dsl_decision: str
    timeline: list[Entry]
    deadlines: list[DeadlineLine]
    escalations: list[Entry]
    audit: list[AuditLine]
    sources: list[str]
    format: str = RECORD_FORMAT
    notes: list[str] = field(default_factory=list)  # about the record itself

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        data = dict(data)
        data["fields"] = [tuple(pair) for pair in data["fields"]]
        data["answers"] = [tuple(pair) for pair in data["answers"]]
        for key in ("actions_taken", "timeline", "escalations"):
            data[key] = [Entry(**e) for e in data[key]]
        data["deadlines"] = [DeadlineLine(**d) for d in data["deadlines"]]
        data["audit"] = [AuditLine(**a) for a in data["audit"]]
        return cls(**data)


def short_reference(concern_id: str) -> str:
    """What staff type and read: the first 8 characters of the concern's id."""
    return concern_id.replace("-", "")[:8].upper()


def rules_shown(school: Any, concern: Concern) -> list[str]:
    """The hard rules the procedure showed the reporter before the first question."""
    flow = catalogue().get(concern.type)
    if flow is None:
        return []
    context = template_context(school)
    return [render(rule.text, context) for rule in flow.definition.rules]


def build_record(
    school: Any,
    concern: Concern,
    *,
    status: str,
    audit: Iterable[Any],
    now: datetime,
    generated_by: str,
    decisions: Sequence[Any] = (),
) -> Record:
    """The record as it stands at `now`. `audit` is the concern's audit entries, oldest first
    (the store's AuditEntry: id, at, actor_aad_id, action, detail); `decisions` its record
    entries (the DSL's decisions with their fields: at, actor_name, kind, fields)."""
    entries = list(audit)
    tz = school.timezone
    names = {p.aad_object_id.lower(): p.name for p in named_people(school) if p}
    if concern.reporter.aad_object_id:
        names.setdefault(concern.reporter.aad_object_id.lower(), concern.reporter.name)

    def who(aad: str | None) -> str:
        if not aad:
            return "the bot"
        return names.get(aad.lower(), "unknown member of staff")

    def when(at: datetime | str | None) -> str:
        if not at:
            return ""
        moment = datetime.fromisoformat(at) if isinstance(at, str) else at
        return moment.astimezone(tz).isoformat(timespec="seconds")

    # A note is in the concern's notes too (shown once, below, as "Note added").
    decided = [_decision_entry(d, when) for d in decisions if getattr(d, "kind", "") != "add_note"]
    # An audit line written with a decision entry is shown once, as the decision (with why).
    decided_audit = {getattr(d, "audit_id", None) for d in decisions} - {None}
    timeline: list[Entry] = [Entry(when(concern.raised_at), concern.reporter.name, "Report raised")]
    timeline += [
        Entry(when(a.at), concern.reporter.name, a.label, a.value) for a in concern.timeline
    ]
    timeline += [
        Entry(when(e.at), who(e.actor_aad_id), ACTIONS.get(e.action, e.action), _why(e.detail))
        for e in entries
        if e.action in TIMELINE_ACTIONS and e.id not in decided_audit
    ]
    timeline += [Entry(when(n.at), n.label, "Note added", n.value) for n in concern.notes]
    timeline += decided
    timeline.sort(key=_moment)
    escalations = [
        Entry(when(e.at), who(e.actor_aad_id), ACTIONS.get(e.action, e.action), _detail(e.detail))
        for e in entries
        if e.action in ESCALATION_ACTIONS
    ]
    actions: dict[str, datetime] = {}
    for e in entries:
        actions.setdefault(e.action, e.at)  # when each was first done
    deadlines = [_deadline_line(d, concern, actions, now, when) for d in concern.deadlines]
    return Record(
        school_id=school.id,
        school_name=school.name,
        generated_at=when(now),
        generated_by=generated_by,
        concern_id=concern.id,
        reference=short_reference(concern.id),
        kind=concern.type,
        title=concern.title,
        status=status,
        priority=concern.priority,
        route=concern.routing.route,
        route_reason=ROUTES.get(concern.routing.route, concern.routing.route),
        reporter=concern.reporter.name,
        started_at=when(concern.started_at),
        raised_at=when(concern.raised_at),
        finished_at=when(concern.finished_at),
        flags=list(concern.flags),
        fields=list(concern.record_fields()),
        words=concern.words or "",
        answers=[(d.label, d.value) for d in concern.details],
        actions_taken=[
            Entry(when(a.at), concern.reporter.name, a.label, a.value)
            for a in concern.actions_taken
        ],
        rules_shown=rules_shown(school, concern),
        dsl_decision=concern.dsl_decision,
        timeline=timeline,
        deadlines=deadlines,
        escalations=escalations,
        audit=[
            AuditLine(when(e.at), who(e.actor_aad_id), e.action, _detail(e.detail)) for e in entries
        ],
        sources=list(concern.sources),
    )


def _deadline_line(
    deadline: Any, concern: Concern, actions: Mapping[str, datetime], now: datetime, when: Any
) -> DeadlineLine:
    due = datetime.fromisoformat(deadline.due_at)
    met = deadline_met_at(deadline.id, concern, actions)
    if met is not None:
        status = "met" if met <= due else "met late"
    else:
        status = "missed" if now > due else "open"
    return DeadlineLine(
        deadline.label, when(due), deadline.owner, deadline.source, status, when(met)
    )


def _moment(entry: Entry) -> datetime:
    return datetime.fromisoformat(entry.at) if entry.at else datetime.min.replace(tzinfo=UTC)


def _why(detail: Mapping[str, Any]) -> str:
    return str(detail.get("reason") or "")


def _detail(detail: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(detail.items()))


def _decision_entry(decision: Any, when: Any) -> Entry:
    """A DSL decision entry (issue 9 s1): what was decided, and every field entered with it."""
    fields = getattr(decision, "fields", None) or {}
    kind = str(getattr(decision, "kind", "") or "decision")
    known = DECISIONS.get(kind)  # named as the card names it, fields in the card's order
    labels = {f.id: short_label(f.label) for f in known.fields} if known else {}
    order = [f.id for f in known.fields] if known else []
    keys = [k for k in order if k in fields] + [k for k in fields if k not in order]
    why = "; ".join(f"{labels.get(k) or _humanise(k)}: {fields[k]}" for k in keys)
    return Entry(
        when(getattr(decision, "at", None)),
        str(getattr(decision, "actor_name", "") or ""),
        known.entry if known else ACTIONS.get(kind, _humanise(kind)),
        why,
    )


def _humanise(key: str) -> str:
    return key.replace("_", " ").strip().capitalize()
