"""Self-contained plotly HTML report: equity, drawdown, weights over time and the metrics table.

Long runs are thinned for plotting only (at most ``max_points`` points per line, every k-th bar
plus the last); metrics are always computed on every bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from graphwiz_trader.backtest.engine import BacktestResult
from graphwiz_trader.backtest.metrics import drawdown_series

_METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("total_return", "pct"), ("annualised_return", "pct"), ("annualised_volatility", "pct"),
    ("sharpe", "num"), ("sharpe_ci_low", "num"), ("sharpe_ci_high", "num"), ("sortino", "num"),
    ("max_drawdown", "pct"), ("calmar", "num"), ("win_rate", "pct"), ("profit_factor", "num"),
    ("exposure", "num"), ("time_in_market", "pct"), ("annual_turnover", "num"), ("annual_cost_drag", "pct"),
    ("years", "num"),
)


def _thin(n: int, max_points: int) -> np.ndarray:
    step = max(1, math.ceil(n / max_points))
    idx = np.arange(0, n, step)
    if len(idx) and idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx


def _fmt(v: float | None, kind: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{100 * v:.2f}%" if kind == "pct" else f"{v:.3f}"


def metrics_table(results: Mapping[str, BacktestResult]) -> pd.DataFrame:
    """metric x run table of :meth:`BacktestResult.metrics`."""
    return pd.DataFrame({name: r.metrics() for name, r in results.items()})


def write_report(path: str | Path, results: Mapping[str, BacktestResult], title: str, label: str,
                 weights_of: str | None = None, notes: tuple[str, ...] = (), max_points: int = 2500,
                 metrics: pd.DataFrame | None = None) -> Path:
    """Write the HTML report; returns its path.

    Parameters
    ----------
    results : run name -> result; the first is the strategy unless ``weights_of`` names another.
    title : headline; ``label`` (e.g. SYNTHETIC MARKET ...) is printed under it.
    weights_of : run whose weights over time are plotted (default: the first).
    notes : extra lines under the title (score name, costs, period).
    """
    if not results:
        raise ValueError("write_report needs at least one result")
    names = list(results)
    wname = weights_of or names[0]
    table = metrics if metrics is not None else metrics_table(results)
    fig = make_subplots(
        rows=4, cols=1, vertical_spacing=0.05, row_heights=[0.3, 0.15, 0.25, 0.3],
        specs=[[{"type": "xy"}], [{"type": "xy"}], [{"type": "xy"}], [{"type": "table"}]],
        subplot_titles=("Equity (multiple of initial capital)", "Drawdown",
                        f"Weights over time: {wname} (fraction of equity)", "Metrics"),
    )
    for name, r in results.items():
        sel = _thin(len(r.equity), max_points)
        x = r.equity.index[sel]
        fig.add_trace(go.Scatter(x=x, y=(r.equity / r.initial_capital).to_numpy()[sel], name=name,
                                 legendgroup=name, mode="lines"), row=1, col=1)
        dd = drawdown_series(r.equity, r.initial_capital).to_numpy()[sel]
        fig.add_trace(go.Scatter(x=x, y=dd, name=name, legendgroup=name, showlegend=False, mode="lines"),
                      row=2, col=1)
    w = results[wname].weights
    sel = _thin(len(w), max(200, max_points // 2))
    shown = w.iloc[sel]
    active = [c for c in shown.columns if shown[c].abs().max() > 0]
    for c in active:
        fig.add_trace(go.Scatter(x=shown.index, y=shown[c].to_numpy(), name=str(c), stackgroup="w",
                                 mode="lines", line={"width": 0.5}, showlegend=False, hovertemplate=f"{c}: %{{y:.3f}}"),
                      row=3, col=1)
    kinds = dict(_METRIC_ROWS)
    rows = [m for m, _ in _METRIC_ROWS if m in table.index]
    cells = [rows] + [[_fmt(table.at[m, n], kinds[m]) for m in rows] for n in table.columns]
    fig.add_trace(go.Table(header={"values": ["metric", *map(str, table.columns)]}, cells={"values": cells}),
                  row=4, col=1)
    subtitle = "<br>".join([label, *notes])
    fig.update_layout(title={"text": f"{title}<br><sup>{subtitle}</sup>"}, height=1500, template="plotly_white",
                      margin={"t": 140})
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(p, include_plotlyjs=True, full_html=True)
    return p
