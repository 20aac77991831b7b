"""End to end: data -> scores -> walk-forward optimiser -> cost-aware backtest + benchmarks -> report.

The domain function behind ``graphwiz backtest`` and ``examples/qlib_phase2_demo.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.benchmarks import (
    buy_and_hold_targets,
    equal_weight_targets,
    inverse_vol_targets,
    pick_buy_and_hold_symbol,
)
from graphwiz_trader.backtest.settings import BacktestRunSettings
from graphwiz_trader.backtest.engine import BacktestResult, MarketPanel, rebalance_times, run_backtest
from graphwiz_trader.backtest.report import metrics_table, regime_labels_for, write_report
from graphwiz_trader.backtest.scores import (
    ScoreFileError,
    ScorePanel,
    choose_score_column,
    point_in_time_scores,
    score_name,
    score_panel,
    score_time_range,
)
from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.core.timeframes import timeframe_delta
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.data.ranges import cut_to_range
from graphwiz_trader.data.calendars import bars_per_year
from graphwiz_trader.data.sources import SourceOptions, load_universe
from graphwiz_trader.data.universe import mask_values, membership_mask
from graphwiz_trader.data.synthetic import SyntheticMarketSettings, generate_synthetic_market
from graphwiz_trader.errors import ConfigError, DataError, UnknownSymbolError
from graphwiz_trader.portfolio.rolling import RollingResult, per_bar_returns, rolling_optimise
from graphwiz_trader.portfolio.settings import OptimiserSettings
from graphwiz_trader.portfolio.sizing import hedge_ratio

log = logging.getLogger(__name__)
SYNTHETIC_SCORE_NAME = "synthetic_planted_signal (known at t's close, forecasts the t->t+1 return)"
STRATEGY = "strategy"
STRATEGY_GROSS = "strategy_gross_of_costs"


@dataclass(frozen=True)
class MarketData:
    """Bars plus what the runner needs to describe them."""

    bars: dict[str, pd.DataFrame]
    label: str
    timeframe: str
    communities: dict[str, int] | None = None
    synthetic_signal: pd.DataFrame | None = None
    rebalance: int | str | None = None
    calendar: str = "24/7"
    membership: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] | None = None


@dataclass(frozen=True)
class BacktestRun:
    """Everything one configured run produced."""

    label: str
    score_name: str
    results: dict[str, BacktestResult]
    rolling: RollingResult
    metrics: pd.DataFrame
    hedge_symbol: str
    hedge_ratio: pd.Series
    report_path: Path | None
    seconds: dict[str, float] = field(default_factory=dict)
    scores_info: dict[str, object] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """Plain figures for ``--json``."""
        strat = self.results[STRATEGY]
        h = self.hedge_ratio.dropna()
        return {
            "label": self.label,
            "score": self.score_name,
            "period": {"start": strat.equity.index[0], "end": strat.equity.index[-1],
                       "bars": len(strat.equity), "decisions": len(self.rolling.weights)},
            "metrics": {name: self.metrics[name].to_dict() for name in self.metrics.columns},
            "fallback_counts": self.rolling.fallback_counts(),
            "no_trade_band_holds": int(self.rolling.diagnostics["held"].sum()) if len(self.rolling.diagnostics) else 0,
            "orders_not_sent": {name: r.skipped for name, r in self.results.items()},
            "liquidated_at": {name: r.liquidated_at for name, r in self.results.items() if r.liquidated_at},
            "hedge_ratio": {"hedge_symbol": self.hedge_symbol, "mean": float(h.mean()) if len(h) else None,
                            "last": float(h.iloc[-1]) if len(h) else None,
                            "meaning": f"units of {self.hedge_symbol} notional to short per unit of strategy "
                                       "equity to remove its beta (rolling OLS over the cov window, bars <= t)"},
            "report_html": self.report_path,
            "scores": self.scores_info or None,
            "seconds": self.seconds,
        }


def trim_to_common_end(bars: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Cut every symbol at the earliest last bar among them (logged).

    Downloaded files end at different times (the shared Binance files hold a fixed number of rows).
    Past the first file's end a position in that symbol could no longer be traded or marked, so the
    run stops there. This chooses the period from file coverage, not from prices.
    """
    ends = {s: df.index.max() for s, df in bars.items() if len(df)}
    end = min(ends.values())
    later = {s: int((df.index > end).sum()) for s, df in bars.items()}
    if any(later.values()):
        first = min(ends, key=ends.get)
        log.warning("real data ends at %s (last bar of %s); %d later bars of %d symbols are not used",
                    end, first, sum(later.values()), sum(1 for v in later.values() if v))
    return {s: df[df.index <= end] for s, df in bars.items()}


