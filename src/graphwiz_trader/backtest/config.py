"""The ``config/backtest.yaml`` model (unknown keys rejected, every section validated).

Windows are durations (``"60D"``, ``"24h"``) converted to bars with the data's bar length, so one
file serves the synthetic default (daily bars) and real hourly data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from graphwiz_trader.backtest.settings import BacktestSettings
from graphwiz_trader.config.loader import load_yaml, validate_mapping
from graphwiz_trader.portfolio.settings import OptimiserSettings, PortfolioConstraints, SizingSettings

BenchmarkName = Literal["buy_and_hold", "equal_weight", "inverse_vol"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(v: str) -> str:
    try:
        d = pd.Timedelta(v)
    except (ValueError, TypeError):
        raise ValueError(f"{v!r} is not a duration such as '60D', '24h', '90min'") from None
    if d < pd.Timedelta(0):
        raise ValueError(f"duration {v!r} must not be negative")
    return v


class SyntheticSection(_Strict):
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


class SourceSection(_Strict):
    """Real data read with ``--source DIR`` (freqtrade layout ``<BASE>_<QUOTE>-<timeframe>.feather``)."""

    timeframe: str = "1h"
    symbols: tuple[str, ...] | None = None
    start: str | None = None
    end: str | None = None


class DataSection(_Strict):
    synthetic: SyntheticSection = SyntheticSection()
    source: SourceSection = SourceSection()


class ScoresSection(_Strict):
    """Scores on real data (the synthetic market always uses its planted signal).

    ``kind``: ``reversal`` (negative cross-sectional z-score of the trailing ``lookback`` return) or
    ``momentum`` (positive z-score of the return from ``t - lookback`` to ``t - skip``).
    """

    kind: Literal["reversal", "momentum"] = "reversal"
    lookback: str = "1D"
    skip: str = "0h"

    _dur = field_validator("lookback", "skip")(_duration)


class PortfolioSection(_Strict):
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


class ReportSection(_Strict):
    html: Path = Path("runs/backtest/report.html")


class BacktestConfig(_Strict):
    """The whole ``config/backtest.yaml``."""

    data: DataSection = DataSection()
    scores: ScoresSection = ScoresSection()
    portfolio: PortfolioSection = PortfolioSection()
    backtest: BacktestSettings = BacktestSettings()
    benchmarks: tuple[BenchmarkName, ...] = ("buy_and_hold", "equal_weight", "inverse_vol")
    buy_and_hold_symbol: str = "BTC/USDT"
    gross_of_costs_run: bool = True
    report: ReportSection = ReportSection()

    @model_validator(mode="after")
    def _market_rules(self) -> BacktestConfig:
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


def load_backtest_config(path: str | Path) -> BacktestConfig:
    """Read and validate ``path`` (``${ENV}`` substituted); errors name the offending dotted key."""
    return validate_mapping(load_yaml(path), BacktestConfig, str(path))
