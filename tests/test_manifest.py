"""The Teams app package validates against the official manifest schema and carries good icons."""

from __future__ import annotations

import copy
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry

from bot.teams import manifest as app
from tests import cardcheck

APP_ID = "8a4f1c2e-1b2c-4d3e-9f00-123456789abc"
SCHEMAS = (
    cardcheck.NODE_MODULES / "@microsoft" / "app-manifest" / "build" / "json-schemas" / "teams"
)


# ---- schema validation (python jsonschema, official schema from node_modules) ----


# The Teams schemas declare draft-04 but use `const` and `if`/`then` (draft-06/07), which
# Microsoft's own validator (ajv) enforces; plain Draft4Validator would silently ignore them.
TeamsSchemaValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    {k: jsonschema.Draft7Validator.VALIDATORS[k] for k in ("const", "if")},
)


def schema_for(manifest_version: str) -> dict[str, Any]:
    path = SCHEMAS / f"v{manifest_version}" / "MicrosoftTeams.schema.json"
    if not path.is_file():
        cardcheck.node_executable()  # raises "run npm ci" if the package is missing
        raise AssertionError(f"@microsoft/app-manifest bundles no schema at {path}")
    return json.loads(path.read_text(encoding="utf-8-sig"))


def schema_errors(manifest: dict[str, Any], manifest_version: str | None = None) -> list[str]:
    schema = schema_for(manifest_version or app.MANIFEST_VERSION)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft4Validator
    # Structure only: a few patterns use ECMAScript \p{L}, which Python's re cannot compile.
    TeamsSchemaValidator.check_schema(schema, format_checker=None)
    # An empty registry: any remote $ref fails loudly instead of reaching the network.
    validator = TeamsSchemaValidator(schema, registry=Registry())
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}"
        for e in validator.iter_errors(manifest)
    ]


def test_default_schema_is_draft_04_and_the_newest_bundled() -> None:
    schema = schema_for(app.MANIFEST_VERSION)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    bundled = [p.name[1:] for p in SCHEMAS.iterdir() if p.name[1:2].isdigit()]
    newest = max(bundled, key=lambda v: tuple(int(x) for x in v.split(".")))
    assert newest == app.MANIFEST_VERSION


@pytest.mark.parametrize("manifest_version", [app.MANIFEST_VERSION, "1.22", "1.17"])
def test_built_manifest_validates_against_official_schema(manifest_version: str) -> None:
    manifest = app.build_manifest(APP_ID, version="1.2.3", manifest_version=manifest_version)
    assert schema_errors(manifest, manifest_version) == []
    assert manifest["manifestVersion"] == manifest_version
    assert f"/v{manifest_version}/" in manifest["$schema"]


def test_official_node_validator_agrees() -> None:
    manifest = app.build_manifest(APP_ID)
    assert cardcheck.validate_manifest(manifest) == []
    broken = copy.deepcopy(manifest)
    del broken["bots"][0]["botId"]
    assert any("botId" in e for e in cardcheck.validate_manifest(broken))
    broken = {**manifest, "manifestVersion": "1.99"}
    assert cardcheck.validate_manifest(broken) == ['no bundled schema for manifestVersion "1.99"']


def _drop_bot_id(m: dict) -> None:
    del m["bots"][0]["botId"]


def _bad_manifest_version(m: dict) -> None:
    m["manifestVersion"] = "1.99"


def _bad_guid(m: dict) -> None:
    m["id"] = "not-a-guid"


def _long_short_name(m: dict) -> None:
    m["name"]["short"] = "S" * 31


def _unknown_property(m: dict) -> None:
    m["bots"][0]["supportsFile"] = False


def _bad_scope(m: dict) -> None:
    m["bots"][0]["scopes"] = ["everyone"]


def _no_developer_privacy(m: dict) -> None:
    del m["developer"]["privacyUrl"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop_bot_id, "'botId' is a required property"),
        (_bad_manifest_version, "'1.30' was expected"),
        (_bad_guid, "does not match"),
        (_long_short_name, "is too long"),
        (_unknown_property, "Additional properties are not allowed"),
        (_bad_scope, "'everyone' is not one of"),
        (_no_developer_privacy, "'privacyUrl' is a required property"),
    ],
)
def test_mutated_manifest_fails_validation(mutate, expected: str) -> None:
    manifest = app.build_manifest(APP_ID)
    mutate(manifest)
    errors = schema_errors(manifest)
    assert any(expected in e for e in errors), errors


# ---- content ----


def test_bot_is_personal_and_team_with_no_files_and_all_commands() -> None:
    manifest = app.build_manifest(APP_ID)
    [bot] = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert set(bot["scopes"]) == {"personal", "team"}
    # Files go out only through file consent cards (the DSL's record), which Teams allows only
    # with supportsFiles; files sent TO the bot are still never fetched (test_e2e).
    assert bot["supportsFiles"] is True
    lists = {
        tuple(cl["scopes"]): [c["title"] for c in cl["commands"]] for cl in bot["commandLists"]
    }
    assert lists == {
        ("personal",): [
            "help",
            "report",
            "contacts",
            "my reports",
            "not acted on",
            "open concerns",
        ],
        ("team",): ["help", "report", "contacts", "my reports", "open concerns"],
    }
    assert manifest["name"]["short"] == "Safeguarding"
    assert "Designated Safeguarding Lead" in manifest["description"]["full"]


