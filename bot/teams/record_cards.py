"""The alert card's record parts (Adaptive Cards 1.5): the decision buttons with the fields
each decision needs, the record timeline, and the child's chronology (DSL team only).

Kept apart from alert.json.j2's layout: the template places these blocks, this module makes
them. Anything a person typed is shown with `verbatim` (never read as markdown).
"""

from __future__ import annotations

from typing import Any

from bot.services.decisions import DECISIONS, Decision, Field, decisions_for
from bot.teams.cards import verbatim

# Card input ids are "<verb>:<field>" so two decisions' boxes never share an id.
SEP = ":"
BOX_CHARS = 2000


def field_values(verb: str, data: dict[str, Any]) -> dict[str, Any]:
    """The values a decision's Save sent (its own boxes), by field id."""
    prefix = verb + SEP
    return {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}


def _inputs(decision: Decision, field: Field) -> dict[str, Any]:
    box = f"{decision.verb}{SEP}{field.id}"
    required = field.required
    if field.kind == "datetime":
        return {
            "type": "ColumnSet",
            "columns": [
                {
                    "type": "Column",
                    "width": "stretch",
                    "items": [
                        {
                            "type": "Input.Date",
                            "id": f"{box}_date",
                            "label": field.label,
                            "isRequired": required,
                            "errorMessage": "Choose the date.",
                        }
                    ],
                },
                {
                    "type": "Column",
                    "width": "stretch",
                    "items": [
                        {
                            "type": "Input.Time",
                            "id": f"{box}_time",
                            "label": "Time",
                            "isRequired": required,
                            "errorMessage": "Choose the time.",
                        }
                    ],
                },
            ],
        }
    if field.kind == "choice":
        return {
            "type": "Input.ChoiceSet",
            "id": box,
            "label": field.label,
            "style": "expanded",
            "isRequired": required,
            "errorMessage": "Choose one.",
            "choices": [{"title": c, "value": c} for c in field.choices],
        }
    out: dict[str, Any] = {
        "type": "Input.Text",
        "id": box,
        "label": field.label,
        "maxLength": BOX_CHARS,
        "isRequired": required,
        "isMultiline": field.kind == "long",
    }
    if required:
        out["errorMessage"] = "This is needed for the record."
    return out


def _save(decision: Decision, concern_id: str, title: str) -> dict[str, Any]:
    data = {"concern_id": concern_id}
    action: dict[str, Any] = {
        "type": "Action.Execute",
        "title": title,
        "verb": decision.verb,
        "data": data,
        "fallback": {
            "type": "Action.Submit",
            "title": title,
            "data": {"verb": decision.verb, **data},
        },
    }
    if decision.verb == "close":
        action["style"] = "destructive"
    return action


def _show(decision: Decision, concern_id: str, save: str = "Save") -> dict[str, Any]:
    return {
        "type": "Action.ShowCard",
        "title": decision.button,
        "card": {
            "type": "AdaptiveCard",
            "body": [_inputs(decision, f) for f in decision.fields],
            "actions": [_save(decision, concern_id, save)],
        },
    }


FORM = "decision_form"  # opens the decisions for the presser only (a follow-up card)
BACK = "show_alert"  # from the form, back to the alert as it stands
VIEW_VERBS = frozenset({FORM, BACK})


def decision_actions(concern_id: str, route: str) -> list[dict[str, Any]]:
    """Record a decision (a follow-up card, so the alert stays small), Add note, Close."""
    data = {"concern_id": concern_id}
    title = "Record a decision"
    decide = {
        "type": "Action.Execute",
        "title": title,
        "verb": FORM,
        "data": data,
        "fallback": {"type": "Action.Submit", "title": title, "data": {"verb": FORM, **data}},
    }
    return [
        decide,
        _show(DECISIONS["add_note"], concern_id, "Add note"),
        _show(DECISIONS["close"], concern_id, "Close"),
    ]


