"""Market and per-asset regimes, strictly point-in-time.

Market regime: a Gaussian hidden Markov model (``hmmlearn.hmm.GaussianHMM``, full covariances) on
two features per bar t, both known at t's close:

- ``m_t``  equal-weight market log return: the mean of the assets' valid log returns at t;
- ``ld_t`` log cross-sectional dispersion: ``log std_i(r_i,t)`` (population std over valid assets).

Volatility enters through each state's variance of ``m_t``; the states are ordered by it (ascending)
and named ``low_vol, mid_vol, high_vol`` (``low_vol, high_vol`` for 2 states, ``vol_0 ..`` beyond 3),
which keeps labels stable across re-fits.

Persistence: the transition matrix is fixed, not learned: stay with probability ``fixed_stay``
(default 0.995, an expected regime duration of 200 bars), switches spread evenly over the other
states. EM then fits start probabilities, means and covariances. Learned transitions (``fixed_stay=
None``) let single fat-tailed hours flip the state: on the 2020-2024 Binance hourly data (46 pairs)
the mean run drops from 15.4 to 4.7 bars, and on the synthetic market the worst ARI against the
planted regimes over seeds 0-19 falls from 0.61 to 0.21 (median 0.79 vs 0.77).

Fitting schedule (rows are bars with both features defined): the first model is fitted on rows
``[0, min_train)``, then a new model every ``refit_every`` rows (default 168, weekly at 1h), each on
the rows strictly before its fit row: the last ``max_train`` of them (default one year at 1h;
``None`` = expanding). Model k labels rows ``[f_k, f_k+1)``. The features are standardised with the
training rows' mean and std. Each re-fit tries two starts, a cold one (k-means means) and a warm one
(the previous model, converted to the new standardisation), and keeps the one with the higher
training log-likelihood.

Labels are FILTERED: ``P(state_t | features_<=t)`` from the forward algorithm, never smoothed and
never Viterbi over later bars. Model k's filter starts ``burn_in`` rows before ``f_k`` from the
model's start probabilities (the filter forgets its start exponentially), so a label at t depends only
on features at rows ``<= t`` and on a model fitted on rows ``< f_k <= t``. The label is the arg-max
state and ``prob`` its filtered probability.

Per-asset regime (at the given times, normally the snapshot ``as_of`` times): the asset's log realised
volatility ``v_t = log std(r_i over the last asset_vol_window bars)`` (sample std of the valid
returns there, defined once at least half of the window is valid) is compared with its own history
up to t: ``z_t = (v_t - mean(v_<=t)) / std(v_<=t)`` (expanding, at least ``asset_min_history`` values).
``high_vol`` when ``z_t > 0`` else ``low_vol``; ``prob = Phi(|z_t|)``, a normal-approximation
confidence in [0.5, 1), not a model posterior.

Transition statistics from a regime path (consecutive records of one scope): for each ordered pair of
different labels a -> b, ``count`` of switches, ``prob = count(a -> b) / count(a -> any other)`` (the
jump chain) and ``mean_duration``: the mean length, in records (bars for the market), of the completed
runs of a that ended by switching to b.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from scipy.special import ndtr
from scipy.stats import multivariate_normal

from graphwiz_trader.core.progress import progress as progress_bar
from graphwiz_trader.core.threads import single_threaded
from graphwiz_trader.errors import ConfigError, DataError
from graphwiz_trader.graph.builders.panel import BarsOrPanel, close_panel, log_returns
from graphwiz_trader.graph.snapshot import REGIME_COLUMNS

log = logging.getLogger(__name__)

MARKET_SCOPE = "market"
ASSET_REGIMES: tuple[str, ...] = ("low_vol", "high_vol")


def market_regime_names(n_states: int) -> tuple[str, ...]:
    """State names ordered by volatility, lowest first."""
    if n_states == 2:
        return ("low_vol", "high_vol")
    if n_states == 3:
        return ("low_vol", "mid_vol", "high_vol")
    return tuple(f"vol_{i}" for i in range(n_states))


@dataclass(frozen=True)
class RegimeSettings:
    """Knobs of :func:`build_regime_state` (all lengths in bars).

    Attributes
    ----------
    n_states
        HMM states (2..6).
    covariance_type
        ``full`` or ``diag`` emission covariances.
    fixed_stay
        When set, the transition matrix is not learned but fixed to this probability of staying in a
        state (switches spread evenly over the other states): an expected regime duration of
        ``1 / (1 - fixed_stay)`` bars. ``None``: learned by EM.
    clip
        When set, standardised features are clipped to ``[-clip, clip]`` (winsorising the fat tails
        of hourly returns, so single outliers do not switch the regime).
    min_train
        Rows for the first fit (default 60 days of hourly bars).
    refit_every
        Re-fit cadence (default weekly at 1h).
    max_train
        Cap on training rows (rolling window, default one year of hourly bars); ``None`` = expanding.
    burn_in
        Rows the forward filter runs before a model's first labelled row.
    n_iter, tol
        EM iterations and log-likelihood tolerance per fit.
    seed
        Random state of the k-means initialisation.
    min_assets
        Minimum assets with a valid return for a bar's market features.
    asset_vol_window, asset_min_history
        Per-asset realised-vol window and the minimum history of it before an asset gets a regime.
    """

    n_states: int = 3
    covariance_type: str = "full"
    fixed_stay: float | None = 0.995
    clip: float | None = None
    min_train: int = 24 * 60
    refit_every: int = 24 * 7
    max_train: int | None = 24 * 365
    burn_in: int = 500
    n_iter: int = 100
    tol: float = 1e-2
    seed: int = 0
    min_assets: int = 2
    asset_vol_window: int = 24 * 7
    asset_min_history: int = 24 * 30

    def check(self) -> None:
        if not 2 <= self.n_states <= 6:
            raise ConfigError(f"n_states must be in [2, 6], got {self.n_states!r}")
        if self.covariance_type not in ("full", "diag"):
            raise ConfigError(f"covariance_type must be 'full' or 'diag', got {self.covariance_type!r}")
        if self.fixed_stay is not None and not 0.0 < self.fixed_stay < 1.0:
            raise ConfigError(f"fixed_stay must be in (0, 1) or None, got {self.fixed_stay!r}")
        if self.min_train < 10 * self.n_states:
            raise ConfigError(f"min_train must be >= 10 * n_states = {10 * self.n_states} bars, got {self.min_train!r}")
        if self.refit_every < 1 or self.burn_in < 0 or self.n_iter < 1:
            raise ConfigError("refit_every and n_iter must be >= 1 and burn_in >= 0, got "
                              f"{self.refit_every!r}, {self.n_iter!r}, {self.burn_in!r}")
        if self.max_train is not None and self.max_train < self.min_train:
            raise ConfigError(f"max_train ({self.max_train}) must be >= min_train ({self.min_train})")
        if self.min_assets < 2:
            raise ConfigError(f"min_assets must be >= 2 (dispersion needs two returns), got {self.min_assets!r}")
        if self.asset_vol_window < 3 or self.asset_min_history < 2:
            raise ConfigError("asset_vol_window must be >= 3 and asset_min_history >= 2, got "
                              f"{self.asset_vol_window!r}, {self.asset_min_history!r}")


# ----------------------------------------------------------------------------------------------- features

def market_features(returns: pd.DataFrame, min_assets: int = 2) -> pd.DataFrame:
    """Per-bar market features ``m`` (equal-weight log return) and ``log_disp`` (log cross-sectional std).

    Rows with fewer than ``min_assets`` valid returns, or zero dispersion, are dropped (no label there).
    """
    r = returns.to_numpy()
    valid = ~np.isnan(r)
    cnt = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(valid, r, 0.0).sum(axis=1) / cnt
        dev = np.where(valid, r - m[:, None], 0.0)
        disp = np.sqrt((dev * dev).sum(axis=1) / cnt)
        ld = np.log(disp)
    ok = (cnt >= min_assets) & np.isfinite(m) & np.isfinite(ld)
    return pd.DataFrame({"m": m[ok], "log_disp": ld[ok]}, index=returns.index[ok])


# ---------------------------------------------------------------------------------------------- HMM utils

def forward_filter(model: GaussianHMM, x: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Filtered state probabilities ``P(s_t | x_0..x_t)`` of a fitted HMM (forward algorithm).

    Parameters
    ----------
    model
        Fitted ``GaussianHMM`` (``means_``, ``covars_``, ``transmat_``, ``startprob_``).
    x
        ``T x D`` observations in the model's units.
    start
        Prior of the first state (default ``model.startprob_``).

    Returns
    -------
    ndarray
        ``T x K`` rows summing to 1; row t uses ``x[:t+1]`` only.
    """
    k = model.n_components
    logb = np.column_stack([multivariate_normal(model.means_[s], model.covars_[s], allow_singular=True).logpdf(x)
                            for s in range(k)]).reshape(len(x), k)
    b = np.exp(logb - logb.max(axis=1, keepdims=True))
    a_mat = model.transmat_
    out = np.empty((len(x), k))
    alpha = np.asarray(model.startprob_ if start is None else start, dtype=float)
    for t in range(len(x)):
        pred = alpha if t == 0 else alpha @ a_mat
        post = pred * b[t]
        s = post.sum()
        alpha = post / s if s > 0 else np.full(k, 1.0 / k)
        out[t] = alpha
    return out


