"""The alert card for the DSL team or case manager (Adaptive Cards 1.5), its plain-text
notification line, and the child's words in card-sized parts.

The card is a jinja2 template (templates/alert.json.j2) whose every `{{ }}` is JSON-encoded,
so quotes, backslashes and braces cannot break out of a string. Anything a person typed is
shown with `verbatim` (never read as markdown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2

from bot.teams.cards import card, heading, verbatim
from bot.teams.record_cards import decision_actions
from flows.catalogue import catalogue
from flows.concern import FLAGS, Concern

# The child's words are split into parts of this many characters (each its own card).
WORDS_LIMIT = 6_000


class _Json(str):
    """Already-JSON text that `finalize` must not encode again."""


def _finalize(value: Any) -> str:
    # Every {{ value }} in a card template becomes a JSON literal, so escaping cannot be
    # forgotten: quotes, backslashes, newlines and {{ }} in a child's words stay data.
    return value if isinstance(value, _Json) else json.dumps(value, ensure_ascii=False)


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bot.teams", "templates"),
    autoescape=False,
    undefined=jinja2.StrictUndefined,
    finalize=_finalize,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # the template ships with the code: no stat() of it on every card
)
_ENV.filters["verbatim"] = lambda text: _Json(json.dumps(verbatim(text), ensure_ascii=False)[1:-1])
# A list's items, comma-separated, to sit inside a JSON array of the template.
_ENV.filters["items"] = lambda values: _Json(json.dumps(list(values), ensure_ascii=False)[1:-1])

# Each flag in plain words for the people who act. Red ones go in the band at the top of the
# card; the rest (what the DSL must know about the child) are among the key facts. URGENT is
# the band's own label, never repeated as a flag.
FLAG_WORDS: dict[str, str] = {
    "CALL-999": "A child may be in immediate danger: 999",
    "POLICE-NOW": "The police are needed now",
    "PERSONAL-DUTY": "FGM: the teacher must report it to the police personally",
    "ADULT-INVOLVED": "An adult is involved",
    "ACCUSED-IS-DSL": "The allegation is about the DSL or a deputy DSL",
    "OTHER-CHILDREN-AT-RISK": "Other children may be at risk",
    "GOING-HOME-TO-ALLEGED-ABUSER": "Going home tonight to the person said to have harmed them",
    "UNDER-13": "A child under 13 is involved",
    "WEAPON": "A weapon is involved",
    "SUICIDE-RISK": "Risk of suicide or serious self-harm",
    "LOW-LEVEL-CONCERN": "Low-level concern (the reporter thinks the harm threshold is not met)",
    "IMAGE-SEEN": "A member of staff has seen the image",
    "LOOKED-AFTER": "Looked after (in care) or previously looked after",
    "SOCIAL-WORKER": "Has a social worker",
    "SEND": "Has special educational needs or a disability (SEND)",
}
RED_FLAGS = frozenset(
    {
        "CALL-999",
        "POLICE-NOW",
        "PERSONAL-DUTY",
        "ADULT-INVOLVED",
        "ACCUSED-IS-DSL",
        "OTHER-CHILDREN-AT-RISK",
        "GOING-HOME-TO-ALLEGED-ABUSER",
        "UNDER-13",
        "WEAPON",
        "SUICIDE-RISK",
    }
)
# What the DSL must know about the child (a key fact, not an alarm), and the rest.
CHILD_FLAGS = frozenset({"LOOKED-AFTER", "SOCIAL-WORKER", "SEND"})
OTHER_FLAGS = frozenset(FLAG_WORDS) - RED_FLAGS - CHILD_FLAGS
STATUS_TEXT = {
    "acknowledged": "Picked up by {by} at {at}",
    "referred_social_care": "Referred to children's social care by {by} at {at}",
    "referred_police": "Referred to the police by {by} at {at}",
    "referred_lado": "Referred to the LADO by {by} at {at}",
    "closed": "Closed by {by} at {at}",
}
DECIDE_HEADING = {
    "dsl_team": "What the DSL must decide",
    "lado": "What must happen now",
}
DECIDE_CASE_MANAGER = "What the case manager must do"
# The buttons that record what was done (verb, title), after Acknowledge.
DECISIONS = {
    "dsl_team": [
        ("referred_social_care", "Referred to social care"),
        ("referred_police", "Referred to police"),
    ],
}
DECISIONS_CASE_MANAGER = [("referred_lado", "LADO informed")]


# The staff member's own first message: labelled so nobody takes it for the child's words.
OPENING_WORDS_LABEL = "What the reporter first wrote (the reporter's words, not the child's)"


def _hhmm(iso: str | None) -> str:
    return datetime.fromisoformat(iso).strftime("%a %d %b %H:%M") if iso else ""


def _time(iso: str | None) -> str:
    return datetime.fromisoformat(iso).strftime("%H:%M") if iso else ""


@dataclass(frozen=True)
class Mentioned:
    """Someone the alert @mentions (Teams notifies them): their Teams id and shown name."""

    id: str
    name: str

    @property
    def tag(self) -> str:
        return f"<at>{self.name}</at>"


def concern_kind(concern: Concern) -> str:
    """The kind of concern in the third person ("Disclosure"), from the flow file."""
    flow = catalogue().get(concern.type)
    return (flow.definition.alert_title if flow else "") or concern.title


def alert_title(concern: Concern) -> str:
    """'Disclosure - reported by Sam Teacher, 15:34': what, who, when - in the third person."""
    at = _time(concern.finished_at or concern.raised_at or concern.started_at)
    return f"{concern_kind(concern)} - reported by {concern.reporter.name}, {at}"


def alert_card(
    concern: Concern,
    *,
    recipient: str,
    status: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    escalations: list[str] | None = None,
    now: datetime | None = None,
    mentions: list[Mentioned] | tuple[Mentioned, ...] = (),
    refresh_ids: list[str] | tuple[str, ...] = (),
    viewer_line: str = "",
    can_act: bool = True,
    record_blocks: list[dict[str, Any]] | None = None,
    decision_actions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The structured alert for the DSL team or case manager.

    record_blocks / decision_actions: the record's parts (bot/teams/record_cards.py).

    status: {"state": "raised"|"acknowledged"|..., "by": name, "at": iso}
    history: later actions on the card, oldest first (same shape as status).
    mentions: people @mentioned in the band (Teams notifies them).
    refresh_ids: Teams user ids whose client asks for their own view (Universal Actions).
    viewer_line: the line for one person's own view ("You have this").
    can_act: False for a view without buttons (someone who may not act on it).
    """
    parts = word_parts(concern.words or "")
    status = status or {"state": "raised"}
    done_states = [h["state"] for h in (history or [])] + [status["state"]]
    closed = "closed" in done_states
    urgent = concern.priority == "urgent"
    red = [FLAG_WORDS[f] for f in FLAGS if f in concern.flags and f in RED_FLAGS]
    facts = _alert_fields(concern)
    for label, group in (("About the child", CHILD_FLAGS), ("Also", OTHER_FLAGS)):
        words = [FLAG_WORDS[f] for f in FLAGS if f in concern.flags and f in group]
        if words:
            facts.insert(_after_child(facts), (label, "; ".join(words)))
    mentioned = [Mentioned(m.id, _mention_name(m.name)) for m in mentions]
    text = _ENV.get_template("alert.json.j2").render(
        concern=concern,
        summary=alert_fallback_text(concern),
        title=alert_title(concern),
        band_label=_band_label(concern, closed, recipient),
        band_style="default" if closed else ("attention" if urgent or red else "emphasis"),
        red_flags=[] if closed else red,
        mentions=[] if closed else mentioned,
        mention_line="For " + ", ".join(m.tag for m in mentioned),
        refresh=list(refresh_ids) or None,
        viewer_line=viewer_line,
        words=parts[0],
        truncated=len(parts) > 1,
        parts=len(parts),
        facts=facts,
        body_map=_body_map(concern),
        status_lines=[
            STATUS_TEXT[h["state"]].format(by=h["by"], at=_hhmm(h["at"]))
            for h in [*(history or []), status]
            if h["state"] in STATUS_TEXT
        ],
        notes=[h for h in (history or []) if h["state"] == "note"],
        escalations=escalations or [],
        acknowledged="acknowledged" in done_states,
        actions=can_act and not closed,
        decisions=DECISIONS.get(concern.routing.route, DECISIONS_CASE_MANAGER),
        decide_heading=DECIDE_HEADING.get(concern.routing.route, DECIDE_CASE_MANAGER),
        hhmm=_hhmm,
        record_blocks=record_blocks or [],
        decision_actions=_decision_actions(concern)
        if decision_actions is None
        else decision_actions,
        overdue={
            d.id for d in concern.deadlines if now and datetime.fromisoformat(d.due_at) <= now
        },
    )
    return json.loads(text)


