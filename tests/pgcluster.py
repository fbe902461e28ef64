"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary folder, started on a
free loopback port with its socket in that folder, stopped (and deleted) at the end.

Debian's `postgresql` package puts the server in /usr/lib/postgresql/<version>/bin (the
Makefile installs it when `pg_ctl` is missing). initdb refuses to run as root, so as root
the cluster belongs to the `postgres` user the package creates (`runuser -u postgres`).
Fast, not durable: fsync off - nothing here outlives the test run.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

TEMPLATE = "store_template"


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One running server; `database()` makes a fresh, migrated database in milliseconds."""

    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not (initdb and pg_ctl):
            raise RuntimeError(
                "PostgreSQL is not installed (no initdb/pg_ctl): run `make test`, which installs "
                "Debian's postgresql package, or apt-get install postgresql"
            )
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="sg-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        os.chmod(self.root, 0o700)
        self._run(
            initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300"
        )
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "start")  # fmt: skip
        self._count = 0
        self._template_ready = False

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self._as, *command], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def database(self, *, migrated: bool = True) -> str:
        """A new empty database's URL: migrated (a copy of a migrated template) or bare."""
        if migrated and not self._template_ready:
            from bot.store.postgres import PostgresStore

            self._admin(f"CREATE DATABASE {TEMPLATE}")
            PostgresStore(self.url(TEMPLATE)).close()
            self._template_ready = True
        self._count += 1
        name = f"t{self._count}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
