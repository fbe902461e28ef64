"""The server backend: PostgreSQL, chosen by `DATABASE_URL=postgresql://...`, for a trust or a
local authority that outgrows one machine or runs several replicas.

Only what is PostgreSQL's own lives here; every query is the shared SQL (core, concerns,
outbox, ...), with its `?` / `:name` placeholders turned into psycopg's. What differs:
- Migrations are the same list, translated (`translate_migration`): sealed columns become
  BYTEA, every table gets the `rowid` SQLite gives implicitly (the SQL orders by it), the
  append-only triggers become plpgsql. The version is a table, and migrating holds
  `pg_advisory_xact_lock`, so two replicas starting together apply each migration once.
- Claims of outbox messages and timers select with `FOR UPDATE SKIP LOCKED`: two replicas
  never claim the same row; a dead replica's claims are taken over when its lease runs out.
- Each lane keeps one synchronous psycopg 3 connection in its own thread (the lanes are what
  keep the event loop free, on either database: one code path). A connection found broken
  (the server restarted) is replaced on the next call outside a transaction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from bot.errors import StoreError
from bot.store.migrations import (
    FIRST_DUE_MIGRATION,
    MIGRATIONS,
    SCHEMA_VERSION,
    _backfill_first_due,
    statements,
)
from bot.store.sealing import MAGIC, SEALED_COLUMNS, FieldCodec, Sensitive
from bot.store.store import Store

logger = logging.getLogger(__name__)

URL_SCHEMES = ("postgresql://", "postgres://")
# pg_advisory_xact_lock key for migrating: any constant, the same in every replica.
MIGRATION_LOCK = 0x5AFE_6A4D
VERSION_TABLE = "store_schema_version"


def is_postgres_url(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


class PostgresStore(Store):
    """The store in a PostgreSQL database (`url` is a libpq connection string)."""

    BEGIN = "BEGIN"
    CLAIM_LOCK = " FOR UPDATE SKIP LOCKED"
    SINGLE_WRITER = False
    SHARED_LEASES = True
    DB_ERRORS = (psycopg.Error,)

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self._open()

    def _connect(self, lane: str) -> PgConnection:
        return PgConnection(self.url, self._codec, application_name=f"safeguarding-bot {lane}")

    def _version(self, conn: PgConnection) -> int:
        row = conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM " + VERSION_TABLE
            if conn.has_table(VERSION_TABLE)
            else "SELECT 0"
        ).fetchone()
        return int(row[0])

    def _migrate(self, conn: PgConnection) -> None:
        conn.execute("BEGIN")
        try:
            # Held to COMMIT: a second replica starting now waits here, then finds it done.
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE}"
                " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            version = self._version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store schema version {version} is newer than this code ({SCHEMA_VERSION})"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in translate_migration(MIGRATIONS[number - 1]):
                    conn.execute_ddl(statement)
                if number == FIRST_DUE_MIGRATION:
                    _backfill_first_due(conn)
                conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (number,))
                logger.info("store migrated to schema version %d", number)
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise

    @staticmethod
    def json_text(column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"


# -- the connection ------------------------------------------------------------------------


class PgRow:
    """A row read by position or by column name, like sqlite3.Row; sealed values opened."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


class PgConnection:
    """A psycopg connection that speaks the shared SQL: `?` and `:name` placeholders, values
    marked `Sensitive` sealed into BYTEA, sealed values opened on the way out."""

    def __init__(self, url: str, codec: FieldCodec | None, *, application_name: str) -> None:
        self._url = url
        self._codec = codec
        self._application_name = application_name
        self.raw = self._new()
        self.in_transaction = False

    def _new(self) -> psycopg.Connection:
        return psycopg.connect(
            self._url,
            autocommit=True,  # transactions are explicit: BEGIN ... COMMIT, as on SQLite
            row_factory=self._row_factory,
            application_name=self._application_name,
        )

    def _row_factory(self, cursor: psycopg.Cursor) -> Any:
        description = cursor.description or []
        index = {column.name: i for i, column in enumerate(description)}
        sealed = [i for i, column in enumerate(description) if column.type_code == BYTEA_OID]
        open_value = self._open_value

        def make(values: Sequence[Any]) -> PgRow:
            if sealed:
                values = list(values)
                for i in sealed:
                    values[i] = open_value(values[i])
            return PgRow(index, values)

        return make

    def _open_value(self, value: Any) -> Any:
        if value is None:
            return None
        value = bytes(value)
        if self._codec is not None:
            opened = self._codec.open(value)
            if opened is not value:
                return opened
        return value.decode("utf-8")

    def _seal(self, value: Any) -> Any:
        if isinstance(value, Sensitive):
            text = str(value)
            return self._codec.seal(text) if self._codec else text.encode("utf-8")
        return value

    def _params(self, params: Any) -> Any:
        if isinstance(params, dict):
            return {k: self._seal(v) for k, v in params.items()}
        return tuple(self._seal(v) for v in params)

    def _replace_if_lost(self) -> None:
        """A connection the server closed (a restart, a fail-over) is replaced - only ever
        between transactions, so nothing half-written is carried on a new connection."""
        if self.raw.broken or self.raw.closed:
            logger.warning("store connection lost; reconnecting (%s)", self._application_name)
            self.raw.close()
            self.raw = self._new()

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor:
        word = sql.lstrip()[:8].upper()
        if word.startswith("BEGIN"):
            self._replace_if_lost()  # between transactions: safe to replace
            cursor = self.raw.execute("BEGIN")
            self.in_transaction = True
            return cursor
        if word.startswith("ROLLBACK"):
            self.in_transaction = False
            if self.raw.broken or self.raw.closed:
                return None  # the server ended the transaction with the connection
        elif word.startswith("COMMIT"):
            self.in_transaction = False
        elif not self.in_transaction:
            self._replace_if_lost()
        if not parameters:
            return self.raw.execute(sql)
        return self.raw.execute(_pg_sql(sql), self._params(parameters))

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> psycopg.Cursor:
        cursor = self.raw.cursor()
        cursor.executemany(_pg_sql(sql), [self._params(p) for p in seq_of_parameters])
        return cursor

    def execute_ddl(self, statement: str) -> None:
        self.raw.execute(statement)

    def has_table(self, name: str) -> bool:
        row = self.raw.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        return bool(row[0])

    def raw_rows(self, sql: str) -> list[tuple]:
        """Rows as stored - sealed values left sealed, plain text as text - for re-sealing."""
        cursor = self.raw.cursor(row_factory=tuple_row)
        return [tuple(_plain(v) for v in row) for row in cursor.execute(sql).fetchall()]

    def rollback(self) -> None:
        self.in_transaction = False
        if not (self.raw.broken or self.raw.closed):
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()


