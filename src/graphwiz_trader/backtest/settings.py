"""Validated backtest settings: costs (bps), market type, leverage, rebalance schedule.

Rates are in basis points (1 bp = 0.01%), notionals in quote currency (USDT), margins and
leverage in fractions of equity.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostModel(_Strict):
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
    taker_fee_bps: float = Field(default=10.0, ge=0)
    maker_fee_bps: float = Field(default=10.0, ge=0)
    half_spread_bps: float = Field(default=1.0, ge=0)
    slippage_bps: float = Field(default=2.0, ge=0)
    impact_coef_bps: float = Field(default=10.0, ge=0)
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


class BacktestSettings(_Strict):
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

    initial_capital: float = Field(default=100_000.0, gt=0)
    market: Literal["spot", "futures"] = "spot"
    max_leverage: float = Field(default=1.0, gt=0)
    rebalance: int | str = 1
    costs: CostModel = CostModel()
    funding_rate_bps_per_8h: float = 1.0
    maintenance_margin: float = Field(default=0.005, ge=0, lt=1)
    liquidation_fee_bps: float = Field(default=50.0, ge=0)
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
