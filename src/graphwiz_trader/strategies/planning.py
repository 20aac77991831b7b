"""From scores to target weights to orders, at one decision (bar t's close), with data up to t only.

Target weights (fractions of equity):

- :func:`optimised_weights`: :func:`graphwiz_trader.portfolio.optimiser.optimise_weights` on the trailing
  ``cov_window_bars`` per-bar returns ending at t and the scores at t (expected returns from scores), with
  ``risk.max_position_weight``, ``strategy.cash_buffer`` and ``risk.max_gross_leverage`` as constraints: the call
  :func:`graphwiz_trader.portfolio.rolling.rolling_optimise` makes at each decision of the backtester;
- :func:`topk_weights`: the ``topk`` strongest positive signals at equal weight (capped), the rest cash.

Orders (:func:`plan_orders`): the quantity that takes each symbol from its position plus what its open orders
still have to fill to ``w x equity / close`` (base units, all at t's close). A symbol whose open orders go the
other way has them cancelled first (the caller does it) and is planned from its position. Orders worth less than
``execution.min_order_notional_quote`` are not sent (as in the backtester). When the buys would need more than
the cash available to them (given by the caller: cash less the risk manager's cash floor, plus the sells), every
buy is scaled down by the same factor (spot cannot borrow); only sells worked as MARKET count (their proceeds arrive
at the next bar's open, with the buys; a TWAP sell's arrive later). How each is worked is chosen by its
size against the trailing ADV (mean quote volume per bar over ``impact_volume_window_bars`` bars ending at t):
``<= small_order_adv_fraction``: ``small_strategy`` (MARKET: the next bar's open); ``>= large_order_adv_fraction``:
PPO when a PPO model is configured, else ``large_strategy``; in between ``default_strategy``; all but MARKET over
``execution.horizon_bars`` bars. Sells come before buys; client order ids are deterministic (run, cycle, symbol).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graphwiz_trader.config.settings import ExecutionSettings, RiskSettings, StrategySettings
from graphwiz_trader.portfolio.optimiser import OptimisationResult, optimise_weights
from graphwiz_trader.portfolio.rolling import per_bar_returns
from graphwiz_trader.portfolio.settings import OptimiserSettings, PortfolioConstraints
from graphwiz_trader.trading.types import OrderRequest, Side, client_order_id

log = logging.getLogger(__name__)

__all__ = ["OrderPlan", "choose_execution", "optimised_weights", "plan_orders", "topk_weights", "trailing_adv"]


def optimiser_settings(strategy: StrategySettings, periods_per_year: float) -> OptimiserSettings:
    """The optimiser the strategy section describes (expected returns from the scores)."""
    return OptimiserSettings(method=strategy.optimization_method, expected_returns="scores",
                             score_ic=strategy.score_ic, score_horizon_bars=strategy.horizon_bars,
                             cov_window_bars=strategy.cov_window_bars, periods_per_year=periods_per_year)


def constraints_of(strategy: StrategySettings, risk: RiskSettings) -> PortfolioConstraints:
    """Long-only constraints (spot): the risk section's position and gross caps, the strategy's cash buffer."""
    return PortfolioConstraints(max_position_weight=risk.max_position_weight, cash_buffer=strategy.cash_buffer,
                                max_gross_leverage=max(risk.max_gross_leverage, 1.0 - strategy.cash_buffer),
                                no_trade_band=strategy.no_trade_band)


def optimised_weights(close: pd.DataFrame, scores: pd.Series, settings: OptimiserSettings,
                      constraints: PortfolioConstraints,
                      current: pd.Series | None = None) -> OptimisationResult | None:
    """Weights at the last row of ``close`` (``bars x symbols``, at least ``cov_window_bars + 1`` rows), or None
    during the covariance warm-up. ``scores`` are centred (0 = no view)."""
    win = settings.cov_window_bars
    if len(close) < win + 1:
        return None
    rets = per_bar_returns(close).iloc[-win:]
    window = pd.DataFrame(rets.to_numpy(np.float64), columns=[str(c) for c in close.columns])
    sc = scores.reindex(window.columns).astype(np.float64)
    return optimise_weights(window, sc, settings, constraints, current_weights=current,
                            fallback_log_level=logging.DEBUG)


def topk_weights(scores: pd.Series, topk: int, risk: RiskSettings, cash_buffer: float) -> pd.Series:
    """Equal weight over the ``topk`` largest positive (centred) scores, each at most ``max_position_weight``,
    together at most ``1 - cash_buffer``; every other symbol 0."""
    s = scores.dropna()
    pos = s[s > 0].sort_values(ascending=False, kind="stable").head(topk)
    out = pd.Series(0.0, index=scores.index)
    if len(pos):
        each = min(risk.max_position_weight, (1.0 - cash_buffer) / len(pos))
        out[pos.index] = each
    return out


def trailing_adv(volume: pd.DataFrame, close: pd.DataFrame, window: int) -> pd.Series:
    """Mean quote volume per bar over the last ``window`` rows (missing volume counts 0, closes carried), as the
    backtester's impact model reads it at the decision bar."""
    c = close.ffill().fillna(0.0)
    qv = volume.fillna(0.0) * c
    return qv.iloc[-window:].mean(axis=0)


