"""Cost-aware backtest of a target-weight frame: decide at bar t's close, fill at bar t+1's open.

Accounting (quote currency, per bar t):

1. If a decision was made at bar t-1's close (a non-empty target row on a rebalance bar), fill at
   bar t's open: equity is marked at the open (a symbol without an open bar is marked at its last
   close), target units are ``w_i * equity / open_i``; orders below ``min_order_notional`` and
   orders in symbols without a tradable bar (no open, zero volume, or no volume history when impact
   is on) are not sent (counted in ``skipped``). Costs (fees, half-spread + slippage, square-root
   impact on the trailing ADV known at t-1) are paid from cash, so fills are at the open price and
   cash may dip below zero by the costs when fully invested (at zero interest).
2. Futures: liquidation if the bar's worst-case equity (longs at the low, shorts at the high) falls
   below ``maintenance_margin`` x gross notional at those prices; the book is closed at those prices
   minus the liquidation fee, equity floors at 0 and nothing trades afterwards. Then funding is paid
   on the notional at the bar's close for each 00/08/16 UTC settlement inside the bar.
3. Equity at bar t's close = cash + sum(units x close) (missing closes carry the last close).

Units held are path dependent (minimum order size, impact on absolute notional, liquidation), so
:func:`graphwiz_trader.backtest.fills.walk_fills` steps through the bars where something can happen
(fill bars on spot; every bar on futures), a fixed handful of NumPy calls over all symbols per bar.
Everything that does not depend on the path (marks, tradability, ADV, funding times, schedule) is
precomputed for the whole panel, and what follows from the fills (units, notionals, impact per symbol,
weights, orders not sent) is computed for the whole panel afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.fills import FuturesRules, walk_fills
from graphwiz_trader.backtest.metrics import compute_metrics
from graphwiz_trader.backtest.settings import BacktestSettings
from graphwiz_trader.core.threads import single_threaded
from graphwiz_trader.errors import DataError, GraphwizError, UnknownSymbolError

log = logging.getLogger(__name__)
_YEAR = pd.Timedelta(days=365)
_FUNDING_PERIOD_NS = pd.Timedelta(hours=8).value
_OHLCV = ("open", "high", "low", "close", "volume")


class TargetWeightError(GraphwizError):
    """Target weights break the market's rules (short or levered on spot, leverage above the cap)."""


@dataclass(frozen=True)
class MarketPanel:
    """Bars aligned on the union of their timestamps: T x N float64 arrays, NaN where a symbol has no bar."""

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    bar: pd.Timedelta

    @classmethod
    def from_bars(cls, bars: Mapping[str, pd.DataFrame], bar: pd.Timedelta | None = None) -> MarketPanel:
        """Align canonical bars (see :mod:`graphwiz_trader.data.bars`). ``bar`` defaults to the most
        common spacing of the union index."""
        if not bars:
            raise DataError("no bars given to the backtest")
        for sym, df in bars.items():
            if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
                raise DataError(f"{sym}: bars need a tz-aware UTC DatetimeIndex")
            # a strictly increasing index answers uniqueness without building a hash table
            if not (df.index.is_monotonic_increasing and df.index.is_unique) and df.index.has_duplicates:
                raise DataError(f"{sym}: duplicate bar timestamps, e.g. {df.index[df.index.duplicated()][0]}")
            missing = [c for c in _OHLCV if c not in df.columns]
            if missing:
                raise DataError(f"{sym}: missing column(s) {', '.join(missing)}")
        symbols = tuple(bars)
        frames = [bars[s] for s in symbols]
        index = _union_index([df.index for df in frames])
        stamps = index.asi8
        fields = tuple(np.full((len(index), len(symbols)), np.nan) for _ in _OHLCV)
        for j, df in enumerate(frames):
            rows = _rows_in(stamps, df.index.as_unit(index.unit).asi8)
            for values, column in zip(fields, _OHLCV):
                values[rows, j] = df[column].to_numpy(dtype="float64")
        if bar is None:
            diffs = np.diff(index.asi8)
            if len(diffs) == 0:
                raise DataError("need at least two bar times to infer the bar length; pass bar=")
            vals, counts = np.unique(diffs, return_counts=True)
            bar = pd.Timedelta(int(vals[np.argmax(counts)]), unit=index.unit)
        return cls(index, symbols, *fields, bar=bar)

    def close_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.close, index=self.index, columns=list(self.symbols))


