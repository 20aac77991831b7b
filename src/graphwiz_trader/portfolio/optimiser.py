"""Target weights at one decision time with PyPortfolioOpt, under caps, with logged fallbacks.

The optimiser solves for an invested *sleeve* whose weights sum to 1 (net) and scales it by
``1 - cash_buffer``; caps given on final weights are divided by ``1 - cash_buffer`` for the sleeve.
So the final weights satisfy ``|w_i| <= max_position_weight``, ``sum_i w_i = 1 - cash_buffer``,
per-community ``sum <= community_cap`` and (long-short) ``sum |w_i| <= max_gross_leverage``.

``max_sharpe`` is solved with one compiled, parameterised cvxpy problem per structure, reused across
decisions (:mod:`graphwiz_trader.portfolio.fast_sharpe`; ``reuse_max_sharpe_problem: false`` builds
PyPortfolioOpt's ``EfficientFrontier`` at every decision instead). When that solve is not optimal,
PyPortfolioOpt solves the same problem (logged at DEBUG), and the fallbacks below apply as before.
Both use the Clarabel tolerances of :data:`~graphwiz_trader.portfolio.fast_sharpe.CLARABEL_TOLERANCES`.

Degenerate inputs never raise; each takes a stated fallback, logged at WARNING as
``fallback[<key>]: <what happened>`` and listed on the result:

==================================  ===========================================================
key                                 fallback
==================================  ===========================================================
``empty_universe``                  no symbol has a complete window (and a score): all cash.
``single_asset``                    one eligible symbol: hold it at its cap (cash if its
                                    expected return <= risk-free for return-seeking methods).
``singular_covariance``             min eigenvalue <= 1e-10 x max: add a ridge of 1e-4 x mean
                                    variance to the diagonal and continue; an all-zero
                                    covariance (no risk information) gets capacity equal weight.
``all_nonpositive_expected_returns`` max_sharpe/efficient_risk with no return above the
                                    risk-free rate: all cash (or min_volatility if configured).
``infeasible_caps``                 caps cannot hold a fully invested sleeve (n x cap < 1 or
                                    sum over communities of min(cap_c, n_c x cap) < 1): invest at
                                    capacity, evenly within each community; the rest is cash.
``efficient_risk_unreachable``      the target volatility is below the reachable minimum:
                                    min_volatility instead.
``solver_failure``                  the solver failed: inverse-volatility weights projected
                                    onto the caps.
==================================  ===========================================================
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd
from pypfopt import EfficientFrontier, HRPOpt, objective_functions
from pypfopt.exceptions import OptimizationError

from graphwiz_trader.errors import ConfigError, DataError
from graphwiz_trader.portfolio.estimates import alpha_from_scores, historical_expected_returns, ledoit_wolf_array
from graphwiz_trader.portfolio.fast_sharpe import (
    FastSharpeError,
    SharpeStructure,
    max_sharpe_weights,
    solver_options,
)
from graphwiz_trader.portfolio.settings import OptimiserSettings, PortfolioConstraints, check_method_constraints

log = logging.getLogger(__name__)

_RETURN_SEEKING = ("max_sharpe", "efficient_risk")
_SINGULAR_RTOL = 1e-10
_RIDGE_FRACTION = 1e-4


@dataclass(frozen=True)
class OptimisationResult:
    """Weights at one decision time.

    Attributes
    ----------
    weights : symbol -> final weight (fraction of equity) for every input symbol (0 if ineligible).
    method : what produced the weights (``max_sharpe``, ``cash``, ``capacity_equal_weight``, ...).
    fallbacks : fallback keys taken (empty on the normal path).
    held : True when the no-trade band kept the current weights.
    expected_returns : annualised expected returns of the eligible symbols (None if not computed).
    covariance : annualised covariance of the eligible symbols (after any ridge).
    shrinkage : Ledoit-Wolf shrinkage intensity (None when a covariance was given).
    """

    weights: pd.Series
    method: str
    fallbacks: tuple[str, ...] = ()
    held: bool = False
    expected_returns: pd.Series | None = None
    covariance: pd.DataFrame | None = None
    shrinkage: float | None = None
    eligible: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fallback(self) -> str | None:
        """The first fallback taken, or None."""
        return self.fallbacks[0] if self.fallbacks else None

    @property
    def invested(self) -> float:
        """Net invested fraction ``sum w_i``."""
        return float(self.weights.sum())

    @property
    def gross(self) -> float:
        """Gross exposure ``sum |w_i|``."""
        return float(self.weights.abs().sum())


class _Fallbacks:
    def __init__(self, level: int) -> None:
        self.keys: list[str] = []
        self.level = level

    def take(self, key: str, detail: str) -> None:
        self.keys.append(key)
        log.log(self.level, "fallback[%s]: %s", key, detail)


def _capacity_weights(symbols: list[str], cap_s: float, comm: Mapping[str, object] | None,
                      cc_s: float | None) -> tuple[np.ndarray, float]:
    """Largest even allocation within caps: a_i = min(cap, cap_c / n_c); capacity = sum a_i."""
    a = np.full(len(symbols), cap_s)
    if comm is not None and cc_s is not None:
        labels = np.array([comm[s] for s in symbols], dtype=object)
        for c in pd.unique(labels):
            m = labels == c
            a[m] = min(cap_s, cc_s / m.sum())
    return a, float(a.sum())


def _project(w0: np.ndarray, lo: float, hi: float, groups: list[np.ndarray], cc_s: float | None,
             gross_s: float | None, solver: str | None) -> np.ndarray:
    """Euclidean projection of ``w0`` onto {sum = 1, lo <= w <= hi, community and gross caps}."""
    x = cp.Variable(len(w0))
    cons = [cp.sum(x) == 1, x >= lo, x <= hi]
    if cc_s is not None:
        for g in groups:
            cons.append(cp.sum(x[g]) <= cc_s)
            if lo < 0:
                cons.append(cp.sum(x[g]) >= -cc_s)
    if gross_s is not None and lo < 0:
        cons.append(cp.norm(x, 1) <= gross_s)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(x - w0)), cons)
    prob.solve(solver=solver)
    if prob.status not in ("optimal", "optimal_inaccurate") or x.value is None:
        raise OptimizationError(f"projection onto caps failed: {prob.status}")
    return np.asarray(x.value, dtype="float64")


def _violates(w: np.ndarray, lo: float, hi: float, groups: list[np.ndarray], cc_s: float | None,
              tol: float = 1e-9) -> bool:
    if (w < lo - tol).any() or (w > hi + tol).any():
        return True
    return cc_s is not None and any(w[g].sum() > cc_s + tol for g in groups)


def _reused_max_sharpe(cov: np.ndarray, mu: pd.Series | None, rf: float, lo: float, cap_s: float,
                       groups: list[np.ndarray], cc_s: float | None, gross_s: float | None,
                       settings: OptimiserSettings) -> np.ndarray | None:
    """Max-Sharpe sleeve weights from the cached parameterised problem, or None (logged at DEBUG) when
    that solve is not optimal, so the caller solves the same problem with PyPortfolioOpt."""
    if mu is None:
        return None
    structure = SharpeStructure(len(mu), lo, cap_s, tuple(tuple(int(i) for i in np.flatnonzero(g)) for g in groups),
                                cc_s, gross_s, settings.solver)
    try:
        return max_sharpe_weights(cov, mu.to_numpy(dtype="float64"), rf, structure)
    except FastSharpeError as exc:
        log.debug("reused max_sharpe problem gave no optimal solution (%s); solving with PyPortfolioOpt", exc)
        return None


def optimise_weights(
    returns: pd.DataFrame,
    scores: pd.Series | None = None,
    settings: OptimiserSettings | None = None,
    constraints: PortfolioConstraints | None = None,
    current_weights: pd.Series | None = None,
    communities: Mapping[str, object] | None = None,
    covariance: pd.DataFrame | None = None,
    fallback_log_level: int = logging.WARNING,
) -> OptimisationResult:
    """Optimise target weights from a trailing window of returns (and scores) known at time t.

    Parameters
    ----------
    returns : bars x symbols per-bar simple returns up to and including t (the trailing window the
        caller chose, normally ``settings.cov_window_bars`` rows). A symbol with any NaN is not eligible.
    scores : symbol -> model score at t (needed when ``settings.expected_returns == 'scores'`` and the
        method uses expected returns). A symbol with a NaN score is not eligible.
    settings, constraints : see :mod:`graphwiz_trader.portfolio.settings`.
    current_weights : symbol -> current weight (fractions), for ``no_trade_band`` and ``turnover_penalty``.
    communities : ``{symbol: community_id}``; required with ``constraints.community_cap``.
    covariance : annualised covariance to use instead of Ledoit-Wolf on ``returns``.
    fallback_log_level : level of the ``fallback[...]`` log lines (rolling runs log a summary instead).

    Returns
    -------
    OptimisationResult with final weights for every column of ``returns``.

    Raises
    ------
    ConfigError
        for settings the optimiser cannot honour (HRP long-short, turnover penalty with max_sharpe,
        community cap without communities, scores missing for a score-based method).
    """
    cols = returns.columns
    symbols = [str(c) for c in cols]
    plain = cols.name is None and cols.dtype == object and all(isinstance(c, str) for c in cols)
    index = cols if plain else pd.Index(symbols)
    sc: np.ndarray | None = None
    if scores is not None:
        sc = (scores if scores.index.equals(index) else scores.reindex(symbols)).to_numpy(dtype="float64")
    cur: np.ndarray | None = None
    if current_weights is not None:
        cur = current_weights.reindex(index).fillna(0.0).to_numpy(dtype="float64")
    return optimise_window(returns.to_numpy(dtype="float64"), index, sc, settings, constraints, cur, communities,
                           covariance, fallback_log_level)


def optimise_window(
    returns: np.ndarray,
    symbols: pd.Index,
    scores: np.ndarray | None = None,
    settings: OptimiserSettings | None = None,
    constraints: PortfolioConstraints | None = None,
    current_weights: np.ndarray | None = None,
    communities: Mapping[str, object] | None = None,
    covariance: pd.DataFrame | None = None,
    fallback_log_level: int = logging.WARNING,
    universe: np.ndarray | None = None,
) -> OptimisationResult:
    """:func:`optimise_weights` on arrays aligned to ``symbols`` (walk-forward loops call this once per
    decision and skip building a frame and two series per call).

    Parameters
    ----------
    returns : bars x symbols per-bar simple returns (float64), columns in the order of ``symbols``.
    symbols : the symbols (unique strings); the result's series use this index.
    scores : model score per symbol at t, in the order of ``symbols`` (NaN: not eligible for score methods).
    current_weights : current weight per symbol (fractions, no NaN), in the order of ``symbols``.
    settings, constraints, communities, covariance, fallback_log_level : as in :func:`optimise_weights`.
    universe : booleans in the order of ``symbols``: the point-in-time universe at t (e.g. index members).
        A symbol outside it is not eligible and gets weight 0; the no-trade band never keeps a position in
        one (it is sold). ``None``: every symbol.

    Returns
    -------
    OptimisationResult with final weights for every symbol.
    """
    settings = settings or OptimiserSettings()
    constraints = constraints or PortfolioConstraints()
    check_method_constraints(settings, constraints)
    fb = _Fallbacks(fallback_log_level)
    if not symbols.is_unique:
        raise DataError("returns has duplicate symbol columns")
    n_sym = len(symbols)
    for what, a in (("returns", returns), ("scores", scores), ("current_weights", current_weights),
                    ("universe", universe)):
        if a is not None and a.shape[-1] != n_sym:
            raise DataError(f"{what} has {a.shape[-1]} columns for {n_sym} symbols")
    method = settings.method
    needs_mu = method in _RETURN_SEEKING
    if settings.expected_returns == "scores" and needs_mu and scores is None:
        raise ConfigError(f"method {method} with expected_returns 'scores' needs scores; pass scores= "
                          "or set expected_returns: historical")
    if constraints.community_cap is not None and communities is None:
        raise ConfigError("portfolio.community_cap is set but no {symbol: community_id} mapping was given")

    invested = 1.0 - constraints.cash_buffer
    cap_s = min(1.0, constraints.max_position_weight / invested)
    cc_s = None if constraints.community_cap is None else constraints.community_cap / invested
    gross_s = constraints.max_gross_leverage / invested if constraints.long_short else None
    lo = -cap_s if constraints.long_short else 0.0

    # numpy inside, pandas only for the result: a walk-forward run calls this once per decision
    arr = np.asarray(returns, dtype="float64")
    ok = ~np.isnan(arr).any(axis=0) if arr.shape[0] >= 2 else np.zeros(n_sym, bool)
    sc = None if scores is None else np.asarray(scores, dtype="float64")
    if sc is not None and settings.expected_returns == "scores":
        ok &= np.isfinite(sc)
    outside = None
    if universe is not None:
        members = np.asarray(universe, dtype=bool)
        ok &= members
        outside = ~members
    idx = np.flatnonzero(ok)
    names = symbols.tolist()
    eligible = [names[i] for i in idx]
    elig_index = symbols if len(idx) == n_sym else symbols[idx]
    if communities is not None and constraints.community_cap is not None:
        missing = [s for s in eligible if s not in communities]
        if missing:
            raise DataError(f"community_cap: no community for {', '.join(missing[:10])}"
                            f"{' ...' if len(missing) > 10 else ''}")

    def finish(sleeve: np.ndarray | None, used: str, mu: pd.Series | None = None, cov: pd.DataFrame | None = None,
               delta: float | None = None) -> OptimisationResult:
        final_a = np.zeros(n_sym)
        if sleeve is not None and len(eligible):
            final_a[idx] = np.where(np.abs(sleeve) < 1e-10, 0.0, sleeve) * invested
        final = pd.Series(final_a, index=symbols, name="weight")
        held = False
        if (current_weights is not None and constraints.no_trade_band > 0
                and float(np.abs(final_a - current_weights).sum()) < constraints.no_trade_band
                and (outside is None or not np.any(np.asarray(current_weights)[outside] != 0.0))):
            final = pd.Series(np.array(current_weights, dtype="float64"), index=symbols, name="weight")
            held = True
        return OptimisationResult(final, used, tuple(fb.keys), held, mu, cov, delta, tuple(eligible))

    if not eligible:
        fb.take("empty_universe", f"no symbol has {arr.shape[0]} complete bars of returns"
                f"{' and a score' if settings.expected_returns == 'scores' and scores is not None else ''}; all cash")
        return finish(None, "cash")

    window = arr[:, idx]
    delta: float | None = None
    if covariance is not None:
        cov = covariance.loc[eligible, eligible].astype("float64")
        cov_a = cov.to_numpy()
    else:  # the estimator of ledoit_wolf_covariance, on the array
        shrunk, delta = ledoit_wolf_array(window)
        cov_a = shrunk * settings.periods_per_year
        cov = pd.DataFrame(cov_a, index=elig_index, columns=elig_index)
    comm = {s: communities[s] for s in eligible} if (communities is not None and cc_s is not None) else None

    vals = np.linalg.eigvalsh(cov_a)
    top = float(vals.max()) if len(vals) else 0.0
    if top <= 1e-300:
        fb.take("singular_covariance", f"covariance of {len(eligible)} symbols is all zero (no price "
                "variation in the window); capacity equal weight")
        a, capacity = _capacity_weights(eligible, cap_s, comm, cc_s)
        return finish(a / max(capacity, 1.0), "capacity_equal_weight", None, cov, delta)
    if float(vals.min()) <= _SINGULAR_RTOL * top:
        ridge = _RIDGE_FRACTION * float(np.mean(np.diag(cov_a))) + max(0.0, -float(vals.min()))
        fb.take("singular_covariance", f"min eigenvalue {vals.min():.3g} <= {_SINGULAR_RTOL:g} x max {top:.3g}; "
                f"added ridge {ridge:.3g} to the diagonal")
        cov_a = cov_a + ridge * np.eye(len(eligible))
        cov = pd.DataFrame(cov_a, index=cov.index, columns=cov.columns)

    mu: pd.Series | None = None
    if settings.expected_returns == "scores" and sc is not None:  # expected_returns_from_scores, on arrays
        mu = pd.Series(alpha_from_scores(sc[idx], np.diag(cov_a), settings.score_ic, settings.periods_per_year,
                                         settings.score_horizon_bars), index=elig_index, name="expected_return")
    elif settings.expected_returns == "historical":
        mu = historical_expected_returns(pd.DataFrame(window, columns=elig_index), settings.periods_per_year,
                                         settings.historical_shrinkage)

    rf = settings.risk_free_rate
    mu_a = mu.to_numpy(dtype="float64") if mu is not None else np.empty(0)
    mu_known = mu_a[~np.isnan(mu_a)]
    mu_max = float(mu_known.max()) if len(mu_known) else float("nan")  # what Series.max gives (NaN skipped)
    if needs_mu and mu is not None and mu_max <= rf:
        if settings.all_negative_fallback == "cash":
            fb.take("all_nonpositive_expected_returns",
                    f"no expected return above the risk-free rate {rf:g} (max {mu_max:.3g}); all cash")
            return finish(None, "cash", mu, cov, delta)
        fb.take("all_nonpositive_expected_returns",
                f"no expected return above the risk-free rate {rf:g}; min_volatility instead of {method}")
        method = "min_volatility"

    if len(eligible) == 1:
        w1 = min(cap_s, cc_s if cc_s is not None else 1.0)
        fb.take("single_asset", f"only {eligible[0]} is eligible; holding it at {w1 * invested:.4g} of equity")
        return finish(np.array([w1]), "single_asset", mu, cov, delta)

    a, capacity = _capacity_weights(eligible, cap_s, comm, cc_s)
    if capacity < 1.0 - 1e-9:
        fb.take("infeasible_caps", f"caps hold at most {capacity * invested:.4g} of equity across "
                f"{len(eligible)} symbols (max_position_weight {constraints.max_position_weight:g}"
                f"{'' if cc_s is None else f', community_cap {constraints.community_cap:g}'}); "
                "investing at capacity, rest in cash")
        return finish(a, "capacity_equal_weight", mu, cov, delta)

    labels = np.array([comm[s] for s in eligible], dtype=object) if comm is not None else None
    groups = [labels == c for c in pd.unique(labels)] if labels is not None else []
    prev = None
    if constraints.turnover_penalty > 0:
        prev = (current_weights[idx] if current_weights is not None else np.zeros(len(idx))) / invested

    def frontier(mu_: pd.Series | None, options: dict[str, float] | None = None) -> EfficientFrontier:
        opts: dict[str, object] = {"ignore_dpp": True} if settings.skip_dpp else {}
        ef = EfficientFrontier(mu_, cov, weight_bounds=(lo, cap_s), solver=settings.solver,
                               solver_options={**opts, **(options or {})} or None)
        if comm is not None:
            ef.add_sector_constraints(comm, {c: -cc_s for c in set(comm.values())} if lo < 0 else {},
                                      {c: cc_s for c in set(comm.values())})
        if gross_s is not None:
            ef.add_constraint(lambda w: cp.norm(w, 1) <= gross_s)
        if prev is not None:
            ef.add_objective(objective_functions.transaction_cost, w_prev=prev, k=constraints.turnover_penalty)
        return ef

    used = method
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "hrp":
                hrp = HRPOpt(cov_matrix=cov)
                hrp.optimize(linkage_method=settings.hrp_linkage)
                w = np.array([hrp.weights[i] for i in range(len(eligible))], dtype="float64")
                if _violates(w, lo, cap_s, groups, cc_s):
                    w = _project(w, lo, cap_s, groups, cc_s, gross_s, settings.solver)
                    used = "hrp_projected"
            elif method == "max_sharpe":
                w = _reused_max_sharpe(cov_a, mu, rf, lo, cap_s, groups, cc_s if comm is not None else None,
                                       gross_s, settings) if settings.reuse_max_sharpe_problem else None
                if w is None:
                    ef = frontier(mu, solver_options(settings.solver))
                    ef.max_sharpe(risk_free_rate=rf)
                    w = np.asarray(ef.weights, dtype="float64")
            elif method == "min_volatility":
                ef = frontier(mu)
                ef.min_volatility()
                w = np.asarray(ef.weights, dtype="float64")
            else:
                try:
                    ef = frontier(mu)
                    ef.efficient_risk(settings.target_volatility / invested)
                    w = np.asarray(ef.weights, dtype="float64")
                except (ValueError, OptimizationError) as exc:
                    fb.take("efficient_risk_unreachable", f"target volatility {settings.target_volatility:g} "
                            f"not reachable ({str(exc).strip()[:120]}); min_volatility instead")
                    ef = frontier(mu)
                    ef.min_volatility()
                    w = np.asarray(ef.weights, dtype="float64")
                    used = "min_volatility"
    except (OptimizationError, cp.error.SolverError, ValueError, np.linalg.LinAlgError) as exc:
        fb.take("solver_failure", f"{method} failed ({type(exc).__name__}: {str(exc).strip()[:160]}); "
                "inverse-volatility weights projected onto the caps")
        inv = 1.0 / np.sqrt(np.clip(np.diag(cov.to_numpy()), 1e-300, None))
        w0 = inv / inv.sum()
        try:
            w = _project(w0, lo, cap_s, groups, cc_s, gross_s, settings.solver) if _violates(
                w0, lo, cap_s, groups, cc_s) else w0
            used = "inverse_volatility"
        except (OptimizationError, cp.error.SolverError):
            w, used = a / capacity, "capacity_equal_weight"

    w = np.clip(w, lo, cap_s)
    total = w.sum()
    if abs(total) > 1e-12:
        w = w / total
    return finish(w, used, mu, cov, delta)
