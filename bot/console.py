"""Console chat: the same dialog sessions in a terminal, for training, demos and a first look."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from dialogs.session import Session, recipient
from dialogs.text import concern_text, reply_text
from flows.concern import Reporter

BANNER = (
    "Safeguarding procedures - console (training and demo: nothing is sent to Teams).\n"
    "Tell me what happened, or type 'report', 'contacts', 'help' or 'quit'."
)


def run_console(
    profile,
    data_dir: Path,
    *,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    clock: Callable[[], datetime] | None = None,
    reporter: Reporter | None = None,
) -> int:
    """Read lines until EOF or 'quit'; print replies; write raised/final concerns as JSON."""
    clock = clock or (lambda: datetime.now(ZoneInfo("Europe/London")))
    reporter = reporter or Reporter(name="Console user", aad_object_id="console")
    out_dir = data_dir / "concerns"
    state: dict = {}
    print(BANNER, file=stdout)
    for line in stdin:
        text = line.rstrip("\n")
        if text.strip().lower() in {"quit", "exit"}:
            break
        session = Session(profile, reporter, state)
        result = session.handle(text, now=clock())
        state = result.state
        for reply in result.replies:
            print(reply_text(reply), file=stdout)
        for event in result.events:
            concern = event.concern
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"{concern.id}.json"
            path.write_text(json.dumps(concern.to_dict(), indent=2, ensure_ascii=False), "utf-8")
            print(f"\n--- ALERT ({event.kind}) as it would read ---", file=stdout)
            print(
                concern_text(
                    concern, recipient(profile, concern.routing.route, concern.subject_ids)
                ),
                file=stdout,
            )
            print(f"--- saved to {path} ---\n", file=stdout)
        print("> ", end="", file=stdout, flush=True)
    return 0
