"""Render replies and concerns as plain text: the console chat and every card's text fallback."""

from __future__ import annotations

from dialogs.replies import Reply
from flows.concern import Concern

_INPUT_HINT = {
    "datetime": "(type a time like 14:05, 'yesterday 15:20' or 'now')",
    "number": "(type a number)",
}


def reply_text(reply: Reply) -> str:
    lines: list[str] = []
    if reply.title:
        lines.append(f"== {reply.title} ==")
    if reply.rules:
        lines.append("Before you start - the rules:")
        lines.extend(f"  ! {rule}" for rule in reply.rules)
        lines.append("")
    prefix = "!! " if reply.urgent else ""
    lines.append(prefix + reply.text)
    if reply.help:
        lines.append(f"   ({reply.help})")
    for label, value in reply.facts:
        lines.append(f"  {label}: {value}")
    for contact in reply.contacts:
        number = contact.number or "no number in the school's policy - see below"
        closed = "" if contact.open_now else " [CLOSED NOW]"
        lines.append(f"  {contact.name}: {number}{closed}")
        if contact.email:
            lines.append(f"      E-mail: {contact.email}")
        lines.append(f"      {contact.purpose} Hours: {contact.hours}.")
    if reply.kind == "summary":
        lines.append("  Type 'send' to send it, or 'change' and a number to correct an answer.")
    elif reply.options:
        for index, option in enumerate(reply.options, start=1):
            lines.append(f"  {index}. {option.label}")
    if reply.input in _INPUT_HINT:
        lines.append(f"  {_INPUT_HINT[reply.input]}")
    if reply.optional:
        lines.append("  (or type 'skip')")
    return "\n".join(lines)


def concern_text(concern: Concern, recipient: str) -> str:
    """The alert as the DSL (or case manager) would read it."""
    lines = []
    if concern.flags:
        lines.append("FLAGS: " + " | ".join(concern.flags))
    lines.append(f"{concern.title} [{concern.priority.upper()}]")
    lines.append(f"To: {recipient}")
    lines.append(f"Routing: {concern.routing.reason}")
    lines.append(f"Reported by: {concern.reporter.name}")
    lines.extend(f"{label}: {value}" for label, value in concern.record_fields())
    if concern.words:
        lines.append("Child's words (verbatim):")
        lines.extend(f"  | {line}" for line in concern.words.split("\n"))
    for detail in concern.details:
        lines.append(f"{detail.label}: {detail.value}")
    if concern.opening_words:
        lines.append("What the reporter first wrote (the reporter's words, not the child's):")
        lines.extend(f"  | {line}" for line in concern.opening_words.split("\n"))
    if concern.actions_taken:
        lines.append("Actions already taken:")
        lines.extend(f"  - {a.label}: {a.value} ({a.at[11:16]})" for a in concern.actions_taken)
    if concern.deadlines:
        lines.append("Deadlines:")
        lines.extend(
            f"  - {d.label}: by {d.due_at[:16].replace('T', ' ')}" for d in concern.deadlines
        )
    lines.append(f"Next step: {concern.dsl_decision}")
    return "\n".join(lines)
