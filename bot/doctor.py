"""`safeguarding-bot doctor`: check a profile and the environment against a live install.

What an IT technician runs first. Each check says PASS, FAIL or SKIP (could not be checked
because an earlier one failed) with what to do; any FAIL makes the exit code non-zero.
Nothing secret is ever printed: not the app secret, not the data key, not a token, not the
text of an error a server sent back (only its AADSTS code).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.errors import ConfigError, StoreError
from bot.settings import Settings

LOGIN_URL = "https://login.microsoftonline.com"
# The Bot Connector for Teams in the UK (as bot/server.py's default for proactive posts).
SERVICE_URL = "https://smba.trafficmanager.net/uk/"
BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"
MOUNTS = Path("/proc/mounts")
TIMEOUT = aiohttp.ClientTimeout(total=20)

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
# Bot Framework's ids for a team and a channel: "19:<something>@thread.tacv2" (or .skype).
_THREAD = re.compile(r"^19:[^@\s]+@thread\.(tacv2|skype)$")
_AADSTS = re.compile(r"AADSTS\d+")
# What Entra answers for the mistakes people make (the code, and what to do about it).
_AADSTS_HINTS = {
    "AADSTS7000215": "the client secret is wrong - use the secret's Value, not its Secret ID",
    "AADSTS7000222": "the client secret has expired - make a new one and set APP_PASSWORD",
    "AADSTS700016": "APP_ID is not an app registration in tenant APP_TENANTID",
    "AADSTS90002": "APP_TENANTID is not a tenant Entra knows",
    "AADSTS900023": "APP_TENANTID is not a tenant id",
}
# Filesystems on which SQLite's WAL (shared memory between processes) is not safe.
NETWORK_FILESYSTEMS = frozenset(
    {"cifs", "smb3", "smbfs", "nfs", "nfs4", "afs", "ceph", "glusterfs", "9p", "fuse.sshfs"}
    | {"fuse.blobfuse", "fuse.blobfuse2", "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone"}
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str


def passed(name: str, detail: str) -> Check:
    return Check(name, "PASS", detail)


def failed(name: str, detail: str) -> Check:
    return Check(name, "FAIL", detail)


def skipped(name: str, detail: str) -> Check:
    return Check(name, "SKIP", detail)


def is_placeholder(value: str) -> bool:
    """The example profiles' ids: zeros where the real id goes."""
    body = value.removeprefix("19:").split("@", 1)[0]
    return bool(_GUID.match(value) and value.startswith("00000000-0000-0000-")) or (
        value.startswith("19:") and set(body) <= {"0"}
    )


# -- the profile's ids -------------------------------------------------------------------------


def people_of(school: Any) -> list[tuple[str, Any]]:
    """(role, person) for everyone the school's profile names by Entra id."""
    named = [("DSL", school.dsl)]
    named += [("deputy DSL", p) for p in school.deputies]
    named += [("headteacher", school.headteacher), (school.chair_title, school.chair_of_governors)]
    if school.deputy_head is not None:
        named.append(("deputy head", school.deputy_head))
    if school.safeguarding_governor is not None:
        named.append(("safeguarding governor", school.safeguarding_governor))
    named += [("case manager", p) for p in school.case_managers]
    return named


def check_ids(settings: Settings, schools: Sequence[Any]) -> list[Check]:
    checks = []
    if not settings.app_id:
        checks.append(
            failed(
                "app id",
                "APP_ID is not set: this is local-development mode, unauthenticated, and "
                "Teams cannot reach it. Set APP_ID, APP_PASSWORD (or APP_TYPE=UserAssignedMSI) "
                "and APP_TENANTID from the Azure Bot.",
            )
        )
    elif not _GUID.match(settings.app_id):
        checks.append(
            failed("app id", "APP_ID is not a GUID: copy the Azure Bot's Microsoft App ID")
        )
    else:
        checks.append(passed("app id", f"APP_ID {settings.app_id}, APP_TYPE={settings.app_type}"))
    for school in schools:
        name = f"ids: {school.id}"
        problems = []
        if is_placeholder(school.tenant_id):
            problems.append("tenant_id is the example's placeholder")
        elif settings.app_tenant_id and settings.app_tenant_id.lower() != school.tenant_id:
            problems.append(
                f"tenant_id {school.tenant_id} is not APP_TENANTID {settings.app_tenant_id} "
                "(a single-tenant bot only reaches its own tenant)"
            )
        placeholders = [
            f"{role} {person.name}"
            for role, person in people_of(school)
            if is_placeholder(person.aad_object_id)
        ]
        if placeholders:
            problems.append(f"aad_object_id is a placeholder for: {', '.join(placeholders)}")
        channel = school.dsl_channel
        if not _THREAD.match(channel.team_id):
            problems.append(
                f"dsl_channel.team_id {channel.team_id!r} is not a Teams team id "
                "(19:...@thread.tacv2, from 'Get link to team' - not the groupId GUID)"
            )
        elif is_placeholder(channel.team_id):
            problems.append("dsl_channel.team_id is the example's placeholder")
        if not _THREAD.match(channel.channel_id):
            problems.append(
                f"dsl_channel.channel_id {channel.channel_id!r} is not a Teams channel id "
                "(19:...@thread.tacv2, from 'Get link to channel')"
            )
        elif is_placeholder(channel.channel_id):
            problems.append("dsl_channel.channel_id is the example's placeholder")
        if problems:
            checks.append(failed(name, "; ".join(problems)))
        else:
            checks.append(passed(name, "tenant, people and DSL channel ids are well-formed"))
    return checks