def test_no_placeholder_survives_and_base_url_is_used() -> None:
    manifest = app.build_manifest(APP_ID, base_url="https://www.stmarys.sch.uk/")
    text = json.dumps(manifest)
    assert "${{" not in text
    assert manifest["developer"]["privacyUrl"] == "https://www.stmarys.sch.uk/privacy"
    assert manifest["validDomains"] == ["www.stmarys.sch.uk"]


def test_default_links_use_the_marked_placeholder() -> None:
    manifest = app.build_manifest(APP_ID)
    assert manifest["developer"]["websiteUrl"].startswith(app.PLACEHOLDER_BASE_URL)
    assert manifest["validDomains"] == ["example.school.uk"]


def test_separate_bot_id_and_case_normalised() -> None:
    bot_id = "11111111-2222-3333-4444-555555555555"
    manifest = app.build_manifest(APP_ID.upper(), bot_id=bot_id)
    assert manifest["id"] == APP_ID
    assert manifest["bots"][0]["botId"] == bot_id


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "8a4f1c2e1b2c4d3e9f00123456789abc", "8a4f1c2e-1b2c-4d3e-9f00-123456789abz", None],
)
def test_bad_app_id_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="app id must be a GUID"):
        app.build_manifest(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bot_id": "nope"}, "bot id must be a GUID"),
        ({"version": "1.0"}, "MAJOR.MINOR.PATCH"),
        ({"base_url": "http://insecure.example"}, "https://"),
        ({"base_url": "https://"}, "https://"),
        ({"manifest_version": "2"}, "manifest version"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        app.build_manifest(APP_ID, **kwargs)


# ---- package ----


def test_package_has_manifest_and_icons_at_zip_root(tmp_path: Path) -> None:
    out = app.write_package(APP_ID, tmp_path / "dist" / "app.zip", version="2.0.0")
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.read("color.png") == (app.APPMANIFEST_DIR / "color.png").read_bytes()
        assert zf.read("outline.png") == (app.APPMANIFEST_DIR / "outline.png").read_bytes()
    assert manifest == app.build_manifest(APP_ID, version="2.0.0")
    assert schema_errors(manifest) == []
    assert cardcheck.validate_manifest(manifest) == []
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}


def test_package_is_reproducible(tmp_path: Path) -> None:
    a = app.write_package(APP_ID, tmp_path / "a.zip")
    b = app.write_package(APP_ID, tmp_path / "b.zip")
    assert a.read_bytes() == b.read_bytes()


def test_cli_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "app.zip"
    assert app.main_manifest(["--app-id", APP_ID, "--out", str(out)]) == 0
    assert zipfile.is_zipfile(out)
    assert "example.school.uk" in capsys.readouterr().err
    assert app.main_manifest(["--app-id", "nope", "--out", str(tmp_path / "x.zip")]) == 2
    assert "app id must be a GUID" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()


# ---- icons (read straight from the PNG bytes) ----


def read_png(path: Path) -> tuple[int, int, int, list[tuple[int, ...]]]:
    """(width, height, colour type, pixels) for 8-bit non-interlaced PNGs."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if tag == b"IHDR":
            header = body
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0
    channels = {2: 3, 6: 4}[colour]
    raw, stride, rows, prev = (
        zlib.decompress(idat),
        width * channels,
        [],
        bytearray(width * channels),
    )
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    pixels = [tuple(r[i : i + channels]) for r in rows for i in range(0, stride, channels)]
    return width, height, colour, pixels


def test_colour_icon_is_192_square_full_colour_in_accent() -> None:
    width, height, _, pixels = read_png(app.APPMANIFEST_DIR / "color.png")
    assert (width, height) == (192, 192)
    assert len({p[:3] for p in pixels}) > 2
    accent = app.build_manifest(APP_ID)["accentColor"]
    assert "#{:02X}{:02X}{:02X}".format(*pixels[0][:3]) == accent


def test_outline_icon_is_32_square_white_on_transparent() -> None:
    width, height, colour, pixels = read_png(app.APPMANIFEST_DIR / "outline.png")
    assert (width, height) == (32, 32)
    assert colour == 6, "outline icon needs an alpha channel"
    alphas = [p[3] for p in pixels]
    assert min(alphas) == 0 and max(alphas) == 255
    assert all(p[:3] == (255, 255, 255) for p in pixels if p[3] > 0), "only white may be drawn"
    assert sum(a == 0 for a in alphas) > len(alphas) // 2  # mostly transparent


def test_committed_icons_match_their_generator() -> None:
    from scripts.make_icons import color_icon, outline_icon

    assert color_icon() == (app.APPMANIFEST_DIR / "color.png").read_bytes()
    assert outline_icon() == (app.APPMANIFEST_DIR / "outline.png").read_bytes()
