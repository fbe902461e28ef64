"""Render dialog replies and concerns as Adaptive Cards 1.5 (with plain-text fallbacks).

Anything a person typed goes into a RichTextBlock TextRun, which no renderer reads as
markdown, one block per line so newlines survive. The alert card is a jinja2 template whose
every `{{ }}` is JSON-encoded, so quotes, backslashes and braces cannot break out of a string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2

from dialogs.replies import Reply
from dialogs.text import reply_text
from flows.catalogue import catalogue
from flows.concern import FLAGS, Concern

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
# Teams refuses messages over about 28 KB; keep each card well under it.
MAX_CARD_BYTES = 24_000
WORDS_LIMIT = 6_000


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict:
    out: dict[str, Any] = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION}
    out["body"] = body
    if actions:
        out["actions"] = actions
    return out


def verbatim(text: str, **style: Any) -> list[dict[str, Any]]:
    """Text shown exactly as typed: one RichTextBlock per line, never markdown."""
    return [
        {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": line or " ", **style}]}
        for line in text.split("\n")
    ]


def heading(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, "weight": "Bolder", **extra}


def submit(
    title: str, data: dict[str, Any], style: str = "default", *, inputs: bool = True
) -> dict[str, Any]:
    """An Action.Submit. `inputs=False` sends only its own data and skips the card's input
    validation: Back, Cancel, Skip, Now and answer buttons work whatever the boxes hold."""
    action: dict[str, Any] = {"type": "Action.Submit", "title": title, "data": data}
    if style != "default":
        action["style"] = style
    if not inputs:
        action["associatedInputs"] = "none"
    return action


def _plain(text: str) -> dict[str, Any]:
    """Procedure text from our own files and the profile: wrapped, not markdown."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text}]}


# -- conversation replies -----------------------------------------------------------------

NAVIGATION = [
    submit("Back", {"action": "command", "command": "back"}, inputs=False),
    # Not red: a solid red Cancel outweighs the answer buttons of a frightened person.
    submit("Cancel", {"action": "command", "command": "cancel"}, inputs=False),
]
# Kinds that wait for the staff member: a card of one of these has live buttons.
LIVE_KINDS = {"question", "summary", "menu", "confirm"}
_TYPE_SKIP = re.compile(r"\b([Tt])ype 'skip'")
# A button title longer than this is cut on a 390 px phone screen.
BUTTON_CHARS = 30
ANSWER_SHOWN = 80  # characters of an answer echoed in the read-only line


def is_live(reply: Reply) -> bool:
    return reply.kind in LIVE_KINDS


def reply_card(reply: Reply) -> dict[str, Any] | None:
    """The card for a reply, or None when plain text is the right form (short messages)."""
    if reply.kind == "text" and not reply.urgent and not reply.title:
        return None
    body = _reply_body(reply)
    actions = _actions(reply, body)
    out = card(body, actions)
    out["fallbackText"] = reply_text(reply)
    return out


def _reply_body(reply: Reply) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = []
    if reply.progress:
        body.append(
            {"type": "TextBlock", "text": reply.progress, "size": "Small", "isSubtle": True}
        )
    if reply.rules:
        rules = [heading("Before you start - the rules", color="Attention")]
        rules += [_plain(f"• {rule}") for rule in reply.rules]
        body.append({"type": "Container", "style": "attention", "items": rules})
    if reply.title:
        body.append(heading(reply.title, size="Medium"))
    shown = reply.text
    if reply.kind == "question" and reply.optional:
        # The card has a Skip button: the words must name it, not a word to type.
        shown = _TYPE_SKIP.sub(
            lambda m: ("Press" if m.group(1) == "T" else "press") + " 'Skip'", shown
        )
    text = _plain(shown)
    if reply.urgent:
        body.append({"type": "Container", "style": "attention", "items": [text]})
    else:
        body.append(text)
    if reply.help:
        body.append({"type": "TextBlock", "text": reply.help, "wrap": True, "isSubtle": True})
    for label, value in reply.facts:
        body.append(_fact(label, value))
    for contact in reply.contacts:
        body.append(_contact(contact))
    return body


SUMMARY_CHARS = 100


def _first_line(text: str) -> str:
    line = next((part.strip() for part in text.split("\n") if part.strip()), "")
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1].rstrip() + "…"