@contextmanager
def _quiet_hmmlearn() -> Iterator[None]:
    """Silence hmmlearn's per-fit 'not converging' chatter (EM stalls at the tolerance are normal)."""
    lg = logging.getLogger("hmmlearn")
    old = lg.level
    lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(old)


def _std(x: np.ndarray, mu: np.ndarray, sd: np.ndarray, clip: float | None) -> np.ndarray:
    z = (x - mu) / sd
    return z if clip is None else np.clip(z, -clip, clip)


def _sticky_transmat(k: int, stay: float = 0.99) -> np.ndarray:
    off = (1.0 - stay) / (k - 1)
    return np.full((k, k), off) + np.eye(k) * (stay - off)


def _fit_hmm(z: np.ndarray, params: RegimeSettings, warm: tuple[GaussianHMM, np.ndarray, np.ndarray] | None,
             mu: np.ndarray, sd: np.ndarray) -> GaussianHMM:
    k = params.n_states
    learn = "stmc" if params.fixed_stay is None else "smc"
    cold = GaussianHMM(k, covariance_type=params.covariance_type, n_iter=params.n_iter, tol=params.tol,
                       random_state=params.seed, init_params="mc", params=learn)
    cold.startprob_ = np.full(k, 1.0 / k)
    cold.transmat_ = _sticky_transmat(k, 0.99 if params.fixed_stay is None else params.fixed_stay)
    cold.fit(z)
    best, best_ll = cold, cold.score(z)
    if warm is not None:
        prev, pmu, psd = warm
        h = GaussianHMM(k, covariance_type=params.covariance_type, n_iter=params.n_iter, tol=params.tol,
                        random_state=params.seed, init_params="", params=learn)
        h.startprob_ = prev.startprob_.copy()
        h.transmat_ = prev.transmat_.copy()
        h.means_ = (prev.means_ * psd + pmu - mu) / sd
        d = psd / sd
        full = prev.covars_ * (d[None, :, None] * d[None, None, :])
        h.covars_ = full if params.covariance_type == "full" else np.diagonal(full, axis1=1, axis2=2).copy()
        h.fit(z)
        ll = h.score(z)
        if ll > best_ll:
            best = h
    return best


