"""When things must happen: escalation steps, deadline reminders and stalled-report timers.

Pure planning: given a concern (or a session) and the time, which timers to set. The
Timekeeper (bot/services/timekeeper.py) fires them; the store keeps them, so restarts lose none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.store import TimerSpec
from flows.concern import Concern

ESCALATE = "escalate"
DEADLINE = "deadline"
STALLED_REMINDER = "stalled_reminder"
STALLED_NOTICE = "stalled_notice"
CHASE_SOCIAL_CARE = "chase_social_care"
MID_REPORT = {"flow", "summary", "confirm_cancel"}

# What each escalation step did, as the alert card says it (the audit log keeps the key).
ESCALATION_TEXT = {
    "deputies": "deputy DSLs @mentioned in the thread",
    "dsl_team_direct": "DSL and deputies messaged directly",
    "headteacher": "headteacher told",
    "case_manager": "reminder sent to the case manager",
    "deputy_head": "deputy headteacher told",
}


def escalation_minutes(school: Any, concern: Concern, at: datetime) -> int:
    """Per priority, from the profile; out-of-hours timings outside school hours."""
    timings = school.escalation
    urgent = concern.priority == "urgent"
    if school.in_school_hours(at):
        return timings.urgent_minutes if urgent else timings.normal_minutes
    return timings.out_of_hours_urgent_minutes if urgent else timings.out_of_hours_normal_minutes


def escalation_step(school: Any, concern: Concern, at: datetime, step: int) -> TimerSpec:
    minutes = escalation_minutes(school, concern, at)
    return TimerSpec(
        kind=ESCALATE,
        due_at=at + timedelta(minutes=minutes),
        payload={"step": step, "minutes": minutes},
        key=f"{ESCALATE}:{concern.id}",
        concern_id=concern.id,
    )


def deadline_timers(concern: Concern, now: datetime) -> list[TimerSpec]:
    """A 'due soon' reminder (up to two hours before) and an 'overdue' one, per deadline."""
    timers = []
    for deadline in concern.deadlines:
        due = datetime.fromisoformat(deadline.due_at)
        lead = min(timedelta(hours=2), max(timedelta(0), (due - now) / 2))
        for phase, at in (("soon", due - lead), ("overdue", due)):
            if phase == "soon" and lead < timedelta(minutes=5):
                continue  # too close to be worth a separate reminder
            timers.append(
                TimerSpec(
                    kind=DEADLINE,
                    due_at=at,
                    payload={"deadline": deadline.id, "phase": phase},
                    key=f"{DEADLINE}:{concern.id}:{deadline.id}:{phase}",
                    concern_id=concern.id,
                )
            )
    return timers


def stalled_timers(
    school: Any, storage_key: str, reporter: dict[str, str], now: datetime
) -> list[TimerSpec]:
    """Reminder to the staff member, then a notice to whoever would have had the report."""
    rules = school.rules
    return [
        TimerSpec(
            kind=kind,
            due_at=now + timedelta(minutes=minutes),
            payload={"storage_key": storage_key, **reporter},
            key=f"{kind}:{storage_key}",
        )
        for kind, minutes in (
            (STALLED_REMINDER, rules.incomplete_report_reminder_minutes),
            (STALLED_NOTICE, rules.incomplete_report_notice_minutes),
        )
    ]


def deadline_met_at(
    deadline_id: str, concern: Concern, actions: Mapping[str, datetime]
) -> datetime | None:
    """When a deadline's duty was done (None: not yet), from the concern and the audit's
    first time for each action. The timekeeper's reminders and the record use this one test."""
    if deadline_id.startswith("fgm_"):
        if not concern.police_reference:
            return None
        return _action_at(concern, lambda label, _: label == "Police reference added") or (
            actions.get("add_police_reference") or _when(concern.raised_at or concern.started_at)
        )
    if deadline_id == "lado_one_working_day":
        return actions.get("referred_lado")
    if deadline_id == "written_record":
        return actions.get("written_record_done")
    if deadline_id == "missing_police_threshold":
        found = _action_at(
            concern,
            lambda label, value: (
                label == "Found or returned at"
                or (label.startswith("Reported missing") and value != "Not yet")
            ),
        )
        if found is not None:
            return found
        return _when(concern.raised_at or concern.started_at) if concern.police_reference else None
    return None


def _action_at(concern: Concern, match: Any) -> datetime | None:
    for action in concern.actions_taken:
        if match(action.label, action.value):
            return _when(action.at) or _when(concern.raised_at or concern.started_at)
    return None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
