"""The edge's checks on what arrives at /api/messages, before the SDK touches it.

A request is refused with a short reason and a fixed code (used in the log line and the
refusal counter) when its body is not an activity we can read: too big, not JSON, nested too
deep, or a field of the wrong type. The field types come from the SDK's own schema (msrest
`_attribute_map`), so anything the SDK would choke on while deserialising is refused here;
the fields our handler reads are checked more strictly on top.

A bearer token is checked for its shape (three parts, RS256, a key id, no key URL of its own)
before the SDK fetches any signing key: a forged token costs us nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

import botbuilder.schema as schema
from msrest.exceptions import DeserializationError
from msrest.serialization import Deserializer

MAX_BODY_BYTES = 256 * 1024  # Teams caps a message at about 28 KB; cards are smaller still.
MAX_DEPTH = 24  # Teams' own activities nest about 8 deep (card submit values included).
MAX_INVOKE_NAME = 100

# The invokes this bot answers; everything else gets Teams' documented error envelope.
# fileConsent/invoke: the DSL accepting or declining a record file (bot/teams/files.py).
SUPPORTED_INVOKES = frozenset({"adaptiveCard/action", "fileConsent/invoke"})

# Header fields that let a token name its own key: never trusted (RFC 8725, section 3.10).
_KEY_POINTERS = ("jku", "x5u", "jwk", "x5c")
_SAFE_ID = re.compile(r"^[A-Za-z0-9:_\-.@|;=/+]{1,128}$")


class Refusal(Exception):
    """An answer for a request we will not process: HTTP status, fixed code, short reason.
    `detail` (an exception's type name, never its message) goes to the log line only."""

    def __init__(self, status: int, code: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {code}: {reason}")
        self.status = status
        self.code = code
        self.reason = reason
        self.detail = detail


def bad(reason: str, code: str = "schema") -> Refusal:
    return Refusal(400, code, reason)


def parse_body(raw: bytes) -> Any:
    """JSON from the request body, or a 400 Refusal."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("body is not UTF-8 text", "bad_json") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise bad(f"body is nested more than {MAX_DEPTH} levels deep", "too_deep") from None
    except ValueError:
        raise bad("body is not JSON", "bad_json") from None


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` (iterative: a deep body cannot exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise bad(f"body is nested more than {limit} levels deep", "too_deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def check_activity(body: Any) -> schema.Activity:
    """Refuse (400) a body the SDK could not deserialise or our handler could not read; else
    the SDK's Activity (deserialised once: the turn uses this one)."""
    check_depth(body)
    if not isinstance(body, dict):
        raise bad("the activity must be a JSON object")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise bad("'type' is required and must be a string")
    _check_model(body, schema.Activity, "")
    # What the handler reads, more strictly than the SDK's schema.
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url.startswith(("https://", "http://")):
        raise bad("'serviceUrl' is required and must be an http(s) URL")
    if kind in ("message", "invoke"):
        for key in ("from", "conversation"):
            part = body.get(key)
            if not isinstance(part, dict) or not isinstance(part.get("id"), str):
                raise bad(f"'{key}' with an 'id' is required")
    channel_data = body.get("channelData")
    if channel_data is not None and not isinstance(channel_data, dict):
        raise bad("'channelData' must be an object")
    if isinstance(channel_data, dict):
        for key in ("tenant", "channel", "team"):
            part = channel_data.get(key)
            if part is None:
                continue
            if not isinstance(part, dict):
                raise bad(f"'channelData.{key}' must be an object")
            if "id" in part and part["id"] is not None and not isinstance(part["id"], str):
                raise bad(f"'channelData.{key}.id' must be a string")
    if kind == "invoke":
        _check_invoke(body)
    # Last line of defence: whatever the SDK would still refuse is refused here, not in a turn.
    try:
        return schema.Activity().deserialize(body)
    except (DeserializationError, AttributeError, TypeError, ValueError):
        raise bad("the activity does not match the Bot Framework schema") from None


def _check_invoke(body: dict[str, Any]) -> None:
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_INVOKE_NAME):
        raise bad("'name' must be a short string")
    if name == "fileConsent/invoke":
        _check_file_consent(body.get("value"))
        return
    if name != "adaptiveCard/action":
        return
    value = body.get("value")
    if not isinstance(value, dict):
        raise bad("'value' must be an object for adaptiveCard/action")
    action = value.get("action")
    if not isinstance(action, dict):
        raise bad("'value.action' must be an object")
    if not isinstance(action.get("verb"), str):
        raise bad("'value.action.verb' must be a string")
    data = action.get("data")
    if data is not None and not isinstance(data, dict):
        raise bad("'value.action.data' must be an object")
    if isinstance(data, dict):
        for key in ("concern_id", "note"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise bad(f"'value.action.data.{key}' must be a string")


def _check_file_consent(value: Any) -> None:
    if not isinstance(value, dict):
        raise bad("'value' must be an object for fileConsent/invoke")
    if value.get("action") not in ("accept", "decline"):
        raise bad("'value.action' must be accept or decline")
    if value.get("context") is not None and not isinstance(value["context"], dict):
        raise bad("'value.context' must be an object")
    info = value.get("uploadInfo")
    if info is None:
        return
    if not isinstance(info, dict):
        raise bad("'value.uploadInfo' must be an object")
    for key in ("name", "uploadUrl", "contentUrl", "uniqueId", "fileType"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise bad(f"'value.uploadInfo.{key}' must be a string")


def _check_model(value: Any, model: type, where: str) -> None:
    if not isinstance(value, dict):
        raise bad(f"'{where or 'activity'}' must be an object")
    for attribute in model._attribute_map.values():
        key = attribute["key"]
        if key in value and value[key] is not None:
            _check_type(value[key], attribute["type"], f"{where}.{key}" if where else key)


def _check_type(value: Any, kind: str, where: str) -> None:
    if kind.startswith("[") and kind.endswith("]"):
        if not isinstance(value, list):
            raise bad(f"'{where}' must be a list")
        for i, item in enumerate(value):
            if item is not None:
                _check_type(item, kind[1:-1], f"{where}[{i}]")
        return
    if kind.startswith("{") and kind.endswith("}"):
        if not isinstance(value, dict):
            raise bad(f"'{where}' must be an object")
        for key, item in value.items():
            if item is not None:
                _check_type(item, kind[1:-1], f"{where}.{key}")
        return
    if kind == "str":
        if not isinstance(value, str):
            raise bad(f"'{where}' must be a string")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise bad(f"'{where}' must be true or false")
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(f"'{where}' must be a whole number")
    elif kind == "iso-8601":
        if not isinstance(value, str):
            raise bad(f"'{where}' must be an ISO 8601 date-time")
        try:
            Deserializer.deserialize_iso(value)
        except (DeserializationError, ValueError, TypeError, OverflowError):
            raise bad(f"'{where}' must be an ISO 8601 date-time") from None
    elif kind == "object":
        return
    else:
        model = getattr(schema, kind, None)
        if model is None or not hasattr(model, "_attribute_map"):
            return  # a type the SDK added later: its own deserialiser is the last check
        _check_model(value, model, where)


def safe_id(value: Any) -> str | None:
    """An id fit for a log line (ids only; anything else is dropped, never echoed)."""
    return value if isinstance(value, str) and _SAFE_ID.match(value) else None


# -- bearer tokens ------------------------------------------------------------------------


def check_bearer(header: str) -> None:
    """Refuse (401) a missing or malformed bearer token before any signing key is fetched."""
    if not header:
        raise Refusal(401, "no_token", "authentication required")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not token or " " in token:
        raise Refusal(401, "bad_token", "expected 'Authorization: Bearer <token>'")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise Refusal(401, "bad_token", "the token is not a signed JWT")
    try:
        header_json = json.loads(_b64url(parts[0]))
        json.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Refusal(401, "bad_token", "the token is not a signed JWT") from None
    if not isinstance(header_json, dict):
        raise Refusal(401, "bad_token", "the token is not a signed JWT")
    if header_json.get("alg") != "RS256":
        raise Refusal(401, "bad_alg", "the token is not signed with RS256")
    if any(key in header_json for key in _KEY_POINTERS):
        raise Refusal(401, "key_pointer", "the token names its own signing key")
    if not isinstance(header_json.get("kid"), str) or not parts[2]:
        raise Refusal(401, "bad_token", "the token has no key id or no signature")


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
