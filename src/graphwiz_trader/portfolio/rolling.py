"""Walk-forward optimisation: target weights at each decision time from data known at that time.

At decision time t (a bar's close) the optimiser sees the ``cov_window_bars`` per-bar returns ending
at t (closes <= t) and the scores at t. Nothing after t is read: truncating the inputs after t leaves
the weights at t unchanged. The weights are executed later by the backtester (at bar t+1's open).

With a point-in-time universe (``universe``: booleans, bars x symbols, e.g. index membership from
:func:`graphwiz_trader.data.universe.membership_mask`), a symbol is in the optimiser's universe at t only
when it is a member at t: before it joins and after it leaves its target weight is 0, and a position held
when it leaves is sold at the next decision (the no-trade band never keeps it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphwiz_trader.core.progress import progress as progress_bar
from graphwiz_trader.core.threads import single_threaded
from graphwiz_trader.data.universe import mask_values
from graphwiz_trader.errors import DataError
from graphwiz_trader.portfolio.optimiser import optimise_window
from graphwiz_trader.portfolio.settings import OptimiserSettings, PortfolioConstraints, SizingSettings
from graphwiz_trader.portfolio.sizing import exposure_scale

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollingResult:
    """Targets per decision time and what produced them.

    Attributes
    ----------
    weights : decision time x symbol final target weights (fractions of equity, after sizing).
    diagnostics : per decision time: method, fallback, held (no-trade band), n_eligible, invested,
        gross, exposure_scale, expected_return and expected_volatility (annualised, before sizing).
    """

    weights: pd.DataFrame
    diagnostics: pd.DataFrame

    def fallback_counts(self) -> dict[str, int]:
        """How many decisions took each fallback (first fallback of each decision)."""
        col = self.diagnostics["fallback"] if len(self.diagnostics) else pd.Series(dtype=object)
        return {str(k): int(v) for k, v in col.dropna().value_counts().items()}


def per_bar_returns(close: pd.DataFrame) -> pd.DataFrame:
    """Simple close-to-close returns per bar. A missing bar carries the last close (return 0 there)
    and NaN stays NaN before a symbol's first close. The value at t uses closes <= t only."""
    filled = close.ffill()
    return filled / filled.shift(1) - 1.0


def rolling_optimise(
    close: pd.DataFrame,
    decision_times: Sequence[pd.Timestamp] | pd.DatetimeIndex,
    scores: pd.DataFrame | None = None,
    settings: OptimiserSettings | None = None,
    constraints: PortfolioConstraints | None = None,
    sizing: SizingSettings | None = None,
    communities: Mapping[str, object] | None = None,
    progress: bool = False,
    drawdown_probability: pd.DataFrame | None = None,
    universe: pd.DataFrame | None = None,
) -> RollingResult:
    """Optimise at each decision time with the trailing window ending there.

    Parameters
    ----------
    close : bars x symbols closes (UTC index, NaN where a symbol has no bar).
    decision_times : bar times (in ``close.index``) at whose close weights are decided. Times with
        fewer than ``cov_window_bars`` returns before them are skipped (warm-up: no row).
    scores : bars x symbols model scores known at each bar's close (needed for ``expected_returns: scores``).
    settings, constraints, sizing : see :mod:`graphwiz_trader.portfolio.settings`.
    communities : ``{symbol: community_id}`` for ``constraints.community_cap``.
    progress : show a progress bar.
    drawdown_probability : bars x symbols predicted drawdown probability known at each bar's close
        (e.g. ``DrawdownRiskModel.predict(...)['p_dd_24']`` unstacked); used by ``sizing.mode: drawdown``.
    universe : bars x symbols booleans, True where the symbol exists (is a member) at that bar; it must
        cover every decision time and symbol (else :class:`DataError`). ``None``: every symbol.

    Notes
    -----
    ``current_weights`` for the no-trade band and the turnover penalty are the previous targets
    drifted with closes to t (trading costs ignored). BLAS runs single-threaded inside the loop: the
    matrices are small (<= a few thousand x tens) and multi-threaded BLAS made each Ledoit-Wolf call
    ~60x slower in wall time on a busy 2-core machine.
    """
    with single_threaded("blas"):
        return _rolling(close, decision_times, scores, settings, constraints, sizing, communities, progress,
                        drawdown_probability, universe)


