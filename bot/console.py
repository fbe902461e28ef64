"""Console chat: the same dialog sessions in a terminal, for training, demos and a first look."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from dialogs.replies import recipient
from dialogs.session import Session
from dialogs.text import concern_text, reply_text
from flows.concern import Reporter

BANNER = (
    "Safeguarding procedures - console (training and demo: nothing is sent to Teams or saved).\n"
    "Tell me what happened, or type 'report', 'contacts', 'help' or 'quit'."
)


def run_console(
    profile,
    *,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    clock: Callable[[], datetime] | None = None,
    reporter: Reporter | None = None,
) -> int:
    """Read lines until EOF or 'quit'; print replies and each alert as it would read.

    Nothing is written to disk: what a trainee types may be a real child's words, and only the
    server's store keeps such words (encrypted, in private files)."""
    clock = clock or (lambda: datetime.now(ZoneInfo("Europe/London")))
    reporter = reporter or Reporter(name="Console user", aad_object_id="console")
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
            print(f"\n--- ALERT ({event.kind}) as it would read ---", file=stdout)
            print(
                concern_text(
                    concern, recipient(profile, concern.routing.route, concern.subject_ids)
                ),
                file=stdout,
            )
            print("--- not saved: the console keeps nothing ---\n", file=stdout)
        print("> ", end="", file=stdout, flush=True)
    return 0
