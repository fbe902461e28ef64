"""The `safeguarding-bot` command: chat, serve, flows draw, manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.profile import ProfileError, example_profiles_dir, load_organisation

DEFAULT_PROFILE = example_profiles_dir() / "buttsbury-junior.yaml"


def _school(args: argparse.Namespace):
    return load_organisation(args.profile).school(args.school)


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.console import run_console

    return run_console(_school(args), Path(args.data))


def cmd_draw(args: argparse.Namespace) -> int:
    from flows.catalogue import load_definitions
    from flows.diagram import document, mermaid

    flows = load_definitions()
    if args.flow and args.flow not in flows:
        print(f"Unknown flow {args.flow!r}; known: {', '.join(sorted(flows))}", file=sys.stderr)
        return 2
    if args.markdown:
        chosen = [flows[args.flow]] if args.flow else list(flows.values())
        sys.stdout.write(document(chosen))
        return 0
    for flow_id in [args.flow] if args.flow else sorted(flows):
        print(mermaid(flows[flow_id]))
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeguarding-bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="talk to the bot in this terminal (training / demo)")
    chat.add_argument("--profile", default=str(DEFAULT_PROFILE), help="school profile YAML")
    chat.add_argument("--school", default=None, help="school id, for a trust's profile")
    chat.add_argument("--data", default="data", help="where finished concerns are written")
    chat.set_defaults(func=cmd_chat)

    flows = sub.add_parser("flows", help="the procedures")
    flows_sub = flows.add_subparsers(dest="flows_command", required=True)
    draw = flows_sub.add_parser("draw", help="print Mermaid state diagrams")
    draw.add_argument("flow", nargs="?", help="one flow id (default: all)")
    draw.add_argument("--markdown", action="store_true", help="the docs/flows.md document")
    draw.set_defaults(func=cmd_draw)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ProfileError as exc:
        print(f"The school profile is not valid:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
