"""Build the Teams app package (app.zip: manifest.json + icons) from appmanifest/."""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

APPMANIFEST_DIR = Path(__file__).resolve().parents[2] / "appmanifest"
# Newest schema bundled by @microsoft/app-manifest (package.json); the template uses no
# feature newer than 1.22, so an older tenant can be served with --manifest-version 1.22.
MANIFEST_VERSION = "1.30"
# Clearly not a real school: the installer passes --base-url with their own site.
PLACEHOLDER_BASE_URL = "https://example.school.uk"
ICONS = ("color.png", "outline.png")

_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_MANIFEST_VERSION = re.compile(r"^1\.\d+$")
_PLACEHOLDER = re.compile(r"\$\{\{([A-Z_]+)\}\}")
# Fixed zip timestamps so the same inputs give a byte-identical package.
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def _require_guid(value: str, what: str) -> str:
    if not isinstance(value, str) or not _GUID.match(value.strip()):
        raise ValueError(
            f"{what} must be a GUID like 00000000-0000-0000-0000-000000000000 "
            f"(the Microsoft App ID of the bot's Entra app registration); got {value!r}"
        )
    return value.strip().lower()


def _base_url(base_url: str | None) -> tuple[str, str]:
    url = (base_url or PLACEHOLDER_BASE_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"base URL must be an https:// URL with a host; got {base_url!r}")
    return url, parts.hostname


def _substitute(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], node)
    return node


def load_template() -> dict[str, Any]:
    return json.loads((APPMANIFEST_DIR / "manifest.json").read_text(encoding="utf-8"))


def build_manifest(
    app_id: str,
    *,
    version: str = "1.0.0",
    base_url: str | None = None,
    bot_id: str | None = None,
    manifest_version: str = MANIFEST_VERSION,
) -> dict[str, Any]:
    """The manifest for one school's install. bot_id defaults to app_id (one Entra app)."""
    app_id = _require_guid(app_id, "app id")
    bot_id = _require_guid(bot_id, "bot id") if bot_id is not None else app_id
    if not _SEMVER.match(version):
        raise ValueError(f"app version must be MAJOR.MINOR.PATCH, e.g. 1.0.0; got {version!r}")
    if not _MANIFEST_VERSION.match(manifest_version):
        raise ValueError(f"manifest version must look like 1.22; got {manifest_version!r}")
    url, host = _base_url(base_url)
    values = {
        "APP_ID": app_id,
        "BOT_ID": bot_id,
        "APP_VERSION": version,
        "BASE_URL": url,
        "BASE_DOMAIN": host,
        "MANIFEST_VERSION": manifest_version,
    }
    manifest = _substitute(copy.deepcopy(load_template()), values)
    return manifest


def write_package(
    app_id: str,
    out_path: str | Path,
    *,
    version: str = "1.0.0",
    base_url: str | None = None,
    bot_id: str | None = None,
    manifest_version: str = MANIFEST_VERSION,
) -> Path:
    """Write app.zip with manifest.json and both icons at the zip root, as Teams requires."""
    manifest = build_manifest(
        app_id,
        version=version,
        base_url=base_url,
        bot_id=bot_id,
        manifest_version=manifest_version,
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = {"manifest.json": (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()}
    for icon in ICONS:
        files[icon] = (APPMANIFEST_DIR / icon).read_bytes()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-id", required=True, help="Microsoft App ID (GUID) of the bot")
    parser.add_argument("--out", default="app.zip", help="where to write the package")
    parser.add_argument("--version", default="1.0.0", help="app version, MAJOR.MINOR.PATCH")
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"school/installer https site for developer links (default {PLACEHOLDER_BASE_URL})",
    )
    parser.add_argument("--bot-id", default=None, help="bot's App ID if it differs from --app-id")
    parser.add_argument(
        "--manifest-version",
        default=MANIFEST_VERSION,
        help=f"Teams manifest schema version (default {MANIFEST_VERSION})",
    )


def run(args: argparse.Namespace) -> int:
    try:
        out = write_package(
            args.app_id,
            args.out,
            version=args.version,
            base_url=args.base_url,
            bot_id=args.bot_id,
            manifest_version=args.manifest_version,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    if args.base_url is None:
        print(
            f"note: developer links point at the placeholder {PLACEHOLDER_BASE_URL}; "
            "pass --base-url with your school's site before publishing",
            file=sys.stderr,
        )
    return 0


def main_manifest(argv: list[str] | None = None) -> int:
    """Entry point for `safeguarding-bot manifest --app-id ID --out app.zip`."""
    parser = argparse.ArgumentParser(
        prog="safeguarding-bot manifest", description="Build the Teams app package (app.zip)."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main_manifest())
