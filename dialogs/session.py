"""One staff member's conversation: menu, triage, running a flow, summary, global commands."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from dialogs import contacts
from dialogs.replies import Event, Option, Reply, TurnResult, question, recipient
from dialogs.triage import suggest
from flows.calendar import working_days_for
from flows.catalogue import catalogue
from flows.concern import Reporter
from flows.engine import CompiledFlow, FlowContext, FlowRun, InvalidAnswer
from flows.graph import progress

COMMANDS = {
    "help": "help",
    "?": "help",
    "menu": "menu",
    "report": "menu",
    "report a concern": "menu",
    "start": "menu",
    "cancel": "cancel",
    "stop": "cancel",
    "back": "back",
    "undo": "back",
}

HELP = (
    "I walk you through the right safeguarding procedure and send a report to the people who "
    "must act. Type or press:\n"
    "- 'report' (or just tell me what happened) to start a report\n"
    "- 'back' to change your last answer, 'cancel' to stop\n"
    "- 'my reports' to see what happened to reports you made ('open concerns' and 'child "
    "NAME' for a child's chronology: DSL team)\n"
    "- 'not acted on' if you feel a concern you reported has not been addressed\n"
    "- 'contacts', or a name like 'lado', 'police', 'out of hours', 'dsl' for a number"
)
# Kept apart from the list of commands (its own red block), so it is never read as one more.
EMERGENCY_LINE = "If a child is in immediate danger, phone {emergency} now - do not wait for me."
# Button titles that texts name: one source, so the words always match the buttons.
SEND_BUTTON = "Send now"
CHANGE_BUTTON = "Change an answer"


@dataclass
class Session:
    """Pure: the caller loads `state`, calls `handle` and saves `TurnResult.state`."""

    profile: Any
    reporter: Reporter
    state: dict[str, Any] = field(default_factory=dict)
    flows: Mapping[str, CompiledFlow] = field(default_factory=catalogue)
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        self.state = dict(self.state or {"mode": "idle"})
        self._context = FlowContext(self.profile, self.reporter, working_days_for(self.profile))

    # -- entry point ------------------------------------------------------------------

    def handle(
        self, text: str | None = None, value: Mapping[str, Any] | None = None, *, now: datetime
    ) -> TurnResult:
        """One incoming message: typed `text`, or a card's submitted `value`."""
        # One clock per turn: whether it is school hours is decided here, once, and every
        # message of the turn (the out-of-hours notice, a step's warning) follows it.
        self._context = replace(self._context, in_school_hours=self.profile.in_school_hours(now))
        self._replies: list[Reply] = []
        self._events: list[Event] = []
        self._answered: list[tuple[str, str]] = []
        if value:
            self._on_submit(dict(value), now)
        else:
            self._on_text(text or "", now)
        return TurnResult(self._replies, self._events, dict(self.state), self._answered)

    def _on_text(self, text: str, now: datetime) -> None:
        command = COMMANDS.get(text.strip().lower())
        mode = self.state["mode"]
        if command and mode != "confirm_cancel":
            return getattr(self, f"_cmd_{command}")(now)
        found = (
            None
            if self._is_answer(text, now)
            else contacts.lookup(self.profile, text, now, bare=mode != "flow" or self._typed())
        )
        if found:
            self._replies.append(found)
            if mode != "idle":
                self._reprompt(now, "Your report is still open - here is where you were:")
            return None
        handler = getattr(self, f"_text_{mode}")
        return handler(text, now)

    def _on_submit(self, value: dict[str, Any], now: datetime) -> None:
        action = value.get("action")
        if action == "command" and value.get("command") in set(COMMANDS.values()):
            return getattr(self, f"_cmd_{value['command']}")(now)
        if action == "start" and value.get("flow") in self.flows:
            if self.state["mode"] in {"flow", "summary", "confirm_cancel"}:
                # An old menu button must never throw away a report in progress.
                self._say("You are part-way through a report. Type 'cancel' first to stop it.")
                return self._reprompt(now)
            return self._start(value["flow"], now)
        if action == "answer" and self.state["mode"] == "flow":
            if value.get("step") != self.state["flow"]["step"]:
                self._say("That button belongs to an earlier question; nothing was changed.")
                return self._reprompt(now)
            return self._answer(_submitted_answer(value, now), now)
        if action in {"confirm", "change", "cancel_yes", "cancel_no"}:
            return self._text_dispatch(action, value, now)
        self._say("Sorry, I did not understand that button. Nothing was changed.")
        return self._reprompt(now)

    def _text_dispatch(self, action: str, value: dict[str, Any], now: datetime) -> None:
        mode = self.state["mode"]
        if action == "confirm" and mode == "summary":
            return self._confirm(now)
        if action == "change" and mode == "summary":
            return self._text_summary(f"change {value.get('number', '')}", now)
        if action in {"cancel_yes", "cancel_no"} and mode == "confirm_cancel":
            return self._text_confirm_cancel("yes" if action == "cancel_yes" else "no", now)
        self._say("That button is out of date; nothing was changed.")
        return self._reprompt(now)

    # -- modes ------------------------------------------------------------------------

    def _text_idle(self, text: str, now: datetime) -> None:
        # What they typed before choosing a procedure goes with the report as their own
        # opening words (the first few messages; never the child's words).
        opening = _fresh_opening(self.state, now)
        kept = {
            "opening": [*opening, text][:OPENING_MESSAGES],
            "opening_at": self.state["opening_at"] if opening else now.isoformat(),
        }
        candidates = suggest(text, (f.definition for f in self.flows.values()))
        if not candidates:
            self.state = {"mode": "idle", **kept}
            return self._cmd_menu(now)
        self.state = {"mode": "triage", "candidates": candidates, **kept}
        options = [Option(c, self.flows[c].definition.short_title) for c in candidates]
        options.append(Option("menu", SOMETHING_ELSE, submit=MENU_COMMAND))
        self._replies.append(
            Reply(
                kind="menu",
                title="Which of these is it?",
                text="Choose the closest to start. Nothing has been sent yet. If a child is in "
                f"immediate danger, phone {self._emergency()} now.",
                options=tuple(options),
                submit={"action": "start"},
            )
        )
        return None

    def _text_triage(self, text: str, now: datetime) -> None:
        chosen = _pick(text, self.state["candidates"], self.flows)
        if chosen:
            return self._start(chosen, now)
        said = text.strip().lower()
        if said in {SOMETHING_ELSE.lower(), str(len(self.state["candidates"]) + 1)}:
            return self._cmd_menu(now)
        self.state = {"mode": "idle", **_opening(self.state)}
        return self._text_idle(text, now)

    def _text_menu(self, text: str, now: datetime) -> None:
        chosen = _pick(text, list(self.flows), self.flows)
        if chosen:
            return self._start(chosen, now)
        self.state = {"mode": "idle", **_opening(self.state)}
        return self._text_idle(text, now)

    def _text_flow(self, text: str, now: datetime) -> None:
        return self._answer(text, now)

    def _text_summary(self, text: str, now: datetime) -> None:
        said = text.strip().lower()
        if said in {"send", "confirm", "yes", "y"}:
            return self._confirm(now)
        if said.startswith("change"):
            said = said.removeprefix("change").strip()
        with self._run() as run:
            history = list(run.data["history"])
        if said.isdigit() and 1 <= int(said) <= len(history):
            return self._change(history[int(said) - 1], now)
        self._say("Type 'send' to send the report, or 'change' and a number to correct an answer.")
        return self._show_summary(now)

    def _text_confirm_cancel(self, text: str, now: datetime) -> None:
        said = text.strip().lower()
        if said in {"yes", "y", "cancel"}:
            was_raised = self.state.get("raised", False)
            if was_raised:
                with self._run() as run:
                    concern = run.concern(self._id(), now)
                # Never a silent retraction: the alert stays, marked as stopped by the reporter.
                self._events.append(Event("report_abandoned", concern))
                to = recipient(self.profile, concern.routing.route, concern.subject_ids)
                self._say(
                    f"Stopped. The alert {to} already has stays open with what you recorded, "
                    "marked as stopped by you; please tell them in person what has changed."
                )
            else:
                self._say("Cancelled. Nothing was sent and nothing was kept.")
            self.state = {"mode": "idle"}
            return None
        self.state["mode"] = self.state.pop("resume_mode", "flow")
        self._say("Carrying on.")
        return self._reprompt(now)

    # -- commands ---------------------------------------------------------------------

    def _cmd_help(self, now: datetime) -> None:
        self._replies.append(Reply(kind="text", title="Help", text=HELP))
        self._say(EMERGENCY_LINE.format(emergency=self._emergency()), urgent=True)
        if self.state["mode"] != "idle":
            self._reprompt(now)

    def _cmd_menu(self, now: datetime) -> None:
        if self.state["mode"] in {"flow", "summary"}:
            self._say("You are part-way through a report. Type 'cancel' first to stop it.")
            return self._reprompt(now)
        self.state = {"mode": "menu", **_opening(self.state)}
        self._replies.append(
            Reply(
                kind="menu",
                title="What is your concern about?",
                text="Choose the closest. If a child is in immediate danger, phone "
                f"{self._emergency()} now.",
                options=tuple(Option(f.id, f.definition.short_title) for f in self.flows.values()),
                submit={"action": "start"},
            )
        )
        return None

    def _cmd_cancel(self, now: datetime) -> None:
        mode = self.state["mode"]
        if mode not in {"flow", "summary"}:
            self.state = {"mode": "idle"}
            return self._say("Nothing to cancel. Type 'report' to start a report.")
        self.state["resume_mode"] = mode
        self.state["mode"] = "confirm_cancel"
        self._answered.append(("", "You pressed Cancel."))
        raised = self.state.get("raised", False)
        if raised:
            with self._run() as run:
                so_far = run.concern(self._id(), now)
            to = recipient(self.profile, so_far.routing.route, so_far.subject_ids)
        self._replies.append(
            Reply(
                kind="confirm",
                title="Cancel this report?",
                text=(
                    f"{to[0].upper()}{to[1:]} already has the alert for this report; "
                    "cancelling stops adding to it, and the alert says you stopped."
                    if raised
                    else "Nothing has been sent yet. If you cancel, your answers are deleted."
                ),
                options=(
                    Option("cancel_yes", "Yes, cancel", "destructive"),
                    Option("cancel_no", "No, carry on", "positive"),
                ),
            )
        )
        return None

    def _cmd_back(self, now: datetime) -> None:
        mode = self.state["mode"]
        if mode not in {"flow", "summary"}:
            return self._say("There is nothing to go back to.")
        with self._run() as run:
            moved = run.back()
            self._save(run)
        self.state["mode"] = "flow"
        if moved:
            self._answered.append(("", "You went back to change an answer."))
        if not moved:
            self._say("This is the first question.")
        return self._reprompt(now)

    # -- running a flow ---------------------------------------------------------------

    def _start(
        self,
        flow_id: str,
        now: datetime,
        prefill: Mapping[str, Any] | None = None,
        raised: Mapping[str, Any] | None = None,
        opening_words: str | None = None,
    ) -> None:
        """Start a flow; after a switch, `prefill` holds the answers kept, `raised` the
        early alert already sent (its route, when and at which step) and `opening_words`
        what the staff member first typed."""
        flow = self.flows[flow_id]
        if not prefill:
            # Pressed on the triage card those words brought, they belong to this report
            # however long it took; otherwise only words typed in the last half hour.
            triaged = self.state["mode"] == "triage" and self.state.get("opening")
            words = self.state["opening"] if triaged else _fresh_opening(self.state, now)
            opening_words = "\n".join(words) or None
        self.state = {
            "mode": "flow",
            "concern_id": self.state.get("concern_id") if prefill else self.new_id(),
            "raised": False,
            "flow": flow.new_state(now, prefill, opening_words),
        }
        if raised and raised["route"] == flow.definition.route:
            # The same people keep the same alert: later answers update that card.
            self.state["raised"] = True
            self.state["flow"]["raised_at"] = raised["at"]
            self.state["flow"]["raised_step"] = raised["step"]
        elif raised:
            # The alert already sent went to other people: this report is a new concern for
            # its own recipients, and nothing from here on is added to the old card.
            self.state["concern_id"] = self.new_id()
        definition = flow.definition
        if not prefill:
            self._answered.append(("Report", definition.short_title))
        self._replies.append(
            Reply(kind="text", title=definition.title, text=definition.description)
        )
        if not prefill and not self._context.in_school_hours:
            route = definition.route
            to = None
            if route != "dsl_team":  # who it is about is not known yet
                to = (
                    f"{recipient(self.profile, route)} - or the "
                    f"{self.profile.chair_title.lower()} if it is about the headteacher"
                )
            self._replies.append(contacts.out_of_hours(self.profile, now, to))
        if prefill:  # answers kept from the flow we switched from are not asked again
            with self._run() as run:
                outcome = run.skip_prefilled()
                outcome.updated = self.state["raised"]  # the same card now shows this procedure
                self._save(run)
                self._alert_events(run, outcome, now)
        return self._reprompt(now)

    def _answer(self, raw: Any, now: datetime) -> None:
        with self._run() as run:
            step = run.step
            try:
                outcome = run.answer(raw, now)
            except InvalidAnswer as exc:
                self._say(str(exc))
                return self._reprompt(now)
            self._save(run)
            if step.kind != "info" and step.id in run.data["answers"]:
                self._answered.append((step.label, run.display(step, run.data["answers"][step.id])))
            for message in outcome.say:
                self._say(message, urgent=True)
            carry = raised = None
            opening_words = run.data.get("opening_words")
            if outcome.switch_to:
                carry = run.carry_over()
                if self.state.get("raised"):
                    raised = {
                        "route": run.route(),
                        "at": run.data["raised_at"],
                        "step": run.data["raised_step"],
                    }
                    if self.flows[outcome.switch_to].definition.route != raised["route"]:
                        # The answer that switched may name an adult in the school: it is never
                        # added to the card the first recipients hold. That card says only
                        # that the report went on elsewhere.
                        self._events.append(Event("report_moved", run.concern(self._id(), now)))
            else:
                self._alert_events(run, outcome, now)
        if outcome.switch_to:
            return self._start(
                outcome.switch_to, now, prefill=carry, raised=raised, opening_words=opening_words
            )
        if outcome.exited:
            self.state = {"mode": "idle"}
            return self._say("That is the end of this procedure. Nothing else needs sending.")
        if outcome.finished:
            self.state["mode"] = "summary"
            return self._show_summary(now)
        return self._reprompt(now)

    def _alert_events(self, run: FlowRun, outcome: Any, now: datetime) -> None:
        """An early alert (urgent, or a missing child) goes out now; later answers update it."""
        if outcome.raised:
            self.state["raised"] = True
            concern = run.concern(self._id(), now)
            self._events.append(Event("concern_raised", concern))
            to = recipient(self.profile, concern.routing.route, concern.subject_ids)
            self._say(
                f"Saved, and sending an alert to {to} now with what you have recorded so far. "
                "Carry on: each answer you give updates that same alert.",
                urgent=True,
            )
        elif outcome.updated and self.state.get("raised"):
            self._events.append(Event("concern_updated", run.concern(self._id(), now)))

    def _show_summary(self, now: datetime) -> None:
        with self._run() as run:
            concern = run.concern(self._id(), now)
            facts = tuple(
                (f"{i}. {run.definition.step(step_id).label}", shown)
                for i, (step_id, shown) in enumerate(run.answers_for_display().items(), start=1)
            )
        if concern.opening_words:  # sent with the report: they see it before it goes
            facts = (*facts, (OPENING_LABEL, concern.opening_words))
        to = recipient(self.profile, concern.routing.route, concern.subject_ids)
        self._replies.append(
            Reply(
                kind="summary",
                title="Check your report before it is sent",
                text=f"This will go to {to}. Check every answer. To correct one, press "
                f"'{CHANGE_BUTTON}' (or type 'change' and its number). Nothing is sent until "
                f"you press '{SEND_BUTTON}'.",
                facts=facts,
                options=(
                    Option("confirm", SEND_BUTTON, "positive"),
                    Option("change", CHANGE_BUTTON),
                ),
                submit={"action": "confirm"},
                urgent=concern.priority == "urgent",
            )
        )

    def _change(self, step_id: str, now: datetime) -> None:
        with self._run() as run:
            try:
                run.correct(step_id)
            except KeyError:
                self._say("There is no such answer to change.")
                return self._show_summary(now)
            self._save(run)
        self.state["mode"] = "flow"
        return self._reprompt(now, "Correct this answer; I will keep your other answers:")

    def _confirm(self, now: datetime) -> None:
        with self._run() as run:
            concern = run.concern(self._id(), now)
        self._events.append(Event("concern_final", concern))
        to = recipient(self.profile, concern.routing.route, concern.subject_ids)
        if self.state.get("raised"):
            self._say(f"Saved. The alert {to} already has is now complete with all your answers.")
        else:
            self._say(
                f"Saved. Sending your report to {to} now - I will tell you when it has been "
                "delivered."
            )
        self.state = {"mode": "idle", "last_concern_id": concern.id}

    # -- helpers ----------------------------------------------------------------------

    def _run(self):
        flow_state = self.state["flow"]
        return self.flows[flow_state["flow"]].attach(flow_state, self._context)

    def _save(self, run: FlowRun) -> None:
        self.state["flow"] = run.snapshot()

    def _id(self) -> str:
        return self.state["concern_id"]

    def _is_answer(self, text: str, now: datetime) -> bool:
        """A valid choice wins over a contact word ("staff" is an answer, not the LADO)."""
        if self.state["mode"] != "flow" or not self._typed():
            return False
        with self._run() as run:
            return run.step.kind != "info" and run.accepts(text, now)

    def _typed(self) -> bool:
        """True when the current step expects a choice, so a contact word cannot be an answer."""
        flow = self.state["flow"]
        step = self.flows[flow["flow"]].definition.step(flow["step"])
        return step.kind in {"yes_no", "choice", "info"}

    def _emergency(self) -> str:
        return self.profile.contact("emergency").number or "the emergency services"

    def _say(self, text: str, urgent: bool = False) -> None:
        self._replies.append(Reply(kind="text", text=text, urgent=urgent))

    def _reprompt(self, now: datetime, lead: str | None = None) -> None:
        mode = self.state["mode"]
        if mode == "summary":
            return self._show_summary(now)
        if mode != "flow":
            return None
        if lead:
            self._say(lead)
        with self._run() as run:
            number, total, seconds = progress(run.definition, run.state, len(run.data["history"]))
            shown = f"Question {number} of {total} - {_time_left(seconds)}"
            self._replies.append(question(run.prompt(), shown, now.date().isoformat()))
        return None


