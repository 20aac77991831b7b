"""`graphwiz backtest --scores FILE`: any score panel goes through expected returns, the optimiser and the
cost-aware backtest; the planted signal as a file reproduces the built-in synthetic run exactly; bad panels
fail with messages that say what and where."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from graphwiz_trader.backtest import commands
from graphwiz_trader.backtest.runner import load_market, run_configured_backtest
from graphwiz_trader.backtest.scores import ScoreFileError, read_score_file, score_panel
from graphwiz_trader.backtest.settings import BacktestRunSettings
from graphwiz_trader.config.loader import validate_mapping
from graphwiz_trader.core.commandline import GraphwizParser
from graphwiz_trader.errors import UnknownSymbolError

REPO = Path(__file__).resolve().parents[2]


def small_config(tmp_path: Path, no_trade_band: float | None = None) -> tuple[BacktestRunSettings, Path]:
    raw = yaml.safe_load((REPO / "config" / "backtest.yaml").read_text())
    raw["data"]["synthetic"].update({"n_assets": 5, "n_clusters": 2, "n_bars": 150})
    raw["portfolio"]["cov_window"] = "3D"
    if no_trade_band is not None:
        raw["portfolio"]["constraints"]["no_trade_band"] = no_trade_band
    raw["report"]["html"] = str(tmp_path / "report.html")
    path = tmp_path / "bt.yaml"
    path.write_text(yaml.safe_dump(raw))
    return validate_mapping(raw, BacktestRunSettings, str(path)), path


def planted_panel(cfg: BacktestRunSettings, naive: bool = True) -> pd.DataFrame:
    """The synthetic market's planted signal in the predictions.parquet layout (Qlib codes, a fold column)."""
    sig = load_market(cfg, None).synthetic_signal.copy()
    if naive:
        sig.index = sig.index.tz_convert(None)  # Qlib writes naive UTC times
    sig.columns = [c.replace("/", "") for c in sig.columns]
    panel = sig.stack().rename_axis(["datetime", "instrument"]).to_frame("planted")
    panel["fold"] = pd.array(np.arange(len(panel)) // 100, dtype="Int64")
    return panel


def run_cli(argv: list[str]) -> int:
    parser = GraphwizParser(prog="graphwiz")
    commands.register(parser.add_subparsers(dest="command", parser_class=GraphwizParser))
    args = parser.parse_args(argv)
    return args.func(args)


def test_the_planted_signal_as_a_scores_file_reproduces_the_built_in_synthetic_backtest_exactly(tmp_path, capsys):
    cfg, cfg_path = small_config(tmp_path)
    built_in = run_configured_backtest(cfg, write_html=False, progress=False)
    f = tmp_path / "predictions.parquet"
    planted_panel(cfg).to_parquet(f)
    out = tmp_path / "out.json"
    assert run_cli(["backtest", "--config", str(cfg_path), "--scores", str(f), "--json", str(out),
                    "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "planted from --scores" in printed and "5 instruments mapped" in printed
    payload = json.loads(out.read_text())
    equity = pd.read_parquet(Path(payload["run_dir"]) / "equity.parquet")
    assert len(equity) == len(built_in.results["strategy"].equity)
    for name, result in built_in.results.items():
        np.testing.assert_array_equal(equity[name].to_numpy(), result.equity.to_numpy())
    assert payload["scores"]["column"] == "planted"
    assert payload["scores"]["instruments"]["SYN03USDT"] == "SYN03/USDT"
    assert payload["period"]["decisions"] == 150 - 72


def test_tz_aware_and_naive_score_times_are_the_same_utc_times(tmp_path):
    cfg, _ = small_config(tmp_path)
    a = run_configured_backtest(cfg, write_html=False, progress=False, scores=planted_panel(cfg, naive=True),
                                score_column="planted")
    b = run_configured_backtest(cfg, write_html=False, progress=False, scores=planted_panel(cfg, naive=False),
                                score_column="planted")
    pd.testing.assert_series_equal(a.results["strategy"].equity, b.results["strategy"].equity)


def test_an_instrument_without_bars_is_an_error_that_names_it(tmp_path):
    cfg, cfg_path = small_config(tmp_path)
    panel = planted_panel(cfg)
    extra = panel.xs("SYN00USDT", level="instrument", drop_level=False).rename(index={"SYN00USDT": "NOPEUSDT"})
    f = tmp_path / "p.parquet"
    pd.concat([panel, extra]).to_parquet(f)
    with pytest.raises(UnknownSymbolError, match=r"NOPEUSDT in the bars .*available: SYN00USDT"):
        run_cli(["backtest", "--config", str(cfg_path), "--scores", str(f), "--score-column", "planted",
                 "--no-progress"])


def test_several_score_columns_need_a_choice_and_the_error_lists_them(tmp_path):
    cfg, cfg_path = small_config(tmp_path)
    panel = planted_panel(cfg).rename(columns={"planted": "alpha158"})
    panel.insert(1, "hybrid", panel["alpha158"] * 2)
    f = tmp_path / "p.parquet"
    panel.to_parquet(f)
    with pytest.raises(ScoreFileError, match=r"2 score columns \(alpha158, hybrid\); choose one with --score-column"):
        run_cli(["backtest", "--config", str(cfg_path), "--scores", str(f), "--no-progress"])
    with pytest.raises(ScoreFileError, match=r"no score column 'lgbm'; its score columns: alpha158, hybrid"):
        run_cli(["backtest", "--config", str(cfg_path), "--scores", str(f), "--score-column", "lgbm",
                 "--no-progress"])


def test_bars_without_scores_are_left_out_and_reported_or_refused_when_named(tmp_path):
    cfg, _ = small_config(tmp_path)
    panel = planted_panel(cfg)
    panel = panel[panel.index.get_level_values("instrument") != "SYN04USDT"]
    run = run_configured_backtest(cfg, write_html=False, progress=False, scores=panel, score_column="planted")
    assert run.scores_info["symbols_without_scores_left_out"] == ["SYN04/USDT"]
    assert "SYN04/USDT" not in run.results["strategy"].weights.columns
    assert "SYN04/USDT" not in run.results["equal_weight"].weights.columns  # benchmarks trade the same universe
    with pytest.raises(ScoreFileError, match=r"--symbols SYN04/USDT have bars but no scores in column 'planted'"):
        run_configured_backtest(cfg, write_html=False, progress=False, scores=panel, score_column="planted",
                                symbols=["SYN00/USDT", "SYN04/USDT"])


def test_a_missing_score_at_a_decision_is_counted_and_makes_the_symbol_ineligible_then(tmp_path):
    cfg, _ = small_config(tmp_path, no_trade_band=0.0)  # no band: a decision is never a hold of earlier weights
    panel = planted_panel(cfg)
    t = pd.Timestamp("2022-01-05 10:00")
    panel.loc[(t, "SYN01USDT"), "planted"] = np.nan
    run = run_configured_backtest(cfg, write_html=False, progress=False, scores=panel, score_column="planted")
    assert run.scores_info["decisions_without_a_score"] == {"SYN01/USDT": 1}
    assert run.rolling.weights.loc[t.tz_localize("UTC"), "SYN01/USDT"] == 0.0


def test_the_score_at_t_drives_the_decision_at_t_and_later_scores_change_nothing_before(tmp_path):
    cfg, _ = small_config(tmp_path)
    panel = planted_panel(cfg)
    full = run_configured_backtest(cfg, write_html=False, progress=False, scores=panel, score_column="planted")
    t = pd.Timestamp("2022-01-05 10:00")
    later = panel.copy()
    later.loc[later.index.get_level_values("datetime") >= t, "planted"] *= -1.0  # flip every score from t on
    flipped = run_configured_backtest(cfg, write_html=False, progress=False, scores=later, score_column="planted")
    w0, w1 = full.rolling.weights, flipped.rolling.weights
    tu = t.tz_localize("UTC")
    pd.testing.assert_frame_equal(w0[w0.index < tu], w1[w1.index < tu])
    assert not np.allclose(w0.loc[tu], w1.loc[tu])  # the decision at t already uses the score at t
    e0, e1 = full.results["strategy"].equity, flipped.results["strategy"].equity
    # the decision at t fills at t+1's open: equity through bar t is unchanged
    pd.testing.assert_series_equal(e0[e0.index <= tu], e1[e1.index <= tu])


def test_start_and_end_narrow_the_scores_range_and_earlier_bars_are_only_history(tmp_path):
    cfg, _ = small_config(tmp_path)
    panel = planted_panel(cfg)
    run = run_configured_backtest(cfg, write_html=False, progress=False, scores=panel, score_column="planted",
                                  start="2022-01-05 00:00", end="2022-01-06 12:00")
    dec = run.rolling.weights.index
    # the 72-bar covariance warm-up comes from the bars before --start: the first decision is at --start
    assert dec[0] == pd.Timestamp("2022-01-05 00:00", tz="UTC")
    assert dec[-1] == pd.Timestamp("2022-01-06 12:00", tz="UTC")
    equity = run.results["strategy"].equity
    assert equity.index[0] == dec[0] + pd.Timedelta("1h")  # measured from the first fill
    assert equity.index[-1] == dec[-1]  # bars after --end are not used


def test_score_times_that_are_not_bar_times_are_refused(tmp_path):
    cfg, _ = small_config(tmp_path)
    panel = planted_panel(cfg)
    shifted = panel.rename(index=lambda t: t + pd.Timedelta(minutes=30) if isinstance(t, pd.Timestamp) else t,
                           level="datetime")
    with pytest.raises(ScoreFileError, match=r"score times are not bar times of the 1h bars"):
        run_configured_backtest(cfg, write_html=False, progress=False, scores=shifted, score_column="planted")


def test_centred_scores_have_zero_mean_per_time_and_infinite_scores_are_refused():
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=3, freq="h"), ["BTCUSDT", "ETHUSDT"]],
                                     names=["datetime", "instrument"])
    probs = pd.DataFrame({"p": [0.6, 0.5, 0.55, 0.52, 0.4, 0.7]}, index=idx)
    panel = score_panel(probs, ["BTC/USDT", "ETH/USDT"], center=True)
    assert list(panel.scores.columns) == ["BTC/USDT", "ETH/USDT"]
    assert panel.scores.index.tz is not None
    np.testing.assert_allclose(panel.scores.to_numpy(), [[0.05, -0.05], [0.015, -0.015], [-0.15, 0.15]])
    probs.iloc[2, 0] = np.inf
    with pytest.raises(ScoreFileError, match="1 infinite scores"):
        score_panel(probs, ["BTC/USDT", "ETH/USDT"])


