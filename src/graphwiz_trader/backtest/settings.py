"""Validated backtest settings: costs (bps), market type, leverage, rebalance schedule, and the whole
``config/backtest.yaml`` model (:class:`BacktestRunSettings`, loaded by :func:`load_backtest_config`).

Windows in the file are durations (``"60D"``, ``"24h"``) converted to bars with the data's bar length, so one
file serves the synthetic default (daily bars) and real hourly data.

Rates are in basis points (1 bp = 0.01%), notionals in quote currency (USDT), margins and
leverage in fractions of equity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from graphwiz_trader.config.base import StrictModel
from graphwiz_trader.config.loader import load_yaml, validate_mapping
from graphwiz_trader.portfolio.settings import OptimiserSettings, PortfolioConstraints, SizingSettings



class CostModel(StrictModel):
    """Trading costs charged on every fill at the bar's open.

    cost_i = notional_i * (fee + half_spread + slippage + impact_i) / 1e4 with
    impact_i = impact_coef_bps * sqrt(notional_i / ADV_i), ADV_i being the mean quote volume
    (volume x close) per bar over the ``impact_volume_window_bars`` bars ending at the decision bar
    (known when the order is decided). Orders below ``min_order_notional`` are not sent.

    Defaults: Binance spot fee 10 bps (taker and maker, no BNB discount), a 1 bp half-spread and
    2 bps slippage for liquid pairs, 10 bps impact at 100% of an average bar's volume, and a
    10 USDT minimum notional.
    """

    fee_side: Literal["taker", "maker"] = "taker"
    taker_fee_bps: float = Field(default=10.0, ge=0, le=500)
    maker_fee_bps: float = Field(default=10.0, ge=-50, le=500)
    half_spread_bps: float = Field(default=1.0, ge=0, le=1000)
    slippage_bps: float = Field(default=2.0, ge=0, le=1000)
    impact_coef_bps: float = Field(default=10.0, ge=0, le=10_000)
    impact_volume_window_bars: int = Field(default=24, ge=1)
    min_order_notional: float = Field(default=10.0, ge=0)

    @property
    def fee_bps(self) -> float:
        return self.taker_fee_bps if self.fee_side == "taker" else self.maker_fee_bps

    @classmethod
    def zero(cls) -> CostModel:
        """No fees, spread, slippage, impact or minimum order (for gross-of-cost comparisons)."""
        return cls(taker_fee_bps=0, maker_fee_bps=0, half_spread_bps=0, slippage_bps=0, impact_coef_bps=0,
                   min_order_notional=0)


class BacktestSettings(StrictModel):
    """How a target-weight frame is turned into fills, costs and equity.

    Parameters
    ----------
    initial_capital : starting equity in quote currency.
    market : ``spot`` (weights >= 0, sum <= 1) or ``futures`` (long/short up to ``max_leverage``,
        funding and liquidation apply).
    max_leverage : gross exposure cap (fraction of equity) the targets must respect.
    rebalance : ``N`` (decide at every N-th bar's close, counted from the first bar) or a fixed
        pandas frequency such as ``"1D"``/``"8h"`` (decide at bars whose close falls on a period boundary).
    funding_rate_bps_per_8h : futures funding rate paid by longs (received by shorts) at each
        00/08/16 UTC settlement, on the position's notional at that bar's close (Binance's baseline is 1 bp).
    maintenance_margin : fraction of gross notional; liquidation when the bar's worst-case equity
        (longs at the low, shorts at the high) falls below it.
    liquidation_fee_bps : charged on the gross notional liquidated.
    periods_per_year : bars per year for metrics (None: 365 days of the bar length, 24/7 markets).
    """

    initial_capital: float = Field(default=100_000.0, gt=0, le=1e12)
    market: Literal["spot", "futures"] = "spot"
    max_leverage: float = Field(default=1.0, gt=0, le=125)
    rebalance: int | str = 1
    costs: CostModel = CostModel()
    funding_rate_bps_per_8h: float = Field(default=1.0, ge=-300, le=300)
    maintenance_margin: float = Field(default=0.005, ge=0, lt=1)
    liquidation_fee_bps: float = Field(default=50.0, ge=0, le=1000)
    periods_per_year: float | None = Field(default=None, gt=0)

    @field_validator("rebalance")
    @classmethod
    def _schedule(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if v < 1:
                raise ValueError("rebalance must be >= 1 bar")
            return v
        import pandas as pd

        try:
            delta = pd.Timedelta(pd.tseries.frequencies.to_offset(v))
        except (ValueError, TypeError):
            raise ValueError(f"rebalance {v!r} is not a fixed frequency such as '1D', '8h', '4h'") from None
        if delta <= pd.Timedelta(0):
            raise ValueError(f"rebalance {v!r} must be a positive duration")
        return v

    @model_validator(mode="after")
    def _spot_unlevered(self) -> BacktestSettings:
        if self.market == "spot" and self.max_leverage > 1.0:
            raise ValueError(f"spot cannot be levered: max_leverage {self.max_leverage} > 1; use market: futures")
        return self


# --- the config/backtest.yaml file -------------------------------------------------------------------

BenchmarkName = Literal["buy_and_hold", "equal_weight", "inverse_vol"]



def _duration(v: str) -> str:
    try:
        d = pd.Timedelta(v)
    except (ValueError, TypeError):
        raise ValueError(f"{v!r} is not a duration such as '60D', '24h', '90min'") from None
    if d < pd.Timedelta(0):
        raise ValueError(f"duration {v!r} must not be negative")
    return v


class SyntheticDataSettings(StrictModel):
    """The offline default market (see :mod:`graphwiz_trader.data.synthetic`).

    ``rebalance`` (bars or a fixed frequency) overrides ``backtest.rebalance`` on this market: its
    planted signal forecasts one bar ahead, so it is only usable when rebalancing every bar.
    """

    n_assets: int = Field(default=12, ge=2)
    n_clusters: int = Field(default=3, ge=1)
    n_bars: int = Field(default=24 * 90, ge=10)
    timeframe: str = "1h"
    start: str = "2022-01-01"
    seed: int = 7
    signal_strength: float = Field(default=0.2, ge=0)
    rebalance: int | str | None = 1


class SourceDataSettings(StrictModel):
    """Real data read with ``--source DIR`` (freqtrade layout ``<BASE>_<QUOTE>-<timeframe>.feather``)."""

    timeframe: str = "1h"
    symbols: tuple[str, ...] | None = None
    start: str | None = None
    end: str | None = None


class BacktestDataSettings(StrictModel):
    synthetic: SyntheticDataSettings = SyntheticDataSettings()
    source: SourceDataSettings = SourceDataSettings()


class ScoreSettings(StrictModel):
    """Scores on real data (the synthetic market always uses its planted signal).

    ``kind``: ``reversal`` (negative cross-sectional z-score of the trailing ``lookback`` return) or
    ``momentum`` (positive z-score of the return from ``t - lookback`` to ``t - skip``).
    """

    kind: Literal["reversal", "momentum"] = "reversal"
    lookback: str = "1D"
    skip: str = "0h"

    _dur = field_validator("lookback", "skip")(_duration)


class PortfolioSettings(StrictModel):
    """Optimiser, constraints and sizing. ``cov_window`` sets ``optimiser.cov_window_bars`` and the bar
    length sets ``optimiser.periods_per_year``; do not set those two here.

    ``communities``: ``synthetic`` (the synthetic market's planted clusters; none on real data),
    ``none``, or an explicit ``{symbol: community_id}`` map, used by ``constraints.community_cap``.
    """

    optimiser: OptimiserSettings = OptimiserSettings()
    cov_window: str = "30D"
    constraints: PortfolioConstraints = PortfolioConstraints()
    sizing: SizingSettings = SizingSettings()
    communities: Literal["synthetic", "none"] | dict[str, int] = "synthetic"

    _dur = field_validator("cov_window")(_duration)

    @field_validator("optimiser")
    @classmethod
    def _derived_fields(cls, v: OptimiserSettings) -> OptimiserSettings:
        clash = {"cov_window_bars", "periods_per_year"} & v.model_fields_set
        if clash:
            raise ValueError(f"{', '.join(sorted(clash))} are derived from portfolio.cov_window and the bar "
                             "length; set portfolio.cov_window instead")
        return v


class ReportSettings(StrictModel):
    html: Path = Path("runs/backtest/report.html")


class BacktestRunSettings(StrictModel):
    """The whole ``config/backtest.yaml``."""

    data: BacktestDataSettings = BacktestDataSettings()
    scores: ScoreSettings = ScoreSettings()
    portfolio: PortfolioSettings = PortfolioSettings()
    backtest: BacktestSettings = BacktestSettings()
    benchmarks: tuple[BenchmarkName, ...] = ("buy_and_hold", "equal_weight", "inverse_vol")
    buy_and_hold_symbol: str = "BTC/USDT"
    gross_of_costs_run: bool = True
    report: ReportSettings = ReportSettings()

    @model_validator(mode="after")
    def _market_rules(self) -> BacktestRunSettings:
        c = self.portfolio.constraints
        if self.backtest.market == "spot":
            if c.long_short:
                raise ValueError("portfolio.constraints.long_short needs backtest.market: futures (spot cannot short)")
            if self.portfolio.sizing.max_leverage > 1.0:
                raise ValueError("portfolio.sizing.max_leverage > 1 needs backtest.market: futures")
        lev = max(c.max_gross_leverage if c.long_short else 1.0 - c.cash_buffer, 0.0)
        if self.portfolio.sizing.mode != "none":
            lev = self.portfolio.sizing.max_leverage
        if lev > self.backtest.max_leverage + 1e-12:
            raise ValueError(f"the portfolio can reach gross {lev:g} but backtest.max_leverage is "
                             f"{self.backtest.max_leverage:g}")
        return self


def load_backtest_config(path: str | Path) -> BacktestRunSettings:
    """Read and validate ``path`` (``${ENV}`` substituted); errors name the offending dotted key."""
    return validate_mapping(load_yaml(path), BacktestRunSettings, str(path))
