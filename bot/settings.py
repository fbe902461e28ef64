"""Settings from the environment (12-factor): credentials, where to listen, where data lives."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from bot.errors import ConfigError

APP_TYPES = ("SingleTenant", "UserAssignedMSI", "MultiTenant")
# Azure no longer lets you create a multi-tenant Azure Bot: a school's bot is single-tenant.
DEFAULT_APP_TYPE = "SingleTenant"
# Local development answers anyone who can reach the port: only loopback, unless this is set.
UNSAFE_BIND_FLAG = "UNSAFE_UNAUTHENTICATED_NETWORK_BIND"
DEFAULT_PORT = 3978


class Secret:
    """A value that must not appear in logs, reprs or tracebacks (as starlette's `Secret`)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}('**********')"

    def __str__(self) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def reveal(self) -> str:
        return self._value


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def _missing(key: str, why: str) -> ConfigError:
    return ConfigError(f"Config '{key}' is missing ({why}).")


@dataclass(frozen=True)
class Settings:
    """Everything the edge needs from the environment. Build with `Settings.from_environ`."""

    app_id: str = ""
    app_password: Secret = field(default_factory=lambda: Secret(""))
    app_tenant_id: str = ""
    app_type: str = DEFAULT_APP_TYPE
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    data_dir: Path = Path("data")
    profile_path: Path | None = None
    school_id: str | None = None
    # Tenants whose activities we accept. Defaults to the bot's own tenant.
    allowed_tenant_ids: frozenset[str] = frozenset()
    # Days a CLOSED concern is kept before it is deleted (audited). None: kept for ever -
    # the school's records-retention policy decides (CLOSED_CONCERN_RETENTION_DAYS).
    closed_concern_retention_days: int | None = None
    # The data key (bot/store/keys.py): base64 in the environment, or an Azure Key Vault secret.
    data_key: Secret = field(default_factory=lambda: Secret(""))
    # PostgreSQL instead of the SQLite file under data_dir (it may hold a password).
    database_url: Secret = field(default_factory=lambda: Secret(""))
    data_old_keys: Secret = field(default_factory=lambda: Secret(""))
    key_vault_url: str = ""
    key_vault_secret_name: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings; refuse (ConfigError) a production configuration without credentials."""
        env = os.environ if environ is None else environ

        def get(key: str, default: str = "") -> str:
            return env.get(key, default).strip()

        app_id = get("APP_ID")
        app_type = get("APP_TYPE") or DEFAULT_APP_TYPE
        if app_type not in APP_TYPES:
            raise ConfigError(f"Config 'APP_TYPE' must be one of {', '.join(APP_TYPES)}.")
        password = get("APP_PASSWORD")
        tenant_id = get("APP_TENANTID")
        if app_id:
            if app_type in ("SingleTenant", "MultiTenant") and not password:
                raise _missing(
                    "APP_PASSWORD", f"required for APP_TYPE={app_type} when APP_ID is set"
                )
            if app_type in ("SingleTenant", "UserAssignedMSI") and not tenant_id:
                raise _missing("APP_TENANTID", f"required for APP_TYPE={app_type}")
        port_text = get("PORT", str(DEFAULT_PORT))
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError("Config 'PORT' must be a whole number.") from None
        if not 0 < port < 65536:
            raise ConfigError("Config 'PORT' must be between 1 and 65535.")
        allowed = frozenset(t.strip() for t in get("ALLOWED_TENANT_IDS").split(",") if t.strip())
        if not allowed and tenant_id:
            allowed = frozenset({tenant_id})
        profile = get("PROFILE_PATH")
        host = get("HOST") or ("0.0.0.0" if app_id else "127.0.0.1")
        if not app_id and not is_loopback(host) and get(UNSAFE_BIND_FLAG) != "1":
            raise ConfigError(
                f"HOST={host} without APP_ID would serve /api/messages UNAUTHENTICATED to the "
                f"network. Set APP_ID/APP_PASSWORD, use HOST=127.0.0.1, or - only on a "
                f"network you trust, for a demo - set {UNSAFE_BIND_FLAG}=1."
            )
        retention_text = get("CLOSED_CONCERN_RETENTION_DAYS")
        retention = None
        if retention_text:
            try:
                retention = int(retention_text)
            except ValueError:
                retention = 0
            if retention < 1:
                raise ConfigError(
                    "Config 'CLOSED_CONCERN_RETENTION_DAYS' must be a whole number of days (1 or "
                    "more), or unset to keep closed concerns for ever."
                )
        database_url = get("DATABASE_URL")
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "Config 'DATABASE_URL' must be a PostgreSQL URL (postgresql://user@host/db); "
                "leave it unset for the SQLite file under DATA_DIR."
            )
        return cls(
            closed_concern_retention_days=retention,
            database_url=Secret(database_url),
            app_id=app_id,
            app_password=Secret(password),
            app_tenant_id=tenant_id,
            app_type=app_type,
            port=port,
            host=host,
            data_dir=Path(get("DATA_DIR") or "data"),
            profile_path=Path(profile) if profile else None,
            school_id=get("SCHOOL_ID") or None,
            allowed_tenant_ids=allowed,
            data_key=Secret(get("DATA_KEY")),
            data_old_keys=Secret(get("DATA_OLD_KEYS")),
            key_vault_url=get("KEY_VAULT_URL"),
            key_vault_secret_name=get("KEY_VAULT_SECRET_NAME"),
        )

    @property
    def local_development(self) -> bool:
        """No APP_ID: the SDK accepts unauthenticated requests (Agents Playground, tests)."""
        return not self.app_id

    @property
    def database_path(self) -> Path:
        return self.data_dir / "safeguarding.sqlite3"

    @property
    def database(self) -> str | Path:
        """Where the store is: DATABASE_URL (PostgreSQL), else the SQLite file in data_dir."""
        return self.database_url.reveal() or self.database_path

    @property
    def database_label(self) -> str:
        """For logs: never the URL (it may hold a password)."""
        return "PostgreSQL (DATABASE_URL)" if self.database_url else str(self.database_path)

    def bot_framework_config(self) -> SimpleNamespace:
        """The attribute bag `ConfigurationBotFrameworkAuthentication` reads (APP_ID, ...)."""
        return SimpleNamespace(
            APP_ID=self.app_id or None,
            APP_PASSWORD=self.app_password.reveal() or None,
            # Without an app id only MultiTenant lets the SDK run unauthenticated.
            APP_TYPE=self.app_type if self.app_id else "MultiTenant",
            APP_TENANTID=self.app_tenant_id or None,
        )
