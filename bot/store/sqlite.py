"""The embedded backend: one SQLite file in WAL mode (`make run`, a single school).

Only what is SQLite's own lives here: connecting (pragmas, the sealing connection), the
migration lock (`BEGIN IMMEDIATE` takes the file's write lock) and version (`user_version`),
and the JSON fragment. Every query is in the shared modules (core, concerns, outbox, ...).
Writes take `BEGIN IMMEDIATE`, so a transaction never has to upgrade its lock mid-way.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

from bot.errors import StoreError
from bot.store.lanes import CARDS_LANE
from bot.store.migrations import (
    FIRST_DUE_MIGRATION,
    MIGRATIONS,
    SCHEMA_VERSION,
    _backfill_first_due,
    statements,
)
from bot.store.store import Store

logger = logging.getLogger(__name__)


class SqliteStore(Store):
    """The store in one SQLite file (or ":memory:", for tests)."""

    BEGIN = "BEGIN IMMEDIATE"
    SINGLE_WRITER = True
    DB_ERRORS = (sqlite3.Error,)

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        if not self._shares_one_connection():
            _make_private(self.path)
        self._open()

    def _shares_one_connection(self) -> bool:
        return str(self.path) == ":memory:"

    def _connect(self, lane: str) -> sqlite3.Connection:
        connect = self._codec.connect if self._codec else sqlite3.connect
        conn = connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        if self._codec is None:
            conn.row_factory = sqlite3.Row
        _write_ahead_log(conn)
        # FULL: a commit is on disk before anyone is told "saved" (README, Performance).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        if lane == CARDS_LANE:
            # Lost only on an OS crash or power cut, never on a process crash; nothing on
            # this lane is anything anyone was told was sent.
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _version(self, conn: sqlite3.Connection) -> int:
        return conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE holds the file's write lock: a second process migrating at the same
        # moment waits (busy_timeout), then finds the schema current.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store schema version {version} is newer than this code ({SCHEMA_VERSION})"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in statements(MIGRATIONS[number - 1]):
                    conn.execute(statement)
                if number == FIRST_DUE_MIGRATION:
                    _backfill_first_due(conn)
                conn.execute(f"PRAGMA user_version = {number}")
                logger.info("store migrated to schema version %d", number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def json_text(column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"


def _write_ahead_log(conn: sqlite3.Connection, wait_seconds: float = 10.0) -> None:
    """PRAGMA journal_mode=WAL, waiting as busy_timeout would. While another connection is
    turning a new file to WAL (replicas starting together), SQLite answers "database is
    locked" at once instead of calling its busy handler (seen in ~1.5 % of four-way opens)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _make_private(path: Path) -> None:
    """The data folder 0700 and the database 0600 whatever the umask; SQLite gives the -wal
    and -shm files the database file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for each, wanted in ((path.parent, 0o700), (path, 0o600)):
        try:
            if stat.S_IMODE(each.stat().st_mode) != wanted:
                each.chmod(wanted)
        except OSError as exc:  # e.g. a mounted share that ignores modes: say so, carry on
            logger.warning("could not make %s private (%s)", each, type(exc).__name__)
