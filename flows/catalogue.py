"""The bundled procedures: load every flow file once, compile and cross-check them."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from flows.definition import FlowDefinition, FlowDefinitionError, parse_flow, safe_load
from flows.engine import CompiledFlow

COMMON = "_common.yaml"


def definitions_dir() -> Path:
    return Path(str(resources.files("flows.definitions")))


def load_definitions(folder: Path | None = None) -> dict[str, FlowDefinition]:
    """Parse every `*.yaml` flow in `folder` (shared steps come from `_common.yaml`)."""
    folder = folder or definitions_dir()
    common_path = folder / COMMON
    common: dict[str, Any] = {}
    if common_path.exists():
        data = safe_load(common_path.read_text(encoding="utf-8")) or {}
        if not isinstance(data.get("steps"), dict):
            raise FlowDefinitionError(f"{common_path}: `steps` must map names to shared steps")
        common = data["steps"]
    flows: dict[str, FlowDefinition] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name == COMMON:
            continue
        flow = parse_flow(path.read_text(encoding="utf-8"), str(path), common)
        if flow.id in flows:
            raise FlowDefinitionError(f"{path}: flow id {flow.id!r} is already used")
        flows[flow.id] = flow
    return flows


def compile_all(definitions: dict[str, FlowDefinition]) -> dict[str, CompiledFlow]:
    known = frozenset(definitions)
    return {flow_id: CompiledFlow(d, known) for flow_id, d in definitions.items()}


@cache
def catalogue() -> dict[str, CompiledFlow]:
    """The shipped flows, compiled once per process."""
    return compile_all(load_definitions())
