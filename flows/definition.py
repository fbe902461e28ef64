"""Parse a flow file (YAML) into plain dataclasses and check it before any machine is built."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

from flows.concern import FLAGS, RECORDABLE, ROUTES

KINDS = ("info", "yes_no", "choice", "text", "datetime", "number")
FINAL_STATES = ("done", "exit")
# A button on a 390 px phone screen shows about 28 characters before cutting the title.
SHORT_TITLE_MAX = 28


class FlowDefinitionError(ValueError):
    """A flow file is not a valid procedure; the message names the file and every culprit."""


class _StrictBoolLoader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans: `yes`, `no`, `on`, `off` stay strings."""


_StrictBoolLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictBoolLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_StrictBoolLoader)


@dataclass(frozen=True)
class Branch:
    """A transition out of a step, in `transitions`' own terms."""

    dest: str
    conditions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()


@dataclass(frozen=True)
class Effect:
    """What choosing an answer does besides moving on."""

    flags: tuple[str, ...] = ()
    route: str | None = None
    say: str | None = None
    switch_to: str | None = None
    deadlines: tuple[str, ...] = ()
    next: str | None = None


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    effect: Effect = field(default_factory=Effect)


@dataclass(frozen=True)
class Step:
    id: str
    kind: str
    prompt: str
    source: str
    label: str
    help: str | None = None
    records: str | None = None
    action: bool = False  # the answer is something already done (goes to actions taken)
    optional: bool = False
    choices: tuple[Choice, ...] = ()
    effect: Effect = field(default_factory=Effect)  # applies to any answer
    next: tuple[Branch, ...] = ()
    raise_concern: bool = False  # after this step the alert goes out; later answers update it
    minimum: int | None = None
    maximum: int | None = None

    def choice(self, value: str) -> Choice:
        for choice in self.choices:
            if choice.value == value:
                return choice
        raise KeyError(value)


@dataclass(frozen=True)
class Rule:
    """A hard rule shown to the staff member before the first question."""

    text: str
    source: str


@dataclass(frozen=True)
class FlowDefinition:
    id: str
    title: str
    description: str
    route: str
    steps: tuple[Step, ...]
    rules: tuple[Rule, ...]
    dsl_decision: str
    deadlines: tuple[str, ...]
    triage: tuple[str, ...]
    path: str
    short_title: str = ""  # a button label that fits a phone (SHORT_TITLE_MAX characters)
    # The kind of concern in the third person, for the people who act ("Disclosure"): the
    # title above is the reporter's own words ("A child has told me...").
    alert_title: str = ""

    @property
    def initial(self) -> str:
        return self.steps[0].id

    def step(self, step_id: str) -> Step:
        return self._index[step_id]

    @cached_property
    def _index(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}


def _humanise(step_id: str) -> str:
    return step_id.replace("_", " ").capitalize()


