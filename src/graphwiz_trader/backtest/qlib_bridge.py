"""Bridge to Qlib's own backtest: ``TopkDropoutStrategy`` + ``SimulatorExecutor`` on a Qlib data folder.

Qlib trades the score of day d-1 at day d's deal price (its strategy shifts the signal by one step),
so a point-in-time score at d-1's close never sees d.

Settings
--------
``CSI300_SETTINGS`` are Qlib's published CSI300 benchmark settings: open_cost 0.0005, close_cost
0.0015, min_cost 5, limit_threshold 0.095, deal_price close, trade_unit 100, benchmark SH000300.
``CRYPTO_SETTINGS``: no price-limit rule, fractional units (``trade_unit=None``), 10 bps per side,
no minimum cost, benchmark BTCUSDT; the 24/7 calendar is the calendar of the crypto Qlib folder
(written by ``graphwiz data to-qlib``), and metrics annualise with 365 periods per year.

Two Qlib details this module handles:

* ``Exchange`` replaces ``limit_threshold=None`` by the region default (0.095 for ``cn``), so "no
  limit" is passed as ``inf``, which no change can reach.
* Qlib's float limit is ``$change >= threshold`` with ``$change`` a fraction, but the shared CSI300
  folder stores ``$change`` in percent (5.03 for +5.03%), which flags almost every stock as
  limit-hit and blocks nearly all trades. ``limit_source``:

  - ``change_auto`` (default): detect the unit of ``$change`` on the scored instruments (median of
    ``|$change| / |$close/Ref($close,1)-1|`` is ~1 or ~100) and pass the threshold in that unit
    (0.095 or 9.5): Qlib's own rule on the same field;
  - ``close``: compute the limit from adjusted closes, ``Ge($close/Ref($close,1)-1, thr)`` for buys
    and ``Le(..., -thr)`` for sells;
  - ``change``: pass the threshold as given (only right when ``$change`` is a fraction).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QlibExchangeSettings:
    """Qlib ``Exchange``/backtest settings. Costs are fractions of traded value (0.0005 = 5 bps);
    ``min_cost`` is in account currency; ``limit_threshold`` is a fraction (None: no limit rule)."""

    open_cost: float = 0.0005
    close_cost: float = 0.0015
    min_cost: float = 5.0
    limit_threshold: float | None = 0.095
    limit_source: Literal["change_auto", "close", "change"] = "change_auto"
    deal_price: str = "close"
    trade_unit: int | None = 100
    freq: str = "day"
    benchmark: str | None = "SH000300"
    periods_per_year: float = 252.0
    account: float = 1e8
    risk_degree: float = 0.95


CSI300_SETTINGS = QlibExchangeSettings()
CRYPTO_SETTINGS = QlibExchangeSettings(open_cost=0.001, close_cost=0.001, min_cost=0.0, limit_threshold=None,
                                       trade_unit=None, benchmark="BTCUSDT", periods_per_year=365.0,
                                       account=1e6)


@dataclass(frozen=True)
class QlibBacktestResult:
    """Qlib's report (account, return, cost, bench, turnover per step), positions per step,
    trade indicators, and risk figures of excess return with and without cost."""

    report: pd.DataFrame
    positions: dict[pd.Timestamp, object]
    indicators: pd.DataFrame
    risk: dict[str, dict[str, float]]
    settings: QlibExchangeSettings


def change_unit(codes: list[str], start: str | pd.Timestamp, end: str | pd.Timestamp, freq: str = "day") -> str:
    """``fraction`` or ``percent``: the unit of Qlib's ``$change`` field on ``codes`` (call after init).

    Median over days with both values non-zero of ``|$change| / |$close/Ref($close,1)-1|``: ~1 is a
    fraction, ~100 percent. Raises :class:`DataError` for anything else or fewer than 20 such days.
    """
    from qlib.data import D

    df = D.features(codes, ["$change", "$close/Ref($close,1)-1"], start_time=start, end_time=end, freq=freq)
    a = df.iloc[:, 0].to_numpy(dtype="float64")
    b = df.iloc[:, 1].to_numpy(dtype="float64")
    ok = np.isfinite(a) & np.isfinite(b) & (np.abs(a) > 1e-9) & (np.abs(b) > 1e-9)
    if ok.sum() < 20:
        raise DataError(f"cannot tell the unit of $change: {int(ok.sum())} usable days for {len(codes)} "
                        f"instruments in {start}..{end}")
    ratio = float(np.median(np.abs(a[ok]) / np.abs(b[ok])))
    if 0.8 <= ratio <= 1.25:
        return "fraction"
    if 80.0 <= ratio <= 125.0:
        return "percent"
    raise DataError(f"$change is neither a fraction nor a percent of the close-to-close return "
                    f"(median ratio {ratio:.3g}, {start}..{end})")


def _limit_arg(s: QlibExchangeSettings, codes: list[str] | str, start: str | pd.Timestamp,
               end: str | pd.Timestamp) -> float | tuple[str, str]:
    if s.limit_threshold is None:
        return math.inf
    thr = float(s.limit_threshold)
    if s.limit_source == "change":
        return thr
    if s.limit_source == "close":
        return (f"Ge($close/Ref($close,1)-1,{thr})", f"Le($close/Ref($close,1)-1,{-thr})")
    from qlib.data import D

    sample = D.instruments(codes) if isinstance(codes, str) else codes[:100]
    unit = change_unit(sample, start, end, s.freq)
    if unit == "percent":
        log.info("$change is stored in percent here; passing limit_threshold %.4g as %.4g", thr, 100 * thr)
        return 100.0 * thr
    return thr


def qlib_expression_scores(expression: str, instruments: str | list[str], start: str | pd.Timestamp,
                           end: str | pd.Timestamp, freq: str = "day") -> pd.Series:
    """One Qlib expression as a score Series indexed (datetime, instrument), NaN rows dropped.

    Call after ``init_qlib``. E.g. ``"1-$close/Ref($close,20)"`` is the negative 20-day return,
    known at each day's close.
    """
    from qlib.data import D

    inst = D.instruments(instruments) if isinstance(instruments, str) else instruments
    df = D.features(inst, [expression], start_time=start, end_time=end, freq=freq)
    if df.empty:
        raise DataError(f"qlib returned no rows for {expression!r} on {instruments} {start}..{end}")
    s = df.iloc[:, 0].astype("float64").swaplevel().sort_index().dropna()
    s.index = s.index.set_names(["datetime", "instrument"])
    return s.rename("score")


def run_qlib_topk_backtest(
    scores: pd.Series,
    provider_uri: str | Path,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    topk: int = 50,
    n_drop: int = 5,
    settings: QlibExchangeSettings = CSI300_SETTINGS,
    codes: str | list[str] | None = None,
    region: str = "cn",
    mlflow_dir: str | Path | None = None,
) -> QlibBacktestResult:
    """Backtest ``scores`` with Qlib's ``TopkDropoutStrategy`` (hold ``topk``, replace ``n_drop`` a step).

    Parameters
    ----------
    scores : Series indexed (datetime, instrument) of scores known at each step's close.
    provider_uri : Qlib data folder (initialised with :func:`graphwiz_trader.data.qlib_runtime.init_qlib`).
    start, end : closed backtest range on Qlib's calendar.
    settings : :data:`CSI300_SETTINGS`, :data:`CRYPTO_SETTINGS` or your own.
    codes : instruments the exchange loads quotes for (a market name such as ``csi300``, or a list);
        default: the instruments that have a score between ``start`` and ``end`` (only those can be
        bought; loading fewer quotes is the main cost of a short backtest).

    Returns
    -------
    QlibBacktestResult; ``risk['excess_return_without_cost']`` and ``risk['excess_return_with_cost']``
    hold Qlib's ``risk_analysis`` (mean, std, annualized_return, information_ratio, max_drawdown).
    """
    from graphwiz_trader.data.qlib_runtime import init_qlib

    if not isinstance(scores.index, pd.MultiIndex) or scores.index.nlevels != 2:
        raise DataError("scores must be a Series indexed (datetime, instrument)")
    if scores.index.names[0] != "datetime":
        if scores.index.names[1] == "datetime":
            scores = scores.swaplevel().sort_index()
        else:
            raise DataError(f"scores index levels must be named (datetime, instrument), got {scores.index.names}")
    if topk < 1 or not 0 <= n_drop <= topk:
        raise DataError(f"need topk >= 1 and 0 <= n_drop <= topk, got topk={topk}, n_drop={n_drop}")
    init_qlib(provider_uri, region=region, mlflow_dir=mlflow_dir)
    if codes is None:
        dt = scores.index.get_level_values(0)
        window = scores[(dt >= pd.Timestamp(start) - pd.Timedelta(days=31)) & (dt <= pd.Timestamp(end))]
        codes = sorted(window.index.get_level_values(1).unique())
        if not codes:
            raise DataError(f"no scores between {start} and {end}")

    from qlib.backtest import backtest as qlib_backtest
    from qlib.contrib.evaluate import risk_analysis
    from qlib.contrib.strategy import TopkDropoutStrategy

    strategy = TopkDropoutStrategy(signal=scores, topk=topk, n_drop=n_drop, risk_degree=settings.risk_degree)
    executor = {"class": "SimulatorExecutor", "module_path": "qlib.backtest.executor",
                "kwargs": {"time_per_step": settings.freq, "generate_portfolio_metrics": True}}
    exchange_kwargs: dict[str, object] = {
        "freq": settings.freq, "limit_threshold": _limit_arg(settings, codes, start, end),
        "deal_price": settings.deal_price,
        "open_cost": settings.open_cost, "close_cost": settings.close_cost, "min_cost": settings.min_cost,
        "trade_unit": settings.trade_unit, "codes": codes,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        portfolio, indicator = qlib_backtest(start_time=start, end_time=end, strategy=strategy, executor=executor,
                                             benchmark=settings.benchmark, account=settings.account,
                                             exchange_kwargs=exchange_kwargs)
    key = next(iter(portfolio))
    report, positions = portfolio[key]
    ind = indicator[key][0] if isinstance(indicator[key], tuple) else indicator[key]
    n = settings.periods_per_year
    excess = report["return"] - report["bench"]
    risk = {
        "excess_return_without_cost": risk_analysis(excess, N=n)["risk"].to_dict(),
        "excess_return_with_cost": risk_analysis(excess - report["cost"], N=n)["risk"].to_dict(),
        "return_with_cost": risk_analysis(report["return"] - report["cost"], N=n)["risk"].to_dict(),
    }
    log.info("qlib topk backtest %s..%s: %d steps, excess return with cost annualised %.4f",
             start, end, len(report), risk["excess_return_with_cost"]["annualized_return"])
    return QlibBacktestResult(report, dict(positions), ind, risk, settings)


def held_amounts(result: QlibBacktestResult, when: pd.Timestamp) -> pd.Series:
    """Instrument -> amount held after step ``when`` (Qlib's adjusted-share units)."""
    pos = result.positions[pd.Timestamp(when)]
    stocks = pos.get_stock_list()
    return pd.Series({s: float(pos.get_stock_amount(s)) for s in stocks}, dtype="float64")


def crypto_settings(**overrides: object) -> QlibExchangeSettings:
    """:data:`CRYPTO_SETTINGS` with overrides (e.g. ``freq='60min', periods_per_year=8760``)."""
    return replace(CRYPTO_SETTINGS, **overrides)  # type: ignore[arg-type]


__all__ = ["CRYPTO_SETTINGS", "CSI300_SETTINGS", "QlibBacktestResult", "QlibExchangeSettings", "change_unit",
           "crypto_settings", "held_amounts", "qlib_expression_scores", "run_qlib_topk_backtest"]
