"""A whole disclosure through the Agents Playground's web UI in a real browser (issue 12).

Debian's Chromium (installed by `make test` when /usr/bin/chromium is missing) is driven by
playwright-core (pinned in package.json) with tests/browser/walk.mjs, at desktop
(1280x900) and phone (390x844) width, against our real bot and the Playground (the same
set-up as test_playground_disclosure.py). Through the real Adaptive Cards renderer it checks
that Back and Cancel work on an empty required box while Next still validates, that triage
offers short titles and "Something else", that no answered card keeps a live button and each
question shows its progress, and it counts taps and bot messages for the walk in the issue.
Screenshots and the counts are saved under build/browser/ (CI keeps them as artefacts).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.acceptance.playground import Playground
from tests.acceptance.test_playground_disclosure import CHANNEL, running  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
WALK = ROOT / "tests" / "browser" / "walk.mjs"
OUT = ROOT / "build" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
# Issue 12's goal for the walk (it took 18 taps and 21 bot messages before).
MAX_TAPS = 10
MAX_BOT_MESSAGES = 12

if not Playground.is_installed():
    pytest.skip("node_modules is missing: run npm ci at the repo root", allow_module_level=True)


async def test_a_whole_disclosure_in_a_real_browser_at_desktop_and_phone_width(running) -> None:  # noqa: F811
    assert CHROMIUM.exists(), (
        "Debian's Chromium is missing: `make test` installs it (apt-get install chromium)"
    )
    _, pg = running
    shutil.rmtree(OUT, ignore_errors=True)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(WALK),
        pg.base_url,
        str(OUT),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 150)
    assert stdout, f"the browser walk printed nothing: {stderr.decode()[-2000:]}"
    result = json.loads(stdout)
    (OUT / "counts.json").write_text(json.dumps(result, indent=2))
    assert not result["errors"], "\n".join(result["errors"])
    assert [run["name"] for run in result["runs"]] == ["desktop", "phone"]
    for run in result["runs"]:
        # Taps for the walk the issue measured; the questions added since (social worker /
        # looked after / SEND, injury seen) are counted apart in addedTaps.
        assert run["taps"] <= MAX_TAPS, run
        assert run["addedTaps"] <= 2, run
        assert run["botMessages"] <= MAX_BOT_MESSAGES, run
        assert len(run["screenshots"]) >= 6
        assert all(Path(shot).stat().st_size > 10_000 for shot in run["screenshots"])
    desktop = result["runs"][0]
    assert desktop["checks"] == ["next-validates", "back-on-empty-box", "cancel-on-empty-box"]
    # Both reports reached the DSL channel through the real UI.
    alerts = [m for m in pg.messages(CHANNEL, from_bot=True) if m.card]
    assert len(alerts) == 2
