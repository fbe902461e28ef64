"""Golden check of every card design against the official Adaptive Cards renderer, in
headless Chromium with Teams' light theme (tests/browser/render_cards.mjs): no renderer
warning, nothing cut off, every text at WCAG AA contrast - at desktop and phone width.
Screenshots of the alert card are saved under build/cards/ (CI keeps them as artefacts)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.teams.alert_card import Mentioned, alert_card
from flows.concern import Action, Deadline, Routing
from tests.cardcheck import node_executable
from tests.e2e import RunningBot
from tests.test_alert_card import concern
from tests.test_e2e import WALKS, report

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "browser" / "render_cards.mjs"
OUT = ROOT / "build" / "cards"
CHROMIUM = Path("/usr/bin/chromium")
DESKTOP, PHONE = 1280, 390  # Teams' chat column is narrower than the window; 390 is a phone
ACKED = {"state": "acknowledged", "by": "Ann Robinson", "at": "2026-11-23T15:40:00+00:00"}
NOTE = {
    "state": "note",
    "by": "Ann Robinson",
    "at": "2026-11-23T15:45:00+00:00",
    "text": "Spoke to the class teacher.",
}


def alert_designs() -> dict[str, dict[str, Any]]:
    """Each state the alert card has, as the DSL team sees it."""
    team = [Mentioned("a1", "Ann Robinson"), Mentioned("a2", "Adam Graves")]
    full = concern(
        flags=["URGENT", "CALL-999", "POLICE-NOW", "GOING-HOME-TO-ALLEGED-ABUSER", "SEND"],
        child_age="8",
        occurred_at="Mon 23 Nov 15:20",
        location="The library, by the reading corner",
        observations="A bruise on her left forearm, about 3 cm, blue",
        actions_taken=[Action("999 called", "Yes - ambulance", "2026-11-23T15:31:00+00:00")],
        deadlines=[
            Deadline("written_record", "Written record", "2026-11-23T17:00:00+00:00", "x", "y")
        ],
    )
    allegation = concern(
        type="allegation",
        flags=["LOW-LEVEL-CONCERN"],
        subject_name="Mr Adult",
        subject_role="A teacher",
        routing=Routing("headteacher", "Allegations go to the headteacher only."),
    )
    return {
        "alert-urgent": alert_card(
            full, recipient="the DSL team", mentions=team, refresh_ids=["8:orgid:a1"]
        ),
        "alert-you-have-this": alert_card(
            full, recipient="the DSL team", history=[ACKED, NOTE], viewer_line="You have this."
        ),
        "alert-routine": alert_card(
            replace(full, flags=["SEND"], actions_taken=[]), recipient="the DSL team"
        ),
        "alert-closed": alert_card(
            full,
            recipient="the DSL team",
            history=[ACKED],
            status={"state": "closed", "by": "Ann Robinson", "at": "2026-11-23T16:30:00+00:00"},
        ),
        "alert-allegation": alert_card(allegation, recipient="the headteacher (Pat Head) only"),
        "alert-read-only": alert_card(
            full,
            recipient="the DSL team",
            viewer_line="Only the DSL team can act on this alert.",
            can_act=False,
        ),
    }


def render(designs: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    assert CHROMIUM.exists(), "Debian's Chromium is missing: `make test` installs it"
    out.mkdir(parents=True, exist_ok=True)
    cards_file = out / "cards.json"
    cards_file.write_text(json.dumps(designs, ensure_ascii=False))
    proc = subprocess.run(
        [node_executable(), str(SCRIPT), str(cards_file), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.stdout, f"render_cards.mjs printed nothing: {proc.stderr[-2000:]}"
    result = json.loads(proc.stdout)
    (out / "report.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return result


def test_the_alert_card_renders_whole_and_readable_at_desktop_and_phone_width() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    designs = [
        {"name": name, "card": card, "widths": [DESKTOP, PHONE], "shoot": True}
        for name, card in alert_designs().items()
    ]
    result = render(designs, OUT)
    assert not result["errors"], "\n".join(result["errors"])
    shots = {Path(r["screenshot"]).name for r in result["results"]}
    assert shots == {f"{d['name']}-{w}.png" for d in designs for w in (DESKTOP, PHONE)}


async def test_every_conversation_card_renders_whole_and_readable_on_a_phone(
    bot: RunningBot, tmp_path: Path
) -> None:
    await report(bot, "disclosure", WALKS["disclosure"])
    unique = {json.dumps(c, sort_keys=True): c for c in bot.sent_cards()}
    designs = [
        {"name": f"sent-{i:02d}", "card": card, "widths": [PHONE], "shoot": False}
        for i, card in enumerate(unique.values())
    ]
    assert len(designs) > 10
    result = render(designs, tmp_path)
    assert not result["errors"], "\n".join(result["errors"])


def test_the_check_catches_cut_off_buttons_and_poor_contrast(tmp_path: Path) -> None:
    """The checker itself: a too-long button title and green text on white both fail."""
    bad = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": "Picked up", "color": "Good", "wrap": True}],
        "actions": [
            {"type": "Action.Submit", "title": "A very long button title " * 4, "data": {}}
        ],
    }
    result = render([{"name": "bad", "card": bad, "widths": [PHONE], "shoot": False}], tmp_path)
    joined = "\n".join(result["errors"])
    assert 'contrast: "Picked up"' in joined
    assert 'cut off: "A very long button title' in joined


@pytest.fixture(autouse=True)
def _node_tools() -> None:
    node_executable()  # a clear error when node or node_modules is missing