# ------------------------------------------------------------------------------------------- market regime

def fit_schedule(n_rows: int, params: RegimeSettings) -> list[tuple[int, int, int, int]]:
    """Row ranges of each re-fit: ``(train_lo, train_hi, label_lo, label_hi)``, half-open.

    The model trained on rows ``[train_lo, train_hi)`` labels rows ``[label_lo, label_hi)`` with
    ``train_hi == label_lo``: every label comes from a model fitted on strictly earlier rows.
    """
    out = []
    for f in range(params.min_train, n_rows, params.refit_every):
        lo = 0 if params.max_train is None else max(0, f - params.max_train)
        out.append((lo, f, f, min(n_rows, f + params.refit_every)))
    return out


def market_regimes(features: pd.DataFrame, params: RegimeSettings | None = None,
                   progress: bool = False) -> pd.DataFrame:
    """Filtered market regime per bar from :func:`market_features` (see the module docstring).

    Returns
    -------
    DataFrame
        ``scope, datetime, regime, prob`` (scope ``market``), one row per bar from the first fit on.

    Raises
    ------
    DataError
        when there are not more than ``min_train`` usable bars, naming both numbers.
    """
    p = params or RegimeSettings()
    p.check()
    x = features[["m", "log_disp"]].to_numpy()
    n = len(x)
    if n <= p.min_train:
        raise DataError(f"regime detection needs more than min_train={p.min_train} bars with market features; "
                        f"the data has {n}")
    names = market_regime_names(p.n_states)
    fits = fit_schedule(n, p)
    labels = np.empty(n - p.min_train, dtype=np.int64)
    probs = np.empty(n - p.min_train)
    prev: tuple[GaussianHMM, np.ndarray, np.ndarray] | None = None
    with single_threaded(), _quiet_hmmlearn():
        for lo, f, _, stop in progress_bar(fits, desc="regime fits", unit="fit", enabled=progress):
            train = x[lo:f]
            mu = train.mean(axis=0)
            sd = train.std(axis=0)
            sd = np.where(sd > 0, sd, 1.0)
            model = _fit_hmm(_std(train, mu, sd, p.clip), p, prev, mu, sd)
            prev = (model, mu, sd)
            order = np.argsort(model.covars_[:, 0, 0], kind="stable")   # by variance of m, ascending
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            s0 = max(0, f - p.burn_in)
            filt = forward_filter(model, _std(x[s0:stop], mu, sd, p.clip))[f - s0:]
            state = filt.argmax(axis=1)
            labels[f - p.min_train: stop - p.min_train] = rank[state]
            probs[f - p.min_train: stop - p.min_train] = filt[np.arange(len(state)), state]
    return pd.DataFrame({"scope": MARKET_SCOPE, "datetime": features.index[p.min_train:],
                         "regime": np.asarray(names, dtype=object)[labels], "prob": probs})[REGIME_COLUMNS]


