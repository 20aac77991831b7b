"""Running a strategy to the end (or for N cycles), and the replay summary beside equal weight.

:func:`run_strategy` drives ``start()`` and ``run_cycle()`` and keeps one compact row per cycle (equity, status,
orders, fills, timings). :func:`replay_summary` states the run as the closing note asks: equity, Sharpe with its
95% block-bootstrap interval, orders, fills, breaker events, beside equal weight run through the backtester on the
same bars, period, costs and capital (the same-run peer).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.benchmarks import equal_weight_targets
from graphwiz_trader.backtest.engine import run_backtest
from graphwiz_trader.backtest.metrics import compute_metrics
from graphwiz_trader.backtest.settings import BacktestSettings, CostModel
from graphwiz_trader.config.settings import ExecutionSettings, TradingSettings
from graphwiz_trader.core.progress import bar as progress_counter

log = logging.getLogger(__name__)

__all__ = ["cost_model", "replay_engine", "replay_summary", "run_strategy"]

METRIC_KEYS = ("total_return", "annualised_return", "annualised_volatility", "sharpe", "sharpe_ci_low",
               "sharpe_ci_high", "max_drawdown")


def cost_model(ex: ExecutionSettings) -> CostModel:
    """The backtester's cost model from the ``execution`` section (what replay and paper fills charge)."""
    return CostModel(taker_fee_bps=ex.taker_fee_bps, maker_fee_bps=ex.maker_fee_bps, half_spread_bps=ex.half_spread_bps,
                     slippage_bps=ex.slippage_bps, impact_coef_bps=ex.impact_coef_bps,
                     impact_volume_window_bars=ex.impact_volume_window_bars,
                     min_order_notional=ex.min_order_notional_quote)


def replay_engine(settings: TradingSettings, bars: dict[str, pd.DataFrame], start: Any, end: Any = None) -> Any:
    """A :class:`~graphwiz_trader.trading.engines.replay.ReplayEngine` over ``bars`` from ``start`` to ``end`` (UTC)
    with the settings' costs, participation cap, starting capital, timeframe and PPO model (what ``graphwiz paper
    --replay`` and ``graphwiz serve --replay`` trade on)."""
    from graphwiz_trader.trading.engines.replay import ReplayEngine

    ex, st = settings.execution, settings.strategy
    return ReplayEngine(bars, start=start, end=end, costs=cost_model(ex), max_participation=ex.max_participation,
                        initial_cash_quote=st.initial_capital_quote, timeframe=st.timeframe,
                        ppo_model=str(ex.ppo_model) if ex.ppo_model else None)


async def run_strategy(strategy: Any, cycles: int | None = None, progress: bool = False) -> dict[str, Any]:
    """``await strategy.start()``, then cycles until the engine has no more bars or ``cycles`` ran; closes the engine.

    Returns ``{start, cycles: DataFrame (one row per cycle), seconds}``.
    """
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    start = await strategy.start()
    total = cycles if cycles is not None else getattr(strategy.engine, "remaining_bars", None)
    counter = progress_counter(total=total, desc="cycles", unit="cycle", enabled=progress)
    try:
        while cycles is None or len(rows) < cycles:
            r = await strategy.run_cycle()
            if r["status"] in ("done",):
                break
            if r["status"] == "no_new_bar":
                continue
            tm = r.get("timings", {})
            rows.append({"cycle": r["cycle"], "as_of": r["as_of"], "status": r["status"], "equity": r["equity"],
                         "cash": r.get("cash"), "signals": r["signals_generated"], "orders": len(r["orders"]),
                         "rejected": len(r["rejected"]), "fills": r["trades_executed"],
                         "halted": bool(r["risk_state"].get("halted")),
                         **{f"t_{k}": v for k, v in tm.items()}})
            counter.update(1)
    finally:
        counter.close()
        await strategy.close()
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.set_index("as_of")
    return {"start": start, "cycles": frame, "seconds": time.perf_counter() - t0}


def _metrics(equity: pd.Series, ppy: float, capital: float) -> dict[str, float]:
    m = compute_metrics(equity, ppy, capital)
    return {k: float(m[k]) for k in METRIC_KEYS if k in m}


def replay_summary(strategy: Any, run: dict[str, Any], bars: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The replay beside equal weight (see the module docstring); ``bars`` are the replayed bars (with warm-up)."""
    cyc: pd.DataFrame = run["cycles"]
    settings = strategy.settings
    capital = float(getattr(strategy.engine, "initial_cash_quote", settings.strategy.initial_capital_quote))
    ppy = float(pd.Timedelta(days=365) / strategy.bar)
    out: dict[str, Any] = {"engine": strategy.engine.name, "run_id": strategy.run_id, "strategy": strategy.name,
                           "symbols": strategy.symbols, "cycles": int(len(cyc)), "seconds": run["seconds"],
                           "warmup": {k: run["start"][k] for k in ("warmup_bars", "history_end", "timings")},
                           "model": run["start"].get("model", {}).get("version")}
    if not len(cyc):
        return out
    eq = cyc["equity"].astype(np.float64)
    out["period"] = {"first_decision": str(cyc.index[0]), "last_decision": str(cyc.index[-1])}
    out["strategy_metrics"] = {"final_equity": float(eq.iloc[-1]), **_metrics(eq, ppy, capital)}
    stats = dict(strategy.stats)
    events = None
    if strategy.journal is not None:
        ev = strategy.journal.risk_events_frame(strategy.run_id)
        events = {str(k): int(v) for k, v in ev["kind"].value_counts().items()} if len(ev) else {}
        stats["breaker_events"] = int((ev["kind"] == "breaker_tripped").sum()) if len(ev) else 0
        stats["journal_orders"] = int(len(strategy.journal.orders_frame(strategy.run_id)))
        stats["journal_fills"] = int(len(strategy.journal.fills_frame(strategy.run_id)))
    out["counts"] = {**stats, "skipped_cycles": int((cyc["status"] != "ok").sum()),
                     "halted_cycles": int(cyc["halted"].sum())}
    out["risk_events"] = events
    close = pd.DataFrame({s: df["close"] for s, df in bars.items()}).sort_index()
    decisions = pd.DatetimeIndex(cyc.index)
    win = settings.strategy.cov_window_bars
    invested = 1.0 - settings.strategy.cash_buffer
    tg = equal_weight_targets(close, decisions, win, invested)
    if len(tg):
        bt = BacktestSettings(initial_capital=capital, costs=cost_model(settings.execution), rebalance=1,
                              periods_per_year=ppy)
        res = run_backtest(bars, tg, bt, name="equal_weight")
        ew = res.equity.reindex(decisions)
        out["equal_weight_metrics"] = {"final_equity": float(ew.iloc[-1]), **_metrics(ew, ppy, capital),
                                       "fills": int((res.trade_units.loc[decisions[0]:] != 0).to_numpy().sum())}
        out["equal_weight_note"] = ("equal weight over the symbols with a complete covariance window, decided at the "
                                    "same bars and filled by the backtester with the same costs and capital")
    t_cols = [c for c in cyc.columns if c.startswith("t_")]
    if t_cols:
        tt = cyc[t_cols]
        out["cycle_seconds"] = {"p50": float(tt["t_total"].quantile(0.5)), "p95": float(tt["t_total"].quantile(0.95)),
                                "mean_by_stage": {c[2:]: float(tt[c].mean()) for c in t_cols}}
    return out
