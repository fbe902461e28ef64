"""Where the data key comes from: the environment, Azure Key Vault, or (local development only)
a generated key file. Production without a key refuses to start.

- `DATA_KEY` (base64 of 32 random bytes) seals new writes; `DATA_OLD_KEYS` (comma-separated)
  still open rows sealed before a rotation.
- Or `KEY_VAULT_URL` (+ `KEY_VAULT_SECRET_NAME`, default `safeguarding-data-key`), read with
  `DefaultAzureCredential`: the secret's current version seals, its other enabled versions
  open. Rotating is adding a new version, restarting, then `safeguarding-bot rotate-key`.
- Neither, and no `APP_ID`: a key file `<DATA_DIR>/data.key` is generated (mode 0600) with a
  loud warning - it sits beside the data it protects, which is fine for a laptop only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.settings import Settings
from bot.store.sealing import KEY_BYTES, FieldCodec

logger = logging.getLogger(__name__)

KEY_FILE = "data.key"
DEFAULT_SECRET_NAME = "safeguarding-data-key"


def new_key() -> str:
    """A fresh data key, as the text DATA_KEY (or a Key Vault secret) holds."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{where} must be {KEY_BYTES} random bytes in base64 (make one with "
            "`safeguarding-bot rotate-key --new-key`)."
        )
    return key


def load_codec(
    settings: Settings, *, secret_client: Callable[[str], Any] | None = None
) -> FieldCodec:
    """The key ring for this process, or ConfigError (production without a key)."""
    if settings.data_key:
        keys = [decode_key(settings.data_key.reveal(), "DATA_KEY")]
        old = settings.data_old_keys.reveal()
        keys += [decode_key(k, "DATA_OLD_KEYS") for k in old.split(",") if k.strip()]
        return FieldCodec(keys)
    if settings.key_vault_url:
        return FieldCodec(_key_vault_keys(settings, secret_client or _secret_client))
    if not settings.local_development:
        raise ConfigError(
            "No data key: children's words are encrypted at rest, so production (APP_ID set) "
            "needs DATA_KEY or KEY_VAULT_URL. See the README, 'Installing for a school'."
        )
    return FieldCodec(_local_keys(settings.data_dir))


def _secret_client(vault_url: str) -> Any:
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    return SecretClient(vault_url=vault_url, credential=DefaultAzureCredential())


def _key_vault_keys(settings: Settings, make_client: Callable[[str], Any]) -> list[bytes]:
    name = settings.key_vault_secret_name or DEFAULT_SECRET_NAME
    where = f"Key Vault secret {name!r}"
    try:
        client = make_client(settings.key_vault_url)
        current = client.get_secret(name)
        keys = [decode_key(current.value, where)]
        for props in client.list_properties_of_secret_versions(name):
            if props.enabled and props.version != current.properties.version:
                keys.append(decode_key(client.get_secret(name, props.version).value, where))
    except ConfigError:
        raise
    except Exception as exc:  # azure-core raises many kinds; none may carry a secret
        raise ConfigError(
            f"cannot read {where} from {settings.key_vault_url} ({type(exc).__name__}); "
            "check the managed identity has 'get' and 'list' on secrets"
        ) from None
    return keys


def _local_keys(data_dir: Path) -> list[bytes]:
    """Development only: the key file beside the data, created on first use (mode 0600)."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(new_key() + "\n")
    logger.warning(
        "LOCAL DEVELOPMENT: the data key is the file %s, next to the data it protects. "
        "For real reports set DATA_KEY or KEY_VAULT_URL (APP_ID makes one required).",
        path,
    )
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [decode_key(line, str(path)) for line in lines]


def add_local_key(data_dir: Path) -> None:
    """Development rotation: a new first line in the key file (the old keys stay, to open)."""
    path = data_dir / KEY_FILE
    old = path.read_text() if path.exists() else ""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(new_key() + "\n" + old)
    os.replace(tmp, path)
