# The command line: console chat end to end, and the committed flow diagrams being current.
from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.cli import main
from bot.console import run_console
from flows.catalogue import load_definitions
from flows.diagram import document, mermaid
from flows.profile import load_organisation
from tests.test_session import DISCLOSURE

ROOT = Path(__file__).resolve().parent.parent


def test_console_chat_prints_the_alert_and_writes_nothing(tmp_path, monkeypatch):
    school = load_organisation(ROOT / "profiles" / "buttsbury-junior.yaml").school()
    words = "He hits me with a belt 👍🏽 {{ x }}"
    answers = ["a child told me her dad hits her", "1", *DISCLOSURE, "send"]
    answers[answers.index(DISCLOSURE[8])] = words  # the child's words
    out = io.StringIO()
    monkeypatch.chdir(tmp_path)
    clock = lambda: datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/London"))  # noqa: E731
    assert run_console(school, stdin=io.StringIO("\n".join(answers)), stdout=out, clock=clock) == 0
    printed = out.getvalue()
    assert "ALERT (concern_final)" in printed
    assert "  | He hits me with a belt 👍🏽 {{ x }}" in printed
    # A trainee may type a real child's words: the console leaves no file anywhere.
    assert list(tmp_path.rglob("*")) == []


def test_docs_flows_md_is_current():
    committed = (ROOT / "docs" / "flows.md").read_text("utf-8")
    assert committed == document(load_definitions().values()), (
        "docs/flows.md is stale: run `safeguarding-bot flows draw --markdown > docs/flows.md`"
    )


def test_flows_draw_prints_one_flow_as_mermaid(capsys):
    assert main(["flows", "draw", "fgm"]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == mermaid(load_definitions()["fgm"]).strip()
    assert "under_18 --> personal_duty: fgm_duty_applies" in printed


def test_unknown_flow_and_bad_profile_are_clear_errors(tmp_path, capsys):
    assert main(["flows", "draw", "nope"]) == 2
    assert "Unknown flow 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n", "utf-8")
    assert main(["chat", "--profile", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
