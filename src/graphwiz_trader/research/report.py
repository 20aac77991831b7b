"""Walk-forward reports: fold metrics (JSON + CSV), an HTML page (plotly, offline) and a PNG (matplotlib).

The page (see :mod:`graphwiz_trader.reports` for the loading policy and colours): the summary across
folds, the comparison with the baseline when given, IC by fold, the long-short diagnostic, and, from
the out-of-sample predictions and the forward returns, the IC time series, IC by horizon, quantile
returns and signal turnover (definitions in :mod:`graphwiz_trader.research.report_signal`), then
feature importance with graph features marked. Every run keeps its colour in every panel.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from graphwiz_trader.core.jsonout import plain
from graphwiz_trader.core.runs import atomic_write_bytes
from graphwiz_trader.models.metrics import ic_series
from graphwiz_trader.reports import ColourMap, Page, fmt_value, thin_positions
from graphwiz_trader.research.experiment import WalkForwardResult, config_dict
from graphwiz_trader.research.report_signal import (
    N_QUANTILES,
    ic_by_horizon,
    is_graph_feature,
    quantile_returns,
    signal_turnover,
)

TOP_FEATURES = 25
GRAPH_COLOUR, OTHER_FEATURE_COLOUR = "#E4572E", "#4C78A8"


# ---------------------------------------------------------------------------------------------------- files

def write_walkforward_outputs(results: dict[str, WalkForwardResult], out_dir: str | Path, title: str,
                              comparison: dict[str, Any] | None = None, data_label: str = "",
                              fwd_returns: pd.Series | None = None) -> dict[str, str]:
    """Write per-fold CSV/JSON for each run, importance + stability CSVs, ``report.html`` and ``report.png``.

    ``fwd_returns``: the forward log return over the label horizon per ``(datetime, instrument)`` (the
    series passed to :func:`run_walkforward`); without it the IC time series, IC by horizon and
    quantile panels say so instead of being drawn.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for name, res in results.items():
        atomic_write_bytes(out / f"folds_{name}.csv", res.folds.to_csv(index=False).encode())
        atomic_write_bytes(out / f"folds_{name}.json", json.dumps(plain({
            "config": config_dict(res.config), "summary": res.summary(),
            "folds": res.folds.to_dict(orient="records"), "best_params": res.best_params}), indent=2,
            default=str).encode())
        imp = pd.DataFrame({"gain_mean": res.gain.mean(), "shap_mean": res.shap.mean(),
                            "top20_share_gain": res.stability("gain"), "top20_share_shap": res.stability("shap")})
        imp["graph_feature"] = [is_graph_feature(str(f)) for f in imp.index]
        atomic_write_bytes(out / f"importance_{name}.csv",
                           imp.sort_values("shap_mean", ascending=False).to_csv().encode())
        paths[f"folds_{name}"] = str(out / f"folds_{name}.csv")
    paths["html"] = str(write_html(out / "report.html", results, title, comparison, data_label, fwd_returns))
    paths["png"] = str(_write_png(out / "report.png", results, title, data_label))
    return paths


def write_html(path: Path, results: dict[str, WalkForwardResult], title: str, comparison: dict[str, Any] | None,
               data_label: str, fwd_returns: pd.Series | None) -> Path:
    """The HTML page (module docstring); returns its path."""
    runs = ColourMap(names=list(results))
    first = next(iter(results.values()))
    page = Page(title, [data_label, f"label: {first.config.label.describe()}"])
    _fold_sections(page, results, runs)
    if comparison:
        _comparison_section(page, comparison)
    _signal_sections(page, results, runs, fwd_returns)
    _importance_section(page, results)
    return page.write(path)


def _write_png(path: Path, results: dict[str, WalkForwardResult], title: str, data_label: str) -> Path:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figm, axes = plt.subplots(2, 1, figsize=(11, 8))
    width = 0.8 / max(1, len(results))
    for i, (name, res) in enumerate(results.items()):
        x = np.arange(len(res.folds))
        axes[0].bar(x + i * width, res.folds["ic"], width=width, label=name)
        if len(res.long_short):
            axes[1].plot(res.long_short.index, res.long_short.cumsum().values, label=name)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_title("IC by fold (out of sample)")
    axes[0].set_xlabel("fold")
    axes[0].legend()
    axes[1].set_title("Cumulative long-short log return (before costs)")
    axes[1].legend()
    figm.suptitle(f"{title}\n{data_label}", fontsize=10)
    figm.tight_layout()
    buf = io.BytesIO()
    figm.savefig(buf, dpi=90, format="png")
    plt.close(figm)
    atomic_write_bytes(path, buf.getvalue())
    return path