def decision_form(concern_id: str, route: str, title: str) -> dict[str, Any]:
    """The decisions this alert's route offers, each opening the fields it must record.
    Shown only to the person who pressed "Record a decision" (the invoke's answer)."""
    shown = [_show(d, concern_id) for d in decisions_for(route)]
    sets = [{"type": "ActionSet", "actions": shown[i : i + 3]} for i in range(0, len(shown), 3)]
    back = "Back to the alert"
    data = {"concern_id": concern_id}
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "fallbackText": "Record a decision",
        "body": [
            {
                "type": "TextBlock",
                "text": "Record a decision",
                "wrap": True,
                "weight": "Bolder",
                "size": "Medium",
            },
            {"type": "TextBlock", "text": title, "wrap": True},
            {
                "type": "TextBlock",
                "text": "Each decision is kept in this concern's record with your name, the "
                "time and your reasons, and shown on the alert for the team. The reporter is "
                "told that it was acted on, never the detail.",
                "wrap": True,
                "isSubtle": True,
            },
            *sets,
        ],
        "actions": [
            {
                "type": "Action.Execute",
                "title": back,
                "verb": BACK,
                "data": data,
                "fallback": {
                    "type": "Action.Submit",
                    "title": back,
                    "data": {"verb": BACK, **data},
                },
            }
        ],
    }


def record_block(
    lines: list[tuple[str, list[tuple[str, str]]]], *, left_off: int = 0, cut: int | None = None
) -> dict[str, Any] | None:
    """The record's timeline: one heading per entry (when - what - who), then its fields.
    A card has a size limit: `left_off` earlier entries, and text past `cut` characters,
    are not shown here, and the card says so (the record keeps every word)."""
    if not lines:
        return None
    items: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": "Record of decisions", "wrap": True, "weight": "Bolder"}
    ]
    if left_off:
        items.append(
            {
                "type": "TextBlock",
                "text": f"{left_off} earlier entr{'y is' if left_off == 1 else 'ies are'} not "
                "shown here (card size); every entry is kept in the concern's record.",
                "wrap": True,
                "isSubtle": True,
            }
        )
    for heading, fields in lines:
        items.append(
            {
                "type": "RichTextBlock",
                "spacing": "Small",
                "inlines": [{"type": "TextRun", "text": heading, "weight": "Bolder"}],
            }
        )
        for label, value in fields:
            if cut is not None and len(value) > cut:
                value = value[:cut] + " [... cut here on the card; kept whole in the record]"
            items.extend(verbatim(f"{label}: {value}"))
    return {"type": "Container", "separator": True, "items": items}


def chronology_block(
    concern_id: str,
    summary: str | None,
    earlier: list[str],
    suggestions: list[tuple[str, str]],
) -> dict[str, Any] | None:
    """The child's chronology (DSL team only): the confirmed picture, then possible matches
    to confirm or reject. `suggestions`: (other concern id, how it is described)."""
    if not summary and not suggestions:
        return None
    items: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": "The child's chronology (DSL team only)",
            "wrap": True,
            "weight": "Bolder",
        }
    ]
    if summary:
        items.append({"type": "TextBlock", "text": summary, "wrap": True, "color": "Attention"})
        items.extend(verbatim("\n".join(earlier)))
    for other_id, described in suggestions:
        items.append(
            {
                "type": "TextBlock",
                "text": "Possibly the same child as an earlier concern - is it?",
                "wrap": True,
                "spacing": "Medium",
            }
        )
        items.extend(verbatim(described))
        data = {"concern_id": concern_id, "other_id": other_id}
        items.append(
            {
                "type": "ActionSet",
                "actions": [
                    _link_action("Same child - link", "link_confirm", data),
                    _link_action("Not the same child", "link_reject", data),
                ],
            }
        )
    return {"type": "Container", "separator": True, "style": "emphasis", "items": items}


def _link_action(title: str, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Action.Execute",
        "title": title,
        "verb": verb,
        "data": data,
        "fallback": {"type": "Action.Submit", "title": title, "data": {"verb": verb, **data}},
    }
