"""The path-dependent part of the backtest: fills at each rebalance bar's open, liquidation and funding.

:func:`graphwiz_trader.backtest.engine.run_backtest` precomputes everything that does not depend on the
path (marks, tradability, 1/sqrt(ADV), funding times) for the whole panel; :func:`walk_fills` then steps
only through the bars where something can happen (the fill bars on spot; every bar on futures, where a
held book can be liquidated or pay funding on any bar) and returns the fills and cash. Units held are the
running sum of the fills, so the caller derives them afterwards instead of storing them per bar.

Each fill bar is a fixed handful of NumPy calls on N-vectors, written into preallocated buffers (no
temporaries, no pandas): with tens of symbols a NumPy call costs far more than its arithmetic, so the
count of calls per bar is what sets the speed. Money is in quote currency, rates are fractions
(bps / 1e4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FuturesRules:
    """Futures inputs per bar (T x N prices, T-vector of settlements) and rates (fractions).

    low, high : bar low / high, the last close where a symbol has no bar (worst-case marks).
    funding_events : count of 00/08/16 UTC settlements inside each bar.
    funding_rate : per settlement, paid by longs on the notional at the bar's close.
    maintenance_margin : liquidation when worst-case equity < this x gross notional.
    liquidation_fee : charged on the gross notional at the worst-case prices.
    close_mark : close, the last close where a symbol has no bar (0 before its first bar).
    """

    low: np.ndarray
    high: np.ndarray
    funding_events: np.ndarray
    funding_rate: float
    maintenance_margin: float
    liquidation_fee: float
    close_mark: np.ndarray


@dataclass(frozen=True)
class Walk:
    """What :func:`walk_fills` produced, per bar (T rows).

    trade_units : signed units filled at the bar's open (T x N, 0 without a fill).
    impact_base : ``notional ** 1.5`` of each fill (T x N, quote currency ** 1.5) when impact is on, else 0;
        times ``impact_k / sqrt(ADV)`` it is the impact paid per symbol.
    cash : cash at the bar's close.
    equity_at_open : equity marked at the open on fill bars (NaN elsewhere and after a liquidation).
    traded_notional : absolute notional filled at the bar's open (quote currency).
    fees, spread_slippage, impact, funding, liquidation : costs paid in the bar (quote currency).
    liquidated_at : row of the liquidation, else None (units are 0 from that row on).
    """

    trade_units: np.ndarray
    impact_base: np.ndarray
    cash: np.ndarray
    equity_at_open: np.ndarray
    traded_notional: np.ndarray
    fees: np.ndarray
    spread_slippage: np.ndarray
    impact: np.ndarray
    funding: np.ndarray
    liquidation: np.ndarray
    liquidated_at: int | None


def walk_fills(weights: np.ndarray, execute: np.ndarray, mark_open: np.ndarray, price: np.ndarray,
               tradable: np.ndarray, inv_sqrt_adv: np.ndarray, *, capital: float, fee_rate: float,
               spread_slippage_rate: float, impact_k: float, min_notional: float,
               futures: FuturesRules | None) -> Walk:
    """Fill ``weights[t-1]`` at bar t's open wherever ``execute[t]``; then, on futures, liquidation and funding.

    Parameters
    ----------
    weights : T x N target weights (fractions of equity, NaN already 0) decided at each bar's close.
    execute : T booleans, True where the previous bar's close decided a rebalance.
    mark_open : T x N open, the last close where a symbol has no open (0 before its first bar).
    price : T x N fill price: the open where ``tradable``, 1.0 elsewhere.
    tradable : T x N booleans: an open, volume > 0 and (with impact) a known ADV.
    inv_sqrt_adv : T x N 1 / sqrt(trailing average quote volume known at t-1), 0 where unknown.
    capital : initial cash (quote currency).
    fee_rate, spread_slippage_rate, impact_k : fractions of the filled notional; impact is
        ``impact_k * notional * sqrt(notional / ADV)``.
    min_notional : orders with a smaller absolute notional (quote currency) are not sent.
    futures : the futures rules, or None on spot.
    """
    T, N = price.shape
    target = np.zeros((T, N))  # weights[t-1] where tradable at t, else 0 (fraction of equity)
    np.multiply(weights[:-1], tradable[1:], out=target[1:])
    px_tradable = np.where(tradable, price, 0.0)
    trade_units = np.zeros((T, N))
    impact_base = np.zeros((T, N))
    funding, liquidation = np.zeros(T), np.zeros(T)
    liquidated_at: int | None = None

    # per-bar scalars go to lists (cheaper than NumPy item writes) and into arrays after the walk
    open_t: list[int] = []
    open_equity: list[float] = []
    fill_t: list[int] = []
    fill_notional: list[float] = []
    fill_impact: list[float] = []
    cash_after: list[float] = []

    q = np.zeros(N)
    cash = float(capital)
    alive = True
    orders = np.empty((2, N))  # row 0: signed notional to trade; row 1: its absolute value
    dv, notional = orders[0], orders[1]
    buf = np.empty(N)
    small = np.empty(N, dtype=bool)
    ones = np.ones(N)
    floor = np.full(N, float(min_notional))
    use_floor, use_impact, on_futures = min_notional > 0, impact_k > 0, futures is not None
    multiply, subtract, absolute, less, sqrt, divide, copyto = (np.multiply, np.subtract, np.absolute, np.less,
                                                                np.sqrt, np.divide, np.copyto)
    visit = np.arange(T) if on_futures else np.flatnonzero(execute)
    is_fill = execute.tolist()
    for t in visit.tolist():
        if alive and is_fill[t]:
            e_open = cash + q.dot(mark_open[t])
            open_t.append(t)
            open_equity.append(e_open)
            if e_open > 0:
                multiply(target[t], e_open, dv)
                multiply(q, px_tradable[t], buf)
                subtract(dv, buf, dv)
                absolute(dv, notional)
                if use_floor:
                    less(notional, floor, small)
                    copyto(orders, 0.0, where=small)
                net, tot = orders.dot(ones).tolist()
                if tot > 0:
                    imp = 0.0
                    if use_impact:
                        base = impact_base[t]
                        sqrt(notional, base)
                        base *= notional
                        imp = impact_k * float(base.dot(inv_sqrt_adv[t]))
                    cash -= net + tot * fee_rate + tot * spread_slippage_rate + imp
                    dq = trade_units[t]
                    divide(dv, price[t], dq)
                    q += dq
                    fill_t.append(t)
                    fill_notional.append(tot)
                    fill_impact.append(imp)
        if on_futures and alive:
            if q.any():
                worst_px = np.where(q > 0, futures.low[t], futures.high[t])
                worst_eq = cash + float(q @ worst_px)
                gross_worst = float(np.abs(q) @ worst_px)
                if worst_eq < futures.maintenance_margin * gross_worst:
                    fee = futures.liquidation_fee * gross_worst
                    liquidation[t] = min(fee, max(worst_eq, 0.0))
                    cash = max(worst_eq - fee, 0.0)
                    q = np.zeros(N)
                    alive = False
                    liquidated_at = t
            if alive and futures.funding_events[t] > 0 and q.any():
                fcost = futures.funding_events[t] * futures.funding_rate * float(q @ futures.close_mark[t])
                cash -= fcost
                funding[t] = fcost
        cash_after.append(cash)

    equity_open = np.full(T, np.nan)
    equity_open[open_t] = open_equity
    traded, fees, slip, impact = np.zeros(T), np.zeros(T), np.zeros(T), np.zeros(T)
    traded[fill_t] = fill_notional
    fees[fill_t] = traded[fill_t] * fee_rate
    slip[fill_t] = traded[fill_t] * spread_slippage_rate
    impact[fill_t] = fill_impact
    # cash only changes on visited bars: carry it forward (the initial capital before the first)
    last = np.searchsorted(visit, np.arange(T), side="right") - 1
    cash_arr = np.concatenate([[float(capital)], cash_after])[last + 1]
    return Walk(trade_units, impact_base, cash_arr, equity_open, traded, fees, slip, impact, funding, liquidation, liquidated_at)