def _rolling(close: pd.DataFrame, decision_times: Sequence[pd.Timestamp] | pd.DatetimeIndex,
             scores: pd.DataFrame | None, settings: OptimiserSettings | None,
             constraints: PortfolioConstraints | None, sizing: SizingSettings | None,
             communities: Mapping[str, object] | None, progress: bool,
             drawdown_probability: pd.DataFrame | None, universe: pd.DataFrame | None = None) -> RollingResult:
    settings = settings or OptimiserSettings()
    constraints = constraints or PortfolioConstraints()
    sizing = sizing or SizingSettings()
    times = pd.DatetimeIndex(decision_times)
    pos = close.index.get_indexer(times)
    if (pos < 0).any():
        bad = times[pos < 0][:3]
        raise DataError(f"decision times not in the close index: {', '.join(map(str, bad))}")
    symbols = [str(c) for c in close.columns]
    closes = close.ffill().to_numpy(dtype="float64")
    rets = per_bar_returns(close).to_numpy(dtype="float64")
    score_arr = None
    if scores is not None:
        unknown = [c for c in scores.columns if c not in close.columns]
        if unknown:
            raise DataError(f"scores have symbols without closes: {', '.join(map(str, unknown[:10]))}")
        score_arr = scores.reindex(index=close.index, columns=close.columns).to_numpy(dtype="float64")
    dd_arr = None
    if drawdown_probability is not None:
        dd_arr = drawdown_probability.reindex(index=close.index, columns=close.columns).to_numpy(dtype="float64")
    member_arr = None
    if universe is not None:
        member_arr = mask_values(universe, times, symbols, where="the universe given to rolling_optimise")
    win = settings.cov_window_bars
    col_index = pd.Index(symbols)  # built once: every per-decision Series and frame shares it
    col_pos = {s: i for i, s in enumerate(symbols)}

    rows: list[np.ndarray] = []
    kept: list[pd.Timestamp] = []
    diags: list[dict[str, object]] = []
    prev_w: np.ndarray | None = None
    prev_p = -1
    counts: Counter[str] = Counter()
    for k_t, (t, p) in enumerate(progress_bar(list(zip(times, pos)), desc="optimise", unit="decision",
                                              enabled=progress)):
        if p < win:  # returns start at row 1: rows p-win+1..p must exist
            continue
        sc = score_arr[p] if score_arr is not None else None
        current = None
        if prev_w is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = closes[p] / closes[prev_p]
            ratio = np.where(np.isfinite(ratio), ratio, 1.0)
            grown = prev_w * ratio
            current = grown / (1.0 + float((prev_w * (ratio - 1.0)).sum()))
        res = optimise_window(rets[p - win + 1: p + 1], col_index, sc, settings, constraints, current_weights=current,
                              communities=communities, fallback_log_level=logging.DEBUG,
                              universe=None if member_arr is None else member_arr[k_t])
        for k in res.fallbacks:
            counts[k] += 1
        w = res.weights.to_numpy(dtype="float64")
        gross = float(np.abs(w).sum())
        scale = 1.0
        exp_ret = exp_vol = float("nan")
        if res.covariance is not None and gross > 0:
            # weights on the covariance's symbols (others count as 0): numpy, as sizing.portfolio_volatility does
            cov_index = res.covariance.index
            wi_a = w[[col_pos[str(c)] for c in cov_index]]
            exp_vol = float(np.sqrt(max(wi_a @ res.covariance.to_numpy() @ wi_a, 0.0)))
            if res.expected_returns is not None:
                mu = res.expected_returns
                mu_a = (mu if mu.index.equals(cov_index) else mu.reindex(cov_index).fillna(0.0)).to_numpy()
                exp_ret = float(wi_a @ mu_a)
            if not res.held and sizing.mode != "none":
                wi = pd.Series(wi_a, index=cov_index)
                p_dd = pd.Series(dd_arr[p], index=col_index) if dd_arr is not None else None
                scale = exposure_scale(wi, res.covariance, res.expected_returns, sizing, settings.periods_per_year,
                                       p_dd)
                # the cash buffer still holds: gross <= max_leverage x (1 - buffer)
                scale = min(scale, sizing.max_leverage * (1.0 - constraints.cash_buffer) / gross)
        final = w * scale
        rows.append(final)
        kept.append(t)
        prev_w, prev_p = final, p
        diags.append({"method": res.method, "fallback": res.fallback, "held": res.held,
                      "n_eligible": len(res.eligible), "invested": float(final.sum()),
                      "gross": float(np.abs(final).sum()), "exposure_scale": scale,
                      "expected_return": exp_ret, "expected_volatility": exp_vol})
    for key, n in sorted(counts.items()):
        log.warning("fallback[%s] taken at %d of %d decisions (see the diagnostics frame)", key, n, len(kept))
    idx = pd.DatetimeIndex(kept, name=close.index.name)
    weights = pd.DataFrame(np.array(rows).reshape(len(kept), len(symbols)), index=idx, columns=symbols)
    return RollingResult(weights, pd.DataFrame(diags, index=idx))