def reply_summary(replies: list[Reply]) -> str:
    """The chat-list and notification line for replies sent as one message: what waits for
    the person (the last reply's title, else its first line), never an answer they typed."""
    last = replies[-1]
    return _first_line(last.title or last.text) or "Safeguarding"


def card_summary(card: dict[str, Any]) -> str:
    """The chat-list line for any card (Teams shows "Sent a card" without one): its first
    heading (a TextBlock - typed words are always TextRuns), else its fallback text's first
    line. An alert's first heading is its band ("URGENT - safeguarding alert"): no names."""
    if card.get("body") and all(_is_answers(i) for i in card["body"]):
        return ANSWERED_SUMMARY  # an answered question: never echo what was typed
    for item in _walk_items(card.get("body") or []):
        if item.get("type") == "TextBlock" and str(item.get("text") or "").strip():
            return _first_line(item["text"])
    return _first_line(str(card.get("fallbackText") or "")) or "Safeguarding"


ANSWERED_SUMMARY = "Answered - saved"


def _is_answers(item: dict[str, Any]) -> bool:
    return item.get("type") == "Container" and all(
        i.get("type") == "RichTextBlock" for i in item.get("items") or []
    )


def _walk_items(items: list[dict[str, Any]]) -> Any:
    for item in items:
        yield item
        for key in ("items", "columns"):
            yield from _walk_items(item.get(key) or [])


