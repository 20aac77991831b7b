"""Graph feature families (issue 13): peer aggregation, residual returns, lead-lag, structure dynamics and
regime conditioning, per (datetime, instrument), strictly point-in-time.

Inputs: :class:`~graphwiz_trader.features.graph_features.SnapshotMetrics` of the snapshots read back from
the graph store, the close panel, optionally the Alpha158 frame and the regime-state frame. At bar t
every feature uses only

- the latest snapshot S with ``as_of <= t`` (each snapshot is a function of bars ``<= as_of``),
- closes at times ``<= t`` (returns ``r_j(t) = log close_j(t) - log close_j(t-1)``, rows of the panel),
- Alpha158 values at t (Qlib computes them from bars ``<= t``),
- market regime records with ``datetime <= t``.

Notation as in :mod:`~graphwiz_trader.features.graph_features`: ``rho_ij`` the signed correlation of a kept
edge of S (0 when pruned), ``C(i)`` i's Louvain community in S, ``A`` S's assets. Unless stated, a
column is NaN when i is not a node of S (or there is no snapshot yet).

1. **peer** (``P_``), for each x in ``ret_h`` (own log return over h bars, ``log c_i(t) - log c_i(t-h)``,
   h in ``return_horizons``) and each Alpha158 column of ``peer_columns`` (only with ``alpha``):

   - ``P_nbr_<x>``  ``sum_j rho_ij x_j(t) / sum_j |rho_ij|`` over i's edges in S with ``x_j(t)`` defined
     (NaN when none);
   - ``P_dev_<x>``  ``x_i(t) - P_nbr_<x>``;
   - ``P_cdev_<x>`` ``x_i(t)`` minus the mean of ``x_j(t)`` over the other members of ``C(i)`` with a defined
     value (NaN for a singleton community or when none is defined).

2. **residual** (``R_``). For each snapshot k, on the ``window`` return rows ending at its ``as_of`` bar,
   per asset i: OLS ``r_i = a + b_m m + b_c c_i + e`` where ``m(t)`` is the mean return over A's assets
   with a return at t and ``c_i(t)`` the mean return of the other members of ``C(i)`` with one. Rows
   where any term is missing are left out. The community regressor is dropped (``b_c = 0``) when C(i)
   is a singleton, when C(i) holds all of A (then ``c_i`` is an exact function of ``m`` and ``r_i``), or
   when it is collinear with ``m`` in the window; the fit needs ``p + 2`` rows (``p`` = 2 or 3
   parameters), else NaN. At bar t, ``e_i(t) = r_i(t) - a - b_m m(t) - b_c c_i(t)`` with the betas of the
   snapshot current at t (and its assets and communities for ``m`` and ``c``).

   - ``R_mom_<L>``: sum of the defined ``e_i`` over bars ``t-L+1 .. t`` (each with the betas current at
     its bar); NaN when ``e_i(t)`` itself is undefined or fewer than ``ceil(L/2)`` of the L are defined
     (log-return units);
   - ``R_vol``: residual standard deviation of the current snapshot's fit (``n - p`` degrees of freedom);
   - ``R_z_<L>``: ``R_mom_L / (R_vol sqrt(n_L))``, ``n_L`` the number of residuals summed (``= L`` when
     complete).

3. **leadlag** (``L_``): the lead edges ``j -> i`` of S with lag ``L_j`` and lagged correlation ``rho_ji``;
   significance ``z_ji = atanh(|rho_ji|) sqrt(window - L_j - 3)`` (Fisher; ``window`` = the snapshots'
   window in bars, ``|rho|`` clipped at ``1 - 1e-12``).

   - ``L_lead_ret``     ``sum_j sign(rho_ji) z_ji r_j(t+1-L_j) / sum_j z_ji`` over leaders with a defined
     return (returns known at t since ``L_j >= 1``); 0 for a node without (such) leaders;
   - ``L_lead_ret_raw`` the numerator alone (0 without leaders);
   - ``L_n_leaders``    number of leaders of i in S; ``L_lead_z`` ``sum_j z_ji`` over them.

4. **dynamics** (``D_``), with ``k`` the current snapshot and ``k' = k - dynamics_lag``:

   - ``D_eig_chg``, ``D_wdeg_chg``: ``G_eigvec`` and ``G_wdeg`` at k minus at k' (NaN when i is not in both);
   - ``D_comm_switch``: ``1 - |C_k(i) & C_k'(i)| / |C_k(i) | C_k'(i)|`` (member sets, i included; 0 = same
     community, 1 = all new company);
   - ``D_mean_corr``: mean ``|rho|`` of S's kept edges (NaN without edges), market-wide (every row on a
     bar with a snapshot); ``D_mean_corr_chg``: minus its mean over the ``breakdown_snapshots`` snapshots
     before k (NaN until there are that many, NaN-mean over them);
   - ``D_own_corr_chg``: i's mean ``|rho|`` over its edges at k minus at k' (NaN when i has no edge in either);
   - ``D_regime_age``: bars since the market regime last changed (as ``G_mkt_regime_age``);
   - ``D_regime_switch_p``: for the market regime r current at t, (exits from r observed by t, i.e. a
     record in r followed by a record of another regime, both ``<= t``) / (records in r up to t);
     market-wide; NaN before the first market record.

5. **regime** (``X_``): for each ``condition_columns`` c (an Alpha158 column, or a column of the other
   families, which are computed first even when not requested) and each market regime name r:
   ``X_<c>_<r> = c * 1[market regime at t == r]`` (NaN before the first market record or where c is).

Output: float64 columns :func:`family_columns` (families in :data:`FAMILIES` order), rows and index exactly
those of :func:`~graphwiz_trader.features.graph_features.graph_features` (tz-aware UTC datetimes, Qlib
instrument codes; with ``members`` only member rows). Everything is vectorised per snapshot segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.core.threads import single_threaded
from graphwiz_trader.errors import DataError, SettingError
from graphwiz_trader.features.graph_families_base import BarContext, bar_context
from graphwiz_trader.features.graph_families_dynamics import dynamics_columns, leadlag_columns, market_regime_onehot
from graphwiz_trader.features.graph_families_peer import peer_columns, residual_columns
from graphwiz_trader.features.graph_features import SnapshotMetrics, bar_frame
from graphwiz_trader.graph.builders.panel import close_panel
from graphwiz_trader.graph.builders.regimes import market_regime_names

FAMILIES: tuple[str, ...] = ("peer", "residual", "leadlag", "dynamics", "regime")
PREFIX = {"peer": "P_", "residual": "R_", "leadlag": "L_", "dynamics": "D_", "regime": "X_"}
LEADLAG_COLUMNS: tuple[str, ...] = ("L_lead_ret", "L_lead_ret_raw", "L_n_leaders", "L_lead_z")
DYNAMICS_COLUMNS: tuple[str, ...] = ("D_eig_chg", "D_wdeg_chg", "D_comm_switch", "D_mean_corr", "D_mean_corr_chg",
                                     "D_own_corr_chg", "D_regime_age", "D_regime_switch_p")


def _positive_ints(name: str, values: tuple[int, ...], allow_empty: bool = False) -> None:
    if (not values and not allow_empty) or any(int(v) != v or v < 1 for v in values) or len(set(values)) != len(values):
        raise SettingError(f"FamilySettings.{name} must be distinct positive integers (bars), got {values!r}")


@dataclass(frozen=True)
class FamilySettings:
    """Knobs of :func:`family_features` (lengths in bars or snapshots, names of Alpha158 or family columns).

    Attributes
    ----------
    peer_columns
        Alpha158 columns aggregated over neighbours (besides the own log returns).
    return_horizons
        Horizons h (bars) of the own log returns ``ret_h`` used as peer inputs.
    residual_lookbacks
        Lookbacks L (bars) of the residual momentum ``R_mom_L`` and its z-score.
    dynamics_lag
        Snapshots back for the ``D_*_chg`` and ``D_comm_switch`` comparisons.
    breakdown_snapshots
        Trailing snapshots of the mean-correlation baseline of ``D_mean_corr_chg``.
    condition_columns
        Columns interacted with the market regime (``X_<c>_<r>``).
    """

    peer_columns: tuple[str, ...] = ("ROC5", "ROC20", "STD20", "VSTD20", "MA20", "RSV20")
    return_horizons: tuple[int, ...] = (1, 6, 24)
    residual_lookbacks: tuple[int, ...] = (1, 6, 24, 120)
    dynamics_lag: int = 1
    breakdown_snapshots: int = 10
    condition_columns: tuple[str, ...] = ("ROC5", "STD20", "P_dev_ret_1", "R_mom_24")

    def __post_init__(self) -> None:
        _positive_ints("return_horizons", tuple(self.return_horizons))
        _positive_ints("residual_lookbacks", tuple(self.residual_lookbacks))
        for name in ("dynamics_lag", "breakdown_snapshots"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise SettingError(f"FamilySettings.{name} must be a positive integer, got {v!r}")
        for name in ("peer_columns", "condition_columns"):
            v = tuple(getattr(self, name))
            if len(set(v)) != len(v) or not all(isinstance(c, str) and c for c in v):
                raise SettingError(f"FamilySettings.{name} must be distinct non-empty names, got {v!r}")

    @classmethod
    def daily(cls) -> "FamilySettings":
        """The daily preset: returns over 1, 5, 20 days; residual momentum over 1, 5, 20, 60 days."""
        return cls(return_horizons=(1, 5, 20), residual_lookbacks=(1, 5, 20, 60),
                   condition_columns=("ROC5", "STD20", "P_dev_ret_1", "R_mom_20"))


def _check_families(families: Sequence[str]) -> list[str]:
    if isinstance(families, str):
        families = [families]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise SettingError(f"unknown graph feature famil{'y' if len(unknown) == 1 else 'ies'} "
                           f"{', '.join(map(repr, unknown))}; expected some of {', '.join(FAMILIES)}")
    if not families:
        raise SettingError(f"no graph feature family requested; expected some of {', '.join(FAMILIES)}")
    return [f for f in FAMILIES if f in set(families)]


def _peer_inputs(settings: FamilySettings, with_alpha: bool) -> list[str]:
    return [f"ret_{h}" for h in settings.return_horizons] + (list(settings.peer_columns) if with_alpha else [])


def _one_family(family: str, settings: FamilySettings, names: tuple[str, ...], with_alpha: bool) -> list[str]:
    if family == "peer":
        return [f"P_{kind}_{x}" for x in _peer_inputs(settings, with_alpha) for kind in ("nbr", "dev", "cdev")]
    if family == "residual":
        lbs = settings.residual_lookbacks
        return [f"R_mom_{lb}" for lb in lbs] + ["R_vol"] + [f"R_z_{lb}" for lb in lbs]
    if family == "leadlag":
        return list(LEADLAG_COLUMNS)
    if family == "dynamics":
        return list(DYNAMICS_COLUMNS)
    return [f"X_{c}_{r}" for c in settings.condition_columns for r in names]


def family_columns(families: Sequence[str] = FAMILIES, settings: FamilySettings = FamilySettings(),
                   regime_names: Sequence[str] | None = None, *, with_alpha: bool = True) -> list[str]:
    """Column names of :func:`family_features`, in output order (families in :data:`FAMILIES` order).

    ``with_alpha=False``: the columns when no Alpha158 frame is given (peer inputs are the returns only).
    """
    names = tuple(regime_names) if regime_names is not None else market_regime_names(3)
    return [c for f in _check_families(families) for c in _one_family(f, settings, names, with_alpha)]


def alpha_arrays(alpha: pd.DataFrame, columns: Sequence[str], ctx: BarContext) -> dict[str, np.ndarray]:
    """Alpha158 columns as ``(T, N)`` arrays on the panel's bars (NaN where the frame has no row).

    Rows at other times or of instruments outside the panel are not used (the features only ever look at
    the panel's assets on its bars).

    Raises
    ------
    DataError
        when the frame is not indexed by ``(datetime, instrument)``, has duplicate rows, or lacks a column.
    """
    if not isinstance(alpha, pd.DataFrame) or not isinstance(alpha.index, pd.MultiIndex) \
            or list(alpha.index.names) != ["datetime", "instrument"]:
        got = list(alpha.index.names) if isinstance(alpha, pd.DataFrame) else type(alpha).__name__
        raise DataError(f"Alpha158 frame given to family_features must be indexed by (datetime, instrument), got {got}")
    missing = [c for c in columns if c not in alpha.columns]
    if missing:
        raise DataError(f"Alpha158 frame given to family_features lacks column(s) {', '.join(missing)} "
                        f"(FamilySettings.peer_columns / condition_columns); it has {len(alpha.columns)} columns")
    if alpha.index.has_duplicates:
        first = alpha.index[alpha.index.duplicated()][0]
        raise DataError(f"Alpha158 frame given to family_features has duplicate rows, first {first}")
    when = pd.DatetimeIndex(alpha.index.get_level_values("datetime"))
    when = when.tz_localize("UTC") if when.tz is None else when.tz_convert("UTC")
    row = ctx.times.get_indexer(when.as_unit("ns"))
    pos = {to_qlib_instrument(s): k for k, s in enumerate(ctx.symbols)}
    inst = alpha.index.get_level_values("instrument")
    col = np.fromiter((pos.get(str(x), -1) for x in inst), dtype=np.int64, count=len(inst))
    keep = (row >= 0) & (col >= 0)
    out: dict[str, np.ndarray] = {}
    for c in columns:
        arr = np.full(ctx.shape, np.nan)
        arr[row[keep], col[keep]] = alpha[c].to_numpy(dtype=np.float64)[keep]
        out[c] = arr
    return out


def _family_of(column: str) -> str | None:
    for fam, pre in PREFIX.items():
        if column.startswith(pre):
            return fam
    return None


def family_features(metrics: SnapshotMetrics, panel: pd.DataFrame, *, alpha: pd.DataFrame | None = None,
                    regimes: pd.DataFrame | None = None, window: int, families: Sequence[str] = FAMILIES,
                    settings: FamilySettings = FamilySettings(), regime_names: Sequence[str] | None = None,
                    members: pd.DataFrame | None = None) -> pd.DataFrame:
    """The graph feature families per (datetime, instrument) as of each bar (see the module docstring).

    Parameters
    ----------
    metrics
        :func:`~graphwiz_trader.features.graph_features.snapshot_metrics` of the snapshots (read back from the
        store) for the panel's symbols.
    panel
        Closes, tz-aware UTC times x symbols (``BTC/USDT``, ``SH600000``).
    alpha
        Alpha158 frame indexed ``(datetime, instrument)`` (Qlib codes; datetimes tz-naive UTC or tz-aware), or
        ``None``: the peer inputs are the own returns only and an Alpha158 condition column is an error.
    regimes
        Regime-state frame (``scope, datetime, regime, prob``) or ``None`` (regime-based columns NaN).
    window
        The snapshots' correlation window in bars (lead-lag significance, residual fits).
    families
        Which families to return (:data:`FAMILIES`).
    settings
        :class:`FamilySettings` (``FamilySettings.daily()`` for daily bars).
    regime_names
        Market regime names (default: the 3-state names).
    members
        Point-in-time universe as in :func:`~graphwiz_trader.features.graph_features.graph_features`.

    Returns
    -------
    DataFrame
        float64 columns ``family_columns(families, settings, regime_names, with_alpha=alpha is not None)``.

    Raises
    ------
    SettingError
        on an unknown family or a condition column that names no column of a family.
    DataError
        on a missing Alpha158 column, a bad frame, or metrics computed for other symbols.
    """
    fams = _check_families(families)
    if int(window) != window or window < 3:
        raise SettingError(f"window must be an integer >= 3 bars, got {window!r}")
    names = tuple(regime_names) if regime_names is not None else market_regime_names(3)
    panel = close_panel(panel, where="panel given to family_features")
    ctx = bar_context(metrics, panel)
    with_alpha = alpha is not None
    needed = set(fams)
    alpha_cols = list(settings.peer_columns) if with_alpha and "peer" in fams else []
    if "regime" in fams:
        for c in settings.condition_columns:
            fam = _family_of(c)
            if fam is None:
                if not with_alpha:
                    raise DataError(f"condition column {c!r} is an Alpha158 column but no Alpha158 frame was given "
                                    "to family_features (pass alpha=, or FamilySettings(condition_columns=...))")
                alpha_cols.append(c)
                continue
            if fam == "regime" or c not in _one_family(fam, settings, names, with_alpha):
                raise SettingError(f"condition column {c!r} is no column of the {fam} family; expected one of "
                                   f"{', '.join(_one_family(fam, settings, names, with_alpha)) if fam != 'regime' else 'the other families'}")
            needed.add(fam)
            if fam == "peer" and with_alpha:
                alpha_cols.extend(settings.peer_columns)
    alpha_cols = list(dict.fromkeys(alpha_cols))
    av = alpha_arrays(alpha, alpha_cols, ctx) if with_alpha and alpha_cols else {}
    cols: dict[str, np.ndarray] = {}
    with single_threaded():
        if "peer" in needed:
            xs: dict[str, np.ndarray] = {}
            for h in settings.return_horizons:
                ret = np.full(ctx.shape, np.nan)
                ret[h:] = ctx.logp[h:] - ctx.logp[:-h]
                xs[f"ret_{h}"] = ret
            if with_alpha:
                xs.update({c: av[c] for c in settings.peer_columns})
            cols.update(peer_columns(ctx, metrics, xs))
        if "residual" in needed:
            cols.update(residual_columns(ctx, metrics, int(window), settings.residual_lookbacks))
        if "leadlag" in needed:
            cols.update(leadlag_columns(ctx, metrics, int(window)))
        if "dynamics" in needed:
            cols.update(dynamics_columns(ctx, metrics, regimes, names, settings.dynamics_lag,
                                         settings.breakdown_snapshots))
        if "regime" in needed:
            onehot = market_regime_onehot(regimes, ctx, names)
            for c in settings.condition_columns:
                base = cols[c] if _family_of(c) is not None else av[c]
                for r in names:
                    cols[f"X_{c}_{r}"] = base * onehot[r]
    order = family_columns(fams, settings, names, with_alpha=with_alpha)
    return bar_frame(cols, order, panel, members, where="family_features")
