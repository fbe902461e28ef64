"""Test helper: validate Adaptive Cards and Teams manifests with the official node libraries."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "tests" / "node"
CARD_SCRIPT = NODE_DIR / "validate_card.mjs"
MANIFEST_SCRIPT = NODE_DIR / "validate_manifest.mjs"
NODE_MODULES = REPO / "node_modules"
TEAMS_ACTIVITY_LIMIT_BYTES = 28_000
_REQUIRED_PACKAGES = ("adaptivecards", "@microsoft/app-manifest", "fs-extra")


class NodeToolingMissing(RuntimeError):
    """node or the npm packages the validators need are not installed."""


@dataclass(frozen=True)
class CardReport:
    index: int
    ok: bool
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    bytes: int = 0
    activity_bytes: int = 0

    @property
    def messages(self) -> list[str]:
        return [item["message"] for item in [*self.errors, *self.warnings]]

    def describe(self) -> str:
        lines = [f"card {self.index}: {self.activity_bytes} bytes as an activity"]
        for kind, items in (("error", self.errors), ("warning", self.warnings)):
            for item in items:
                where = item.get("type") or ""
                if item.get("id"):
                    where += f"#{item['id']}"
                lines.append(f"  {kind}: [{item.get('event')}] {where} {item['message']}".rstrip())
        return "\n".join(lines)


def node_executable() -> str:
    """Path to node, after checking the npm packages are installed; raise telling how to fix."""
    node = shutil.which("node")
    if node is None:
        raise NodeToolingMissing(
            "node is not on PATH: install Node.js 20+ and run `npm ci` in the repo root "
            "(the card and manifest validators use the official Microsoft npm packages)"
        )
    missing = [p for p in _REQUIRED_PACKAGES if not (NODE_MODULES / p / "package.json").is_file()]
    if missing:
        raise NodeToolingMissing(
            f"npm packages missing from {NODE_MODULES}: {', '.join(missing)}. "
            "Run `npm ci --no-audit --no-fund` in the repo root (`make test` does this)."
        )
    return node


def _run(script: Path, payload: str, *extra: str) -> tuple[int, Any, str]:
    proc = subprocess.run(
        [node_executable(), str(script), *extra],
        input=payload,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{script.name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError as err:
        raise RuntimeError(
            f"{script.name} printed no JSON: {proc.stdout!r} {proc.stderr!r}"
        ) from err


def check_cards(
    cards: list[dict[str, Any]], *, max_bytes: int = TEAMS_ACTIVITY_LIMIT_BYTES
) -> list[CardReport]:
    """Parse and validate every card (Adaptive Cards 1.5) in one node process."""
    if not isinstance(cards, list):
        raise TypeError("check_cards takes a list of card dicts")
    if not cards:
        return []
    code, results, _ = _run(CARD_SCRIPT, json.dumps(cards), "--max-bytes", str(max_bytes))
    reports = [
        CardReport(
            index=r["index"],
            ok=r["ok"],
            errors=r["errors"],
            warnings=r["warnings"],
            bytes=r["bytes"],
            activity_bytes=r["activityBytes"],
        )
        for r in results
    ]
    if len(reports) != len(cards) or (code == 0) != all(r.ok for r in reports):
        raise RuntimeError(f"validate_card.mjs gave an inconsistent answer: exit {code}, {results}")
    return reports


def assert_valid_cards(cards: list[dict[str, Any]], **kwargs: Any) -> list[CardReport]:
    """Fail with every problem of every card; return the reports when all are clean."""
    reports = check_cards(cards, **kwargs)
    bad = [r for r in reports if not r.ok]
    if bad:
        raise AssertionError(
            f"{len(bad)} of {len(reports)} Adaptive Card(s) invalid:\n"
            + "\n".join(r.describe() for r in bad)
        )
    return reports


def validate_manifest(manifest: dict[str, Any]) -> list[str]:
    """Schema errors from @microsoft/app-manifest's own validator (empty list: valid)."""
    _, result, _ = _run(MANIFEST_SCRIPT, json.dumps(manifest))
    return list(result["errors"])


def card_texts(node: Any, kinds: tuple[str, ...] = ("TextBlock", "TextRun")) -> list[str]:
    """Every text of these element types in a card, in document order."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") in kinds and isinstance(node.get("text"), str):
            found.append(node["text"])
        for value in node.values():
            found += card_texts(value, kinds)
    elif isinstance(node, list):
        for value in node:
            found += card_texts(value, kinds)
    return found
