"""`child NAME`: a child's chronology for the DSL team, in the 1:1 chat; refused for others.

Answered by the edge before the dialog session runs (like 'my reports'), so a staff member's
place in a report is kept. Only the concerns' dates, types and decisions are listed - never
a child's words. "child told me her dad hits her" is a report, not a look-up: only a short
name-like phrase is read as the command (see `child_query`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.services.chronology import Chronology
from bot.services.reports import IN_PROGRESS
from bot.teams.cards import card, card_message, heading, verbatim

REFUSED = (
    "Only the DSL team can look up a child's chronology. If you are worried about a child, "
    "tell me what happened, or speak to the DSL."
)
_COMMAND = re.compile(r"^\s*child\s*[:\-]?\s+(.+?)\s*$", re.IGNORECASE | re.DOTALL)
_NAME_WORD = re.compile(r"^[^\W\d_][\w'’.\-]*$")
MAX_WORDS = 4
# Words that make "child ..." the start of a report, not a name.
_NOT_A_NAME = frozenset(
    {
        *("is", "was", "has", "had", "told", "said", "says", "me", "my", "in", "at", "the"),
        *("a", "an", "not", "who", "with", "to", "on", "and", "i", "he", "she", "they"),
        *("her", "his", "their", "hurt", "crying", "upset", "missing"),
    }
)


def child_query(
    text: str | None, value: Mapping[str, Any] | None, mode: str | None, dsl: bool
) -> str | None:
    """The NAME of a `child NAME` command, or None when the words belong to the conversation
    (a report in progress, or "child ..." as the start of telling what happened). For staff
    outside the DSL team only a capitalised name is read as the command (to refuse it)."""
    if value or mode in IN_PROGRESS:
        return None
    found = _COMMAND.match(text or "")
    if not found:
        return None
    words = found.group(1).split()
    if not 1 <= len(words) <= MAX_WORDS:
        return None
    if not all(_NAME_WORD.match(w) and w.lower() not in _NOT_A_NAME for w in words):
        return None
    if not dsl and not all(w[0].isupper() for w in words):
        return None
    return " ".join(words)


async def child_replies(chronology: Chronology, caller: str | None, name: str) -> list:
    """The chronology card (or the refusal) for `child NAME`."""
    if not chronology.may_look_up(caller):
        return [REFUSED]
    found = await chronology.lookup(name, caller)
    if not found:
        return [
            f"No concerns found for a child called {name!r}. Check the spelling, or try the "
            "first name only."
        ]
    body: list[dict[str, Any]] = [
        heading(f"Chronology: {name}", size="Medium"),
        {
            "type": "TextBlock",
            "text": "For the DSL team only. Linked concerns were confirmed by the DSL team; "
            "an allegation about staff is shown only to its case manager.",
            "wrap": True,
            "isSubtle": True,
        },
    ]
    for title, lines in found:
        body.append(
            {
                "type": "Container",
                "separator": True,
                "items": [
                    {
                        "type": "RichTextBlock",
                        "inlines": [{"type": "TextRun", "text": title, "weight": "Bolder"}],
                    },
                    *verbatim("\n".join(lines)),
                ],
            }
        )
    return [card_message(card(body), f"Chronology: {len(found)} found", "Chronology")]
