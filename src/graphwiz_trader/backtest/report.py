"""Backtest report: one self-contained HTML page (plotly inlined once, see :mod:`graphwiz_trader.reports`).

Panels: metrics (HTML table), equity and drawdown, rolling Sharpe and volatility, monthly returns,
turnover and costs over time, per-asset contribution, weights over time and, when regime labels are
given, performance by market regime. Every run keeps one colour in every panel, every asset another.

Per-asset contribution (quote currency, per bar t and symbol i, before costs):
``pnl_it = V_it - V_i,t-1 - N_it`` with ``V = weight x equity`` the position value at the close and
``N`` the signed notional filled at t's open (so a fill is not counted as profit). Summed over bars and
divided by the initial capital, the assets' contributions minus the costs (and a futures
liquidation's close-out, shown when there is one) add up to the run's total return.

Long runs are thinned for plotting only (at most ``max_points`` points per line); every figure and
table is computed on every bar.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from graphwiz_trader.backtest.engine import BacktestResult
from graphwiz_trader.backtest.metrics import drawdown_series
from graphwiz_trader.reports import (
    ASSET_PALETTE,
    MONTHS,
    OTHER_COLOUR,
    ColourMap,
    Page,
    monthly_return_grid,
    performance_by_regime,
    rolling_sharpe,
    rolling_volatility,
    thin_positions,
    top_and_rest,
)

log = logging.getLogger(__name__)

_METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("total_return", "pct"), ("annualised_return", "pct"), ("annualised_volatility", "pct"),
    ("sharpe", "num"), ("sharpe_ci_low", "num"), ("sharpe_ci_high", "num"), ("sortino", "num"),
    ("max_drawdown", "pct"), ("calmar", "num"), ("win_rate", "pct"), ("profit_factor", "num"),
    ("exposure", "num"), ("time_in_market", "pct"), ("annual_turnover", "num"), ("annual_cost_drag", "pct"),
    ("years", "num"), ("n_bars", "int"),
)
COST_COLOURS = {"fees": "#8C564B", "spread_slippage": "#E377C2", "impact": "#BCBD22", "funding": "#17BECF",
                "liquidation": "#D62728"}
MAX_ASSETS_SHOWN = 12


def metrics_table(results: Mapping[str, BacktestResult]) -> pd.DataFrame:
    """metric x run table of :meth:`BacktestResult.metrics`."""
    return pd.DataFrame({name: r.metrics() for name, r in results.items()})


def asset_pnl(r: BacktestResult) -> pd.DataFrame:
    """Per bar and symbol, P&L before costs in quote currency (module docstring); the result must
    start flat (as every :func:`run_backtest` result and its live-period trim do)."""
    value = r.weights.mul(r.equity, axis=0)
    return value - value.shift(1).fillna(0.0) - r.trade_notional


def contributions(r: BacktestResult) -> pd.DataFrame:
    """Per bar: each symbol's P&L, ``costs`` (negative) and ``liquidation close-out`` when non-zero, as
    fractions of the initial capital; the row sums add up to the equity change / initial capital."""
    pnl = asset_pnl(r)
    costs = r.costs.sum(axis=1)
    d_equity = r.equity.diff()
    d_equity.iloc[0] = r.equity.iloc[0] - r.initial_capital
    out = pnl.copy()
    out["costs"] = -costs
    rest = d_equity - out.sum(axis=1)
    if float(rest.abs().sum()) > 1e-9 * r.initial_capital:
        out["liquidation close-out"] = rest
    return out / r.initial_capital


def _periods(index: pd.DatetimeIndex) -> tuple[str, str]:
    span = index[-1] - index[0] if len(index) else pd.Timedelta(0)
    if span <= pd.Timedelta(days=400):
        return "D", "day"
    if span <= pd.Timedelta(days=5 * 365):
        return "W", "week"
    return "ME", "month"


def _dash(run: str) -> str:
    """Gross-of-costs runs are dotted, so they stay visible where they overlap their net run."""
    return "dot" if run.endswith("gross_of_costs") else "solid"


def _bar(index: pd.DatetimeIndex) -> pd.Timedelta:
    d = np.diff(index.asi8)
    if not len(d):
        return pd.Timedelta(days=1)
    vals, counts = np.unique(d, return_counts=True)
    return pd.Timedelta(int(vals[np.argmax(counts)]), unit="ns")


def write_report(path: str | Path, results: Mapping[str, BacktestResult], title: str, label: str,
                 weights_of: str | None = None, notes: tuple[str, ...] = (), max_points: int = 2500,
                 metrics: pd.DataFrame | None = None, regime: pd.Series | None = None,
                 regime_note: str = "", tearsheet: bool = False, benchmark_of: str | None = None) -> Path:
    """Write the HTML report; returns its path.

    Parameters
    ----------
    results : run name -> result; the first is the strategy unless ``weights_of`` names another.
    title : headline; ``label`` (e.g. SYNTHETIC MARKET ...) is printed under it.
    weights_of : run whose weights, monthly returns, costs and contributions are shown (default: the first).
    notes : extra lines under the title (score name, costs, period).
    regime : market regime label per bar, aligned to the equity index (a label for bar t must be
        known before bar t is traded, e.g. the filtered label at t-1's close); bars without a label
        are shown as such. ``regime_note`` says how the labels were made.
    tearsheet : also write a quantstats tear sheet of ``weights_of`` against ``benchmark_of`` (default:
        the first ``buy_and_hold*`` run) next to the report and link it (needs ``quantstats``).
    """
    if not results:
        raise ValueError("write_report needs at least one result")
    names = list(results)
    wname = weights_of or names[0]
    strat = results[wname]
    table = metrics if metrics is not None else metrics_table(results)
    runs = ColourMap(names=names)
    assets = ColourMap(ASSET_PALETTE, fixed={"costs": "#7F7F7F"})
    p = Path(path)
    page = Page(title, [label, *notes])

    page.section("Metrics")
    kinds = dict(_METRIC_ROWS)
    rows = [m for m, _ in _METRIC_ROWS if m in table.index]
    page.table(table.loc[rows, [c for c in table.columns]], kinds, index_name="metric")
    page.note("Returns, volatility, drawdown and cost drag are fractions shown in %; Sharpe is annualised at "
              "risk-free 0 with a 95% circular block-bootstrap interval; turnover is traded notional (both "
              "sides) / equity per year.")
    if tearsheet:
        bench = benchmark_of or next((n for n in names if n.startswith("buy_and_hold")), None)
        ts = write_tearsheet(tearsheet_path(p), strat, results[bench] if bench else None,
                             f"{title}: {wname}" + (f" vs {bench}" if bench else ""))
        page.raw(f"<p class=\"sub\">Tear sheet (quantstats, daily returns): <a href=\"{ts.name}\">{ts.name}</a></p>")

    _equity_panel(page, results, runs, max_points)
    _rolling_panel(page, results, runs, max_points)
    _monthly_panel(page, strat, wname)
    _turnover_cost_panel(page, results, strat, wname, runs)
    _contribution_panel(page, strat, wname, assets, max_points)
    _weights_panel(page, strat, wname, assets)
    if regime is not None:
        _regime_panel(page, results, regime, regime_note, runs)
    return page.write(p)


def _equity_panel(page: Page, results: Mapping[str, BacktestResult], runs: ColourMap, max_points: int) -> None:
    page.section("Equity and drawdown")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.68, 0.32])
    for name, r in results.items():
        sel = thin_positions(len(r.equity), max_points)
        x = r.equity.index[sel]
        line = {"color": runs[name], "width": 1.6 if name == next(iter(results)) else 1.1, "dash": _dash(name)}
        fig.add_trace(go.Scatter(x=x, y=(r.equity / r.initial_capital).to_numpy()[sel], name=name, legendgroup=name,
                                 mode="lines", line=line), row=1, col=1)
        dd = drawdown_series(r.equity, r.initial_capital).to_numpy()[sel]
        fig.add_trace(go.Scatter(x=x, y=dd, name=name, legendgroup=name, showlegend=False, mode="lines", line=line),
                      row=2, col=1)
    fig.update_yaxes(title_text="equity / initial capital", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    page.figure(fig, height=560)
    page.note("Equity at each bar's close as a multiple of the initial capital; drawdown = equity / running "
              "peak - 1 (the initial capital is the first peak). Click a legend entry to hide a run in both panels.")


def _rolling_panel(page: Page, results: Mapping[str, BacktestResult], runs: ColourMap, max_points: int) -> None:
    first = next(iter(results.values()))
    n = len(first.equity)
    month = max(2, int(round(first.periods_per_year * 30 / 365)))
    window = month if n >= 3 * month else max(2, n // 5)
    days = window * 365 / first.periods_per_year
    page.section(f"Rolling Sharpe and volatility ({window} bars, {days:.3g} days)")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04)
    for name, r in results.items():
        ret = r.returns
        sel = thin_positions(n, max_points)
        x = ret.index[sel]
        line = {"color": runs[name], "width": 1.2, "dash": _dash(name)}
        fig.add_trace(go.Scatter(x=x, y=rolling_sharpe(ret, window, r.periods_per_year).to_numpy()[sel], name=name,
                                 legendgroup=name, mode="lines", line=line), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=rolling_volatility(ret, window, r.periods_per_year).to_numpy()[sel],
                                 name=name, legendgroup=name, showlegend=False, mode="lines", line=line), row=2, col=1)
    fig.update_yaxes(title_text="Sharpe (annualised)", row=1, col=1)
    fig.update_yaxes(title_text="volatility (annualised)", tickformat=".0%", row=2, col=1)
    page.figure(fig, height=520)
    page.note(f"Trailing {window}-bar windows (bars up to t only); blank until {window} bars exist.")


def _monthly_panel(page: Page, strat: BacktestResult, wname: str) -> None:
    page.section(f"Monthly returns: {wname}")
    grid = monthly_return_grid(strat.equity, strat.initial_capital)
    cols = [m for m in MONTHS if grid[m].notna().any()] + ["Year"]
    z = grid[cols].to_numpy(dtype="float64")
    text = [["" if not np.isfinite(v) else f"{100 * v:.1f}%" for v in row] for row in z]
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=[str(y) for y in grid.index], text=text, texttemplate="%{text}",
                               colorscale="RdYlGn", zmid=0.0, zmin=-lim, zmax=lim, hoverongaps=False,
                               colorbar={"title": {"text": "return"}, "tickformat": ".0%"},
                               hovertemplate="%{y} %{x}: %{text}<extra></extra>"))
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(type="category", side="top")
    page.figure(fig, height=140 + 48 * len(grid))
    page.note("Return of each calendar month (UTC, by bar time): equity at the month's last bar / equity at "
              "the previous month's last bar - 1 (the first month from the initial capital); Year compounds "
              "the months shown.")


def _turnover_cost_panel(page: Page, results: Mapping[str, BacktestResult], strat: BacktestResult, wname: str,
                         runs: ColourMap) -> None:
    freq, unit = _periods(strat.equity.index)
    page.section(f"Turnover and costs per {unit}")
    fig = go.Figure()
    for name, r in results.items():
        t = r.turnover.resample(freq).sum()
        fig.add_trace(go.Scatter(x=t.index, y=t.to_numpy(), name=name, mode="lines",
                                 line={"color": runs[name], "width": 1.2, "dash": _dash(name)}))
    fig.update_yaxes(title_text=f"turnover per {unit}", tickformat=".0%")
    page.figure(fig, height=340)
    page.note(f"Traded notional (buys + sells) / equity at the fill, summed per {unit}.")
    prev = strat.equity.shift(1)
    prev.iloc[0] = strat.initial_capital
    drag = strat.costs.div(prev, axis=0).resample(freq).sum()
    cum = strat.costs.sum(axis=1).cumsum() / strat.initial_capital
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for c in drag.columns:
        if float(strat.costs[c].abs().sum()) == 0.0:
            continue
        fig.add_trace(go.Bar(x=drag.index, y=1e4 * drag[c].to_numpy(), name=c,
                             marker={"color": COST_COLOURS.get(c, OTHER_COLOUR)}), secondary_y=False)
    sel = thin_positions(len(cum), 2000)
    fig.add_trace(go.Scatter(x=cum.index[sel], y=cum.to_numpy()[sel], name="cumulative costs (right axis)",
                             mode="lines", line={"color": "#333333", "width": 1.5}), secondary_y=True)
    fig.update_layout(barmode="stack", bargap=0.1)
    fig.update_yaxes(title_text=f"costs, bps of equity per {unit}", secondary_y=False)
    fig.update_yaxes(title_text="cumulative / initial capital", tickformat=".1%", secondary_y=True,
                     showgrid=False, rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", secondary_y=False)
    page.heading(f"Costs of {wname} by kind")
    page.figure(fig, height=360)
    page.note("Costs paid in each bar / equity at the previous close, summed per period (the annual cost drag "
              "of the metrics table is their sum per year); funding is negative when received.")


def _contribution_panel(page: Page, strat: BacktestResult, wname: str, assets: ColourMap, max_points: int) -> None:
    page.section(f"Contribution by asset: {wname}")
    con = contributions(strat)
    total = con.sum()
    symbols = [c for c in strat.weights.columns if c in total.index]
    order = total[symbols].sort_values(kind="stable")
    for s in total[symbols].abs().sort_values(ascending=False, kind="stable").index:
        assets[s]
    extra = [c for c in con.columns if c not in symbols]
    bars = pd.concat([order, total[extra]])
    colours = [assets[c] if c in symbols else ("#7F7F7F" if c == "costs" else "#D62728") for c in bars.index]
    fig = go.Figure(go.Bar(x=bars.to_numpy(), y=[str(c) for c in bars.index], orientation="h",
                           marker={"color": colours}, text=[f"{100 * v:.2f}%" for v in bars.to_numpy()],
                           textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:.3%}<extra></extra>",
                           showlegend=False))
    fig.update_xaxes(title_text="contribution to total return (fraction of initial capital)", tickformat=".1%")
    fig.update_yaxes(type="category")
    page.figure(fig, height=max(260, 120 + 22 * len(bars)))
    page.note(f"Sum over bars of each asset's P&L before costs (position value change minus the notional "
              f"filled) / initial capital; with costs these add up to the total return "
              f"({100 * float(total.sum()):.2f}%).")
    shown = top_and_rest(con[symbols], MAX_ASSETS_SHOWN, by=total[symbols].abs())
    shown["costs"] = con["costs"]
    cum = shown.cumsum()
    sel = thin_positions(len(cum), max_points)
    fig = go.Figure()
    for c in cum.columns:
        colour = assets[c] if c in symbols or c == "costs" else OTHER_COLOUR
        fig.add_trace(go.Scatter(x=cum.index[sel], y=cum[c].to_numpy()[sel], name=str(c), mode="lines",
                                 line={"color": colour, "width": 1.2}))
    fig.update_yaxes(title_text="cumulative contribution", tickformat=".1%")
    page.heading(f"Cumulative contribution over time (largest {min(MAX_ASSETS_SHOWN, len(symbols))} assets)")
    page.figure(fig, height=420)


def _weights_panel(page: Page, strat: BacktestResult, wname: str, assets: ColourMap) -> None:
    page.section(f"Weights over time: {wname}")
    w = strat.weights
    active = [c for c in w.columns if float(w[c].abs().max()) > 0]
    if not active:
        page.note("No position was ever held.")
        return
    shown = top_and_rest(w[active], MAX_ASSETS_SHOWN)
    freq, unit = _periods(shown.index)
    averaged = len(shown) > 500
    if averaged:
        shown = shown.resample(freq).mean().dropna(how="all")
    fig = go.Figure()
    for c in shown.columns:
        colour = assets[c] if c in active else OTHER_COLOUR
        fig.add_trace(go.Scatter(x=shown.index, y=shown[c].to_numpy(), name=str(c), stackgroup="w",
                                 mode="lines", line={"width": 0.5, "color": colour}, fillcolor=colour,
                                 hovertemplate=f"{c}: %{{y:.3f}}<extra></extra>"))
    fig.update_yaxes(title_text="weight (fraction of equity)", tickformat=".0%")
    page.figure(fig, height=420)
    what = f"mean over each {unit} of the " if averaged else ""
    page.note(f"Stacked {what}position value / equity at each bar's close; the {MAX_ASSETS_SHOWN} assets with "
              f"the largest mean |weight| are shown, the rest summed as 'other'. Assets keep their colour from "
              f"the contribution panel.")


def _regime_panel(page: Page, results: Mapping[str, BacktestResult], regime: pd.Series, regime_note: str,
                  runs: ColourMap) -> None:
    page.section("Performance by market regime")
    first = next(iter(results.values()))
    rets = pd.DataFrame({name: r.returns for name, r in results.items()})
    perf = performance_by_regime(rets, regime, first.periods_per_year)
    regimes = list(dict.fromkeys(perf["regime"]))
    n_bars = perf.drop_duplicates("regime").set_index("regime")["bars"]
    ticks = [f"{g} ({int(n_bars[g]):,} bars)" for g in regimes]
    fig = go.Figure()
    for name in results:
        sub = perf[perf["run"] == name].set_index("regime").reindex(regimes)
        fig.add_trace(go.Bar(x=ticks, y=sub["sharpe"].to_numpy(), name=name, marker={"color": runs[name]},
                             hovertemplate=f"{name} %{{x}}: Sharpe %{{y:.2f}}<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="Sharpe (annualised) within the regime")
    page.figure(fig, height=380)
    wide = perf.pivot(index="run", columns="regime", values="ann_return").reindex(index=list(results),
                                                                                 columns=regimes)
    share = perf.drop_duplicates("regime").set_index("regime")["share"].reindex(regimes)
    bars = perf.drop_duplicates("regime").set_index("regime")["bars"].reindex(regimes)
    head = pd.DataFrame([bars, share], index=["bars", "share of bars"])
    page.heading("Bars in each regime")
    page.table(head, {"bars": "int", "share of bars": "pct"}, index_name="")
    page.heading("Annualised mean return (mean bar return x periods per year) within each regime")
    page.table(wide, lambda r, c: "pct", index_name="run")
    if regime_note:
        page.note(regime_note)


def regime_labels_for(bars: Mapping[str, pd.DataFrame], bar: pd.Timedelta, start: pd.Timestamp,
                      progress: bool = False) -> tuple[pd.Series | None, str]:
    """Market regime of each bar, as known at the previous bar's close, and how it was made.

    The filtered HMM market regime of :mod:`graphwiz_trader.graph.builders.regimes` (3 states ordered
    by volatility; the first model is fitted on the bars before ``start``, the first bar to label, at
    least 30; re-fit weekly on at most a year, lengths in bars of ``bar``); each label uses bars up to
    its own time only. Bar t gets the label of bar t-1 (on the union of the bars' times), the one known
    when the position held over bar t was decided. Returns ``(None, reason)`` when the data is too
    short for a fit.
    """
    from graphwiz_trader.errors import DataError
    from graphwiz_trader.graph.builders.panel import close_panel, log_returns
    from graphwiz_trader.graph.builders.regimes import MARKET_SCOPE, RegimeSettings, build_regime_state, market_features

    times = pd.DatetimeIndex(sorted(set().union(*(df.index for df in bars.values()))))
    n_week = max(1, int(pd.Timedelta(days=7) / bar))
    # bar `start` takes the label of the bar before it: the first model is fitted on the feature rows before that bar
    before = times[max(0, int(times.searchsorted(start)) - 1)]
    rows = market_features(log_returns(close_panel(dict(bars))), RegimeSettings().min_assets).index
    min_train = max(30, int(rows.searchsorted(before)))
    params = RegimeSettings(min_train=min_train, refit_every=n_week,
                          max_train=max(min_train, int(pd.Timedelta(days=365) / bar)),
                          burn_in=max(10, int(pd.Timedelta(days=21) / bar)))
    try:
        state = build_regime_state(dict(bars), params, progress=progress)
    except DataError as exc:
        log.warning("no market regimes for the report: %s", exc)
        return None, f"No market regime labels: {exc}"
    m = state[state["scope"] == MARKET_SCOPE]
    lab = pd.Series(m["regime"].to_numpy(), index=pd.DatetimeIndex(m["datetime"]), name="regime")
    note = (f"Regime of bar t = the filtered 3-state HMM market regime (equal-weight log return and log "
            f"cross-sectional dispersion; states ordered by volatility) at bar t-1's close, from models fitted "
            f"on earlier bars only: first fit on {min_train} bars, re-fit every {n_week} bars on at most "
            f"{params.max_train} bars. Sharpe and returns within a regime use only the bars labelled with it.")
    return lab.reindex(times).shift(1).rename("regime"), note


# ------------------------------------------------------------------------------------------------ tear sheet

def tearsheet_path(report: str | Path) -> Path:
    """Where :func:`write_report` puts the tear sheet: ``<report stem>_tearsheet.html`` beside it."""
    p = Path(report)
    return p.with_name(f"{p.stem}_tearsheet.html")


def daily_returns(r: BacktestResult) -> pd.Series:
    """Daily (UTC calendar day) returns of equity, the first day measured from the initial capital."""
    e = r.equity.resample("D").last().dropna()
    prev = e.shift(1)
    prev.iloc[0] = r.initial_capital
    out = e / prev - 1.0
    out.index = out.index.tz_localize(None)
    return out.rename(r.name or "returns")


def write_tearsheet(path: str | Path, strat: BacktestResult, benchmark: BacktestResult | None, title: str) -> Path:
    """A quantstats HTML tear sheet of ``strat`` (daily returns) against ``benchmark``; returns its path.

    Days per year: the result's periods per year x bar length / 1 day (365 for hourly crypto bars).
    quantstats draws with matplotlib into inline SVG; its one remote link (a favicon) is removed so the
    page loads nothing from the network, and so is the template's ``onload="save()"`` (a function defined
    only in its notebook download mode: a script error in every saved file).

    Raises
    ------
    ConfigError
        when quantstats is not installed (``pip install quantstats``, in the ``report`` extra).
    """
    import re
    import tempfile
    import warnings

    from graphwiz_trader.core.runs import atomic_write_bytes
    from graphwiz_trader.errors import ConfigError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import quantstats as qs
    except ImportError as exc:
        raise ConfigError(f"the tear sheet needs quantstats ({exc}); install the 'report' extra: "
                          "pip install -e '.[report]'") from None
    days_per_year = int(round(strat.periods_per_year * (_bar(strat.equity.index) / pd.Timedelta(days=1))))
    ret = daily_returns(strat)
    bench = daily_returns(benchmark).reindex(ret.index) if benchmark is not None else None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    font_log = logging.getLogger("matplotlib.font_manager")
    level = font_log.level
    font_log.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tmp_html = Path(tmp) / "tearsheet.html"
            qs.reports.html(ret, benchmark=bench, output=str(tmp_html), title=title, periods_per_year=days_per_year,
                            download_filename=out.name)
            text = tmp_html.read_text(encoding="utf-8")
    finally:
        font_log.setLevel(level)
        import matplotlib.pyplot as plt

        plt.close("all")
    text = re.sub(r'<link[^>]*rel="(?:shortcut )?icon"[^>]*>', '', text)
    text = re.sub(r'\s+onload="save\(\)"', '', text)  # the template calls a function only its notebook mode defines
    atomic_write_bytes(out, text.encode("utf-8"))
    return out
