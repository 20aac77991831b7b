"""``graphwiz features --start``: the history Alpha158's longest window needs is loaded before ``--start``, so the
features at ``--start`` equal those computed from a longer span, and the frame written starts at ``--start``."""

import pandas as pd

from graphwiz_trader.cli import main
from graphwiz_trader.data.synthetic import (
    SyntheticMarketSettings,
    generate_synthetic_market,
)
from graphwiz_trader.features.alpha158 import ALPHA158_LOOKBACK


def _folder(tmp_path):
    m = generate_synthetic_market(SyntheticMarketSettings(n_assets=3, n_clusters=1, n_bars=400, seed=5))
    src = tmp_path / "ft"
    src.mkdir()
    for sym, df in m.bars.items():
        out = df.reset_index().rename(columns={df.index.name or "index": "date"})
        out[["date", "open", "high", "low", "close", "volume"]].to_feather(src / f"{sym.replace('/', '_')}-1h.feather")
    return src, next(iter(m.bars.values())).index


def _features(tmp_path, src, start, end, name):
    out = tmp_path / f"{name}.parquet"
    assert main(["features", "--source", str(src), "--format", "freqtrade", "--timeframe", "1h", "--start",
                 str(start), "--end", str(end), "--out", str(out), "--qlib-dir", str(tmp_path / f"q_{name}"),
                 "--no-progress"]) == 0
    return pd.read_parquet(out)


def test_features_at_start_equal_those_from_a_longer_span_and_the_frame_starts_at_start(tmp_path):
    src, idx = _folder(tmp_path)
    start, end = idx[200], idx[260]
    short = _features(tmp_path, src, start, end, "short")
    long = _features(tmp_path, src, idx[100], end, "long")
    times = short.index.get_level_values("datetime")
    assert times.min() == start.tz_localize(None) and times.max() == end.tz_localize(None)
    same = long[long.index.get_level_values("datetime") >= start.tz_localize(None)]
    pd.testing.assert_frame_equal(short, same)
    # the 60-bar features exist at --start (without the warm-up they would be NaN for 60 bars)
    first = short[times == start.tz_localize(None)]
    assert first[["ROC60", "STD60", "MA60"]].notna().all().all() and ALPHA158_LOOKBACK == 61