class _Reader:
    """Collects every problem in a file, then raises once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{self.path}: {where}: {what}")

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        self.problem(where, "must be a string or a list of strings")
        return ()

    def check_keys(self, data: Mapping[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            self.problem(where, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")


_EFFECT_KEYS = {"flags", "route", "say", "switch_to", "deadlines", "next"}
_STEP_KEYS = {
    "id",
    "kind",
    "prompt",
    "source",
    "label",
    "help",
    "records",
    "action",
    "optional",
    "choices",
    "yes",
    "no",
    "next",
    "raise_concern",
    "min",
    "max",
    *_EFFECT_KEYS - {"next"},
}
_FLOW_KEYS = {
    "id",
    "title",
    "short_title",
    "alert_title",
    "description",
    "route",
    "rules",
    "steps",
    "dsl_decision",
    "deadlines",
    "triage",
}


def _effect(reader: _Reader, data: Mapping[str, Any], where: str) -> Effect:
    route = data.get("route")
    if route is not None and route not in ROUTES:
        reader.problem(f"{where}.route", f"unknown route {route!r}; known: {sorted(ROUTES)}")
    flags = reader.strings(data.get("flags"), f"{where}.flags")
    for flag in flags:
        if flag not in FLAGS:
            reader.problem(f"{where}.flags", f"unknown flag {flag!r}; known: {list(FLAGS)}")
    nxt = data.get("next")
    if nxt is not None and not isinstance(nxt, str):
        reader.problem(f"{where}.next", "must be a step id")
    return Effect(
        flags=flags,
        route=route,
        say=data.get("say"),
        switch_to=data.get("switch_to"),
        deadlines=reader.strings(data.get("deadlines"), f"{where}.deadlines"),
        next=nxt,
    )


def _branches(reader: _Reader, value: Any, where: str) -> tuple[Branch, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (Branch(dest=value),)
    if not isinstance(value, list):
        reader.problem(where, "must be a step id or a list of {dest, conditions, unless}")
        return ()
    branches = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or "dest" not in item:
            reader.problem(f"{where}[{i}]", "must be a mapping with `dest`")
            continue
        reader.check_keys(item, {"dest", "conditions", "unless"}, f"{where}[{i}]")
        branches.append(
            Branch(
                dest=item["dest"],
                conditions=reader.strings(item.get("conditions"), f"{where}[{i}].conditions"),
                unless=reader.strings(item.get("unless"), f"{where}[{i}].unless"),
            )
        )
    return tuple(branches)


def _step(reader: _Reader, data: Any, index: int) -> Step | None:
    where = f"steps[{index}]"
    if not isinstance(data, Mapping):
        reader.problem(where, "must be a mapping")
        return None
    step_id = data.get("id")
    if isinstance(step_id, str):
        where = f"step '{step_id}'"
    else:
        reader.problem(where, "missing `id`")
        step_id = f"step{index}"
    reader.check_keys(data, _STEP_KEYS, where)
    kind = data.get("kind")
    if kind not in KINDS:
        reader.problem(f"{where}.kind", f"must be one of {list(KINDS)}, not {kind!r}")
    for key in ("prompt", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            reader.problem(
                f"{where}.{key}", "is required (every step names the source requiring it)"
            )
    records = data.get("records")
    if records is not None and records not in RECORDABLE:
        reader.problem(
            f"{where}.records", f"unknown field {records!r}; known: {sorted(RECORDABLE)}"
        )

    choices: list[Choice] = []
    if kind == "yes_no":
        for value in ("yes", "no"):
            block = data.get(value) or {}
            if not isinstance(block, Mapping):
                reader.problem(f"{where}.{value}", "must be a mapping of effects")
                block = {}
            reader.check_keys(block, _EFFECT_KEYS, f"{where}.{value}")
            choices.append(
                Choice(value, value.capitalize(), _effect(reader, block, f"{where}.{value}"))
            )
    elif kind == "choice":
        raw = data.get("choices")
        if not isinstance(raw, list) or len(raw) < 2:
            reader.problem(f"{where}.choices", "a choice step needs at least two choices")
            raw = []
        for i, item in enumerate(raw):
            cwhere = f"{where}.choices[{i}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("value"), str):
                reader.problem(cwhere, "must be a mapping with a string `value` and `label`")
                continue
            reader.check_keys(item, _EFFECT_KEYS | {"value", "label"}, cwhere)
            label = item.get("label") or item["value"]
            choices.append(Choice(item["value"], label, _effect(reader, item, cwhere)))
        values = [c.value for c in choices]
        if len(set(values)) != len(values):
            reader.problem(f"{where}.choices", f"duplicate values in {values}")
    elif "choices" in data:
        reader.problem(f"{where}.choices", f"only choice steps have choices, not {kind!r}")

    return Step(
        id=step_id,
        kind=kind if kind in KINDS else "info",
        prompt=data.get("prompt") or "",
        source=data.get("source") or "",
        label=data.get("label") or _humanise(step_id),
        help=data.get("help"),
        records=records,
        action=bool(data.get("action", False)),
        optional=bool(data.get("optional", False)),
        choices=tuple(choices),
        effect=_effect(reader, {k: v for k, v in data.items() if k != "next"}, where),
        next=_branches(reader, data.get("next"), f"{where}.next"),
        raise_concern=bool(data.get("raise_concern", False)),
        minimum=data.get("min"),
        maximum=data.get("max"),
    )


def _merge(shared: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A flow's overrides win; `yes`/`no` effect blocks merge key by key."""
    merged = dict(shared)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def parse_flow(text: str, path: str, common: Mapping[str, Any] | None = None) -> FlowDefinition:
    """Parse and structurally check a flow file; `common` supplies shared steps (`use: id`)."""
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowDefinitionError(f"{path}: not valid YAML: {exc}") from exc
    reader = _Reader(path)
    if not isinstance(data, Mapping):
        raise FlowDefinitionError(f"{path}: a flow file must be a mapping")
    reader.check_keys(data, _FLOW_KEYS, "flow")
    for key in ("id", "title", "short_title", "alert_title", "route", "dsl_decision"):
        if not isinstance(data.get(key), str):
            reader.problem(f"flow.{key}", "is required")
    short = data.get("short_title")
    if isinstance(short, str) and not 0 < len(short.strip()) <= SHORT_TITLE_MAX:
        reader.problem(
            "flow.short_title",
            f"must be 1-{SHORT_TITLE_MAX} characters so a button shows it whole on a phone "
            f"(got {len(short)}: {short!r})",
        )
    if data.get("route") is not None and data.get("route") not in ROUTES:
        reader.problem(
            "flow.route", f"unknown route {data.get('route')!r}; known: {sorted(ROUTES)}"
        )

    shared = dict(common or {})
    steps: list[Step] = []
    for i, raw in enumerate(data.get("steps") or []):
        if isinstance(raw, Mapping) and "use" in raw:
            name = raw["use"]
            if name not in shared:
                reader.problem(
                    f"steps[{i}].use", f"no shared step {name!r}; known: {sorted(shared)}"
                )
                continue
            raw = _merge(shared[name], {k: v for k, v in raw.items() if k != "use"})
        step = _step(reader, raw, i)
        if step is not None:
            steps.append(step)
    if not steps:
        reader.problem("flow.steps", "a flow needs at least one step")

    rules = []
    for i, item in enumerate(data.get("rules") or []):
        if not isinstance(item, Mapping) or not {"text", "source"} <= set(item):
            reader.problem(f"rules[{i}]", "each rule needs `text` and `source`")
            continue
        rules.append(Rule(item["text"], item["source"]))

    if reader.problems:
        raise FlowDefinitionError("\n".join(reader.problems))
    return FlowDefinition(
        id=data["id"],
        title=data["title"],
        description=data.get("description", ""),
        route=data["route"],
        steps=tuple(steps),
        rules=tuple(rules),
        dsl_decision=data["dsl_decision"],
        deadlines=reader.strings(data.get("deadlines"), "flow.deadlines"),
        triage=reader.strings(data.get("triage"), "flow.triage"),
        path=path,
        short_title=data["short_title"].strip(),
        alert_title=data["alert_title"].strip(),
    )
