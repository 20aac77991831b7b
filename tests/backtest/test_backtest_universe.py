"""Point-in-time universes in the configured backtest: no position before a symbol joins, the position is sold
(with costs) at the first rebalance after it leaves, and the benchmarks hold members only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from graphwiz_trader.backtest.runner import STRATEGY, load_market, restrict_to_universe, run_configured_backtest
from graphwiz_trader.backtest.settings import BacktestRunSettings
from graphwiz_trader.errors import DataError

REPO = Path(__file__).resolve().parents[2]
JOIN, LEAVE = 120, 200       # bar positions (hourly bars)


def _cfg(tmp_path: Path) -> BacktestRunSettings:
    raw = yaml.safe_load((REPO / "config" / "backtest.yaml").read_text())
    raw["data"]["synthetic"].update({"n_assets": 5, "n_clusters": 2, "n_bars": 260})
    raw["portfolio"]["cov_window"] = "3D"
    raw["portfolio"]["constraints"]["community_cap"] = None
    raw["report"]["html"] = str(tmp_path / "report.html")
    return BacktestRunSettings.model_validate(raw)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bt")
    cfg = _cfg(tmp)
    data = load_market(cfg, None)
    free = run_configured_backtest(cfg, data=data, progress=False, write_html=False)
    w = free.results[STRATEGY].weights
    index = times = next(iter(data.bars.values())).index          # every bar (the results start after warm-up)
    # the symbols the unrestricted strategy holds most after JOIN / before LEAVE, so the mask must change them
    joiner = str(w.loc[w.index > index[JOIN]].mean().idxmax())
    leaver = str(w.loc[(w.index >= index[LEAVE - 30]) & (w.index < index[LEAVE])].drop(columns=joiner).mean().idxmax())
    universe = pd.DataFrame(True, index=times, columns=sorted(data.bars))
    universe.loc[times < index[JOIN], joiner] = False
    universe.loc[times >= index[LEAVE], leaver] = False
    run = run_configured_backtest(cfg, data=data, progress=False, write_html=False, universe=universe)
    return run, joiner, leaver, universe, index


def test_no_position_before_a_symbol_joins_and_none_after_it_leaves(setup) -> None:
    run, joiner, leaver, _, index = setup
    res = run.results[STRATEGY]
    pos = res.weights
    targets = run.rolling.weights
    # decided at t's close, filled at t+1's open: the position follows the target one bar later
    assert (targets.loc[targets.index < index[JOIN], joiner] == 0).all()
    assert (targets.loc[targets.index >= index[LEAVE], leaver] == 0).all()
    assert (pos.loc[pos.index <= index[JOIN], joiner] == 0).all()
    assert (pos.loc[pos.index > index[LEAVE], leaver] == 0).all()
    assert (pos.loc[pos.index > index[JOIN], joiner] > 0).any()
    assert pos.loc[index[LEAVE - 1], leaver] > 0                 # held on its last member bar


def test_the_leaver_is_sold_at_the_next_rebalance_with_costs(setup) -> None:
    run, _, leaver, _, index = setup
    res = run.results[STRATEGY]
    sell_bar = index[LEAVE + 1]                                   # decided at LEAVE's close, filled at the open after
    units_before = res.units.loc[index[LEAVE], leaver]
    assert units_before > 0
    assert res.trade_units.loc[sell_bar, leaver] == pytest.approx(-units_before)
    assert res.trade_notional.loc[sell_bar, leaver] < 0
    assert res.costs.loc[sell_bar, ["fees", "spread_slippage"]].sum() > 0


def test_the_benchmarks_hold_members_only(setup) -> None:
    run, joiner, leaver, _, index = setup
    ew = run.results["equal_weight"].weights
    assert (ew.loc[ew.index <= index[JOIN], joiner] == 0).all()
    assert (ew.loc[ew.index > index[LEAVE], leaver] == 0).all()
    assert (ew.loc[ew.index > index[LEAVE], joiner] > 0).all()


def test_restricting_targets_zeroes_non_members_and_keeps_each_rows_total() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    t = pd.DataFrame([[0.3, 0.3, 0.3], [0.5, 0.25, 0.2], [0.0, 0.0, 0.0]], index=idx, columns=["A", "B", "C"])
    u = pd.DataFrame([[True, False, True], [False, True, True], [True, True, False]], index=idx, columns=["A", "B", "C"])
    got = restrict_to_universe(t, u)
    np.testing.assert_allclose(got.to_numpy(), [[0.45, 0.0, 0.45], [0.0, 0.95 * 0.25 / 0.45, 0.95 * 0.2 / 0.45],
                                                [0.0, 0.0, 0.0]])
    assert restrict_to_universe(t, None) is t
    with pytest.raises(DataError, match="no membership column for C"):
        restrict_to_universe(t, u[["A", "B"]])
