"""Clocks: the real one, and a file-driven one so an outside test can move a server's time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class FileClock:
    """Reads the current time (ISO 8601, timezone-aware) from a file on every call.

    Used only when SAFEGUARDING_CLOCK_FILE is set, e.g. by the restart tests, which kill the
    server process and move time past a pending timer. Never set it in production.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        logger.warning("TEST CLOCK: time is read from %s, not the system clock", self.path)

    def __call__(self) -> datetime:
        moment = datetime.fromisoformat(self.path.read_text("utf-8").strip())
        if moment.tzinfo is None:
            raise ValueError(f"{self.path}: the time must include a timezone")
        return moment
