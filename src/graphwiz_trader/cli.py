"""``graphwiz``: one command-line app. Each command parses, calls one domain function, prints/writes JSON.

Commands live beside their domain in ``<package>/commands.py`` as ``register(subparsers)``; this module
only assembles them (see ``_COMMAND_MODULES``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from graphwiz_trader.errors import GraphwizError

# Each module exposes register(subparsers: argparse._SubParsersAction) -> None and sets
# `func(args) -> int` on the parsers it adds.
_COMMAND_MODULES = [
    "graphwiz_trader.data.commands",
    "graphwiz_trader.graph.commands",
    "graphwiz_trader.features.commands",
    "graphwiz_trader.research.commands",
    "graphwiz_trader.research.commands_reproduce",
    "graphwiz_trader.backtest.commands",
    "graphwiz_trader.execution.commands",
    "graphwiz_trader.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphwiz", description="graph-augmented quantitative trading")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except GraphwizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