def load_market(cfg: BacktestRunSettings, source: str | Path | None, fmt: str = "freqtrade", *,
                symbols: list[str] | None = None, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                instruments: list[str] | None = None, options: SourceOptions | None = None) -> MarketData:
    """The synthetic default (``source=None``) or real bars from ``source``.

    ``symbols``, ``start`` and ``end`` (UTC) override ``data.source`` of the config for real data;
    ``symbols`` also selects among the synthetic symbols. ``instruments`` (Qlib codes of a score panel)
    pick the real files to load when no symbols are named: an instrument without a file is an error.
    ``options``: the source options (calendar, CSV naming, Qlib provider and market); with a Qlib market the
    membership spans come along (``MarketData.membership``).
    """
    if source is None:
        s = cfg.data.synthetic
        market = generate_synthetic_market(SyntheticMarketSettings(
            n_assets=s.n_assets, n_clusters=s.n_clusters, n_bars=s.n_bars, timeframe=s.timeframe, start=s.start,
            seed=s.seed, signal_strength=s.signal_strength))
        return MarketData(_select(dict(market.bars), symbols, "the synthetic market"), market.label, s.timeframe,
                          dict(market.clusters), market.signal, s.rebalance)
    if fmt not in ("freqtrade", "csv", "store", "qlib"):
        raise ConfigError(f"--format {fmt!r} is not supported for real data; use freqtrade, csv, qlib or store")
    src = cfg.data.source
    wanted = list(symbols) if symbols else (list(src.symbols) if src.symbols else None)
    if wanted is None and instruments is not None:
        wanted = sorted(i.upper() for i in instruments) if fmt == "qlib" else _files_for(instruments, source, fmt,
                                                                                           src.timeframe)
    loaded = load_universe(source, fmt, src.timeframe, wanted, start if start is not None else src.start,
                           end if end is not None else src.end, options=options)
    bars = trim_to_common_end(loaded.bars)
    kind = "pairs" if loaded.calendar == "24/7" else f"instruments on the {loaded.calendar} calendar"
    origin = (loaded.label.replace(f", {loaded.calendar} calendar", "") if fmt == "qlib" or source is None
              else str(Path(source)))
    label = f"REAL DATA: {len(bars)} {kind}, {src.timeframe} bars from {origin}"
    if loaded.dropped:
        label += f" ({len(loaded.dropped)} without bars in the range left out: {', '.join(sorted(loaded.dropped))})"
    return MarketData(bars, label, src.timeframe, calendar=loaded.calendar, membership=loaded.membership)


def _select(bars: dict[str, pd.DataFrame], symbols: list[str] | None, where: str) -> dict[str, pd.DataFrame]:
    if not symbols:
        return bars
    missing = [s for s in symbols if s not in bars]
    if missing:
        raise UnknownSymbolError(missing, where, list(bars))
    return {s: bars[s] for s in symbols}


def _only_named(raw: pd.Series, symbols: list[str], where: str) -> tuple[pd.Series, list[str]]:
    """The rows of ``raw`` whose instrument is one of ``symbols`` (by Qlib code or name), and the others."""
    score_time_range(raw, where)  # checks the layout
    keep = {to_qlib_instrument(s) for s in symbols} | {s.upper() for s in symbols}
    inst = pd.Index([str(i).upper() for i in raw.index.get_level_values(1)])
    mask = inst.isin(keep)
    return raw[mask], sorted({str(i) for i in raw.index.get_level_values(1)[~mask]})


