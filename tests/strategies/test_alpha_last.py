"""Alpha158 of the newest bar only equals Qlib's full computation at that bar (numpy last row and Qlib window)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import SyntheticMarketSettings, generate_synthetic_market
from graphwiz_trader.errors import DataError
from graphwiz_trader.features.pipeline import alpha_features
from graphwiz_trader.strategies.alpha_last import ALPHA_LOOKBACK, alpha_last_numpy, alpha_last_qlib, panel_fields

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance_spot_2020_2024" / "1h"


@pytest.fixture(scope="module")
def gapped_market():
    m = generate_synthetic_market(SyntheticMarketSettings(n_assets=6, n_bars=260, seed=5))
    bars = {s: df.copy() for s, df in m.bars.items()}
    s0 = sorted(bars)[0]
    bars[s0] = bars[s0].drop(bars[s0].index[150:153])          # an exchange outage in one symbol
    s1 = sorted(bars)[2]
    bars[s1].loc[bars[s1].index[170:172], "volume"] = 0.0       # two bars without trades
    return bars


def union_times(bars):
    return pd.DatetimeIndex(sorted(set().union(*[df.index for df in bars.values()])))


def newest_rows(full, t):
    return full[full.index.get_level_values("datetime") == t.tz_convert(None)]


def test_the_numpy_newest_bar_features_equal_qlibs_full_computation_at_every_checked_bar(gapped_market, tmp_path):
    full = alpha_features(gapped_market, tmp_path / "qlib")
    syms = sorted(gapped_market)
    for t in union_times(gapped_market)[[70, 152, 155, 171, 200, 259]]:
        window = panel_fields({s: df.loc[:t] for s, df in gapped_market.items()}, syms, ALPHA_LOOKBACK + 1)
        got = alpha_last_numpy(window, t)
        ref = newest_rows(full, t)[got.columns]
        assert list(got.index) == list(ref.index) and got.shape[1] == 162
        np.testing.assert_allclose(got.to_numpy(np.float64), ref.to_numpy(np.float64), rtol=1e-5, atol=1e-7,
                                   equal_nan=True)


def test_qlib_on_the_trailing_window_gives_the_full_computations_newest_row(gapped_market, tmp_path):
    full = alpha_features(gapped_market, tmp_path / "qlib")
    t = union_times(gapped_market)[200]
    got = alpha_last_qlib(gapped_market, t, tmp_path / "qlib", window=ALPHA_LOOKBACK + 3)
    ref = newest_rows(full, t)
    pd.testing.assert_frame_equal(got, ref)


def test_too_short_a_window_is_refused_with_the_number_of_bars_needed(gapped_market):
    syms = sorted(gapped_market)
    t = union_times(gapped_market)[100]
    window = panel_fields({s: df.loc[:t] for s, df in gapped_market.items()}, syms, 30)
    with pytest.raises(DataError, match="needs 62 bars"):
        alpha_last_numpy(window, t)


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real Binance data not found at {REAL}")
def test_on_real_binance_pairs_including_a_sub_cent_coin_the_newest_bar_features_match_qlib(tmp_path):
    from graphwiz_trader.data.sources import load_universe

    syms = ["BTC/USDT", "ETH/USDT", "BONK/USDT", "DOGE/USDT", "XRP/USDT"]
    bars = load_universe(REAL, "freqtrade", "1h", syms, "2024-03-01", "2024-03-12").bars
    full = alpha_features(bars, tmp_path / "qlib")
    for t in union_times(bars)[70::40]:
        window = panel_fields({s: df.loc[:t] for s, df in bars.items()}, list(bars), ALPHA_LOOKBACK + 1)
        got = alpha_last_numpy(window, t)
        np.testing.assert_allclose(got.to_numpy(np.float64), newest_rows(full, t)[got.columns].to_numpy(np.float64),
                                   rtol=1e-5, atol=1e-7, equal_nan=True)
