"""Never an invented phone number: each number a profile gives must appear in the seed
policy's line quoted for it, or come from a public page named in its source."""

from __future__ import annotations

import re
from typing import Any

from flows.profile.checks import _Checker

_URL = re.compile(r"https?://\S+")
_RUN = r"(?:\([0-9]+\) ?)?[0-9]+(?: [0-9]+)*"  # "(01482) 448879", "0808 800 5000", "101"
_WRITTEN = re.compile(rf"({_RUN})((?:/[0-9]{{1,4}})+)")


def written_numbers(text: str) -> set[str]:
    """Every number a line of text gives, as digits; '(01482)396998/9' is two numbers,
    01482396998 and 01482396999, and '101, or 999' gives 101 and 999."""
    found: set[str] = set()
    for m in _WRITTEN.finditer(text):
        base = re.sub(r"[^0-9]", "", m.group(1))
        found.add(base)
        for tail in m.group(2).split("/")[1:]:
            found.add(base[: len(base) - len(tail)] + tail)
    stripped = _WRITTEN.sub(" ", text)
    for run in re.findall(_RUN, stripped):
        found.add(re.sub(r"[^0-9]", "", run))
    return found


def number_digits(number: str) -> list[str]:
    """The digits of each number in a contact's number field ('A or B' is two)."""
    return [re.sub(r"[^0-9]", "", part) for part in re.split(r" or |/", number) if part.strip()]


def _check_evidence(ck: _Checker, at: Any, number: str, quote: str | None, source: str) -> None:
    """Never an invented number: each one carries the seed policy's line it was copied from
    (`quote`), or a public page (`source` with the https:// address) and its check date."""
    if quote is not None:
        given = written_numbers(quote)
        for digits in number_digits(number):
            if digits not in given:
                ck.bad(at("quote"), f"does not contain the number {number!r} (as digits {digits})")
        return
    if not _URL.search(source):
        ck.bad(
            at("number"),
            f"{number!r} needs its evidence: `quote:` (the seed policy's line, verbatim) or a "
            "public page in `source:` (https://...) with `last_verified:`",
        )