BYTEA_OID = 17
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _plain(value: Any) -> Any:
    if type(value) is bytes and not value.startswith(MAGIC):
        return value.decode("utf-8")
    return value


@lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    """The shared SQL with psycopg's placeholders (`?` -> %s, `:name` -> %(name)s)."""
    text = sql.replace("%", "%%")
    text = _NAMED.sub(r"%(\1)s", text)
    return text.replace("?", "%s")


# -- migrations ----------------------------------------------------------------------------

_CREATE_TABLE = re.compile(r"^\s*CREATE TABLE (IF NOT EXISTS )?(\w+) \(", re.I)
_ADD_COLUMN = re.compile(r"^\s*ALTER TABLE (\w+) ADD COLUMN (\w+) TEXT\b", re.I)
_TRIGGER = re.compile(
    r"^\s*CREATE TRIGGER (\w+) (BEFORE|AFTER) (UPDATE|DELETE|INSERT) ON (\w+)\s+"
    r"BEGIN SELECT RAISE\(ABORT, '([^']*)'\); END;?\s*$",
    re.I | re.S,
)


@lru_cache(maxsize=64)
def translate_migration(script: str) -> tuple[str, ...]:
    """One migration, written in SQLite's dialect, as PostgreSQL statements. Anything it
    cannot translate faithfully is refused loudly, never guessed."""
    out: list[str] = []
    for statement in statements(script):
        out.extend(_translate(statement))
    return tuple(out)


def _translate(statement: str) -> list[str]:
    trigger = _TRIGGER.match(statement)
    if trigger:
        name, when, event, table, message = trigger.groups()
        function = f"{name}_refuse"
        return [
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN RAISE EXCEPTION '{message}'; END $$",
            f"CREATE TRIGGER {name} {when} {event} ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {function}()",
        ]
    if re.match(r"^\s*CREATE TRIGGER", statement, re.I):
        raise StoreError("a migration's trigger has no PostgreSQL translation; add one")
    if re.search(r"\b(INSERT OR|REPLACE INTO|PRAGMA|WITHOUT ROWID)\b", statement, re.I):
        raise StoreError("a migration uses SQLite-only SQL; write the shared subset")
    text = statement.rstrip().rstrip(";")
    text = re.sub(
        r"\bINTEGER PRIMARY KEY( AUTOINCREMENT)?\b",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        text,
        flags=re.I,
    )
    text = re.sub(r"\bINTEGER\b", "BIGINT", text)
    text = re.sub(r"\bBLOB\b", "BYTEA", text)
    text = re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)
    table = _CREATE_TABLE.match(text)
    if table:
        name = table.group(2)
        sealed = SEALED_COLUMNS.get(name, ())
        lines = text.split("\n")
        for i, line in enumerate(lines):
            column = re.match(r"^(\s*)(\w+) TEXT\b", line)
            if column and column.group(2) in sealed:
                lines[i] = line.replace(" TEXT", " BYTEA", 1)
        text = "\n".join(lines)
        # SQLite's implicit rowid, made explicit: the shared SQL orders by insertion with it.
        text = (
            text[: table.end()]
            + "\n    rowid BIGINT GENERATED ALWAYS AS IDENTITY,"
            + text[table.end() :]
        )
        return [text]
    added = _ADD_COLUMN.match(text)
    if added and added.group(2) in SEALED_COLUMNS.get(added.group(1), ()):
        text = text.replace(" TEXT", " BYTEA", 1)
    return [text]
