"""Adaptive Cards 1.5: the shared helpers (card, heading, verbatim, submit, the size limit)
and the dialog replies rendered as cards (with plain-text fallbacks).

Anything a person typed goes into a RichTextBlock TextRun, which no renderer reads as
markdown, one block per line so newlines survive. The alert card is in alert_card.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botbuilder.schema import Activity, ActivityTypes, Attachment

from dialogs.replies import Reply
from dialogs.text import reply_text

CARD = "application/vnd.microsoft.card.adaptive"  # an attachment's content type
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
# Teams refuses messages over about 28 KB; keep each card well under it.
MAX_CARD_BYTES = 24_000


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict:
    out: dict[str, Any] = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION}
    out["body"] = body
    if actions:
        out["actions"] = actions
    return out


def card_message(content: dict[str, Any], fallback: str, summary: str) -> Activity:
    """A message of one card, with the text a client that cannot show cards reads instead
    (`fallback`) and the line a notification shows (`summary`)."""
    content["fallbackText"] = fallback
    return Activity(
        type=ActivityTypes.message,
        summary=summary,
        attachments=[Attachment(content_type=CARD, content=content)],
    )


def card_bytes(activity_or_card: dict[str, Any]) -> int:
    return len(json.dumps(activity_or_card, ensure_ascii=False).encode("utf-8"))


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
