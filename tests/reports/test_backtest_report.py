"""The backtest report: contributions add up to the total return, every panel is there, metrics are an HTML
table, a run keeps one colour in every panel, regimes are point in time, and the tear sheet works offline."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from graphwiz_trader.backtest.report import contributions, regime_labels_for, tearsheet_path, write_report
from graphwiz_trader.graph.builders.regimes import MARKET_SCOPE, RegimeSettings, build_regime_state

REPO = Path(__file__).resolve().parents[2]
SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc\s*=", re.I)


def trace_colour(t: dict) -> str | None:
    return (t.get("line") or {}).get("color") or (t.get("marker") or {}).get("color")


def test_contributions_and_costs_add_up_to_the_total_return(backtest_runs):
    r = backtest_runs["strategy"]
    con = contributions(r)
    assert float(con.sum().sum()) == pytest.approx(r.equity.iloc[-1] / r.initial_capital - 1, abs=1e-12)
    assert float(con["costs"].sum()) == pytest.approx(-r.costs.to_numpy().sum() / r.initial_capital)
    assert "liquidation close-out" not in con  # spot: nothing is closed out


def test_a_held_asset_contributes_its_price_move_after_the_fill_not_the_fill_itself(backtest_runs, small_market):
    r = backtest_runs["buy_and_hold_SYN00/USDT"]
    bars = small_market.bars["SYN00/USDT"]
    fill = r.trade_units.index[r.trade_units["SYN00/USDT"] != 0][0]
    units = r.units["SYN00/USDT"].iloc[-1]
    expected = units * (bars["close"].iloc[-1] - bars.at[fill, "open"]) / r.initial_capital
    assert contributions(r)["SYN00/USDT"].sum() == pytest.approx(expected, rel=1e-9)


def test_the_report_has_every_panel_an_html_metrics_table_and_one_colour_per_run(backtest_runs, small_market,
                                                                                tmp_path, plotly_figures):
    strat = backtest_runs["strategy"]
    regime, note = regime_labels_for(small_market.bars, pd.Timedelta(hours=1), strat.equity.index[0])
    assert regime is not None and note
    path = write_report(tmp_path / "report.html", backtest_runs, "test report", "SYNTHETIC", regime=regime,
                        regime_note=note)
    html = path.read_text()
    for heading in ("Metrics", "Equity and drawdown", "Rolling Sharpe and volatility", "Monthly returns: strategy",
                    "Turnover and costs per day", "Contribution by asset: strategy", "Weights over time: strategy",
                    "Performance by market regime"):
        assert f">{heading}" in html, heading
    assert "<th>metric</th><th>strategy</th><th>strategy_gross_of_costs</th>" in html  # HTML, never clipped
    figs = plotly_figures(html)
    assert len(figs) == html.count("Plotly.newPlot(") >= 9
    traces = [t for data in figs.values() for t in data]
    assert not [t for t in traces if t.get("type") == "table"]
    assert not SCRIPT_SRC.search(html)
    colours: dict[str, set[str]] = {}
    for t in traces:
        if t.get("name") in backtest_runs:
            colours.setdefault(t["name"], set()).add(trace_colour(t))
    assert set(colours) == set(backtest_runs)
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == len(backtest_runs)
    # an asset has one colour too, in the contribution bars, its cumulative line and the weights
    sym = "SYN01/USDT"
    seen = set()
    for data in figs.values():
        for t in data:
            if t.get("name") == sym:
                seen.add(trace_colour(t))
            elif t.get("orientation") == "h" and sym in t.get("y", []):
                seen.add(t["marker"]["color"][t["y"].index(sym)])
    assert len(seen) == 1


def test_regime_labels_use_bars_up_to_the_previous_bar_only(small_market):
    bars = small_market.bars
    index = next(iter(bars.values())).index
    start = index[300]
    full, _ = regime_labels_for(bars, pd.Timedelta(hours=1), start)
    t = index[700]
    cut, _ = regime_labels_for({s: df[df.index <= t] for s, df in bars.items()}, pd.Timedelta(hours=1), start)
    pd.testing.assert_series_equal(cut, full[full.index <= t])
    raw = build_regime_state(bars, RegimeSettings(min_train=298, refit_every=168, max_train=8760, burn_in=504))
    raw = raw[raw["scope"] == MARKET_SCOPE].set_index("datetime")["regime"]
    k = index.get_loc(index[500])
    assert full.iloc[k] == raw[index[k - 1]]  # bar t carries the label known at t-1's close
    assert full.loc[start:].notna().all()


def test_the_first_live_bar_has_a_regime_label_even_when_earlier_bars_lack_market_features(small_market):
    index = next(iter(small_market.bars.values())).index
    gap = index[100:106]
    bars = {s: (df if s == "SYN00/USDT" else df.drop(gap)) for s, df in small_market.bars.items()}
    start = index[300]  # one asset alone on six bars: no dispersion, no market features there
    labels, _ = regime_labels_for(bars, pd.Timedelta(hours=1), start)
    assert labels.loc[start:].notna().all() and labels.loc[:start].isna().sum() > 0


def test_the_tear_sheet_is_written_beside_the_report_and_loads_nothing(backtest_runs, tmp_path):
    pytest.importorskip("quantstats", reason="quantstats is not installed (the 'report' extra)")
    path = write_report(tmp_path / "bt.html", backtest_runs, "t", "SYNTHETIC", tearsheet=True)
    ts = tearsheet_path(path)
    assert ts == tmp_path / "bt_tearsheet.html" and ts.is_file()
    text = ts.read_text()
    assert "buy_and_hold_SYN00/USDT" in text or "Benchmark" in text
    assert not SCRIPT_SRC.search(text)
    assert not re.search(r"""<link[^>]*href=["']https?://""", text)
    assert 'onload="save()"' not in text  # quantstats' template calls an undefined function on load
    assert 'href="bt_tearsheet.html"' in path.read_text()


def test_backtest_command_writes_the_tear_sheet_with_the_flag(tmp_path, capsys, plotly_figures):
    pytest.importorskip("quantstats", reason="quantstats is not installed (the 'report' extra)")
    from graphwiz_trader.backtest import commands
    from graphwiz_trader.core.commandline import GraphwizParser

    raw = yaml.safe_load((REPO / "config" / "backtest.yaml").read_text())
    raw["data"]["synthetic"].update({"n_assets": 5, "n_clusters": 2, "n_bars": 150})
    raw["portfolio"]["cov_window"] = "3D"
    cfg = tmp_path / "bt.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    parser = GraphwizParser(prog="graphwiz")
    commands.register(parser.add_subparsers(dest="command", parser_class=GraphwizParser))
    args = parser.parse_args(["backtest", "--config", str(cfg), "--report", str(tmp_path / "report.html"),
                              "--tearsheet", "--no-progress"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert f"tear sheet: {tmp_path / 'report_tearsheet.html'}" in printed
    assert (tmp_path / "report_tearsheet.html").is_file()
    html = (tmp_path / "report.html").read_text()
    assert ">Performance by market regime<" in html
    assert len(plotly_figures(html)) >= 9
