"""Encryption at rest for the store's columns that hold what a child said, what staff saw,
and people's names: AES-256-GCM (`cryptography`), applied where rows meet SQLite.

The store marks such a value `Sensitive(text)` when it writes it; the connection seals it into
a BLOB (magic, key id, nonce, ciphertext+tag). Reading, the connection's row factory opens any
sealed BLOB back into text, with whichever key of the ring sealed it: after a rotation new
writes use the new key and old rows still read, until `reseal` (the `rotate-key` command)
brings every row onto the new key. Plain-text rows from before encryption still read too.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.errors import StoreError

MAGIC = b"SGE1"
KEY_BYTES = 32
_NONCE = 12
_KID = 4

# Every column that may hold a child's words, a description of what staff saw, or a name.
SEALED_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "bot_state": ("data",),  # a report in progress: answers, the reporter's name
    "concerns": ("payload", "acknowledged_by"),  # the concern record; who picked it up
    "outbox": ("payload",),  # the alert card itself (its target is ids and routes only)
    "timers": ("payload",),  # reminders carry the reporter's name
    "conversation_refs": ("reference",),  # names of people and chats
    "alert_posts": ("reference",),  # where each copy of an alert was posted
    "record_entries": ("actor_name", "fields"),  # the DSL's decisions and reasons
}


class Sensitive(str):
    """A value the store must never write in the clear (sealed by `SealingConnection`)."""

    __slots__ = ()


class SealError(StoreError):
    """A sealed value whose key is not in the ring, or that fails authentication."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"safeguarding-bot data key id" + key).digest()[:_KID]


class FieldCodec:
    """A key ring: the first key seals, every key opens."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"a data key must be {KEY_BYTES} bytes (AES-256)")
        self._current = key_id(keys[0])
        self._ciphers = {key_id(k): AESGCM(k) for k in reversed(keys)}
        self._ciphers[self._current] = AESGCM(keys[0])

    @property
    def current_key_id(self) -> bytes:
        return self._current

    def seal(self, text: str) -> bytes:
        nonce = os.urandom(_NONCE)
        sealed = self._ciphers[self._current].encrypt(nonce, text.encode("utf-8"), MAGIC)
        return MAGIC + self._current + nonce + sealed

    def open(self, value: Any) -> Any:
        """Sealed BLOB -> text; anything else (plain text, numbers, NULL) unchanged."""
        if type(value) is not bytes or not value.startswith(MAGIC):
            return value
        kid = value[len(MAGIC) : len(MAGIC) + _KID]
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealError(
                f"a stored value was sealed with key {kid.hex()}, which is not configured "
                "(set the old key in DATA_OLD_KEYS, or keep its Key Vault version enabled)"
            )
        start = len(MAGIC) + _KID
        try:
            plain = cipher.decrypt(value[start : start + _NONCE], value[start + _NONCE :], MAGIC)
        except Exception:  # InvalidTag: altered on disk, or a different key with the same id
            raise SealError("a stored value failed authentication") from None
        return plain.decode("utf-8")

    def needs_reseal(self, value: Any) -> bool:
        """True for plain text and for values sealed with an older key."""
        if value is None:
            return False
        if type(value) is bytes and value.startswith(MAGIC):
            return value[len(MAGIC) : len(MAGIC) + _KID] != self._current
        return isinstance(value, str)

    # -- the sqlite3 side ------------------------------------------------------------------

    def connect(self, path: Any, **kwargs: Any) -> sqlite3.Connection:
        """`sqlite3.connect` whose connection seals `Sensitive` values and opens sealed ones."""
        conn = sqlite3.connect(path, factory=SealingConnection, **kwargs)
        conn.codec = self
        conn.row_factory = self.row
        return conn

    def row(self, cursor: sqlite3.Cursor, values: tuple) -> sqlite3.Row:
        if any(type(v) is bytes for v in values):
            values = tuple(self.open(v) for v in values)
        return sqlite3.Row(cursor, values)


class SealingConnection(sqlite3.Connection):
    codec: FieldCodec

    def _seal(self, params: Any) -> Any:
        if isinstance(params, Mapping):
            return {k: self._seal_one(v) for k, v in params.items()}
        if isinstance(params, list | tuple):
            return tuple(self._seal_one(v) for v in params)
        return params

    def _seal_one(self, value: Any) -> Any:
        return self.codec.seal(str(value)) if isinstance(value, Sensitive) else value

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return super().execute(sql, self._seal(parameters))

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> sqlite3.Cursor:
        return super().executemany(sql, (self._seal(p) for p in seq_of_parameters))


def reseal(conn: sqlite3.Connection, codec: FieldCodec) -> dict[str, int]:
    """Inside a transaction: re-encrypt every sealed column under the codec's current key
    (sealing any plain text left from before encryption). Returns rows rewritten per table."""
    counts: dict[str, int] = {}
    for table, columns in SEALED_COLUMNS.items():
        query = f"SELECT rowid, {', '.join(columns)} FROM {table}"
        if hasattr(conn, "raw_rows"):  # a backend's adapter (PostgreSQL)
            stored = conn.raw_rows(query)
        else:
            cursor = conn.execute(query)
            cursor.row_factory = None  # the stored BLOBs, not opened values
            stored = cursor.fetchall()
        assignments = ", ".join(f"{c} = ?" for c in columns)
        rewritten = 0
        for rowid, *values in stored:
            if any(codec.needs_reseal(v) for v in values):
                fresh = [codec.seal(codec.open(v)) if codec.needs_reseal(v) else v for v in values]
                conn.execute(f"UPDATE {table} SET {assignments} WHERE rowid = ?", (*fresh, rowid))
                rewritten += 1
        counts[table] = rewritten
    return counts
