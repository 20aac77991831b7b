"""Alpha158 comes from Qlib's own handler; its values match independent pandas computations."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.qlib_bins import write_qlib_bins
from graphwiz_trader.features.alpha158 import DEFAULT_EXTRAS, AlphaFeatureExtractor
from graphwiz_trader.errors import UnknownSymbolError


def hand_made(n=80, seed=5):
    """A tiny frame with made-up, irregular prices."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-02-01", periods=n, freq="1h", tz="UTC", name="datetime")
    c = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    o = c * np.exp(rng.normal(0, 0.01, n))
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.01, n))
    l = np.minimum(o, c) * (1 - rng.uniform(0, 0.01, n))
    v = rng.uniform(100, 1000, n)
    return pd.DataFrame({"open": o, "high": h, "low": l, "close": c, "volume": v}, index=idx)


@pytest.fixture(scope="module")
def frames():
    return {"AAA/USDT": hand_made(seed=5), "BBB/USDT": hand_made(seed=6)}


@pytest.fixture(scope="module")
def features(frames, tmp_path_factory):
    root = tmp_path_factory.mktemp("alpha")
    write_qlib_bins(frames, root / "q", "60min")
    ex = AlphaFeatureExtractor(root / "q", freq="60min", mlflow_dir=root / "ml")
    return ex.extract(list(frames)), ex, root


def f32(df):
    """Qlib stores float32: compute the reference from float32-rounded inputs."""
    return df.astype("float32").astype("float64")


def test_the_frame_has_158_alpha_columns_then_the_extras(features):
    out, _, _ = features
    assert out.shape[1] == 158 + len(DEFAULT_EXTRAS)
    assert list(out.columns[:4]) == ["KMID", "KLEN", "KMID2", "KUP"]
    assert list(out.columns[-4:]) == list(DEFAULT_EXTRAS)
    assert out.index.names == ["datetime", "instrument"]
    assert set(out.index.get_level_values("instrument")) == {"AAAUSDT", "BBBUSDT"}


@pytest.mark.parametrize("sym,code", [("AAA/USDT", "AAAUSDT"), ("BBB/USDT", "BBBUSDT")])
def test_kmid_roc5_ma5_std5_and_friends_match_pandas(features, frames, sym, code):
    out, _, _ = features
    got = out.xs(code, level="instrument")
    d = f32(frames[sym])
    o, h, l, c, v = d["open"], d["high"], d["low"], d["close"], d["volume"]
    ref = pd.DataFrame({
        "KMID": (c - o) / o,
        "KLEN": (h - l) / o,
        "ROC5": c.shift(5) / c,
        "MA5": c.rolling(5, min_periods=1).mean() / c,
        "STD5": c.rolling(5, min_periods=1).std() / c,
        "MAX10": h.rolling(10, min_periods=1).max() / c,
        "VMA20": v.rolling(20, min_periods=1).mean() / (v + 1e-12),
    })
    ref.index = ref.index.tz_convert(None)
    rows = ref.index[25:]  # past the warm-up of every window used here
    for col in ref.columns:
        np.testing.assert_allclose(got.loc[rows, col].to_numpy(), ref.loc[rows, col].to_numpy(), rtol=2e-5,
                                   err_msg=col)


def test_the_extras_match_their_documented_formulas(features, frames):
    out, _, _ = features
    got = out.xs("AAAUSDT", level="instrument")
    d = f32(frames["AAA/USDT"])
    h, l, c, v = d["high"], d["low"], d["close"], d["volume"]
    sgn = np.sign(c - c.shift(1))
    hh = ((h > h.shift(1)) & (l > l.shift(1))).astype(float)
    ll = ((h < h.shift(1)) & (l < l.shift(1))).astype(float)
    ref = pd.DataFrame({
        "VRATIO20": v / (v.rolling(20).mean() + 1e-12),
        "OBV20": (sgn * v).rolling(20).sum() / (v.rolling(20).sum() + 1e-12),
        "ACC5": (c / c.shift(5) - 1) - (c.shift(5) / c.shift(10) - 1),
        "HHHL10": hh.rolling(10).mean() - ll.rolling(10).mean(),
    })
    ref.index = ref.index.tz_convert(None)
    rows = ref.index[25:]
    for col in ref.columns:
        np.testing.assert_allclose(got.loc[rows, col].to_numpy(), ref.loc[rows, col].to_numpy(), rtol=2e-5,
                                   atol=1e-6, err_msg=col)


def test_features_at_t_do_not_change_when_data_after_t_is_removed(features, frames, tmp_path):
    out, _, _ = features
    for cut in (40, 63, 79):
        trunc = {s: df.iloc[: cut + 1] for s, df in frames.items()}
        write_qlib_bins(trunc, tmp_path / f"t{cut}", "60min")
        part = AlphaFeatureExtractor(tmp_path / f"t{cut}", mlflow_dir=tmp_path / "ml", cache_dir=False).extract(list(trunc))
        t = frames["AAA/USDT"].index[cut].tz_convert(None)
        pd.testing.assert_frame_equal(part.loc[[t]], out.loc[[t]], check_exact=True)


def test_a_second_extract_comes_from_the_cache_with_identical_values(features, frames):
    out, ex, _ = features
    again = ex.extract(list(frames))
    assert ex.last_from_cache
    pd.testing.assert_frame_equal(again, out)


def test_an_unknown_symbol_is_named(features):
    _, ex, _ = features
    with pytest.raises(UnknownSymbolError, match="CCC/USDT"):
        ex.extract(["AAA/USDT", "CCC/USDT"])


def test_the_handler_gets_no_fit_window_and_the_features_are_unchanged(frames, tmp_path, monkeypatch):
    """A fit window spanning the whole range is a leak the day a normaliser is added: none is passed, and the
    features equal those of Qlib's Alpha158 built the old way (fit window = the whole range, no processors)."""
    from qlib.contrib.data import handler as qh

    write_qlib_bins(frames, tmp_path / "q", "60min")
    ex = AlphaFeatureExtractor.plain(tmp_path / "q", mlflow_dir=tmp_path / "ml", cache_dir=False)
    seen: dict = {}
    orig = qh.Alpha158.__init__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        orig(self, *args, **kwargs)

    monkeypatch.setattr(qh.Alpha158, "__init__", spy)
    start, end = "2024-02-01 10:00:00", "2024-02-03 20:00:00"
    got = ex.extract(list(frames), start, end)
    monkeypatch.undo()
    assert seen["start_time"] == start and seen["end_time"] == end
    assert seen.get("fit_start_time") is None and seen.get("fit_end_time") is None
    old = qh.Alpha158(instruments=["AAAUSDT", "BBBUSDT"], start_time=start, end_time=end, freq="60min",
                      infer_processors=[], learn_processors=[], fit_start_time=start, fit_end_time=end)
    ref = old.fetch(col_set="feature").astype("float32")
    ref.columns = [str(c) for c in ref.columns]
    ref.index = ref.index.set_names(["datetime", "instrument"])
    assert got.shape == (2 * 59, 158)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
