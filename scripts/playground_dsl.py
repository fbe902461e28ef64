"""Act as the DSL in the Agents Playground: press the alert card's buttons as another user.

    .venv/bin/python scripts/playground_dsl.py            # then send a report in the browser

The Playground (0.2.28) shows everything to one user - the member of staff at the keyboard -
and cannot switch users. Its own API can press a card button as anyone in playground.yml,
so this script watches the DSL channel for alert cards (start it BEFORE you send the report:
the Playground does not replay earlier messages), lists the buttons and presses the one you
choose as the DSL (Ann Robinson for the example school), or as another user with --as.
The reporter's chat then shows what the DSL did ("picked up by ...").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
CARD = "application/vnd.microsoft.card.adaptive"


def load_config(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def pick_user(config: dict[str, Any], name: str | None) -> dict[str, Any]:
    """The user to act as: by name, else the first other user (the DSL; see the generator)."""
    users = config["users"]
    if name is None:
        return users[0]
    for user in users:
        if user["name"].lower() == name.lower():
            return user
    known = ", ".join(u["name"] for u in users)
    raise SystemExit(f"no user {name!r} in the Playground config; known: {known}")


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's Action.Execute buttons (the alert's Universal Actions), wherever they sit:
    the alert stacks them in ActionSets in its body so a phone shows each title whole."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Execute":
                found.append(node)
                return
            for key, value in node.items():
                if key != "refresh":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


def alert_in(event: dict[str, Any], channel_id: str) -> tuple[str, str, dict] | None:
    """(thread id, message id, card) when the event is a card posted in the DSL channel."""
    if event.get("action") not in {"createMessage", "updateMessage"}:
        return None
    message = event.get("message") or {}
    thread = message.get("postConversationId") or event.get("actionConversationId") or ""
    if thread.split(";", 1)[0] != channel_id:
        return None
    for attachment in message.get("attachments") or []:
        if attachment.get("contentType") == CARD and buttons(attachment.get("content") or {}):
            return thread, message["messageId"], attachment["content"]
    return None


async def press(
    session: aiohttp.ClientSession,
    url: str,
    *,
    thread: str,
    message_id: str,
    user: dict[str, Any],
    button: dict[str, Any],
) -> dict[str, Any]:
    body = {
        "name": "adaptiveCard/action",
        "conversation": {"id": thread},
        "from": {"id": user["id"]},
        "replyToId": message_id,
        "value": {
            "action": {
                "type": "Action.Execute",
                "verb": button["verb"],
                "data": button.get("data") or {},
            },
            "trigger": "manual",
        },
    }
    async with session.post(f"{url}/_conversation/v1/invoke", json=body) as response:
        text = await response.text()
        if response.status != 200:
            raise SystemExit(f"the Playground refused the press ({response.status}): {text}")
        return json.loads(text) if text else {}


def choose(options: list[dict[str, Any]], verb: str | None) -> dict[str, Any] | None:
    if verb is not None:
        return next((b for b in options if b["verb"] == verb), None)
    for number, button in enumerate(options, start=1):
        print(f"  {number}. {button.get('title') or button['verb']}")
    answer = input("Press which (number, Enter for 1, 'n' for none)? ").strip().lower()
    if answer == "n":
        return None
    index = int(answer) - 1 if answer.isdigit() else 0
    return options[index] if 0 <= index < len(options) else None


async def watch(url: str, config: dict[str, Any], user: dict[str, Any], args: Any) -> int:
    channel_id = config["team"]["channels"][0]["id"]
    print(f"Watching the DSL channel; buttons are pressed as {user['name']} ({user['id']}).")
    print("Now send a report in the browser. Ctrl+C to stop.", flush=True)
    pressed = 0
    seen: set[str] = set()
    ws_url = url.replace("http", "ws", 1) + "/_ws_conversation/v1/conversations/stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            found = alert_in(json.loads(frame.data), channel_id)
            if not found or found[1] in seen:
                continue
            thread, message_id, card = found
            seen.add(message_id)
            print(f"\nAlert in the DSL channel: {card.get('fallbackText') or 'a card'}")
            button = await asyncio.to_thread(choose, buttons(card), args.press)
            if button is None:
                continue
            result = await press(
                session, url, thread=thread, message_id=message_id, user=user, button=button
            )
            shown = "the card was updated" if result.get("type") == CARD else result.get("value")
            print(f"Pressed '{button.get('title') or button['verb']}' as {user['name']}: {shown}")
            pressed += 1
            if args.once:
                return 0
    return 0 if pressed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default="http://127.0.0.1:56150", help="the Playground")
    parser.add_argument("--config", default=str(ROOT / "playground.yml"), type=Path)
    parser.add_argument("--as", dest="who", help="act as this user (default: the DSL)")
    parser.add_argument("--press", help="press this verb at once, e.g. acknowledge")
    parser.add_argument("--once", action="store_true", help="stop after one press")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    user = pick_user(config, args.who)
    try:
        return asyncio.run(watch(args.url.rstrip("/"), config, user, args))
    except KeyboardInterrupt:
        return 0
    except aiohttp.ClientError as exc:
        print(f"Cannot reach the Playground at {args.url} ({exc}): run `make playground`.")
        return 2


if __name__ == "__main__":
    sys.exit(main())