def test_a_file_without_the_panel_layout_says_what_it_found(tmp_path):
    f = tmp_path / "bad.parquet"
    pd.DataFrame({"time": [1, 2], "score": [0.1, 0.2]}).to_parquet(f)
    with pytest.raises(ScoreFileError, match=r"expected a \(datetime, instrument\) index or columns"):
        read_score_file(f)
    with pytest.raises(ScoreFileError, match="no such file"):
        read_score_file(tmp_path / "missing.parquet")
    csv = tmp_path / "s.csv"
    csv.write_text("datetime,instrument,score\n2024-01-01 00:00,BTCUSDT,0.5\n")
    assert read_score_file(csv).index.names == ["datetime", "instrument"]


def write_csv_source(folder: Path) -> dict[str, pd.DataFrame]:
    """Synthetic bars saved as a real-data folder (``BTC_USDT-1h.csv``, ...) with one pair the scores lack."""
    market = load_market_for_files()
    names = {"SYN00/USDT": "BTC/USDT", "SYN01/USDT": "ETH/USDT", "SYN02/USDT": "SOL/USDT", "SYN03/USDT": "XRP/USDT"}
    folder.mkdir(parents=True, exist_ok=True)
    bars = {}
    for syn, real in names.items():
        df = market.bars[syn]
        df.rename_axis("date").reset_index().to_csv(folder / f"{real.replace('/', '_')}-1h.csv", index=False)
        bars[real] = df
    return bars