# -------------------------------------------------------------------------------------------- asset regime

def asset_regimes(returns: pd.DataFrame, times: Sequence[pd.Timestamp] | pd.DatetimeIndex,
                  params: RegimeSettings | None = None) -> pd.DataFrame:
    """Per-asset volatility regime at ``times`` (see the module docstring).

    Parameters
    ----------
    returns
        Log return frame (times x symbols).
    times
        Record times (normally snapshot ``as_of``); each must be a time of ``returns``.

    Returns
    -------
    DataFrame
        ``scope, datetime, regime, prob`` with scope = symbol, for assets with a defined z at t.
    """
    p = params or RegimeSettings()
    idx = pd.DatetimeIndex(times)
    pos = returns.index.get_indexer(idx)
    if (pos < 0).any():
        raise DataError(f"asset regime times not among the bar times: {', '.join(map(str, idx[pos < 0][:3]))}")
    vol = returns.rolling(p.asset_vol_window, min_periods=max(3, p.asset_vol_window // 2)).std()
    with np.errstate(divide="ignore"):
        lv = np.log(vol.where(vol > 0))
    mean = lv.expanding(min_periods=p.asset_min_history).mean()
    std = lv.expanding(min_periods=p.asset_min_history).std()
    z = ((lv - mean) / std).to_numpy()[pos]               # (len(times), N)
    ok = np.isfinite(z)
    ti, ai = np.nonzero(ok)
    zz = z[ti, ai]
    names = np.asarray(ASSET_REGIMES, dtype=object)
    frame = pd.DataFrame({"scope": np.asarray(returns.columns, dtype=object)[ai], "datetime": idx[ti],
                          "regime": names[(zz > 0).astype(int)], "prob": ndtr(np.abs(zz))})
    return frame.sort_values(["scope", "datetime"], kind="stable").reset_index(drop=True)[REGIME_COLUMNS]


# -------------------------------------------------------------------------------------------------- public

def build_regime_state(data: BarsOrPanel, params: RegimeSettings | None = None,
                       asset_times: Sequence[pd.Timestamp] | pd.DatetimeIndex | None = None,
                       symbols: Sequence[str] | None = None, progress: bool = False) -> pd.DataFrame:
    """Market regime per bar plus per-asset regimes at ``asset_times``, as one long frame.

    Parameters
    ----------
    data
        Canonical bars or a close panel.
    params
        :class:`RegimeSettings` (defaults: 3 states, first fit after 60 days, weekly re-fit at 1h).
    asset_times
        Times of the per-asset records (pass the snapshots' ``as_of``); ``None``: no asset records.
    symbols
        Restrict to these symbols (unknown ones raise ``UnknownSymbolError``).

    Returns
    -------
    DataFrame
        ``scope, datetime, regime, prob`` (see :data:`graphwiz_trader.graph.snapshot.REGIME_COLUMNS`),
        market rows first, then assets by symbol and time.
    """
    p = params or RegimeSettings()
    p.check()
    rets = log_returns(close_panel(data, symbols))
    market = market_regimes(market_features(rets, p.min_assets), p, progress=progress)
    parts = [market]
    if asset_times is not None and len(asset_times):
        parts.append(asset_regimes(rets, asset_times, p))
    out = pd.concat(parts, ignore_index=True)
    out["datetime"] = pd.DatetimeIndex(out["datetime"]).tz_convert("UTC")
    out["prob"] = out["prob"].astype(np.float64)
    return out
