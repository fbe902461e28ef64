"""What staff type, read as a step's value - purely: yes or no, a choice by its number, label or
one word of it, a whole number in range, a time ("14:05", "yesterday 15:20", "now", a picked
date and time), and free text kept exactly as typed. A reply that fits nothing raises
InvalidAnswer, whose message tells the staff member what to type."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flows.definition import Step


class InvalidAnswer(ValueError):
    """The answer does not fit the step; the message tells the staff member what to type."""


_YES = {"yes", "y", "yeah", "yep", "true"}
_NO = {"no", "n", "nope", "false"}
_TIME = re.compile(r"^(?:(today|yesterday)\s+)?(?:at\s+)?(\d{1,2})[:.](\d{2})$")


def parse_answer(step: Step, raw: Any, now: datetime, tz: Any) -> Any:
    """The value `raw` gives `step`; InvalidAnswer (saying what to type) when it gives none."""
    if step.optional and isinstance(raw, str) and raw.strip().lower() in {"skip", ""}:
        return None
    if step.kind == "info":
        return "seen"
    if step.kind == "yes_no":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower().rstrip(".!")
        if word in _YES:
            return True
        if word in _NO:
            return False
        raise InvalidAnswer("Please answer yes or no.")
    if step.kind == "choice":
        return match_choice(step, str(raw))
    if step.kind == "number":
        try:
            number = int(str(raw).strip())
        except ValueError:
            raise InvalidAnswer("Please type a whole number, for example 14.") from None
        low, high = step.minimum, step.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            raise InvalidAnswer(f"Please type a number from {low} to {high}.")
        return number
    if step.kind == "datetime":
        return parse_time(str(raw), now, tz).isoformat()
    # Free text is kept exactly as typed: a child's words are never altered.
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidAnswer("Please type your answer" + (" (or 'skip')." if step.optional else "."))
    return raw


def match_choice(step: Step, raw: str) -> str:
    text = raw.strip().lower()
    for index, choice in enumerate(step.choices, start=1):
        if text in {choice.value.lower(), choice.label.lower(), str(index)}:
            return choice.value
    # A word or phrase found in exactly one label is enough ("staff", "another child").
    if len(text) >= 3:
        found = [c for c in step.choices if re.search(rf"\b{re.escape(text)}\b", c.label.lower())]
        if len(found) == 1:
            return found[0].value
    options = ", ".join(f"{i}. {c.label}" for i, c in enumerate(step.choices, start=1))
    raise InvalidAnswer(f"Please choose one of: {options}.")


def parse_time(raw: str, now: datetime, tz: Any) -> datetime:
    text = raw.strip().lower()
    local_now = now.astimezone(tz)
    if text in {"now", "just now", "right now"}:
        return local_now.replace(second=0, microsecond=0)
    match = _TIME.match(text)
    if match:
        day, hour, minute = match.group(1), int(match.group(2)), int(match.group(3))
        if hour < 24 and minute < 60:
            moment = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if day == "yesterday":
                moment -= timedelta(days=1)
            if moment > local_now + timedelta(minutes=5):
                raise InvalidAnswer("That time is in the future. Type a time like 14:05.")
            return moment
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidAnswer(
            "Please give a time like 14:05, 'yesterday 15:20', '2026-11-20 09:15' or 'now'."
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    if moment > local_now + timedelta(minutes=5):  # a picked date and time too
        raise InvalidAnswer("That time is in the future. Give the time it happened, or 'now'.")
    return moment


def format_time(moment: datetime) -> str:
    return moment.strftime("%a %d %b %Y %H:%M")
