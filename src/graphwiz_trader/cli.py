"""``graphwiz``: one command-line app. Each command parses, calls one domain function, prints and writes its run folder.

Commands live beside their domain in ``<package>/commands.py`` as ``register(subparsers)``. This module
only assembles them, and loads a command's module only when that command runs (or its help is asked
for), so ``graphwiz --help`` answers without importing Qlib, torch or the graph driver.

Every invocation of a command that does work gets one run folder, ``runs/<command>/<UTC time>/``
(:func:`graphwiz_trader.core.runs.open_run`), opened before the command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from graphwiz_trader import __version__
from graphwiz_trader.core.commandline import GraphwizParser
from graphwiz_trader.errors import GraphwizError

log = logging.getLogger("graphwiz_trader")

# name -> (module with register(subparsers), one-line help). The help is repeated here so that the
# top-level help needs no import; tests check it equals the help the module registers.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("graphwiz_trader.data.commands", "download, import, validate market data; write Qlib bins"),
    "cache": ("graphwiz_trader.data.commands", "inspect and bound the feature caches"),
    "graph": ("graphwiz_trader.graph.commands", "build the asset-correlation and regime graph in the store"),
    "features": ("graphwiz_trader.features.commands",
                 "Alpha158 + extra expressions (and graph features with --graph)"),
    "research": ("graphwiz_trader.research.commands", "walk-forward research"),
    "reproduce": ("graphwiz_trader.research.commands_reproduce",
                  "reproduce published results (qlib-csi300, graph-crypto, paper)"),
    "backtest": ("graphwiz_trader.backtest.commands",
                 "walk-forward max-Sharpe portfolio + cost-aware backtest vs benchmarks"),
    "execution": ("graphwiz_trader.execution.commands",
                  "execution engines: train PPO, evaluate against MARKET/TWAP/VWAP/AC"),
    "demo": ("graphwiz_trader.demo", "offline end-to-end demo on the synthetic market (no network, no database)"),
    "paper": ("graphwiz_trader.strategies.commands",
              "paper trading: replay history (--replay DIR) or live bars with simulated fills"),
    "live": ("graphwiz_trader.strategies.commands",
             "live trading through ccxt (--sandbox, or real money with --confirm-real-money)"),
    "trading": ("graphwiz_trader.trading.commands",
                "status, pause, resume or kill a running strategy (through its trade journal)"),
    "serve": ("graphwiz_trader.service.commands",
              "run the strategy as a service: cycles at bar closes, API, dashboard, /health, /metrics, alerts"),
}


def _command_word(argv: list[str]) -> str | None:
    """The first argument that is not an option (the command name), if any."""
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def build_parser(load: str | None = "*") -> argparse.ArgumentParser:
    """The ``graphwiz`` parser.

    Parameters
    ----------
    load
        ``"*"`` registers every command fully (tests, documentation); a command name registers that
        command's module only and the others as help-only stubs; ``None`` registers stubs only.
    """
    parser = GraphwizParser(prog="graphwiz", description="graph-augmented quantitative trading research and execution")
    parser.add_argument("--version", action="version", version=f"graphwiz_trader {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=GraphwizParser)
    modules = [COMMANDS[load][0]] if load in COMMANDS else ([m for m, _ in COMMANDS.values()] if load == "*" else [])
    for module in dict.fromkeys(modules):
        importlib.import_module(module).register(sub)
    for name, (_, help_text) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_word(argv) if _command_word(argv) in COMMANDS else None)
    args = parser.parse_args(argv)
    from graphwiz_trader.core.logging import configure_logging
    from graphwiz_trader.core.progress import set_progress

    configure_logging(verbose=bool(getattr(args, "verbose", False)))
    set_progress(not getattr(args, "no_progress", False))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not getattr(args, "no_run_folder", False):
        from graphwiz_trader.core.runs import open_run

        args._argv = argv
        log.info("run folder %s", open_run(args).path)
    try:
        return int(args.func(args) or 0)
    except GraphwizError as exc:
        from graphwiz_trader.core.secrets import mask_secrets

        print(f"error: {mask_secrets(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # SIGTERM raises SystemExit(143) wherever the main thread is; inside a library's socket read (the neo4j
        # driver) the library's own clean-up can then fail and replace the SystemExit with its error. The process
        # was told to stop: exit as terminated, not with a traceback.
        sp = sys.modules.get("graphwiz_trader.graph.server_process")
        if sp is not None and sp.terminating():
            print(f"terminated by SIGTERM (while stopping, a library raised {type(exc).__name__}: {exc})",
                  file=sys.stderr)
            return 143
        raise


if __name__ == "__main__":
    sys.exit(main())