def load_market_for_files():
    from graphwiz_trader.data.synthetic import generate_synthetic_market

    return generate_synthetic_market(n_assets=4, n_clusters=2, n_bars=150, seed=11)


def reversal_panel(bars: dict[str, pd.DataFrame], symbols: list[str]) -> pd.DataFrame:
    from graphwiz_trader.backtest.scores import cross_sectional_reversal

    close = pd.DataFrame({s: bars[s]["close"] for s in symbols})
    wide = cross_sectional_reversal(close, 1)
    wide.columns = [s.replace("/", "") for s in wide.columns]
    return wide.stack().rename_axis(["datetime", "instrument"]).to_frame("reversal")


def test_real_bars_are_loaded_for_the_scored_instruments_only_and_an_unknown_one_names_the_source(tmp_path):
    cfg, cfg_path = small_config(tmp_path)
    bars = write_csv_source(tmp_path / "bars")
    panel = reversal_panel(bars, ["BTC/USDT", "ETH/USDT", "SOL/USDT"])
    f = tmp_path / "scores.parquet"
    panel.to_parquet(f)
    out = tmp_path / "out.json"
    assert run_cli(["backtest", "--config", str(cfg_path), "--source", str(tmp_path / "bars"), "--format", "csv",
                    "--scores", str(f), "--start", "2022-01-04", "--json", str(out), "--no-progress"]) == 0
    payload = json.loads(out.read_text())
    assert payload["label"].startswith("REAL DATA: 3 pairs")  # XRP/USDT has a file but no scores: not loaded
    assert set(payload["scores"]["instruments"].values()) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
    weights = pd.read_parquet(Path(payload["run_dir"]) / "weights.parquet")
    assert list(weights.columns) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    # daily decisions (backtest.rebalance 1D: the 23:00 bar) from --start on; the 3-day warm-up comes from
    # the bars before it, and the last score (bar 149, 2022-01-07 05:00) ends the period
    assert payload["period"]["start"].startswith("2022-01-05T00:00")
    assert payload["period"]["end"].startswith("2022-01-07T05:00")
    assert payload["period"]["decisions"] == 3  # 2022-01-04, -05 and -06 at 23:00
    extra = reversal_panel(bars, ["BTC/USDT", "ETH/USDT"]).rename(index={"ETHUSDT": "DOGEUSDT"})
    pd.concat([panel, extra]).to_parquet(f)
    with pytest.raises(UnknownSymbolError, match=r"DOGEUSDT in --source .*bars.*available: BTCUSDT, ETHUSDT"):
        run_cli(["backtest", "--config", str(cfg_path), "--source", str(tmp_path / "bars"), "--format", "csv",
                 "--scores", str(f), "--no-progress"])


def test_symbols_narrow_the_built_in_synthetic_run_and_the_scores_alike(tmp_path):
    cfg, _ = small_config(tmp_path)
    names = ["SYN00/USDT", "SYN02/USDT", "SYN03/USDT"]
    built_in = run_configured_backtest(cfg, write_html=False, progress=False, symbols=names)
    from_file = run_configured_backtest(cfg, write_html=False, progress=False, symbols=names,
                                        scores=planted_panel(cfg), score_column="planted")
    assert list(built_in.results["strategy"].weights.columns) == names
    pd.testing.assert_series_equal(built_in.results["strategy"].equity, from_file.results["strategy"].equity)
    assert from_file.scores_info["instruments_not_in_symbols"] == ["SYN01USDT", "SYN04USDT"]
