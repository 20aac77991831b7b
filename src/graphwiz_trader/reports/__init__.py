"""HTML reports: page assembly with plotly.js inlined once (offline), one colour per series, panel data.

Imports only :mod:`graphwiz_trader.errors`, :mod:`graphwiz_trader.core`, plotly, pandas and numpy;
the backtest and research reports build on it.
"""

from graphwiz_trader.reports.colours import ASSET_PALETTE, OTHER_COLOUR, RUN_PALETTE, ColourMap, with_alpha
from graphwiz_trader.reports.page import Page, fmt_value, html_table, plotly_head_script
from graphwiz_trader.reports.series import (
    MONTHS,
    NO_LABEL,
    monthly_return_grid,
    monthly_returns,
    performance_by_regime,
    rolling_sharpe,
    rolling_volatility,
    thin_positions,
    top_and_rest,
)

__all__ = [
    "ASSET_PALETTE",
    "MONTHS",
    "NO_LABEL",
    "OTHER_COLOUR",
    "RUN_PALETTE",
    "ColourMap",
    "Page",
    "fmt_value",
    "html_table",
    "monthly_return_grid",
    "monthly_returns",
    "performance_by_regime",
    "plotly_head_script",
    "rolling_sharpe",
    "rolling_volatility",
    "thin_positions",
    "top_and_rest",
    "with_alpha",
]