# -- where the data lives ----------------------------------------------------------------------


def filesystem_of(path: Path, mounts_text: str) -> tuple[str, str]:
    """(mount point, filesystem type) of the mount holding `path`, from /proc/mounts."""
    target = str(path.resolve())
    best = ("/", "")
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fields[2])
    return best


def check_data_folder(settings: Settings, mounts: Path) -> Check:
    if settings.database_url:
        return passed("data folder", "the database is PostgreSQL (DATABASE_URL), not a file here")
    try:
        text = mounts.read_text("utf-8")
    except OSError:
        return skipped("data folder", f"cannot read {mounts} to see what holds {settings.data_dir}")
    point, kind = filesystem_of(settings.data_dir, text)
    if kind in NETWORK_FILESYSTEMS:
        return failed(
            "data folder",
            f"{settings.data_dir} is on a network share ({kind} at {point}): SQLite in WAL mode "
            "must not live there (App Service's persistent /home is one) - it can corrupt or "
            "lose reports. Use a local disk, or PostgreSQL for a hosted install.",
        )
    return passed("data folder", f"{settings.data_dir} is on a local filesystem ({kind or '?'})")


def check_database(settings: Settings) -> Check:
    from bot.server import database_label, open_database
    from bot.store import SCHEMA_VERSION
    from bot.store.keys import load_codec

    where = database_label(settings)
    try:
        codec = load_codec(settings)
    except ConfigError as exc:  # its messages name the variable, never the value
        return failed("database", f"the data key cannot be loaded: {exc}")
    if not settings.database_url and not settings.database_path.exists():
        return failed(
            "database",
            f"no database at {where}: run `safeguarding-bot migrate` (or is DATA_DIR wrong?)",
        )
    try:
        store = open_database(settings, codec=codec)
    except StoreError as exc:
        return failed("database", f"{where} cannot be opened: {exc}")
    try:
        version = store.schema_version
    finally:
        store.close()
    return passed("database", f"{where} answers, schema version {version} of {SCHEMA_VERSION}")


# -- what Azure and Teams say ------------------------------------------------------------------


async def get_token(
    session: aiohttp.ClientSession, settings: Settings, login_url: str
) -> tuple[Check, str | None]:
    """A Bot Framework token with the app's own credentials, as the SDK gets one."""
    name = "credentials"
    if not settings.app_id:
        return skipped(name, "no APP_ID"), None
    if settings.app_type == "UserAssignedMSI":
        return await _managed_identity_token(settings)
    tenant = settings.app_tenant_id if settings.app_type == "SingleTenant" else "botframework.com"
    url = f"{login_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": settings.app_id,
        "client_secret": settings.app_password.reveal(),
        "scope": BOT_FRAMEWORK_SCOPE,
    }
    try:
        async with session.post(url, data=form, timeout=TIMEOUT) as response:
            status = response.status
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = {}
    except (aiohttp.ClientError, TimeoutError) as exc:
        return failed(name, f"cannot reach {login_url} ({type(exc).__name__})"), None
    token = body.get("access_token") if isinstance(body, dict) else None
    if status == 200 and isinstance(token, str) and token:
        return passed(name, f"{login_url} issued a Bot Framework token to APP_ID"), token
    description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    code = next(iter(_AADSTS.findall(description)), None)
    hint = _AADSTS_HINTS.get(code or "", "check APP_ID, APP_PASSWORD and APP_TENANTID")
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    said = ", ".join(x for x in (f"HTTP {status}", _word(error), code) if x)
    return failed(name, f"the login endpoint refused the credentials ({said}): {hint}"), None


