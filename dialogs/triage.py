"""Suggest which procedure free text is about. It only suggests: staff always confirm."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flows.definition import FlowDefinition

# When several flows match equally, the one that protects a child fastest is offered first.
PRIORITY = ("missing_child", "fgm", "nudes", "allegation", "child_on_child", "disclosure")


def _normalise(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9']+", " ", text.lower().replace("’", "'")) + " "


def suggest(text: str, flows: Iterable[FlowDefinition], limit: int = 3) -> list[str]:
    """Flow ids whose triage phrases appear in `text`, best first."""
    said = _normalise(text)
    scored: list[tuple[int, int, str]] = []
    for flow in flows:
        # A phrase matches at the start of a word: "circumcis" finds "circumcised".
        hits = sum(1 for phrase in flow.triage if " " + _normalise(phrase).strip() in said)
        if hits:
            rank = PRIORITY.index(flow.id) if flow.id in PRIORITY else len(PRIORITY)
            scored.append((-hits, rank, flow.id))
    return [flow_id for _, _, flow_id in sorted(scored)[:limit]]