def message_card(
    replies: list[Reply], answered: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """Several replies as ONE card (fewer, denser messages): what was just answered, any
    notices, then the question that waits - its buttons are the card's buttons."""
    body: list[dict[str, Any]] = []
    if answered:
        body.append(_answered_block(answered))
    actions: list[dict[str, Any]] = []
    for reply in replies:
        part = _reply_body(reply)
        if body and part:
            part[0] = {**part[0], "separator": True, "spacing": "Medium"}
        actions = _actions(reply, part)  # only the last (live) reply has buttons
        body.extend(part)
    out = card(body, actions)
    out["fallbackText"] = "\n\n".join(reply_text(r) for r in replies)
    return out


def answered_card(answered: list[tuple[str, str]]) -> dict[str, Any]:
    """What a question card becomes once answered: read-only, compact, no buttons."""
    lines = answered or [("", "Continued below.")]
    out = card([_answered_block(lines)])
    out["fallbackText"] = "\n".join(_answer_line(label, shown) for label, shown in lines)
    return out


def _answer_line(label: str, shown: str) -> str:
    first = shown.split("\n", 1)[0]
    if len(first) > ANSWER_SHOWN or first != shown:
        first = first[:ANSWER_SHOWN].rstrip() + "…"
    return f"✓ {label}: {first}" if label else first


def _answered_block(answered: list[tuple[str, str]]) -> dict[str, Any]:
    items = []
    for label, shown in answered:
        line = _answer_line(label, shown)
        # Typed words stay TextRuns: never read as markdown.
        items.append(
            {
                "type": "RichTextBlock",
                "inlines": [{"type": "TextRun", "text": line, "isSubtle": True, "size": "Small"}],
            }
        )
    return {"type": "Container", "items": items}


def _fact(label: str, value: str) -> dict[str, Any]:
    return {
        "type": "Container",
        "separator": True,
        "items": [
            {"type": "TextBlock", "text": label, "wrap": True, "weight": "Bolder", "size": "Small"},
            *verbatim(value),
        ],
    }


def _contact(contact: Any) -> dict[str, Any]:
    state = "" if contact.open_now else " - CLOSED NOW"
    items: list[dict[str, Any]] = [heading(contact.name + state)]
    items.append(_plain(contact.number or "No number in the school's policy - see below."))
    if contact.email:
        items.append(_plain(f"E-mail: {contact.email}"))
    items.append(_plain(f"{contact.purpose} Hours: {contact.hours}."))
    container: dict[str, Any] = {"type": "Container", "separator": True, "items": items}
    if contact.tel:
        container["selectAction"] = {"type": "Action.OpenUrl", "url": contact.tel, "title": "Call"}
    return container


def _actions(reply: Reply, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    data = dict(reply.submit)
    if reply.kind == "question":
        return _question_actions(reply, body, data)
    if reply.kind == "summary":
        steps = [  # numbered facts are answers; others (their opening words) are not asked
            {"title": label, "value": label.split(".", 1)[0]}
            for label, _ in reply.facts
            if label.split(".", 1)[0].isdigit()
        ]
        titles = {option.value: option.label for option in reply.options}
        change = {
            "type": "Action.ShowCard",
            "title": titles["change"],
            "card": card(
                [
                    {
                        "type": "Input.ChoiceSet",
                        "id": "number",
                        "label": "Which answer?",
                        "choices": steps,
                        "isRequired": True,
                        "errorMessage": "Choose the answer to change.",
                    }
                ],
                [submit("Change it", {"action": "change"})],
            ),
        }
        send = submit(titles["confirm"], {"action": "confirm"}, "positive", inputs=False)
        return [send, change, *NAVIGATION[1:]]
    if reply.kind == "confirm":
        return [submit(o.label, {"action": o.value}, o.style, inputs=False) for o in reply.options]
    if reply.kind == "menu":
        _tap_buttons(reply, body, data)
    return []


def _tap_buttons(reply: Reply, body: list[dict[str, Any]], data: dict) -> None:
    """One button per choice, stacked in the body: one tap answers, and a long list never
    overflows a phone's action bar. Button titles never wrap (they are cut), so when a
    label is longer than a phone shows, every choice is a tappable box whose text wraps."""
    key = "flow" if data.get("action") == "start" else "value"
    boxes = any(len(option.label) > BUTTON_CHARS for option in reply.options)
    for option in reply.options:
        sent = option.submit if option.submit is not None else {**data, key: option.value}
        action = submit(option.label, sent, option.style, inputs=False)
        if not boxes:
            body.append({"type": "ActionSet", "actions": [action]})
            continue
        body.append(
            {
                "type": "Container",
                "style": "emphasis",
                "spacing": "Small",
                "selectAction": action,
                "items": [
                    {"type": "TextBlock", "text": option.label, "wrap": True, "weight": "Bolder"}
                ],
            }
        )


def _question_actions(reply: Reply, body: list[dict[str, Any]], data: dict) -> list[dict]:
    if reply.options:
        _tap_buttons(reply, body, data)
        return list(NAVIGATION)
    if reply.input == "datetime":
        return [*_time_inputs(reply, body, data), *NAVIGATION]
    field: dict[str, Any] = {"id": "value", "label": "Your answer"}
    field["isRequired"] = not reply.optional
    if reply.input == "number":
        field.update(type="Input.Number", errorMessage="Please type a number.")
    else:
        field.update(type="Input.Text", errorMessage="Please type your answer.")
        field["isMultiline"] = reply.input == "text"
    body.append(field)
    actions = [submit("Next", data, "positive")]
    if reply.optional:
        actions.append(submit("Skip", {**data, "value": "skip"}, inputs=False))
    return [*actions, *NAVIGATION]


def _time_inputs(reply: Reply, body: list[dict[str, Any]], data: dict) -> list[dict]:
    """Native date and time pickers; "Now" is one tap. Typing a time in the chat still works."""
    date: dict[str, Any] = {"type": "Input.Date", "id": "date", "label": "Date"}
    if reply.today:
        date.update(value=reply.today, max=reply.today)
    time = {
        "type": "Input.Time",
        "id": "time",
        "label": "Time",
        "isRequired": not reply.optional,
        "errorMessage": "Choose the time, or press 'Now'.",
    }
    body.append(
        {
            "type": "ColumnSet",
            "columns": [
                {"type": "Column", "width": "stretch", "items": [date]},
                {"type": "Column", "width": "stretch", "items": [time]},
            ],
        }
    )
    actions = [
        submit("Now", {**data, "value": "now"}, "positive", inputs=False),
        submit("Next", data),
    ]
    if reply.optional:
        actions.append(submit("Skip", {**data, "value": "skip"}, inputs=False))
    return actions


# -- the alert ----------------------------------------------------------------------------


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
    from bot.teams.record_cards import decision_actions  # it builds on this module

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


def card_bytes(activity_or_card: dict[str, Any]) -> int:
    return len(json.dumps(activity_or_card, ensure_ascii=False).encode("utf-8"))
