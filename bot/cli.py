"""The `safeguarding-bot` command: chat, serve, migrate, doctor, flows draw, manifest."""

from __future__ import annotations

import argparse
import os
import sys

from bot.errors import ConfigError
from flows.profile import ProfileError, example_profiles_dir, load_organisation

DEFAULT_PROFILE = example_profiles_dir() / "buttsbury-junior.yaml"


def _school(args: argparse.Namespace):
    return load_organisation(args.profile).school(args.school)


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.console import run_console

    return run_console(_school(args))


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from bot.server import serve
    from bot.settings import UNSAFE_BIND_FLAG, Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # transitions logs at INFO, twice for every step taken, that a step's callbacks ran: half
    # of all log lines under load, and a write on every turn's path. Its warnings still show.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    environ = dict(os.environ)
    if args.port:
        environ["PORT"] = str(args.port)
    if args.data:
        environ["DATA_DIR"] = args.data
    if args.unsafe_unauthenticated_network_bind:
        environ[UNSAFE_BIND_FLAG] = "1"
    settings = Settings.from_environ(environ)
    serve(settings, _served(args), os.environ.get("SAFEGUARDING_CLOCK_FILE"))
    return 0


def _environ(args: argparse.Namespace) -> dict[str, str]:
    environ = dict(os.environ)
    if getattr(args, "data", None):
        environ["DATA_DIR"] = args.data
    return environ


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the store's migrations and exit: a release step before replicas start."""
    import logging

    from bot.errors import StoreError
    from bot.server import database_label, open_database
    from bot.settings import Settings
    from bot.store import SCHEMA_VERSION
    from bot.store.keys import load_codec

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_environ(_environ(args))
    where = database_label(settings)
    try:
        store = open_database(settings, codec=load_codec(settings))
    except StoreError as exc:
        print(f"Database error at {where}: {exc}", file=sys.stderr)
        return 1
    try:
        version = store.schema_version
    finally:
        store.close()
    print(f"database {where} is at schema version {version} (this code: {SCHEMA_VERSION})")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the profile and this environment against the live install; exit 1 on a FAIL."""
    import asyncio

    from bot import doctor
    from bot.settings import Settings

    settings = Settings.from_environ(_environ(args))  # what would stop `serve` stops this too
    served = _served(args)  # exactly the schools `serve` would serve with these arguments
    schools = list(getattr(served, "schools", None) or [served])
    print(
        f"Checking {args.profiles or args.profile} ({len(schools)} school(s)) and this environment:"
    )
    checks = asyncio.run(
        doctor.run_checks(
            settings,
            schools,
            login_url=args.login_url,
            service_url=args.service_url,
            mounts=doctor.MOUNTS,
        )
    )
    text, code = doctor.report(checks)
    print(text)
    return code


def _served(args: argparse.Namespace):
    """Every school of the profile (or of every profile in --profiles DIR); only the one
    named when --school is given (a single-school install)."""
    from flows.directory import SchoolDirectory, UnknownSchool

    if args.profiles and args.profile_given:
        raise ConfigError("give --profile or --profiles, not both")
    directory = SchoolDirectory.load(args.profiles or args.profile)
    if not args.school:
        return directory
    try:
        return directory.get(args.school)
    except UnknownSchool:
        known = ", ".join(s.id for s in directory.schools)
        raise ProfileError(
            [f"{args.profiles or args.profile}: unknown school {args.school!r}; known: {known}"]
        ) from None


def cmd_rotate_key(args: argparse.Namespace) -> int:
    import asyncio
    import sqlite3

    from bot.settings import Settings
    from bot.store import open_store
    from bot.store.keys import add_local_key, load_codec, new_key

    if args.new_key:
        print(new_key())
        return 0
    environ = dict(os.environ)
    if args.data:
        environ["DATA_DIR"] = args.data
    settings = Settings.from_environ(environ)
    if args.new_local_key:
        if not settings.local_development or settings.data_key or settings.key_vault_url:
            raise ConfigError("--new-local-key is for local development (the key file) only.")
        add_local_key(settings.data_dir)
    if not settings.database_url and not settings.database_path.exists():
        raise ConfigError(f"no store at {settings.database_path}")
    store = open_store(settings.database, codec=load_codec(settings))
    try:
        counts = asyncio.run(store.reseal())
    finally:
        store.close()
    if not settings.database_url:
        # Rewritten rows leave the old ciphertext in free pages and the WAL: rebuild the file.
        # (PostgreSQL: autovacuum reclaims the old row versions; VACUUM FULL to do it now.)
        conn = sqlite3.connect(settings.database_path, isolation_level=None)
        try:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    rows = ", ".join(f"{table} {n}" for table, n in counts.items())
    print(f"re-encrypted under the current data key: {sum(counts.values())} rows ({rows})")
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    from flows.catalogue import load_definitions
    from flows.diagram import document, mermaid

    flows = load_definitions()
    if args.flow and args.flow not in flows:
        print(f"Unknown flow {args.flow!r}; known: {', '.join(sorted(flows))}", file=sys.stderr)
        return 2
    if args.markdown:
        chosen = [flows[args.flow]] if args.flow else list(flows.values())
        sys.stdout.write(document(chosen))
        return 0
    for flow_id in [args.flow] if args.flow else sorted(flows):
        print(mermaid(flows[flow_id]))
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeguarding-bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="talk to the bot in this terminal (training / demo)")
    chat.add_argument("--profile", default=str(DEFAULT_PROFILE), help="school profile YAML")
    chat.add_argument("--school", default=None, help="school id, for a trust's profile")
    chat.set_defaults(func=cmd_chat)

    server = sub.add_parser("serve", help="run the Teams bot (POST /api/messages)")
    server.add_argument(
        "--profile",
        default=None,
        help="school profile YAML; a trust's file serves all its schools (env PROFILE_PATH)",
    )
    server.add_argument(
        "--profiles",
        default=os.environ.get("PROFILES_DIR"),
        help="a folder of profiles: serve every school in them (env PROFILES_DIR)",
    )
    server.add_argument(
        "--school",
        default=os.environ.get("SCHOOL_ID"),
        help="serve only this school of the profile (env SCHOOL_ID)",
    )
    server.add_argument("--port", type=int, default=None, help="port (env PORT, default 3978)")
    server.add_argument("--data", default=None, help="data directory (env DATA_DIR)")
    server.add_argument(
        "--unsafe-unauthenticated-network-bind",
        action="store_true",
        help="without APP_ID, allow a HOST other than loopback: ANYONE on the network could "
        "talk to the bot unauthenticated (demos on a trusted network only)",
    )
    server.set_defaults(func=cmd_serve)

    migrate = sub.add_parser(
        "migrate",
        help="apply the database migrations and exit",
        description="Bring the database `serve` would use to this version's schema and "
        "exit. `serve` does the same at start; run this first when "
        "several replicas start together, or to see a migration fail before going live.",
    )
    migrate.add_argument("--data", default=None, help="data directory (env DATA_DIR)")
    migrate.set_defaults(func=cmd_migrate)

    from bot import doctor

    check = sub.add_parser(
        "doctor",
        help="check the profile and this environment against the live install",
        description="Run with the same environment as `serve`. Checks the ids, the data key, "
        "the database, the credentials (a token from the login endpoint), that the bot is in "
        "each DSL team and sees its channel, and that the DSL team are members. Prints "
        "PASS/FAIL/SKIP for each, never a secret; exits 1 if anything failed.",
    )
    check.add_argument(
        "--profile", default=None, help="school or trust profile YAML (env PROFILE_PATH)"
    )
    check.add_argument(
        "--profiles",
        default=os.environ.get("PROFILES_DIR"),
        help="a folder of profiles, as `serve --profiles` (env PROFILES_DIR)",
    )
    check.add_argument(
        "--school", default=os.environ.get("SCHOOL_ID"), help="one school (default: all served)"
    )
    check.add_argument("--data", default=None, help="data directory (env DATA_DIR)")
    check.add_argument(
        "--service-url", default=doctor.SERVICE_URL, help="the Bot Connector for your region"
    )
    check.add_argument(
        "--login-url", default=doctor.LOGIN_URL, help="the Microsoft Entra login endpoint"
    )
    check.set_defaults(func=cmd_doctor)

    rotate = sub.add_parser(
        "rotate-key",
        help="re-encrypt the stored words and names under the current data key",
        description="After a new DATA_KEY (old one moved to DATA_OLD_KEYS), or a new Key "
        "Vault secret version, and a restart: re-encrypts every row still under an old key. "
        "Afterwards the old key can be retired.",
    )
    rotate.add_argument("--data", default=None, help="data directory (env DATA_DIR)")
    rotate.add_argument("--new-key", action="store_true", help="print a fresh key and exit")
    rotate.add_argument(
        "--new-local-key",
        action="store_true",
        help="local development: add a new key to the data folder's key file first",
    )
    rotate.set_defaults(func=cmd_rotate_key)

    flows = sub.add_parser("flows", help="the procedures")
    flows_sub = flows.add_subparsers(dest="flows_command", required=True)
    draw = flows_sub.add_parser("draw", help="print Mermaid state diagrams")
    draw.add_argument("flow", nargs="?", help="one flow id (default: all)")
    draw.add_argument("--markdown", action="store_true", help="the docs/flows.md document")
    draw.set_defaults(func=cmd_draw)

    from bot.teams import manifest

    package = sub.add_parser("manifest", help="build the Teams app package (app.zip)")
    manifest.add_arguments(package)
    package.set_defaults(func=manifest.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "doctor"):
        args.profile_given = args.profile is not None or bool(os.environ.get("PROFILE_PATH"))
        if args.profile is None:
            args.profile = os.environ.get("PROFILE_PATH") or str(DEFAULT_PROFILE)
    try:
        return args.func(args)
    except ProfileError as exc:
        print(f"The school profile is not valid:\n{exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
