"""Reading profiles: the strict YAML loader, the chain of files a profile `extends`, and the
entry points that turn a file (or its text) into an Organisation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flows.profile.build import _build, _Layer
from flows.profile.checks import _kind
from flows.profile.model import Organisation, ProfileError

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _Loader(yaml.SafeLoader):
    """Safe loader where only true/false are booleans (yes/no/on/off stay text), numbers with
    leading zeros or colons stay text (phone numbers, 15:30), and duplicate keys are errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _load_yaml(text: str, path: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader subclasses SafeLoader
    except yaml.YAMLError as exc:
        raise ProfileError([f"{path}: (yaml): {' '.join(str(exc).split())}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError([f"{path}: (top): must be a mapping of keys, got {_kind(data)}"])
    return data


def parse_organisation(text: str, path: str, base: Mapping[str, Any] | None = None) -> Organisation:
    """Parse one profile file's text; `base` is the already-loaded mapping it extends, if any."""
    data = _load_yaml(text, path)
    bases = [_Layer(base, f"{path} (base)", "")] if base else []
    return _build(bases, data, path)


def _read_chain(path: Path, seen: tuple[Path, ...]) -> list[tuple[Path, dict[str, Any]]]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ProfileError([f"{path}: extends: circular extends chain: {chain}"])
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError([f"{path}: (file): cannot read: {exc.strerror}"]) from None
    data = _load_yaml(text, str(path))
    parent = data.get("extends")
    if parent is None:
        return [(path, data)]
    if not isinstance(parent, str) or not parent.strip():
        raise ProfileError([f"{path}: extends: must be a file path, got {_kind(parent)}"])
    return [*_read_chain(path.parent / parent, (*seen, resolved)), (path, data)]


def load_organisation(path: str | Path) -> Organisation:
    """Read a profile file and the files its `extends` chain names (relative to each file)."""
    chain = _read_chain(Path(path), ())
    bases = [_Layer(data, str(p), "") for p, data in chain[:-1]]
    last_path, last_data = chain[-1]
    return _build(bases, last_data, str(last_path))


def example_profiles_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "profiles"