def choose_execution(notional_quote: float, adv_quote: float, ex: ExecutionSettings) -> tuple[str, int]:
    """(execution, horizon bars) for an order of ``notional_quote`` against ``adv_quote`` (see the module docstring)."""
    ratio = notional_quote / adv_quote if adv_quote > 0 else float("inf")
    if ratio <= ex.small_order_adv_fraction:
        name = ex.small_strategy
    elif ratio >= ex.large_order_adv_fraction:
        name = "PPO" if ex.ppo_model is not None else ex.large_strategy
    else:
        name = ex.default_strategy
    return name, (1 if name == "MARKET" else ex.horizon_bars)


@dataclass
class OrderPlan:
    """Orders of one decision and what was left out.

    ``cancel``: symbols whose open orders go against the new target (cancel before submitting ``orders``);
    ``skipped``: symbol -> why no order (below the minimum notional, no price); ``buy_scale``: the factor buys
    were scaled by to fit the cash available (1: not scaled).
    """

    orders: list[OrderRequest] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    buy_scale: float = 1.0


def plan_orders(targets: pd.Series, positions: Mapping[str, float], pending: Mapping[str, float],
                prices: Mapping[str, float], equity_quote: float, adv_quote: Mapping[str, float],
                ex: ExecutionSettings, run_id: str, cycle: int, decided_utc: pd.Timestamp,
                symbols: Sequence[str], cash_available_quote: float | None = None) -> OrderPlan:
    """Orders taking each symbol to ``targets`` (see the module docstring).

    Parameters
    ----------
    targets : symbol -> target weight (fraction of equity); a symbol absent is 0.
    positions : symbol -> held base units; ``pending``: symbol -> signed base units its open orders still have to fill.
    prices : symbol -> close at t (quote per base unit); ``equity_quote``: equity at t's close.
    adv_quote : symbol -> trailing mean quote volume per bar.
    cash_available_quote : quote the buys may spend before the sells' proceeds (None: no cash limit).
    """
    plan = OrderPlan()
    sells: list[tuple[str, float, float]] = []
    buys: list[tuple[str, float, float]] = []
    for sym in symbols:
        w = float(targets.get(sym, 0.0) or 0.0)
        p = prices.get(sym)
        held = float(positions.get(sym, 0.0))
        pend = float(pending.get(sym, 0.0))
        if p is None or not np.isfinite(p) or p <= 0:
            if w != 0 or held != 0:
                plan.skipped[sym] = "no close price at the decision"
            continue
        target_qty = w * equity_quote / p
        delta = target_qty - held - pend
        if pend != 0 and np.sign(delta) != np.sign(pend) and abs(delta) > 1e-12 * max(abs(target_qty), 1.0):
            plan.cancel.append(sym)
            delta = target_qty - held
        notional = abs(delta) * p
        if notional < max(ex.min_order_notional_quote, 1e-12):
            if notional > 0 and abs(delta) > 1e-12 * max(abs(held), 1.0):
                plan.skipped[sym] = (f"order notional {notional:.6g} below min_order_notional_quote "
                                     f"{ex.min_order_notional_quote:g}")
            continue
        (buys if delta > 0 else sells).append((sym, delta, float(p)))
    if cash_available_quote is not None and buys:
        need = sum(d * p for _, d, p in buys)
        now = sum(-d * p for sym, d, p in sells
                  if choose_execution(-d * p, float(adv_quote.get(sym, 0.0)), ex)[0] == "MARKET")
        have = max(cash_available_quote + now, 0.0)
        if need > have:
            plan.buy_scale = have / need
            log.info("cycle %d: buys of %.6g scaled by %.6f to the %.6g cash available", cycle, need, plan.buy_scale,
                     have)
            buys = [(sym, d * plan.buy_scale, p) for sym, d, p in buys]
    for sym, delta, p in sells + buys:
        notional = abs(delta) * p
        if notional < max(ex.min_order_notional_quote, 1e-12):
            plan.skipped[sym] = (f"order notional {notional:.6g} below min_order_notional_quote "
                                 f"{ex.min_order_notional_quote:g} after scaling buys to the cash")
            continue
        name, horizon = choose_execution(notional, float(adv_quote.get(sym, 0.0)), ex)
        side = Side.BUY if delta > 0 else Side.SELL
        plan.orders.append(OrderRequest(client_order_id(run_id, cycle, sym, 0), run_id, int(cycle), sym, side,
                                        abs(delta), decided_utc, execution=name, horizon_bars=horizon))
    return plan
