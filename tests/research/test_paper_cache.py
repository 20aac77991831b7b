"""Finished paper stages are kept by the content of what produced them: a stored horizon comes back equal, a changed
input is a new key, and an interrupted write leaves no entry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.research.ablation import HorizonResult
from graphwiz_trader.research.paper_cache import StageCache, frame_digest, stage_key


def _horizon() -> HorizonResult:
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=3, freq="h"), ["A", "B"]],
                                     names=["datetime", "instrument"])
    preds = pd.DataFrame({"alpha158": np.arange(6.0), "+all": np.arange(6.0)[::-1]}, index=idx)
    preds["fold"] = pd.array([0, 0, 0, 0, 1, 1], dtype="Int64")
    ric = pd.DataFrame({"alpha158": [0.1, 0.2], "+all": [0.3, np.nan]}, index=[0, 1])
    table = pd.DataFrame({"kind": ["model", "model"], "ric_mean": [0.15, 0.3]}, index=pd.Index(["alpha158", "+all"],
                                                                                              name="variant"))
    shares = pd.DataFrame({"peer": [0.2, 0.3]})
    stab = pd.DataFrame({"mean_share": [0.25]}, index=["peer"])
    return HorizonResult(4, ric, ric * 2, table, preds, {"+all": shares}, {"+all": stab}, 12.5)


def test_a_stored_horizon_comes_back_equal(tmp_path):
    cache, hr = StageCache(tmp_path), _horizon()
    assert cache.load_horizon("k") is None
    cache.save_horizon("k", hr)
    back = cache.load_horizon("k")
    assert back.horizon == 4 and back.seconds == 12.5
    for a, b in ((back.rank_ic, hr.rank_ic), (back.accuracy, hr.accuracy), (back.table, hr.table),
                 (back.predictions, hr.predictions), (back.family_shap["+all"], hr.family_shap["+all"]),
                 (back.shap_stability["+all"], hr.shap_stability["+all"])):
        pd.testing.assert_frame_equal(a, b)


def test_a_changed_value_or_setting_is_a_new_key():
    df = pd.DataFrame({"x": [1.0, 2.0]})
    assert frame_digest(df) == frame_digest(df.copy())
    assert frame_digest(df) != frame_digest(df.assign(x=[1.0, 2.000001]))
    assert frame_digest(df) != frame_digest(df.rename(columns={"x": "y"}))
    assert stage_key("a", {"h": 1}) == stage_key("a", {"h": 1}) != stage_key("a", {"h": 4})


def test_an_interrupted_write_leaves_no_entry_and_no_cache_keeps_nothing(tmp_path):
    cache = StageCache(tmp_path)

    def boom(d):
        (d / "frame.parquet").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache._commit("k", boom)
    assert cache.load_frame("k") is None and list(tmp_path.iterdir()) == []
    off = StageCache(None)
    off.save_json("k", {"a": 1})
    assert off.load_json("k") is None
