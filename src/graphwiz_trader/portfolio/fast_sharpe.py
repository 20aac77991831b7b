"""Max-Sharpe weights from one compiled, parameterised cvxpy problem reused across decisions.

PyPortfolioOpt's ``EfficientFrontier.max_sharpe`` builds and compiles a new cvxpy problem at every
call (about 4 ms over 20 assets, most of a walk-forward decision). This module states the same problem
once per *structure* with the data as one cvxpy parameter (DPP), so a decision only sets the parameter
and calls the solver (about 1 ms, mostly cvxpy's per-solve data handling; Clarabel itself takes ~0.15 ms).
Each solve starts a new solver (``warm_start=False``), so the weights depend on the decision's data
only, bit for bit, whatever was solved before (serial and parallel runs agree exactly).

The problem (Cornuejols & Tutuncu's homogenisation, the transformation PyPortfolioOpt uses): with
excess returns ``e = mu - rf`` (annualised fractions), covariance ``S`` (annualised) and a factor
``F`` with ``F'F = S``,

    minimise    ||F y||^2
    subject to  e'y = 1,  sum(y) = kappa,  kappa >= 0,
                lower * kappa <= y_i <= upper * kappa,
                sum(y_g) <= group_cap * kappa  (and >= -group_cap * kappa when lower < 0), per group g,
                ||y||_1 <= gross_cap * kappa  (when a gross cap is given),

and the weights are ``w = y / kappa``: the fully invested (``sum w = 1``) portfolio of highest
``e'w / sqrt(w'Sw)`` within the bounds, the group caps and the gross cap. ``F`` is the transposed
Cholesky factor of ``S`` (a symmetric square root from ``eigh`` if Cholesky fails), so ``S`` may
change freely between decisions while the compiled problem stays valid.

Problems are cached by structure (:class:`SharpeStructure`: number of assets, bounds, group
membership and cap, gross cap, solver); a structure change gets its own problem. The cache holds the
``CACHE_SIZE`` most recently used structures. Solves of one problem are serialised by a lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

CACHE_SIZE = 32
# Clarabel's defaults (1e-8) leave max-Sharpe weights up to ~2e-5 (PyPortfolioOpt's formulation, ~7e-5
# long-short) from the optimum on daily crypto covariances: the homogenised problem is poorly scaled.
# With these, the factored problem here is within ~1.5e-7 of it (PyPortfolioOpt's within ~3e-6).
CLARABEL_TOLERANCES: Mapping[str, float] = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


class FastSharpeError(RuntimeError):
    """The parameterised solve did not return an optimal solution (the caller falls back)."""


def solver_options(solver: str | None) -> dict[str, float]:
    """Solver options used for max-Sharpe solves: explicit tolerances for Clarabel, else none.

    Parameters
    ----------
    solver : cvxpy solver name (None: cvxpy's default, which is not tuned here).

    Returns
    -------
    Keyword options for ``cvxpy.Problem.solve`` (a new dict).
    """
    return dict(CLARABEL_TOLERANCES) if solver is not None and solver.upper() == "CLARABEL" else {}


@dataclass(frozen=True)
class SharpeStructure:
    """What a compiled max-Sharpe problem depends on besides its data.

    Attributes
    ----------
    n_assets : number of assets (>= 2).
    lower, upper : bounds on each weight of the fully invested sleeve (fractions; ``lower < 0`` allows
        shorts).
    groups : member indices of each capped group (e.g. graph communities), in asset order; empty for
        no group caps.
    group_cap : cap on ``|sum of a group's weights|`` (fraction; the lower side binds only when
        ``lower < 0``), or None.
    gross_cap : cap on ``sum |w_i|`` (fraction), or None.
    solver : cvxpy solver name, or None for cvxpy's default.
    """

    n_assets: int
    lower: float
    upper: float
    groups: tuple[tuple[int, ...], ...] = ()
    group_cap: float | None = None
    gross_cap: float | None = None
    solver: str | None = "CLARABEL"

    def __post_init__(self) -> None:
        if self.n_assets < 2:
            raise ValueError(f"a max-Sharpe problem needs at least 2 assets, got {self.n_assets}")
        if not self.lower < self.upper:
            raise ValueError(f"weight bounds must satisfy lower < upper, got ({self.lower}, {self.upper})")
        if self.groups and self.group_cap is None:
            raise ValueError("groups are given without a group_cap")
        for g in self.groups:
            if not g or min(g) < 0 or max(g) >= self.n_assets:
                raise ValueError(f"group {g} is empty or has an index outside 0..{self.n_assets - 1}")


def covariance_factor(covariance: np.ndarray) -> np.ndarray:
    """A matrix ``F`` with ``F'F = covariance``: the transposed Cholesky factor, else a symmetric
    square root from ``eigh`` (negative eigenvalues, from rounding, clipped to 0).

    Parameters
    ----------
    covariance : n x n symmetric positive (semi)definite matrix (annualised fractions^2).
    """
    try:
        return np.linalg.cholesky(covariance).T
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(covariance)
        return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


class ParameterisedMaxSharpe:
    """One compiled max-Sharpe problem of a fixed structure; :meth:`solve` sets the data and solves.

    Parameters
    ----------
    structure : the problem's structure (see :class:`SharpeStructure`).
    """

    def __init__(self, structure: SharpeStructure) -> None:
        self.structure = structure
        n = structure.n_assets
        # one parameter holds both: rows 0..n-1 the factor F, row n the excess returns (setting a
        # parameter validates its value, a fixed cost per parameter and solve)
        self._data = cp.Parameter((n + 1, n), name="factor_and_excess_returns")
        self._y = cp.Variable(n, name="y")
        self._kappa = cp.Variable(name="kappa", nonneg=True)
        y, kappa = self._y, self._kappa
        factor, excess = self._data[:n, :], self._data[n, :]
        cons = [excess @ y == 1, cp.sum(y) == kappa,
                y >= structure.lower * kappa, y <= structure.upper * kappa]
        if structure.group_cap is not None:
            for g in structure.groups:
                total = cp.sum(y[list(g)])
                cons.append(total <= structure.group_cap * kappa)
                if structure.lower < 0:
                    cons.append(total >= -structure.group_cap * kappa)
        if structure.gross_cap is not None:
            cons.append(cp.norm(y, 1) <= structure.gross_cap * kappa)
        self._problem = cp.Problem(cp.Minimize(cp.sum_squares(factor @ y)), cons)
        if not self._problem.is_dpp():  # a programming error, not a data problem
            raise AssertionError("the parameterised max-Sharpe problem is not DPP")
        self._options = solver_options(structure.solver)
        self._lock = threading.Lock()
        self.solves = 0  # solver calls made
        self.failures = 0  # of which not optimal (the caller fell back)

    def solve(self, covariance: np.ndarray, excess_returns: np.ndarray) -> np.ndarray:
        """Max-Sharpe weights of the fully invested sleeve for this decision's data.

        Parameters
        ----------
        covariance : n x n annualised covariance (fractions^2 per year), positive definite.
        excess_returns : n annualised expected returns minus the risk-free rate (fractions per year);
            at least one must be positive.

        Returns
        -------
        weights ``w = y / kappa`` (fractions, summing to 1).

        Raises
        ------
        FastSharpeError
            when the data do not fit the structure, the solver fails, or its status is not ``optimal``
            (the caller then solves with PyPortfolioOpt).
        """
        n = self.structure.n_assets
        cov = np.asarray(covariance, dtype="float64")
        ex = np.asarray(excess_returns, dtype="float64")
        if cov.shape != (n, n) or ex.shape != (n,):
            raise FastSharpeError(f"data of shape {cov.shape} / {ex.shape} do not fit a problem over {n} assets")
        if not (np.isfinite(cov).all() and np.isfinite(ex).all()):
            raise FastSharpeError("covariance or expected returns are not finite")
        data = np.empty((n + 1, n))
        data[:n] = covariance_factor(cov)
        data[n] = ex
        with self._lock:
            self.solves += 1
            self._data.value = data
            try:
                # warm_start=False: a new solver per call, so the weights depend on this decision's data
                # only (bit for bit), not on earlier solves of the same problem
                self._problem.solve(solver=self.structure.solver, warm_start=False, **self._options)
                status = self._problem.status
                y, kappa = self._y.value, self._kappa.value
                if status != cp.OPTIMAL or y is None or kappa is None or not float(kappa) > 0:
                    raise FastSharpeError(f"solver status {status}"
                                          + ("" if kappa is None else f", kappa {float(kappa):.3g}"))
                w = np.asarray(y, dtype="float64") / float(kappa)
                if not np.isfinite(w).all():
                    raise FastSharpeError("non-finite weights")
            except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
                self.failures += 1
                raise FastSharpeError(f"solver failed: {type(exc).__name__}: {exc}") from exc
            except FastSharpeError:
                self.failures += 1
                raise
        return w


_CACHE: OrderedDict[SharpeStructure, ParameterisedMaxSharpe] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def max_sharpe_problem(structure: SharpeStructure) -> ParameterisedMaxSharpe:
    """The cached compiled problem of ``structure`` (built on first use; least recently used evicted)."""
    with _CACHE_LOCK:
        problem = _CACHE.get(structure)
        if problem is not None:
            _CACHE.move_to_end(structure)
            return problem
    problem = ParameterisedMaxSharpe(structure)
    with _CACHE_LOCK:
        problem = _CACHE.setdefault(structure, problem)
        _CACHE.move_to_end(structure)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return problem


def clear_cache() -> None:
    """Drop every cached problem (the next solve of each structure compiles again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def cached_structures() -> tuple[SharpeStructure, ...]:
    """Structures with a cached problem, least recently used first."""
    with _CACHE_LOCK:
        return tuple(_CACHE)


def max_sharpe_weights(covariance: np.ndarray, expected_returns: np.ndarray, risk_free_rate: float,
                       structure: SharpeStructure) -> np.ndarray:
    """Max-Sharpe weights of the fully invested sleeve from the cached problem of ``structure``.

    Parameters
    ----------
    covariance : n x n annualised covariance (fractions^2 per year), positive definite.
    expected_returns : n annualised expected returns (fractions per year).
    risk_free_rate : annualised risk-free rate (fraction per year).
    structure : bounds, groups, gross cap and solver (see :class:`SharpeStructure`).

    Returns
    -------
    weights (fractions, summing to 1) in the order of ``expected_returns``.

    Raises
    ------
    FastSharpeError
        when no expected return exceeds the risk-free rate or the solve is not optimal.
    """
    mu = np.asarray(expected_returns, dtype="float64")
    if not mu.size or float(mu.max()) <= risk_free_rate:
        raise FastSharpeError(f"no expected return exceeds the risk-free rate {risk_free_rate:g}")
    return max_sharpe_problem(structure).solve(covariance, mu - risk_free_rate)
