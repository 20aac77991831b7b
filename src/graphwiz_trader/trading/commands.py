"""``graphwiz trading status|pause|resume|kill``: act on a running strategy through its trade journal.

The running strategy reads its run state (``paused``, ``killed``) from the journal at every cycle
(:class:`~graphwiz_trader.trading.risk.RiskManager`), so these commands work from another shell or machine:

- ``status``: the journal's runs, or one run's state, last cycle, equity, open orders and recent risk events;
- ``pause``: no new orders from the next cycle on (exits still pass); ``resume`` lifts a pause, the kill switch
  and the breakers;
- ``kill``: halt; the strategy cancels every open order at its next cycle, and with ``--flatten`` also sends the
  orders closing every position.

``--journal`` names the journal (a SQLite file or a PostgreSQL URL, e.g. the ``journal.sqlite`` of a
``graphwiz paper``/``live`` run folder); ``--run-id`` the run (default: the most recently started one).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from graphwiz_trader.core.commandline import add_json_option
from graphwiz_trader.errors import ConfigError

TRADING_HELP = "status, pause, resume or kill a running strategy (through its trade journal)"
FLATTEN_PREFIX = "flatten: "
"""A kill reason starting with this asks the strategy to flatten every position too."""


def _open(args: argparse.Namespace) -> tuple[Any, str]:
    from graphwiz_trader.trading.journal import TradeJournal

    journal = TradeJournal.open(args.journal)
    run_id = args.run_id
    if run_id is None:
        runs = journal.runs()
        if not len(runs):
            journal.close()
            raise ConfigError(f"the journal {args.journal} holds no runs")
        run_id = str(runs["run_id"].iloc[0])
    journal.run_state(run_id)  # a clear error naming the runs there when it does not exist
    return journal, run_id


def _status(args: argparse.Namespace) -> int:
    from graphwiz_trader.core.jsonout import plain

    journal, run_id = _open(args)
    try:
        state = journal.run_state(run_id)
        cycles = journal.cycles_frame(run_id)
        equity = journal.equity_frame(run_id)
        events = journal.risk_events_frame(run_id)
        open_orders = journal.open_orders(run_id)
        runs = journal.runs()
        out = {"run": state, "runs": len(runs),
               "cycles": {"count": int(len(cycles)),
                          "by_status": {str(k): int(v) for k, v in cycles["status"].value_counts().items()}
                          if len(cycles) else {},
                          "last": int(cycles["cycle"].max()) if len(cycles) else None,
                          "last_as_of": cycles["as_of"].max() if len(cycles) else None},
               "equity": {"last": float(equity["equity_quote"].iloc[-1]), "at": equity["ts_utc"].iloc[-1],
                          "drawdown": float(equity["drawdown"].iloc[-1])} if len(equity) else None,
               "open_orders": [{"client_order_id": r.client_order_id, "symbol": r.symbol, "side": r.side.value,
                                "qty": r.qty, "state": s.value} for r, s in open_orders],
               "positions": journal.positions_from_fills(run_id),
               "recent_risk_events": events.tail(args.events)[["ts_utc", "kind", "detail", "action"]].to_dict("records")
               if len(events) else []}
        flags = [k for k in ("paused", "killed") if state[k]]
        print(f"run {run_id} ({state['strategy']} on {state['engine']}): "
              f"{', '.join(flags) + (' - ' + state['reason'] if state['reason'] else '') if flags else 'running'}")
        c = out["cycles"]
        print(f"  cycles: {c['count']} ({', '.join(f'{k} {v}' for k, v in c['by_status'].items()) or 'none'}), "
              f"last {c['last']} at {c['last_as_of']}")
        if out["equity"]:
            print(f"  equity {out['equity']['last']:.2f} at {out['equity']['at']} (drawdown "
                  f"{100 * out['equity']['drawdown']:.2f}%)")
        print(f"  open orders: {len(out['open_orders'])}; positions: "
              + (", ".join(f"{s} {q:.8g}" for s, q in out["positions"].items() if q) or "none"))
        for e in out["recent_risk_events"]:
            print(f"  {e['ts_utc']} {e['kind']}: {e['detail']} -> {e['action']}")
        if args.json:
            from pathlib import Path

            from graphwiz_trader.core.runs import atomic_write_bytes

            atomic_write_bytes(Path(args.json), json.dumps(plain(out), indent=2, default=str).encode())
        return 0
    finally:
        journal.close()


def _control(args: argparse.Namespace) -> int:
    from graphwiz_trader.trading.risk import request_kill, request_pause, request_resume

    journal, run_id = _open(args)
    try:
        action = args.trading_command
        reason = args.reason or f"graphwiz trading {action}"
        if action == "pause":
            state = request_pause(journal, run_id, reason)
        elif action == "resume":
            state = request_resume(journal, run_id)
        else:
            state = request_kill(journal, run_id, (FLATTEN_PREFIX + reason) if args.flatten else reason)
        print(f"run {run_id}: paused={state['paused']}, killed={state['killed']} ({state['reason']}); the strategy "
              f"acts on it at its next cycle")
        return 0
    finally:
        journal.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``trading`` (status, pause, resume, kill) to the ``graphwiz`` app."""
    p = subparsers.add_parser("trading", help=TRADING_HELP, description=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(dest="trading_command", metavar="ACTION", required=True,
                           parser_class=type(p))
    helps = {"status": "the run's state, last cycle, equity, open orders and recent risk events",
             "pause": "stop new orders from the next cycle on (exits still pass)",
             "resume": "lift a pause, the kill switch and the breakers",
             "kill": "halt and cancel every open order at the next cycle (--flatten: close every position too)"}
    for name, text in helps.items():
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("--journal", metavar="PATH", required=True,
                       help="the run's trade journal: a SQLite file or a postgresql+psycopg:// URL")
        q.add_argument("--run-id", metavar="ID", default=None, help="the run (default: the most recently started)")
        if name == "status":
            q.add_argument("--events", type=int, default=5, help="recent risk events shown")
            add_json_option(q)
            q.set_defaults(func=_status, no_run_folder=True)
        else:
            q.add_argument("--reason", metavar="TEXT", default=None, help="why (journaled with the request)")
            if name == "kill":
                q.add_argument("--flatten", action="store_true", help="also close every position")
            q.set_defaults(func=_control, no_run_folder=True)
