"""``graphwiz serve``: the strategy of ``--config`` as an always-on service with its HTTP server.

- ``graphwiz serve --config C``: paper (or live, ``service.engine``) trading, one cycle per bar close, the API and
  dashboard, ``/health`` and ``/metrics`` on ``service.host:service.port`` (127.0.0.1:8000); SIGTERM or Ctrl-C
  stops it after the running cycle;
- ``graphwiz serve --config C --replay DIR [--speed N] [--cycles N]``: the same service over the bars of DIR
  (offline), the clock N times faster than real time (default: as fast as possible).

The journal is ``service.journal`` (a restarted service resumes run ``service.run_id``); in replay mode it is the
run folder's ``journal.sqlite``. ``graphwiz trading status|pause|resume|kill --journal ...`` act on it too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from graphwiz_trader.core.commandline import (
    add_config_option,
    add_json_option,
    add_run_dir_option,
)
from graphwiz_trader.core.runs import open_run
from graphwiz_trader.errors import ConfigError

log = logging.getLogger(__name__)

SERVE_HELP = "run the strategy as a service: cycles at bar closes, API, dashboard, /health, /metrics, alerts"


def speed_arg(text: str) -> float | None:
    """``--speed``: a positive number (times real time), or ``max`` (as fast as possible)."""
    if text.strip().lower() in ("max", "0", "inf"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed must be a positive number or 'max', got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"--speed must be a positive number or 'max', got {text!r}")
    return v


def _serve(args: argparse.Namespace) -> int:
    from graphwiz_trader.service.loop import ProductionTradingService
    from graphwiz_trader.strategies.factory import resolve_settings

    settings = resolve_settings(None, args.config or "config/trading_config.yaml")
    if args.speed is not None and args.replay is None:
        raise ConfigError("--speed applies to --replay only (a live service follows the wall clock)")
    folder = open_run(args)
    folder.write_config(settings)
    svc = ProductionTradingService(settings=settings, replay_dir=args.replay, replay_format=args.format,
                                   speed=args.speed, cycles=args.cycles, run_folder=folder.path,
                                   journal=args.journal, run_id=args.run_id, host=args.host, port=args.port,
                                   graph_store=False if args.no_graph_store else None)
    code = asyncio.run(svc.run())
    summary: dict[str, Any] = {"config": str(args.config), "run_id": svc.state.run_id if svc.state else None,
                               "cycles": svc.cycles_done, "stop_reason": svc.stop_reason,
                               "alerts_sent": len(svc.alerts.sent), "alerts_suppressed": svc.alerts.suppressed,
                               "failures_in_row": svc.failures_in_row,
                               "last": svc.state.snapshot() if svc.state is not None else None}
    folder.write_summary(summary, args.json)
    print(f"service stopped ({svc.stop_reason or 'end'}) after {svc.cycles_done} cycles; run folder: {folder.path}")
    return code


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``graphwiz`` app."""
    p = subparsers.add_parser("serve", help=SERVE_HELP, description=__doc__.split("\n\n")[1] if __doc__ else None)
    add_config_option(p)
    p.add_argument("--host", metavar="HOST", default=None,
                   help="interface of the HTTP server (default: service.host of --config, 127.0.0.1)")
    p.add_argument("--port", metavar="PORT", type=int, default=None,
                   help="port of the HTTP server (default: service.port of --config, 8000)")
    p.add_argument("--replay", metavar="DIR", default=None,
                   help="replay the bars in DIR offline instead of trading on an exchange (default: off)")
    p.add_argument("--format", choices=["freqtrade", "csv"], default="freqtrade",
                   help="layout of --replay (default: freqtrade)")
    p.add_argument("--speed", metavar="N", type=speed_arg, default=None,
                   help="replay clock speed, N times real time, or 'max' (default: max, as fast as possible)")
    p.add_argument("--cycles", metavar="N", type=int, default=None,
                   help="stop after N cycles (default: run until SIGTERM/Ctrl-C or the replay's end)")
    p.add_argument("--journal", metavar="PATH", default=None,
                   help="trade journal, a SQLite file or a postgresql+psycopg:// URL (default: service.journal; "
                        "with --replay the run folder's journal.sqlite)")
    p.add_argument("--run-id", metavar="ID", default=None,
                   help="run id in the journal (default: service.run_id; with --replay replay-<run folder>)")
    p.add_argument("--no-graph-store", action="store_true",
                   help="build the live graph in memory only (default: service.graph_store of --config)")
    add_run_dir_option(p)
    add_json_option(p)
    p.set_defaults(func=_serve)