def _band_label(concern: Concern, closed: bool, recipient: str) -> str:
    if closed:
        return "CLOSED - safeguarding concern"
    lead = "URGENT - safeguarding alert" if concern.priority == "urgent" else "Safeguarding alert"
    if concern.routing.route == "dsl_team" or not recipient:
        return lead
    return f"{lead} for {recipient}"  # an allegation: who may see it ("... only")


def _after_child(facts: list[tuple[str, str]]) -> int:
    """Where the facts about the child end (what the flags say belongs with them)."""
    about_child = {"Child", "Year / class", "Age", "About the child"}
    index = 0
    for i, (label, _) in enumerate(facts):
        if label in about_child:
            index = i + 1
    return index


def _decision_actions(concern: Concern) -> list[dict[str, Any]]:
    return decision_actions(concern.id, concern.routing.route)


def word_parts(words: str) -> list[str]:
    """The child's words in card-sized pieces; joined they are exactly the original."""
    return [words[i : i + WORDS_LIMIT] for i in range(0, len(words), WORDS_LIMIT)] or [""]


def words_card(part: str, number: int, total: int) -> dict[str, Any]:
    title = f"The child's own words, continued (part {number} of {total}, verbatim)"
    return card([heading(title), *verbatim(part)])


def _mention_name(name: str) -> str:
    # The mention sits in a TextBlock (Teams requires it): keep markdown and tags out of it.
    return "".join(ch for ch in name if ch not in "*_~[]<>`\\") or "Staff member"


# The body map (injury_seen, then the body_map_* steps in flows/definitions/_common.yaml)
# gets its own section on the alert; the other details are listed as fields.
BODY_MAP_PREFIX = "Body map: "


def _is_body_map(step_id: str) -> bool:
    return step_id == "injury_seen" or step_id.startswith("body_map_")


def _alert_fields(concern: Concern) -> list[tuple[str, str]]:
    details = [(d.label, d.value) for d in concern.details if not _is_body_map(d.step)]
    opening = [(OPENING_WORDS_LABEL, concern.opening_words)] if concern.opening_words else []
    return concern.record_fields() + details + opening


def _body_map(concern: Concern) -> list[tuple[str, str]]:
    """(where, what) rows of the body map, or [] when no injury was seen."""
    rows = [d for d in concern.details if d.step.startswith("body_map_")]
    return [(d.label.removeprefix(BODY_MAP_PREFIX).capitalize(), d.value) for d in rows]


def alert_fallback_text(concern: Concern) -> str:
    """The notification and chat-list line: kind and priority only - never names or words
    (it shows on lock screens)."""
    lead = "URGENT safeguarding alert" if concern.priority == "urgent" else "Safeguarding alert"
    return f"{lead}: {concern_kind(concern)}"
