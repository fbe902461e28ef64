"""Named guards (questions about the answers so far) that flow files may use in `conditions`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Facts:
    """What a guard may look at: the answers on the path taken, the flags raised, local rules."""

    answers: Mapping[str, Any]
    flags: frozenset[str]
    rules: Any  # flows.profile.LocalRules

    def said_yes(self, step_id: str) -> bool:
        return self.answers.get(step_id) is True

    def chose(self, step_id: str, *values: str) -> bool:
        return self.answers.get(step_id) in values


Guard = Callable[[Facts], bool]
GUARDS: dict[str, Guard] = {}


def guard(fn: Guard) -> Guard:
    GUARDS[fn.__name__] = fn
    return fn


@guard
def fgm_duty_applies(facts: Facts) -> bool:
    """FGM Act 2003 s5B: anyone employed or engaged to carry out teaching work (a TA or HLTA
    covering a class included) learns that FGM appears to have been carried out on a girl under
    18 because she told them or they saw signs. 'Not sure' (of her age, or whether the reporter
    is covered) counts as covered: report personally and tell the DSL."""
    return (
        facts.chose("is_teacher", "yes", "teaching", "not_sure")
        and facts.chose("how_known", "girl_told", "saw_signs")
        and facts.chose("under_18", "yes", "not_sure")
    )


@guard
def is_sexual_offence(facts: Facts) -> bool:
    """Seed 004 Appendix D: rape, assault by penetration or sexual assault go to the police."""
    return facts.chose("what_happened", "rape", "assault_by_penetration", "sexual_assault")


@guard
def is_low_level_concern(facts: Facts) -> bool:
    """KCSIE Part four section two: none of the harm test applies - a low-level concern."""
    return facts.chose("harm_test", "low_level")