async def _managed_identity_token(settings: Settings) -> tuple[Check, str | None]:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity.aio import ManagedIdentityCredential

    name = "credentials"
    credential = ManagedIdentityCredential(client_id=settings.app_id)
    try:
        token = await credential.get_token(BOT_FRAMEWORK_SCOPE)
    except ClientAuthenticationError as exc:
        return failed(
            name,
            f"no token from the managed identity ({type(exc).__name__}): run doctor on the "
            "App Service itself, with the user-assigned identity APP_ID attached to it",
        ), None
    finally:
        await credential.close()
    return passed(name, "the managed identity issued a Bot Framework token"), token.token


async def check_channels(
    session: aiohttp.ClientSession, token: str | None, schools: Iterable[Any], service_url: str
) -> list[Check]:
    checks = []
    headers = {"Authorization": f"Bearer {token}"}
    base = service_url.rstrip("/")
    for school in schools:
        name = f"DSL channel: {school.id}"
        channel = school.dsl_channel
        if token is None:
            checks.append(skipped(name, "needs working credentials"))
            continue
        if not _THREAD.match(channel.team_id):
            checks.append(skipped(name, "needs a well-formed team_id"))
            continue
        url = f"{base}/v3/teams/{channel.team_id}/conversations"
        try:
            async with session.get(url, headers=headers, timeout=TIMEOUT) as response:
                status = response.status
                body = await response.json(content_type=None) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            checks.append(failed(name, f"cannot ask Teams at {service_url} ({type(exc).__name__})"))
            continue
        if status in (403, 404):
            checks.append(
                failed(
                    name,
                    f"Teams says the bot is not in the DSL team (HTTP {status}): add the app "
                    f"to the team ({channel.name}'s team) in Teams, then run doctor again",
                )
            )
            continue
        if status != 200 or not isinstance(body, dict):
            checks.append(failed(name, f"Teams answered HTTP {status} listing the team's channels"))
            continue
        found = [c for c in body.get("conversations") or [] if isinstance(c, dict)]
        if not any(c.get("id") == channel.channel_id for c in found):
            checks.append(
                failed(
                    name,
                    f"the bot is in the team but cannot see channel {channel.channel_id}: check "
                    "channel_id ('Get link to channel'); for a private channel, add the app to "
                    "the channel too (channel > Manage channel > Apps)",
                )
            )
            continue
        checks.append(
            passed(name, f"the bot is in the DSL team and sees the channel ({channel.name})")
        )
        checks.append(await _dsl_members(session, headers, base, school))
    return checks


async def _dsl_members(
    session: aiohttp.ClientSession, headers: dict[str, str], base: str, school: Any
) -> Check:
    """Everyone in the school's DSL team is a member of the team that gets the alerts."""
    name = f"DSL team members: {school.id}"
    url = f"{base}/v3/conversations/{school.dsl_channel.team_id}/members"
    try:
        async with session.get(url, headers=headers, timeout=TIMEOUT) as response:
            status = response.status
            roster = await response.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return failed(name, f"cannot list the team's members ({type(exc).__name__})")
    if not isinstance(roster, list):
        return failed(name, f"Teams answered HTTP {status} listing the team's members")
    members = {str(m.get("aadObjectId", "")).lower() for m in roster if isinstance(m, dict)}
    missing = [p.name for p in school.dsl_team() if p.aad_object_id.lower() not in members]
    if missing:
        return failed(
            name,
            f"not members of the DSL team in Teams, so they will not see alerts: "
            f"{', '.join(missing)} (add them, or correct their aad_object_id)",
        )
    return passed(name, f"all {len(school.dsl_team())} of the DSL team are in the team")


def _word(text: str) -> str:
    """An OAuth error code as sent (invalid_client), or nothing if it is anything else."""
    return text if re.fullmatch(r"[a-z_]{1,40}", text) else ""


# -- all of it ---------------------------------------------------------------------------------


async def run_checks(
    settings: Settings,
    schools: Sequence[Any],
    *,
    login_url: str = LOGIN_URL,
    service_url: str = SERVICE_URL,
    mounts: Path | None = None,
) -> list[Check]:
    checks = check_ids(settings, schools)
    checks.append(check_data_folder(settings, mounts or MOUNTS))
    checks.append(check_database(settings))
    async with aiohttp.ClientSession() as session:
        credentials, token = await get_token(session, settings, login_url)
        checks.append(credentials)
        checks += await check_channels(session, token, schools, service_url)
    return checks


def report(checks: Sequence[Check]) -> tuple[str, int]:
    """The printed list, and the exit code (1 if anything failed)."""
    width = max(len(c.name) for c in checks)
    lines = [f"  {c.status}  {c.name.ljust(width)}  {c.detail}" for c in checks]
    failures = sum(c.status == "FAIL" for c in checks)
    if failures:
        lines.append(f"{failures} check(s) FAILED: fix them and run doctor again.")
    else:
        lines.append("All checks passed.")
    return "\n".join(lines), 1 if failures else 0