def _files_for(instruments: list[str], source: str | Path, fmt: str, timeframe: str) -> list[str]:
    """The real symbols whose Qlib codes are ``instruments`` (``BTCUSDT`` -> ``BTC/USDT``)."""
    from graphwiz_trader.data.sources import available_symbols
    from graphwiz_trader.data.store import ParquetStore

    have = ParquetStore(source).symbols(timeframe) if fmt == "store" else available_symbols(source, timeframe, fmt)
    lookup = {to_qlib_instrument(s): s for s in have}
    codes = sorted(lookup)
    lookup.update({s: s for s in have})
    unknown = sorted({i for i in instruments if i.upper() not in lookup})
    if unknown:
        raise UnknownSymbolError(unknown, f"--source {source} ({timeframe} {fmt} bars; instruments are matched by "
                                          "Qlib code, e.g. BTCUSDT for BTC/USDT)", codes)
    return sorted({lookup[i.upper()] for i in instruments})


def _bars_in(duration: str, bar: pd.Timedelta) -> int:
    return int(pd.Timedelta(duration) / bar)


def _warmup(cfg: BacktestRunSettings, bar: pd.Timedelta, builtin_scores: bool) -> pd.Timedelta:
    """History needed before the first decision: the covariance window, the built-in score's lookback,
    the impact model's volume window, and two bars to spare."""
    need = pd.Timedelta(cfg.portfolio.cov_window) + (cfg.backtest.costs.impact_volume_window_bars + 2) * bar
    if builtin_scores:
        need += pd.Timedelta(cfg.scores.lookback) + pd.Timedelta(cfg.scores.skip)
    return need