def _rows_in(stamps: np.ndarray, own: np.ndarray) -> slice | np.ndarray | None:
    """Where the times ``own`` sit in the sorted times ``stamps`` (same unit): a slice when they are a gap-free
    run of them (the usual case), else positions; None when some are not in ``stamps``."""
    first = int(np.searchsorted(stamps, own[0])) if len(own) else 0
    if np.array_equal(stamps[first:first + len(own)], own):
        return slice(first, first + len(own))
    pos = np.searchsorted(stamps, own)
    found = pos < len(stamps)
    return pos if found.all() and np.array_equal(stamps[pos], own) else None


def _union_index(indexes: list[pd.DatetimeIndex]) -> pd.DatetimeIndex:
    """The sorted union of tz-aware indexes, as ``pd.concat(..., axis=1, sort=True)`` aligns them: the finest
    time unit, the common time zone (UTC when they differ), named ``datetime``."""
    units = ("s", "ms", "us", "ns")
    unit = max((ix.unit for ix in indexes), key=units.index)
    each = [ix.as_unit(unit).asi8 for ix in indexes]  # UTC epoch in `unit`
    stamps = np.sort(max(each, key=len))
    for own in each:
        if _rows_in(stamps, own) is None:
            stamps = np.union1d(stamps, own)
    zones = {str(ix.tz) for ix in indexes}
    tz = indexes[0].tz if len(zones) == 1 else "UTC"
    naive = pd.DatetimeIndex(stamps.view(f"datetime64[{unit}]"), name="datetime")
    return naive.tz_localize("UTC").tz_convert(tz)


def rebalance_mask(index: pd.DatetimeIndex, bar: pd.Timedelta, rebalance: int | str) -> np.ndarray:
    """Bars at whose close a rebalance may be decided: every N-th bar (``(t+1) % N == 0``) or bars
    whose close time falls on a boundary of the fixed frequency ``rebalance`` (e.g. ``"1D"``)."""
    if isinstance(rebalance, int):
        return (np.arange(len(index)) + 1) % rebalance == 0
    close_time = index + bar
    return np.asarray(close_time == close_time.floor(rebalance))


