"""Peer timing: vectorbt's ``Portfolio.from_orders`` on target weights, run inside the peer's own virtualenv.

Runs in ``benchmarks/peers/.venv-vectorbt`` (made by :mod:`peers.peer_env` from
``requirements-vectorbt.txt``), never in the project's environment: it imports nothing from
graphwiz_trader. Reads the inputs the main benchmark wrote into one folder and prints one JSON object on
stdout.

Inputs (``DIR``):
  close.npy, open.npy   T x N float64 bar prices (NaN where a pair has no bar)
  targets.npy           T x N float64 target weights (fractions of equity) applied at bar t, i.e. the
                        weights the project's engine decided at bar t-1's close (NaN: no order)
  params.json           {"init_cash": quote units, "runs": {name: {"fees": fraction, "slippage": fraction}},
                         "repeat": N}

For each run: ``from_orders(close, size=targets, size_type="targetpercent", price=open,
fees=..., slippage=..., init_cash=..., cash_sharing=True, group_by=True, call_seq="auto")`` -- one
portfolio of all pairs sharing one cash balance, orders filled at bar t's open, sells before buys in a
bar (``call_seq="auto"``), each asset valued at the order price when sizing (``val_price`` default).
The first call compiles numba's kernels and is not timed; then the best wall and the best CPU seconds
of ``repeat`` calls.

    .venv-vectorbt/bin/python vectorbt_backtest.py DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import vectorbt as vbt


def run(folder: Path) -> dict[str, object]:
    params = json.loads((folder / "params.json").read_text())
    close = np.load(folder / "close.npy")
    open_ = np.load(folder / "open.npy")
    targets = np.load(folder / "targets.npy")
    index = pd.date_range("2000-01-01", periods=close.shape[0], freq="h")  # labels only; freq for vbt
    cols = [f"a{i}" for i in range(close.shape[1])]
    close_df = pd.DataFrame(close, index=index, columns=cols)
    open_df = pd.DataFrame(open_, index=index, columns=cols)
    size_df = pd.DataFrame(targets, index=index, columns=cols)
    repeat = int(params.get("repeat", 3))
    out: dict[str, object] = {"vectorbt": vbt.__version__, "numpy": np.__version__, "pandas": pd.__version__,
                              "numba": numba.__version__, "runs": {}}
    for name, cost in params["runs"].items():
        def call(cost: dict = cost) -> vbt.Portfolio:
            return vbt.Portfolio.from_orders(close_df, size=size_df, size_type="targetpercent", price=open_df,
                                             fees=cost["fees"], slippage=cost["slippage"],
                                             init_cash=params["init_cash"], cash_sharing=True, group_by=True,
                                             call_seq="auto", freq="1h")

        t0 = time.perf_counter()
        call()  # compiles numba's kernels (cached per process)
        first = time.perf_counter() - t0
        best = best_cpu = float("inf")
        pf = None
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            pf = call()
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        value = pf.value().to_numpy()
        out["runs"][name] = {"seconds": best, "cpu_seconds": best_cpu, "first_call_seconds": first, "repeat": repeat,
                             "final_equity": float(value[-1]), "total_return": float(value[-1] / params["init_cash"] - 1.0),
                             "init_cash": params["init_cash"],
                             "orders": int(pf.orders.count()), "equity": value.tolist() if cost.get("equity")
                             else None}
    return out


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]))))