def run_configured_backtest(cfg: BacktestRunSettings, source: str | Path | None = None, fmt: str = "freqtrade",
                            report_path: str | Path | None = None, progress: bool = True,
                            write_html: bool = True, data: MarketData | None = None,
                            tearsheet: bool = False, *, scores: pd.DataFrame | pd.Series | None = None,
                            score_column: str | None = None, center_scores: bool = False,
                            start: object = None, end: object = None, symbols: list[str] | None = None,
                            scores_where: str = "the score panel",
                            universe: pd.DataFrame | None = None,
                            source_options: SourceOptions | None = None) -> BacktestRun:
    """Run the strategy the config describes, its benchmarks and (optionally) the HTML report.

    ``data`` skips loading (pass the :func:`load_market` result to run several configs on one market).
    ``tearsheet`` adds a quantstats tear sheet beside the HTML report.

    ``scores``: a score panel in the ``predictions.parquet`` layout (``(datetime, instrument)`` index, one
    column per model variant plus ``fold``; ``score_column`` picks one, see
    :func:`~graphwiz_trader.backtest.scores.score_panel`) used instead of the built-in scores. The score at t
    is known at bar t's close and drives the decision at t. The scores' first and last times set the
    period of decisions (``start``/``end`` can only narrow it); earlier bars serve as the trailing history of
    the covariance. Every instrument needs bars; symbols with bars but no scores are an error when named
    in ``symbols`` and otherwise left out and reported (``BacktestRun.scores_info``).
    ``start``/``end`` (UTC) and ``symbols`` also narrow runs on the built-in scores.

    The strategy's targets at decision time t come from :func:`rolling_optimise` on closes and
    scores at bars <= t and are filled at bar t+1's open by :func:`run_backtest`; benchmarks use
    the same decision times (after the optimiser's warm-up), engine, costs and schedule.

    ``universe``: the point-in-time universe, booleans with the bars' UTC times as rows and the symbols as
    columns (e.g. index membership, :func:`graphwiz_trader.data.universe.membership_mask`). A symbol is
    in the optimiser's universe at a decision only when it is a member then: its target is 0 before it
    joins and after it leaves, and a position held when it leaves is sold at the next rebalance (filled
    at the next open, with costs). The equal-weight and inverse-volatility benchmarks hold members only
    (:func:`restrict_to_universe`); buy-and-hold keeps its one symbol.
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    lo = to_utc(start, "--start") if start is not None else None
    hi = to_utc(end, "--end") if end is not None else None
    raw = choose_score_column(scores, score_column, scores_where) if scores is not None else None
    not_named: list[str] = []
    if raw is not None and symbols:
        raw, not_named = _only_named(raw, symbols, scores_where)
    if raw is not None:
        first, last = score_time_range(raw, scores_where)
        lo = first if lo is None else max(lo, first)
        hi = last if hi is None else min(hi, last)
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"no decision time left: start {lo} is after end {hi}"
                        + (f" (the scores of {scores_where} run {first} .. {last})" if raw is not None else ""))
    timeframe = data.timeframe if data is not None else (cfg.data.source.timeframe if source is not None
                                                         else cfg.data.synthetic.timeframe)
    warm = _warmup(cfg, timeframe_delta(timeframe), builtin_scores=raw is None)
    load_lo = lo - warm if lo is not None else None
    if data is None:
        instruments = sorted({str(i) for i in raw.index.get_level_values(1)}) if raw is not None else None
        data = load_market(cfg, source, fmt, symbols=symbols, start=load_lo, end=hi, instruments=instruments,
                           options=source_options)
    bars = _select(dict(data.bars), symbols, "the bars")
    scores_info: dict[str, object] = {}
    panel_scores: ScorePanel | None = None
    if raw is not None:
        panel_scores = score_panel(raw, list(bars), where=scores_where, center=center_scores)
        unscored = [s for s in bars if s not in panel_scores.scores.columns]
        if unscored and symbols:
            raise ScoreFileError(f"--symbols {', '.join(unscored)} have bars but no scores in column "
                                 f"{panel_scores.column!r} of {scores_where}")
        if unscored:
            log.warning("%d symbols have bars but no scores in %s and are left out: %s", len(unscored),
                        scores_where, ", ".join(unscored))
            bars = {s: df for s, df in bars.items() if s not in unscored}
        scores_info = {"column": panel_scores.column, "from": scores_where, "centered": center_scores,
                       "range": [panel_scores.start, panel_scores.end], "decision_period": [lo, hi],
                       "instruments": panel_scores.instruments,
                       "symbols_without_scores_left_out": unscored,
                       "instruments_not_in_symbols": not_named}
    if load_lo is not None or hi is not None:
        bars, _ = cut_to_range(bars, load_lo, hi, explicit=True)
    panel = MarketPanel.from_bars(bars, bar=timeframe_delta(data.timeframe))
    close = panel.close_frame()
    if universe is None and data.membership is not None:
        universe = membership_mask(data.membership, pd.DatetimeIndex(panel.index), list(panel.symbols))
    seconds["load"] = time.perf_counter() - t0

    bar = panel.bar
    ppy = cfg.backtest.periods_per_year or bars_per_year(data.calendar, data.timeframe)
    window = _bars_in(cfg.portfolio.cov_window, bar)
    if window < 3:
        raise ConfigError(f"portfolio.cov_window {cfg.portfolio.cov_window} is {window} bars of {bar}; need >= 3")
    if panel_scores is not None:
        sc = panel_scores.scores
        sc = sc[(sc.index >= lo) & (sc.index <= hi)]
        off = sc.index.difference(panel.index)
        if len(off):
            raise ScoreFileError(f"{scores_where}: {len(off)} score times are not bar times of the {data.timeframe} "
                                 f"bars, e.g. {', '.join(map(str, off[:3]))}")
        scores_frame = sc.reindex(columns=list(panel.symbols))
        sname = (f"{panel_scores.column} from {scores_where} (known at t's close, used for the decision at t"
                 f"{'; centred across symbols per time' if center_scores else ''})")
    elif data.synthetic_signal is not None:
        scores_frame = data.synthetic_signal.reindex(columns=list(panel.symbols))  # --symbols may narrow it
        sname = SYNTHETIC_SCORE_NAME
    else:
        look = _bars_in(cfg.scores.lookback, bar)
        skip = _bars_in(cfg.scores.skip, bar)
        scores_frame = point_in_time_scores(close, cfg.scores.kind, look, skip)
        sname = score_name(cfg.scores.kind, look, skip) + " (cross-sectional, closes <= t)"
    communities: Mapping[str, object] | None
    comm_cfg = cfg.portfolio.communities
    if isinstance(comm_cfg, dict):
        communities = comm_cfg
    elif comm_cfg == "synthetic":
        communities = data.communities
    else:
        communities = None
    constraints = cfg.portfolio.constraints
    if constraints.community_cap is not None and communities is None:
        log.warning("community_cap %.3g ignored: no community map for this data (set portfolio.communities "
                    "to a {symbol: id} map)", constraints.community_cap)
        constraints = constraints.model_copy(update={"community_cap": None})
    settings: OptimiserSettings = cfg.portfolio.optimiser.model_copy(
        update={"cov_window_bars": window, "periods_per_year": ppy})

    rebalance = data.rebalance if data.rebalance is not None else cfg.backtest.rebalance
    t1 = time.perf_counter()
    decisions = rebalance_times(panel.index, bar, rebalance)
    if lo is not None:
        decisions = decisions[decisions >= lo]
    rolling = rolling_optimise(close, decisions, scores_frame, settings, constraints, cfg.portfolio.sizing,
                               communities, progress=progress, universe=universe)
    seconds["optimise"] = time.perf_counter() - t1
    if rolling.weights.empty:
        raise DataError(f"no decision after the {window}-bar covariance warm-up; the data has {len(close)} bars")
    if panel_scores is not None:
        at = scores_frame.reindex(index=rolling.weights.index, columns=list(panel.symbols))
        scores_info["decisions_without_a_score"] = {s: int(n) for s, n in at.isna().sum().items() if n}

    t2 = time.perf_counter()
    bt = cfg.backtest.model_copy(update={"periods_per_year": ppy, "rebalance": rebalance})
    results: dict[str, BacktestResult] = {STRATEGY: run_backtest(panel, rolling.weights, bt, name=STRATEGY)}
    if cfg.gross_of_costs_run:
        free = bt.model_copy(update={"costs": CostModel.zero()})
        results[STRATEGY_GROSS] = run_backtest(panel, rolling.weights, free, name=STRATEGY_GROSS)
    dec = rolling.weights.index
    bh_symbol = pick_buy_and_hold_symbol(list(panel.symbols), cfg.buy_and_hold_symbol)
    invested = 1.0 - constraints.cash_buffer  # benchmarks keep the strategy's cash buffer
    for b in cfg.benchmarks:
        if b == "buy_and_hold":
            name = f"buy_and_hold_{bh_symbol}"
            results[name] = run_backtest(panel, buy_and_hold_targets(close, bh_symbol, dec[0], invested), bt,
                                         name=name)
        elif b == "equal_weight":
            results[b] = run_backtest(panel, restrict_to_universe(equal_weight_targets(close, dec, window, invested),
                                                                  universe), bt, name=b)
        else:
            results[b] = run_backtest(panel, restrict_to_universe(inverse_vol_targets(close, dec, window, invested),
                                                                  universe), bt, name=b)
    first = panel.index.get_loc(dec[0]) + 1
    results = {k: _from(v, first) for k, v in results.items()}
    seconds["backtest"] = time.perf_counter() - t2

    metrics = metrics_table(results)
    strat_ret = results[STRATEGY].returns
    hedge_ret = per_bar_returns(close)[bh_symbol].reindex(strat_ret.index)
    hr = hedge_ratio(strat_ret, hedge_ret, window)
    path = None
    if write_html:
        path = Path(report_path or cfg.report.html)
        c = bt.costs
        notes = (f"score: {sname}",
                 f"optimiser: {settings.method} on {settings.expected_returns}, Ledoit-Wolf over {window} bars; "
                 f"rebalance {bt.rebalance} (bars or frequency); decide at bar t close, fill at t+1 open; "
                 f"benchmarks hold the same {constraints.cash_buffer:g} cash buffer",
                 f"costs: fee {c.fee_bps:g} bps ({c.fee_side}), half-spread {c.half_spread_bps:g} + slippage "
                 f"{c.slippage_bps:g} bps, impact {c.impact_coef_bps:g} bps x sqrt(participation), "
                 f"min order {c.min_order_notional:g}; market {bt.market}")
        regime, regime_note = regime_labels_for(data.bars, bar, results[STRATEGY].equity.index[0], progress=progress)
        write_report(path, results, "graphwiz backtest", data.label, weights_of=STRATEGY, notes=notes,
                     metrics=metrics, regime=regime, regime_note=regime_note, tearsheet=tearsheet)
    seconds["total"] = time.perf_counter() - t0
    return BacktestRun(data.label, sname, results, rolling, metrics, bh_symbol, hr, path, seconds, scores_info)


def restrict_to_universe(targets: pd.DataFrame, universe: pd.DataFrame | None) -> pd.DataFrame:
    """Targets with every non-member at 0 and each row rescaled to its total before (fractions of equity).

    Equal weights stay equal among the members, inverse-volatility weights keep their proportions. A row
    whose members all had 0 stays 0 (cash). ``universe=None`` returns ``targets`` unchanged.

    Raises
    ------
    DataError
        when ``universe`` does not cover the targets' times and symbols.
    """
    if universe is None:
        return targets
    m = mask_values(universe, pd.DatetimeIndex(targets.index), [str(c) for c in targets.columns],
                    where="the backtest universe")
    w = targets.to_numpy(dtype="float64")
    kept = np.where(m, w, 0.0)
    tot, tot_kept = w.sum(axis=1, keepdims=True), kept.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(tot_kept != 0, kept * (tot / np.where(tot_kept != 0, tot_kept, 1.0)), 0.0)
    return pd.DataFrame(scaled, index=targets.index, columns=targets.columns)


def _from(r: BacktestResult, start: int) -> BacktestResult:
    """The result from bar ``start`` on (the first fill bar), re-based so metrics cover the live period.

    Nothing trades before the first decision, so equity there equals the initial capital and
    trimming changes no figure except the length of the measured period.
    """
    if start <= 0:
        return r
    eq0 = float(r.equity.iloc[start - 1])
    if not np.isclose(eq0, r.initial_capital, rtol=0, atol=1e-9 * r.initial_capital):
        raise DataError(f"{r.name}: equity moved before the first decision ({eq0} vs {r.initial_capital})")
    sl = slice(start, None)
    return BacktestResult(
        equity=r.equity.iloc[sl], weights=r.weights.iloc[sl], units=r.units.iloc[sl],
        trade_units=r.trade_units.iloc[sl], trade_notional=r.trade_notional.iloc[sl],
        impact_cost=r.impact_cost.iloc[sl], turnover=r.turnover.iloc[sl], costs=r.costs.iloc[sl],
        initial_capital=r.initial_capital, periods_per_year=r.periods_per_year, settings=r.settings,
        skipped=r.skipped, liquidated_at=r.liquidated_at, name=r.name)


def format_metrics(metrics: pd.DataFrame) -> str:
    """One line per run: return, vol, Sharpe with its 95% bootstrap interval, drawdown, turnover, costs."""
    cols = [("total_return", "total", "pct"), ("annualised_return", "ann.ret", "pct"),
            ("annualised_volatility", "ann.vol", "pct"), ("sharpe", "sharpe", "num"),
            ("sharpe_ci", "sharpe 95% CI", "ci"), ("sortino", "sortino", "num"), ("max_drawdown", "maxDD", "pct"),
            ("calmar", "calmar", "num"), ("win_rate", "win", "pct"), ("profit_factor", "PF", "num"),
            ("exposure", "expo", "num"), ("annual_turnover", "turn/yr", "num"),
            ("annual_cost_drag", "cost/yr", "pct")]

    def cell(run: str, key: str, kind: str) -> str:
        if kind == "ci":
            lo, hi = metrics.at["sharpe_ci_low", run], metrics.at["sharpe_ci_high", run]
            return "n/a" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:.2f}, {hi:.2f}]"
        if key not in metrics.index:
            return "n/a"
        v = metrics.at[key, run]
        if not np.isfinite(v):
            return "n/a"
        return f"{100 * v:.1f}%" if kind == "pct" else (f"{v:.1f}" if abs(v) >= 100 else f"{v:.2f}")

    name_w = max(8, *(len(str(c)) for c in metrics.columns))
    table = [[cell(run, k, kind) for k, _, kind in cols] for run in metrics.columns]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, (_, h, _) in enumerate(cols)]
    out = ["run".ljust(name_w) + "".join("  " + h.rjust(w) for (_, h, _), w in zip(cols, widths))]
    for run, row in zip(metrics.columns, table):
        out.append(str(run).ljust(name_w) + "".join("  " + v.rjust(w) for v, w in zip(row, widths)))
    return "\n".join(out)
