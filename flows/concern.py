"""The Concern: the typed record a finished (or raised) flow yields for the people who must act."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Flags a step may raise. The card shows them at the top, in this order.
FLAGS: tuple[str, ...] = (
    "URGENT",
    "CALL-999",
    "POLICE-NOW",
    "PERSONAL-DUTY",
    "ADULT-INVOLVED",
    "ACCUSED-IS-DSL",
    "LOW-LEVEL-CONCERN",
    "OTHER-CHILDREN-AT-RISK",
    "GOING-HOME-TO-ALLEGED-ABUSER",
    "IMAGE-SEEN",
    "UNDER-13",
    "WEAPON",
    "SUICIDE-RISK",
    # What the DSL must know about the child (every child flow asks; issue 7 s5).
    "LOOKED-AFTER",
    "SOCIAL-WORKER",
    "SEND",
)

# Flags that send the alert at once, before the report is finished (issue 7 s2): the DSL
# must not wait for the reporter to reach the end of the form.
URGENT_FLAGS: frozenset[str] = frozenset(
    {"URGENT", "CALL-999", "POLICE-NOW", "GOING-HOME-TO-ALLEGED-ABUSER"}
)

# Who must receive the alert. Allegations never go to the DSL team's channel.
ROUTES: dict[str, str] = {
    "dsl_team": "The Designated Safeguarding Lead team",
    "headteacher": "The headteacher (case manager for allegations about staff)",
    "chair_of_governors": "The chair of governors / trustees (allegation about the headteacher)",
    "lado": "The LADO directly (conflict of interest)",
}


@dataclass(frozen=True)
class Reporter:
    """The member of staff making the report."""

    name: str
    aad_object_id: str
    role: str | None = None


@dataclass(frozen=True)
class Detail:
    """One recorded answer, labelled as the staff member saw it."""

    step: str
    label: str
    value: str


@dataclass(frozen=True)
class Action:
    """Something already done, with when it was done (999 called, police reference...)."""

    label: str
    value: str
    at: str


@dataclass(frozen=True)
class Deadline:
    """A promise the procedure makes, with who owns it."""

    id: str
    label: str
    due_at: str
    owner: str
    source: str


@dataclass(frozen=True)
class Routing:
    route: str
    reason: str


@dataclass
class Concern:
    """What the DSL (or case manager) needs to act on, and nothing the bot should not hold."""

    id: str
    type: str
    title: str
    school_id: str
    reporter: Reporter
    status: str  # raised (sent early, still being completed) or final
    started_at: str
    raised_at: str | None = None
    finished_at: str | None = None
    child_name: str | None = None
    child_year: str | None = None
    child_age: str | None = None
    occurred_at: str | None = None
    location: str | None = None
    words: str | None = None  # the child's own words, verbatim
    # What the staff member first typed to the bot ("her dad hits her"), verbatim: THEIR
    # words, never to be read as the child's. On the record once the procedure is finished
    # (an early alert gets them then: before the procedure knows who the report is about,
    # the opening words could name an adult the first recipients must not hear about).
    opening_words: str | None = None
    observations: str | None = None
    people_present: str | None = None
    subject_name: str | None = None  # the adult an allegation is about
    subject_role: str | None = None
    # The profile's people who are, or may be, that adult: no message about it reaches them.
    subject_ids: list[str] = field(default_factory=list)
    police_reference: str | None = None
    flags: list[str] = field(default_factory=list)
    actions_taken: list[Action] = field(default_factory=list)
    details: list[Detail] = field(default_factory=list)
    timeline: list[Action] = field(default_factory=list)
    routing: Routing = field(default_factory=lambda: Routing("dsl_team", ""))
    deadlines: list[Deadline] = field(default_factory=list)
    dsl_decision: str = ""
    sources: list[str] = field(default_factory=list)
    notes: list[Action] = field(default_factory=list)  # added later by the DSL / case manager

    @property
    def priority(self) -> str:
        return "urgent" if "URGENT" in self.flags else "normal"

    @property
    def is_allegation(self) -> bool:
        return self.routing.route != "dsl_team"

    def record_fields(self) -> list[tuple[str, str]]:
        """The typed fields that are filled in, labelled for people. The child's words are
        not among them: every reader shows those separately, verbatim."""
        pairs = [
            ("Child", self.child_name),
            ("Year / class", self.child_year),
            ("Age", self.child_age),
            ("Adult concerned", self.subject_name),
            ("Their role", self.subject_role),
            ("When", self.occurred_at),
            ("Where", self.location),
            ("People present", self.people_present),
            ("What was seen", self.observations),
            ("Police reference", self.police_reference),
        ]
        return [(label, value) for label, value in pairs if value]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Concern:
        data = dict(data)
        data["reporter"] = Reporter(**data["reporter"])
        data["routing"] = Routing(**data["routing"])
        for key, kind in (
            ("actions_taken", Action),
            ("timeline", Action),
            ("notes", Action),
            ("details", Detail),
        ):
            data[key] = [kind(**item) for item in data.get(key, [])]
        data["deadlines"] = [Deadline(**item) for item in data.get("deadlines", [])]
        return cls(**data)


# Step `records:` targets: the Concern fields a step may fill. Anything else is a Detail.
RECORDABLE: frozenset[str] = frozenset(
    {
        "child_name",
        "child_year",
        "child_age",
        "occurred_at",
        "location",
        "words",
        "observations",
        "people_present",
        "subject_name",
        "subject_role",
        "police_reference",
    }
)