def rebalance_times(index: pd.DatetimeIndex, bar: pd.Timedelta, rebalance: int | str) -> pd.DatetimeIndex:
    """The decision times of :func:`rebalance_mask`."""
    return index[rebalance_mask(index, bar, rebalance)]


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest produced. Money is in quote currency; weights and turnover are fractions.

    Attributes
    ----------
    equity : equity at each bar's close (index = bar open time, like the bars).
    weights : position value / equity at each bar's close.
    units : units held at each bar's close.
    trade_units : signed units filled at each bar's open (0: no fill); a forced liquidation is not a
        fill here (see ``liquidated_at`` and ``costs['liquidation']``).
    trade_notional : signed notional filled at each bar's open.
    turnover : traded notional (buys + sells) / equity at the open, per bar.
    costs : per bar: fees, spread_slippage, impact, funding (negative = received), liquidation.
    skipped : orders not sent: ``untradable`` (no bar/volume) and ``below_min_order``.
    liquidated_at : bar of the liquidation (futures), else None.
    """

    equity: pd.Series
    weights: pd.DataFrame
    units: pd.DataFrame
    trade_units: pd.DataFrame
    trade_notional: pd.DataFrame
    impact_cost: pd.DataFrame
    turnover: pd.Series
    costs: pd.DataFrame
    initial_capital: float
    periods_per_year: float
    settings: BacktestSettings
    skipped: dict[str, int] = field(default_factory=dict)
    liquidated_at: pd.Timestamp | None = None
    name: str = ""

    @property
    def returns(self) -> pd.Series:
        """Per-bar returns of equity; the first bar is measured from ``initial_capital``."""
        prev = self.equity.shift(1)
        prev.iloc[0] = self.initial_capital
        return (self.equity / prev - 1.0).rename("return")

    @property
    def gross_exposure(self) -> pd.Series:
        return self.weights.abs().sum(axis=1).rename("gross_exposure")

    def trades(self) -> pd.DataFrame:
        """One row per fill: datetime (the bar whose open filled it), symbol, side, units, price,
        notional, fee, spread_slippage and impact (quote currency)."""
        u = self.trade_units.to_numpy()
        ti, si = np.nonzero(u)
        notional = np.abs(self.trade_notional.to_numpy()[ti, si])
        units = u[ti, si]
        c = self.settings.costs
        return pd.DataFrame({
            "datetime": self.trade_units.index[ti],
            "symbol": np.asarray(self.trade_units.columns)[si],
            "side": np.where(units > 0, "buy", "sell"),
            "units": units,
            "price": notional / np.abs(units),
            "notional": notional,
            "fee": notional * c.fee_bps / 1e4,
            "spread_slippage": notional * (c.half_spread_bps + c.slippage_bps) / 1e4,
            "impact": self.impact_cost.to_numpy()[ti, si],
        })

    def metrics(self) -> dict[str, float]:
        """Performance metrics (see :func:`graphwiz_trader.backtest.metrics.compute_metrics`)."""
        return compute_metrics(self.equity, self.periods_per_year, self.initial_capital,
                               gross_exposure=self.gross_exposure, turnover=self.turnover,
                               costs=self.costs.sum(axis=1))


def _funding_events(index: pd.DatetimeIndex, bar: pd.Timedelta) -> np.ndarray:
    start = index.asi8
    end = start + bar.value
    return (end // _FUNDING_PERIOD_NS - start // _FUNDING_PERIOD_NS).astype("float64")


def run_backtest(market: MarketPanel | Mapping[str, pd.DataFrame], targets: pd.DataFrame,
                 settings: BacktestSettings | None = None, name: str = "") -> BacktestResult:
    """Fill target weights decided at bar t's close at bar t+1's open, with costs.

    Parameters
    ----------
    market : a :class:`MarketPanel` or canonical bars ``{symbol: frame}``.
    targets : decision time x symbol target weights (fractions of equity) known at that bar's
        close. A row with at least one finite value on a rebalance bar is a decision; NaN inside a
        decision row means weight 0; other rows are ignored. Symbols not in ``targets`` get weight 0.
    settings : costs, market type, leverage, schedule.

    Raises
    ------
    UnknownSymbolError
        when ``targets`` names a symbol without bars.
    DataError
        when a target time is not a bar time.
    TargetWeightError
        when a decision breaks the market's rules (spot: negative weights or sum above 1;
        futures: gross above ``max_leverage``).
    """
    with single_threaded("blas"):  # tiny per-bar vectors: threads only add overhead
        return _run(market, targets, settings, name)


def _run(market: MarketPanel | Mapping[str, pd.DataFrame], targets: pd.DataFrame,
         settings: BacktestSettings | None, name: str) -> BacktestResult:
    settings = settings or BacktestSettings()
    panel = market if isinstance(market, MarketPanel) else MarketPanel.from_bars(market)
    T, N = panel.close.shape
    syms = list(panel.symbols)
    unknown = [str(c) for c in targets.columns if c not in syms]
    if unknown:
        raise UnknownSymbolError(unknown, "backtest bars", syms)
    if targets.index.has_duplicates:
        raise DataError(f"target weights have repeated times, e.g. {targets.index[targets.index.duplicated()][0]}")
    if not targets.index.isin(panel.index).all():
        bad = targets.index[~targets.index.isin(panel.index)][:3]
        raise DataError(f"target weights at times that are not bar times: {', '.join(map(str, bad))}")
    if targets.index.equals(panel.index) and list(targets.columns) == syms:
        W = targets.to_numpy(dtype="float64", copy=True)
    else:
        W = targets.reindex(index=panel.index, columns=syms).to_numpy(dtype="float64", copy=True)  # ours to edit
    if np.isinf(W).any():
        raise TargetWeightError("target weights contain +-inf")
    missing = np.isnan(W)
    decide = ~missing.all(axis=1) & rebalance_mask(panel.index, panel.bar, settings.rebalance)
    np.copyto(W, 0.0, where=missing)
    _check_targets(W, decide, panel.index, settings)

    c = settings.costs
    fee_rate = c.fee_bps / 1e4
    ss_rate = (c.half_spread_bps + c.slippage_bps) / 1e4
    impact_k = c.impact_coef_bps / 1e4
    min_notional = c.min_order_notional
    futures = settings.market == "futures"
    capital = float(settings.initial_capital)

    O, H, L, C, V = panel.open, panel.high, panel.low, panel.close, panel.volume
    Cf0 = _nan_to_zero(pd.DataFrame(C).ffill().to_numpy())  # close, carried over gaps; 0 before the first bar
    open_ok = np.isfinite(O)
    Omark = O.copy()  # the open, else the last close (0 before the first bar)
    Omark[0, ~open_ok[0]] = 0.0
    np.copyto(Omark[1:], Cf0[:-1], where=~open_ok[1:])
    tradable = open_ok & (V > 0)  # NaN volume compares False
    inv_sqrt_adv = np.zeros((T, N))
    if impact_k > 0:
        quote_vol = _nan_to_zero(V.copy())
        quote_vol *= Cf0
        adv = pd.DataFrame(quote_vol).rolling(c.impact_volume_window_bars, min_periods=1).mean().to_numpy()[:-1]
        known = adv > 0  # the ADV known at t-1 prices an order at t
        with np.errstate(divide="ignore", invalid="ignore"):  # ADV <= 0: not known, set to 0 below
            np.divide(1.0, np.sqrt(adv), out=inv_sqrt_adv[1:])
        np.copyto(inv_sqrt_adv[1:], 0.0, where=~known)
        tradable[0] = False
        tradable[1:] &= known
    Osafe = np.where(tradable, O, 1.0)
    fut = None
    if futures:
        fut = FuturesRules(low=np.where(np.isfinite(L), L, Cf0), high=np.where(np.isfinite(H), H, Cf0),
                           funding_events=_funding_events(panel.index, panel.bar),
                           funding_rate=settings.funding_rate_bps_per_8h / 1e4,
                           maintenance_margin=settings.maintenance_margin,
                           liquidation_fee=settings.liquidation_fee_bps / 1e4, close_mark=Cf0)

    execute = np.zeros(T, dtype=bool)
    execute[1:] = decide[:-1]
    walk = walk_fills(W, execute, Omark, Osafe, tradable, inv_sqrt_adv, capital=capital, fee_rate=fee_rate,
                      spread_slippage_rate=ss_rate, impact_k=impact_k, min_notional=min_notional, futures=fut)
    DQ, cash_arr, e_open_arr, liquidated_at = walk.trade_units, walk.cash, walk.equity_at_open, walk.liquidated_at
    Q = np.cumsum(DQ, axis=0)  # units held: the running sum of fills (bit for bit the loop's q + dq)
    if liquidated_at is not None:
        Q[liquidated_at:] = 0.0

    # fills, impact per symbol and orders not sent, recomputed over the whole panel
    NOT = DQ * Osafe
    IMP = walk.impact_base  # notional ** 1.5 per fill: x impact_k / sqrt(ADV) is the impact paid
    if impact_k > 0:
        IMP *= impact_k
        IMP *= inv_sqrt_adv
    # orders not sent: a wanted trade (|target value - held value| above 1e-12 of equity at the open) without
    # a fill, on untradable bars or below the minimum notional; only the (bar, symbol) cells without a fill
    ex = np.flatnonzero(execute & (e_open_arr > 0))  # NaN (no fill bar, or after a liquidation) compares False
    contiguous = len(ex) > 0 and ex[-1] - ex[0] + 1 == len(ex)  # fill bars in one run: a view, not a copy
    r, j = np.nonzero((DQ[ex[0]:ex[-1] + 1] if contiguous else DQ[ex]) == 0)
    r = ex[r]
    e_r = e_open_arr[r]
    gap = W[r - 1, j] * e_r - Q[r - 1, j] * Omark[r, j]
    want = np.abs(gap) > 1e-12 * e_r
    tradable_r = tradable[r, j]
    skipped_untradable = int(np.count_nonzero(want & ~tradable_r))
    skipped_small = int(np.count_nonzero(want & tradable_r)) if min_notional > 0 else 0

    equity = cash_arr + np.einsum("ij,ij->i", Q, Cf0)
    weights = Q * Cf0
    with np.errstate(divide="ignore", invalid="ignore"):
        weights /= equity[:, None]
        turnover = np.where(e_open_arr > 0, walk.traded_notional / e_open_arr, 0.0)
    positive = equity > 0
    if not positive.all():
        weights[~positive] = 0.0
    idx = panel.index
    ppy = settings.periods_per_year or float(_YEAR / panel.bar)
    skipped = {"untradable": skipped_untradable, "below_min_order": skipped_small}
    if skipped_untradable or skipped_small:
        log.info("%s: %d orders not sent on untradable bars, %d below the %.4g minimum notional",
                 name or "backtest", skipped_untradable, skipped_small, min_notional)
    if not futures and cash_arr.min() < 0:
        log.warning("%s: spot cash went negative (min %.6g) because trading costs came on top of targets that "
                    "were (nearly) fully invested; keep a cash buffer of at least one rebalance's costs",
                    name or "backtest", cash_arr.min())
    liq_time = idx[liquidated_at] if liquidated_at is not None else None
    if liq_time is not None:
        log.warning("%s: liquidated at %s (worst-case equity below %.4g of gross notional)",
                    name or "backtest", liq_time, settings.maintenance_margin)
    return BacktestResult(
        equity=pd.Series(equity, index=idx, name="equity"),
        weights=pd.DataFrame(weights, index=idx, columns=syms),
        units=pd.DataFrame(Q, index=idx, columns=syms),
        trade_units=pd.DataFrame(DQ, index=idx, columns=syms),
        trade_notional=pd.DataFrame(NOT, index=idx, columns=syms),
        impact_cost=pd.DataFrame(IMP, index=idx, columns=syms),
        turnover=pd.Series(turnover, index=idx, name="turnover"),
        costs=pd.DataFrame({"fees": walk.fees, "spread_slippage": walk.spread_slippage, "impact": walk.impact,
                            "funding": walk.funding, "liquidation": walk.liquidation}, index=idx),
        initial_capital=capital,
        periods_per_year=ppy,
        settings=settings,
        skipped=skipped,
        liquidated_at=liq_time,
        name=name,
    )


def _nan_to_zero(x: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(x, nan=0.0)``, in place when ``x`` is writable: NaN -> 0, infinities -> the largest
    finite floats."""
    if not x.flags.writeable:  # a read-only view (pandas copy-on-write)
        x = x.copy()
    np.copyto(x, 0.0, where=np.isnan(x))
    if not np.isfinite(x).all():
        np.nan_to_num(x, copy=False)
    return x


def _check_targets(W: np.ndarray, decide: np.ndarray, index: pd.DatetimeIndex, settings: BacktestSettings) -> None:
    rows = W if decide.all() else W[decide]
    if not len(rows):
        return
    times = index[decide]
    tol = 1e-9
    lowest = float(rows.min())
    total = None
    if settings.market == "spot":
        if lowest < -tol:
            neg = (rows < -tol).any(axis=1)
            raise TargetWeightError(f"spot targets cannot be short: negative weight at {times[neg][0]}; "
                                    "use market: futures for long-short")
        total = rows.sum(axis=1)
        over = total > 1.0 + tol
        if over.any():
            raise TargetWeightError(f"spot targets sum to {total[over][0]:.6g} > 1 at "
                                    f"{times[over][0]}; spot cannot be levered")
    gross = total if total is not None and lowest >= 0 else np.abs(rows).sum(axis=1)  # no shorts: gross = sum
    over = gross > settings.max_leverage + tol
    if over.any():
        raise TargetWeightError(f"gross exposure {gross[over][0]:.6g} above max_leverage {settings.max_leverage:g} "
                                f"at {times[over][0]}")
