"""Out-of-sample comparison of execution strategies on the same held-out parent orders.

Protocol
--------
1. Parent orders are drawn (fixed seed) on evaluation symbols and dates only: start bars on a grid of
   non-overlapping ``horizon``-bar windows per symbol (so one symbol's orders never share bars), side
   buy/sell with probability 1/2, size log-uniform in ``volume_fraction_range`` (default 0.1% .. 5%) of
   the trailing mean hourly volume known at the start.
2. Every strategy works every order in the same simulator with the same impact noise (paired design).
3. Per strategy: mean implementation shortfall (bps) with a 95% CI; reductions relative to MARKET and
   to TWAP as paired mean differences (bps) and as percentages of the baseline's mean, with 95% CIs.

CIs are percentile bootstraps that resample whole UTC days of order starts (``n_boot`` draws, fixed
seed): orders on the same day share market moves across symbols, so days, not orders, are treated as
independent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from graphwiz_trader.core.progress import progress as progress_bar

from graphwiz_trader.errors import DataError
from graphwiz_trader.execution.engine import ExecutionEngine
from graphwiz_trader.execution.env import DEFAULT_VOLUME_FRACTION_RANGE, ExecutionEnvironment
from graphwiz_trader.execution.market import MarketArrays
from graphwiz_trader.execution.simulator import MarketImpactSimulator
from graphwiz_trader.execution.types import ExecutionResult, ExecutionStrategy, Side

log = logging.getLogger(__name__)

SIZE_BUCKETS = ((0.0, 0.005, "<0.5%"), (0.005, 0.02, "0.5%-2%"), (0.02, float("inf"), ">=2%"))


@dataclass(frozen=True)
class ParentOrder:
    """A held-out parent order. ``volume_fraction`` = quantity / trailing mean bar volume at start."""

    symbol: str
    side: Side
    quantity_base: float
    start_utc: pd.Timestamp
    volume_fraction: float


def sample_parent_orders(markets: dict[str, MarketArrays], symbols: list[str], start: pd.Timestamp | None,
                         end: pd.Timestamp | None, n_orders: int, horizon_bars: int,
                         volume_fraction_range: tuple[float, float] = DEFAULT_VOLUME_FRACTION_RANGE,
                         seed: int = 0) -> list[ParentOrder]:
    """Draw held-out orders (see the module docstring). Bars used by an order all open in [start, end).

    Raises
    ------
    DataError
        when no order fits in the window.
    """
    rng = np.random.default_rng(seed)
    cands: list[tuple[str, int]] = []
    for s in symbols:
        m = markets[s]
        idx = ExecutionEnvironment.episode_starts(m, horizon_bars, start, end)
        if len(idx) == 0:
            continue
        slot = (m.times_ns[idx] - m.times_ns[idx[0]]) // m.bar_ns
        idx = idx[slot % horizon_bars == 0]  # non-overlapping windows on a fixed grid
        cands.extend((s, int(i)) for i in idx)
    if not cands:
        raise DataError(f"no parent order fits {horizon_bars} contiguous bars in [{start}, {end}) for "
                        f"{', '.join(symbols)} (after the calibration warm-up)")
    if n_orders > len(cands):
        log.warning("asked for %d orders but only %d non-overlapping windows exist; using all", n_orders, len(cands))
        n_orders = len(cands)
    pick = np.sort(rng.choice(len(cands), size=n_orders, replace=False))
    lo, hi = np.log(volume_fraction_range[0]), np.log(volume_fraction_range[1])
    fracs = np.exp(rng.uniform(lo, hi, size=n_orders))
    sides = rng.random(n_orders) < 0.5
    out = []
    for k, c in enumerate(pick):
        s, i = cands[int(c)]
        m = markets[s]
        q = float(fracs[k] * m.mean_volume[i - 1])
        out.append(ParentOrder(s, Side.BUY if sides[k] else Side.SELL, q, m.time(i), float(fracs[k])))
    return out


def execution_cost_bps(result: ExecutionResult) -> float:
    """Simulator-only: side * sum q (price - unaffected reference) / (filled * arrival) * 1e4.

    The part of the shortfall caused by spread and impact (the rest is the market's move while the
    order was worked); computed from the fills' reference prices.
    """
    q = np.array([f.quantity_base for f in result.fills if f.quantity_base > 0])
    if len(q) == 0:
        return float("nan")
    p = np.array([f.price_quote for f in result.fills if f.quantity_base > 0])
    ref = np.array([f.reference_price_quote for f in result.fills if f.quantity_base > 0])
    p0 = result.metrics.arrival_price_quote
    return float(result.plan.side.sign * (q * (p - ref)).sum() / (q.sum() * p0) * 1e4)


def run_orders(engine: ExecutionEngine, simulator: MarketImpactSimulator, orders: list[ParentOrder],
               strategies: list[ExecutionStrategy], horizon_bars: int, progress: bool = True) -> pd.DataFrame:
    """Work every order with every strategy; one row per (order, strategy)."""
    rows: list[dict[str, Any]] = []
    for k, o in enumerate(progress_bar(orders, desc="orders", unit="order", enabled=progress)):
        for s in strategies:
            plan = engine.create_execution_plan(o.symbol, o.side, o.quantity_base, s, o.start_utc, horizon_bars)
            r = engine.execute(plan, simulator)
            mt = r.metrics
            rows.append({
                "order": k, "symbol": o.symbol, "side": o.side.value, "start_utc": o.start_utc,
                "volume_fraction": o.volume_fraction, "strategy": s.value,
                "shortfall_bps": mt.implementation_shortfall_bps, "vwap_slippage_bps": mt.vwap_slippage_bps,
                "fill_rate": mt.fill_rate, "n_children": mt.n_children,
                "execution_cost_bps": execution_cost_bps(r),
                "max_participation": max((f.participation for f in r.fills if f.quantity_base > 0), default=np.nan),
            })
    return pd.DataFrame(rows)


def _day_bootstrap_weights(days: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes per order, (n_boot, n_days) resampling counts of whole days)."""
    codes, uniq = pd.factorize(days)
    n_days = len(uniq)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n_days, np.full(n_days, 1.0 / n_days), size=n_boot).astype(float)
    return codes, w