SOMETHING_ELSE = "Something else"
OPENING_MESSAGES = 5  # the first few messages typed before a procedure was chosen
OPENING_MAX_AGE = timedelta(minutes=30)
OPENING_LABEL = "Your first message (sent as your words, not the child's)"
MENU_COMMAND = {"action": "command", "command": "menu"}


def _opening(state: Mapping[str, Any]) -> dict[str, Any]:
    """The opening words typed so far, kept while a procedure is being chosen."""
    if not state.get("opening"):
        return {}
    return {"opening": state["opening"], "opening_at": state["opening_at"]}


def _fresh_opening(state: Mapping[str, Any], now: datetime) -> list[str]:
    """The opening words, unless typed too long ago to belong to the report starting now
    ("hello" yesterday is not part of today's report)."""
    at = state.get("opening_at")
    if not state.get("opening") or not at:
        return []
    if now - datetime.fromisoformat(at) > OPENING_MAX_AGE:
        return []
    return list(state["opening"])


def _time_left(seconds: int) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute left"
    return f"about {minutes} minute{'s' if minutes > 1 else ''} left"


def _submitted_answer(value: Mapping[str, Any], now: datetime) -> Any:
    """The answer a card sent: its `value`, or a date and time from the pickers."""
    answer = value.get("value", "")
    picked_time = str(value.get("time") or "").strip()
    if answer in ("", None) and picked_time:
        picked_date = str(value.get("date") or "").strip() or now.date().isoformat()
        return f"{picked_date} {picked_time}"
    return answer


def _pick(text: str, flow_ids: list[str], flows: Mapping[str, CompiledFlow]) -> str | None:
    said = text.strip().lower()
    for index, flow_id in enumerate(flow_ids, start=1):
        if said in {flow_id, str(index), flows[flow_id].definition.title.lower()}:
            return flow_id
    return None