# --------------------------------------------------------------------------------------------------- panels

def _thin(series: pd.Series, max_points: int = 2500) -> pd.Series:
    return series.iloc[thin_positions(len(series), max_points)]


def _ci_text(d: dict[str, Any]) -> str:
    lo, hi = d.get("ci_low"), d.get("ci_high")
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    return f"[{fmt_value(lo)}, {fmt_value(hi)}]"


def _fold_sections(page: Page, results: dict[str, WalkForwardResult], runs: ColourMap) -> None:
    page.section("Summary across folds")
    summaries = {name: res.summary() for name, res in results.items()}
    metrics = list(dict.fromkeys(k for s in summaries.values() for k, v in s.items()
                                 if isinstance(v, dict) and "mean" in v))
    table = pd.DataFrame(index=metrics)
    method = ""
    for name, s in summaries.items():
        table[f"{name}: mean"] = [s[m]["mean"] if m in s else math.nan for m in metrics]
        table[f"{name}: 95% CI"] = [_ci_text(s[m]) if m in s else "n/a" for m in metrics]
        if any("lag1_autocorr" in s[m] for m in metrics if m in s):
            table[f"{name}: lag-1 autocorr"] = [s[m].get("lag1_autocorr", math.nan) if m in s else math.nan
                                                for m in metrics]
        method = method or next((s[m].get("ci_method", "") for m in metrics if m in s), "")
    page.table(table, index_name="metric")
    folds = ", ".join(f"{name}: {s.get('n_folds', len(results[name].folds))} folds" for name, s in summaries.items())
    page.note(f"{folds}. Interval: {method or '95% interval across folds'}.")
    notes = [v for s in summaries.values() for v in s.values() if isinstance(v, str)]
    for text in dict.fromkeys(notes):
        page.note(text)

    page.section("IC by fold (out of sample)")
    fig = go.Figure()
    for name, res in results.items():
        starts = pd.to_datetime(res.folds["test_start"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
        fig.add_trace(go.Bar(x=starts, y=res.folds["ic"], name=name,
                             marker={"color": runs[name]}))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="first test bar of the fold (UTC)", type="category")
    fig.update_yaxes(title_text="IC (mean over the fold's bars)")
    page.figure(fig, height=360)

    page.section("Long-short diagnostic (before costs)")
    fig = go.Figure()
    for name, res in results.items():
        if len(res.long_short):
            cum = _thin(res.long_short.cumsum())
            fig.add_trace(go.Scatter(x=cum.index, y=cum.to_numpy(), name=name, mode="lines",
                                     line={"color": runs[name], "width": 1.3}))
    fig.update_yaxes(title_text="cumulative log return")
    page.figure(fig, height=360)
    frac = next(iter(results.values())).config.long_short_fraction
    page.note(f"Long the top {frac:.0%}, short the bottom {frac:.0%} of instruments by score, equal weight, "
              "forward log return over the label horizon; a signal diagnostic, not a backtest.")


def _comparison_section(page: Page, comparison: dict[str, Any]) -> None:
    page.section("Hybrid against baseline (same folds)")
    stats = {k[: -len("_stats")]: v for k, v in comparison.items()
             if k.endswith("_stats") and isinstance(v, dict) and "mean" in v}
    if stats:
        table = pd.DataFrame({
            "mean": [v["mean"] for v in stats.values()],
            "95% CI": [_ci_text(v) for v in stats.values()],
            "lag-1 autocorr": [v.get("lag1_autocorr", math.nan) for v in stats.values()],
        }, index=list(stats))
        page.table(table, index_name="difference (hybrid - baseline)")
    scalars: dict[str, str] = {}
    for k, v in comparison.items():
        if k.endswith("_stats") or k in stats or isinstance(v, (dict, list)) or any(k.startswith(s) for s in stats):
            continue
        if isinstance(v, tuple) and len(v) == 2:
            scalars[k] = f"[{fmt_value(v[0])}, {fmt_value(v[1])}]"
        elif isinstance(v, (int, float, np.floating, np.integer)):
            scalars[k] = fmt_value(v, "int" if isinstance(v, (int, np.integer)) else "num")
        elif isinstance(v, str) or v is None:
            scalars[k] = "n/a" if v is None else v
    if scalars:
        page.table(pd.DataFrame({"value": list(scalars.values())}, index=list(scalars)), index_name="figure")


def _signal_sections(page: Page, results: dict[str, WalkForwardResult], runs: ColourMap,
                     fwd: pd.Series | None) -> None:
    first = next(iter(results.values()))
    horizon = first.config.label.horizon
    what = "demeaned across instruments " if first.config.label.relative else ""
    if fwd is None:
        page.section("Signal diagnostics")
        page.note("Not drawn: the report was written without the forward returns (pass fwd_returns to "
                  "write_walkforward_outputs) needed for the IC time series, IC by horizon and quantile returns.")
    else:
        page.section("IC time series")
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05)
        window = 5
        for name, res in results.items():
            ic = ic_series(res.predictions, fwd.reindex(res.predictions.index).dropna())
            window = max(5, len(ic) // 40)
            roll = _thin(ic.rolling(window, min_periods=window).mean())
            cum = _thin(ic.cumsum())
            style = {"color": runs[name], "width": 1.3}
            fig.add_trace(go.Scatter(x=roll.index, y=roll.to_numpy(), name=name, legendgroup=name, mode="lines",
                                     line=style), row=1, col=1)
            fig.add_trace(go.Scatter(x=cum.index, y=cum.to_numpy(), name=name, legendgroup=name, showlegend=False,
                                     mode="lines", line=style), row=2, col=1)
        fig.update_yaxes(title_text=f"IC, trailing mean ({window} dates)", row=1, col=1)
        fig.update_yaxes(title_text="cumulative IC", row=2, col=1)
        page.figure(fig, height=520)
        page.note(f"IC_t: correlation across instruments at t of the score and the {horizon}-bar forward log "
                  f"return {what}(prediction times of every test fold).")

        page.section("IC by horizon")
        fig = go.Figure()
        tables = {}
        for name, res in results.items():
            tab = ic_by_horizon(res.predictions, fwd, horizon, max_bars=max(horizon, res.config.test_len // 4))
            tables[name] = tab
            fig.add_trace(go.Scatter(x=tab["horizon_bars"], y=tab["ic"], name=name, mode="lines+markers",
                                     line={"color": runs[name], "width": 1.5},
                                     error_y={"type": "data", "array": (1.96 * tab["se"]).to_numpy(),
                                              "visible": True, "thickness": 1}))
        ticks = sorted({int(h) for t in tables.values() for h in t["horizon_bars"]})
        fig.update_xaxes(title_text="horizon (bars, log scale)", type="log", tickvals=ticks,
                         ticktext=[str(h) for h in ticks], minor={"showgrid": False})
        fig.update_yaxes(title_text="mean IC")
        page.figure(fig, height=380)
        page.note(f"IC of the score at t with the instrument's forward log return over h bars {what}(the sum of "
                  f"h/{horizon} consecutive label-horizon returns, made by shifting the labels); bars: +-1.96 "
                  "Newey-West standard errors of the per-date ICs taken every h-th date.")

        page.section(f"Quantile returns ({N_QUANTILES} quantiles by score, non-overlapping)")
        fig = go.Figure()
        spreads = {}
        for name, res in results.items():
            q = quantile_returns(res.predictions, fwd, horizon)
            spreads[name] = q
            fig.add_trace(go.Bar(x=[f"Q{k}" for k in q["quantile"]], y=1e4 * q["mean"].to_numpy(), name=name,
                                 marker={"color": runs[name]},
                                 error_y={"type": "data", "array": 1e4 * 1.96 * q["se"].to_numpy(), "visible": True}))
        fig.update_layout(barmode="group")
        fig.update_yaxes(title_text=f"mean {horizon}-bar forward log return (bps)")
        fig.update_xaxes(title_text="score quantile (Q1 lowest)")
        page.figure(fig, height=380)
        table = pd.DataFrame({name: {**{f"Q{int(r.quantile)}": r.mean for r in q.itertuples()},
                                     f"Q{N_QUANTILES} - Q1": float(q["mean"].iloc[-1] - q["mean"].iloc[0])
                                     if len(q) else math.nan,
                                     "dates": float(q["dates"].max()) if len(q) else math.nan}
                              for name, q in spreads.items()}).T
        page.table(table, lambda r, c: "int" if c == "dates" else "bps", index_name="run (bps)")
        page.note(f"Each date's instruments in {N_QUANTILES} groups of equal size by score; mean forward return "
                  f"{what}per group on dates {horizon} bar(s) apart, so the returns do not overlap; bars: +-1.96 "
                  "Newey-West standard errors.")

    page.section("Signal turnover")
    fig = go.Figure()
    rows = {}
    frac = first.config.long_short_fraction
    for name, res in results.items():
        t = signal_turnover(res.predictions, frac)
        window = max(5, len(t) // 40)
        roll = _thin(t["top_turnover"].rolling(window, min_periods=window).mean())
        fig.add_trace(go.Scatter(x=roll.index, y=roll.to_numpy(), name=name, mode="lines",
                                 line={"color": runs[name], "width": 1.3}))
        rows[name] = {"top turnover per bar": t["top_turnover"].mean(), "rank autocorrelation": t["rank_autocorr"].mean()}
    fig.update_yaxes(title_text=f"share of the top {frac:.0%} that is new", tickformat=".0%")
    page.figure(fig, height=340)
    page.table(pd.DataFrame(rows).T, {"top turnover per bar": "pct", "rank autocorrelation": "num"}, index_name="run")
    page.note(f"Between consecutive prediction times: the share of the top {frac:.0%} by score not in it at the "
              "previous time (trailing mean), and the Spearman correlation of the scores of the instruments "
              "scored at both.")


def _importance_section(page: Page, results: dict[str, WalkForwardResult]) -> None:
    page.section("Feature importance (mean |SHAP| over folds)")
    for name, res in results.items():
        shap = res.shap
        mean = shap.mean().sort_values(ascending=False, kind="stable")
        top = mean.head(TOP_FEATURES)[::-1]
        spread = shap.std(ddof=1)[top.index] if len(shap) > 1 else pd.Series(0.0, index=top.index)
        graph = [is_graph_feature(str(f)) for f in top.index]
        fig = go.Figure()
        for flag, label, colour in ((False, "Alpha158 / other", OTHER_FEATURE_COLOUR), (True, "graph feature",
                                                                                       GRAPH_COLOUR)):
            sel = [i for i, g in enumerate(graph) if g == flag]
            if not sel:
                continue
            fig.add_trace(go.Bar(x=top.to_numpy()[sel], y=[str(top.index[i]) for i in sel], orientation="h",
                                 name=label, marker={"color": colour},
                                 error_x={"type": "data", "array": spread.to_numpy()[sel], "visible": True,
                                          "thickness": 1}))
        fig.update_layout(barmode="overlay", showlegend=True)
        fig.update_yaxes(type="category", categoryorder="array", categoryarray=[str(f) for f in top.index])
        fig.update_xaxes(title_text="mean |SHAP| on the test bars (score units)")
        n_graph = sum(is_graph_feature(str(f)) for f in shap.columns)
        among = f"{sum(graph)} of its {n_graph} graph features among them" if n_graph else "no graph features"
        page.heading(f"{name}: top {len(top)} of {shap.shape[1]} features ({among})")
        page.figure(fig, height=120 + 20 * len(top))
        stab = res.stability("shap")
        order = pd.DataFrame({"s": stab, "m": mean.reindex(stab.index)}).sort_values(["s", "m"], ascending=False,
                                                                                   kind="stable").index[:20]
        tab = pd.DataFrame({"mean |SHAP|": mean.reindex(order),
                            f"share of folds in the top {res.config.top_k}": stab.reindex(order),
                            "graph feature": ["yes" if is_graph_feature(str(f)) else "" for f in order]})
        page.table(tab, {f"share of folds in the top {res.config.top_k}": "pct"}, index_name="feature")
    page.note("Bars: mean over folds of the mean |SHAP| contribution on the fold's test bars; whiskers: its "
              "standard deviation across folds. Graph features are the G_* columns built from the correlation "
              "graph snapshots and regimes.")