def _boot_mean(values: np.ndarray, codes: np.ndarray, w: np.ndarray) -> np.ndarray:
    n_days = w.shape[1]
    sums = np.bincount(codes, weights=values, minlength=n_days)
    cnts = np.bincount(codes, minlength=n_days).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):  # a draw may hold no order of a subset (size bucket)
        return (w @ sums) / (w @ cnts)


def summarize(results: pd.DataFrame, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> dict[str, Any]:
    """Per-strategy means with day-clustered bootstrap CIs and paired reductions vs MARKET and TWAP."""
    wide = results.pivot(index="order", columns="strategy", values="shortfall_bps")
    meta = results.drop_duplicates("order").set_index("order").loc[wide.index]
    days = meta["start_utc"].map(lambda t: t.floor("D")).to_numpy()
    codes, w = _day_bootstrap_weights(days, n_boot, seed)
    a = (1 - ci) / 2
    strategies = [s for s in [x.value for x in ExecutionStrategy] if s in wide.columns]

    def ci_of(boot: np.ndarray) -> list[float]:
        return [float(np.nanquantile(boot, a)), float(np.nanquantile(boot, 1 - a))]

    per: dict[str, Any] = {}
    boots: dict[str, np.ndarray] = {}
    for s in strategies:
        v = wide[s].to_numpy()
        boots[s] = _boot_mean(v, codes, w)
        sub = results[results.strategy == s]
        per[s] = {
            "mean_shortfall_bps": float(v.mean()), "ci95_bps": ci_of(boots[s]), "std_shortfall_bps": float(v.std(ddof=1)),
            "median_shortfall_bps": float(np.median(v)),
            "mean_vwap_slippage_bps": float(sub.vwap_slippage_bps.mean()),
            "vwap_slippage_ci95_bps": ci_of(_boot_mean(sub.set_index("order").loc[wide.index, "vwap_slippage_bps"].to_numpy(), codes, w)),
            "mean_fill_rate": float(sub.fill_rate.mean()),
            "mean_execution_cost_bps": float(sub.execution_cost_bps.mean()),
            "execution_cost_ci95_bps": ci_of(_boot_mean(sub.set_index("order").loc[wide.index, "execution_cost_bps"].to_numpy(), codes, w)),
        }
    reductions: dict[str, Any] = {}
    for base in ("MARKET", "TWAP"):
        if base not in wide.columns:
            continue
        for s in strategies:
            if s == base:
                continue
            d = wide[base].to_numpy() - wide[s].to_numpy()
            bd = _boot_mean(d, codes, w)
            rel = bd / boots[base] * 100.0
            reductions[f"{s}_vs_{base}"] = {
                "mean_reduction_bps": float(d.mean()), "ci95_bps": ci_of(bd),
                "reduction_pct_of_baseline": float(d.mean() / wide[base].mean() * 100.0), "ci95_pct": ci_of(rel),
                "share_of_orders_cheaper": float((d > 0).mean()),
            }
    buckets = {}
    vf = meta["volume_fraction"].to_numpy()
    for lo, hi, key in SIZE_BUCKETS:
        mask = (vf >= lo) & (vf < hi)
        if not mask.any():
            continue
        sub_codes = codes[mask]
        entry = {"n_orders": int(mask.sum())}
        for s in strategies:
            v = wide[s].to_numpy()[mask]
            entry[s] = {"mean_shortfall_bps": float(v.mean()), "ci95_bps": ci_of(_boot_mean(v, sub_codes, w))}
        buckets[key] = entry
    return {
        "n_orders": int(len(wide)), "n_days": int(w.shape[1]), "n_boot": n_boot, "ci_level": ci,
        "ci_method": "percentile bootstrap resampling whole UTC days of order starts",
        "strategies": per, "reductions": reductions, "by_volume_fraction": buckets,
    }


def format_table(summary: dict[str, Any]) -> str:
    """Plain-text table of the summary (means and 95% CIs in bps; reductions in bps and % of baseline)."""
    lines = [f"{'strategy':<15}{'mean IS bps':>12}  {'95% CI':<18}{'std':>8}{'cost':>7}{'VWAP slip':>11}{'fill':>6}"
             f"  {'vs MARKET bps [95% CI]  %':<40}{'vs TWAP bps [95% CI]  %':<40}"]
    red = summary["reductions"]
    for s, v in summary["strategies"].items():
        def cell(base: str) -> str:
            r = red.get(f"{s}_vs_{base}")
            if r is None:
                return "-"
            b_lo, b_hi = summary["strategies"][base]["ci95_bps"]
            pct = (f"{r['reduction_pct_of_baseline']:+.0f}% [{r['ci95_pct'][0]:+.0f},{r['ci95_pct'][1]:+.0f}]"
                   if b_lo > 0 or b_hi < 0 else "% n/a")
            return f"{r['mean_reduction_bps']:+.2f} [{r['ci95_bps'][0]:+.2f},{r['ci95_bps'][1]:+.2f}] {pct}"
        lines.append(f"{s:<15}{v['mean_shortfall_bps']:>12.2f}  [{v['ci95_bps'][0]:>6.2f},{v['ci95_bps'][1]:>7.2f}]   "
                     f"{v['std_shortfall_bps']:>8.1f}{v['mean_execution_cost_bps']:>7.2f}{v['mean_vwap_slippage_bps']:>11.2f}{v['mean_fill_rate']:>6.2f}"
                     f"  {cell('MARKET'):<40}{cell('TWAP'):<40}")
    lines.append("cost = spread + impact vs the unaffected bar price (IS minus the market's move); "
                 "reduction = baseline mean IS - strategy mean IS (positive = cheaper than the baseline; "
                 "% of the baseline's mean, n/a when that mean's CI spans 0); "
                 f"{summary['n_orders']} orders on {summary['n_days']} days; CIs: {summary['ci_method']}")
    if summary.get("by_volume_fraction"):
        lines.append("mean IS bps by order size (fraction of mean hourly volume):")
        for k, e in summary["by_volume_fraction"].items():
            parts = "  ".join(f"{s} {e[s]['mean_shortfall_bps']:.2f}" for s in summary["strategies"])
            lines.append(f"  {k:<12} n={e['n_orders']:<5} {parts}")
    return "\n".join(lines)
