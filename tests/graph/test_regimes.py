"""Regimes: filtered (not smoothed) HMM probabilities, planted regimes recovered, point-in-time, transitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.stats import norm
from sklearn.metrics import adjusted_rand_score

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import ConfigError, DataError
from graphwiz_trader.graph.builders import (
    RegimeSettings,
    asset_regimes,
    build_regime_state,
    close_panel,
    log_returns,
    market_features,
)
from graphwiz_trader.graph.builders.regimes import fit_schedule, forward_filter

SMALL = RegimeSettings(min_train=720, refit_every=168, max_train=900, burn_in=200, asset_vol_window=48,
                     asset_min_history=100)


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market()


@pytest.fixture(scope="module")
def state(market):
    return build_regime_state(market.bars)


def test_market_regimes_recover_the_planted_regimes_out_of_sample(market, state) -> None:
    mk = state[state["scope"] == "market"]
    first_fit = market_features(log_returns(close_panel(market.bars))).index[RegimeSettings().min_train]
    assert mk["datetime"].iloc[0] == first_fit                 # labels start after the first fit only
    truth = market.regimes.reindex(pd.DatetimeIndex(mk["datetime"])).astype(str)
    ari = adjusted_rand_score(truth, mk["regime"])
    print(f"{market.label}: market regime ARI vs planted regimes (out-of-sample, {len(mk)} bars) = {ari:.3f}")
    assert ari >= 0.6
    # state order is volatility order: planted crash bars are mostly high_vol, calm bars mostly low_vol
    ct = pd.crosstab(truth.to_numpy(), mk["regime"].to_numpy(), normalize="index")
    assert ct.loc["crash"].idxmax() == "high_vol" and ct.loc["calm"].idxmax() == "low_vol"


def test_market_regime_recovery_holds_across_seeds() -> None:
    aris = []
    for seed in (1, 2, 3):
        m = generate_synthetic_market(seed=seed)
        st = build_regime_state(m.bars)
        mk = st[st["scope"] == "market"]
        aris.append(adjusted_rand_score(m.regimes.reindex(pd.DatetimeIndex(mk["datetime"])).astype(str), mk["regime"]))
    print(f"SYNTHETIC regime ARI, seeds 1-3: {[round(a, 3) for a in aris]}")
    assert np.median(aris) >= 0.6


def test_filtered_probabilities_equal_hmmlearn_posterior_at_the_last_observation() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (150, 2)), rng.normal(2, 3, (100, 2)), rng.normal(0, 1, (50, 2))]
    model = GaussianHMM(2, covariance_type="full", n_iter=30, random_state=0).fit(x)
    filt = forward_filter(model, x)
    for t in (0, 10, 149, 151, 299):
        # the smoothed posterior of the LAST point equals the filtered probability there
        np.testing.assert_allclose(filt[t], model.predict_proba(x[: t + 1])[-1], atol=1e-10)
    # and filtering never looks ahead: changing later observations leaves row t unchanged
    x2 = x.copy()
    x2[200:] += 50.0
    np.testing.assert_array_equal(forward_filter(model, x2)[:200], filt[:200])


def test_regime_state_is_point_in_time() -> None:
    m = generate_synthetic_market(n_assets=6, n_bars=1800, seed=5)
    times = m.bars["SYN00/USDT"].index
    asset_times = times[200::24]
    full = build_regime_state(m.bars, SMALL, asset_times=asset_times)
    for cut in (times[900], times[1234], times[1799]):
        trunc = build_regime_state({s: df.loc[:cut] for s, df in m.bars.items()}, SMALL,
                                   asset_times=asset_times[asset_times <= cut])
        ref = full[full["datetime"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(trunc.reset_index(drop=True), ref, check_exact=False, rtol=0, atol=1e-12)


def test_every_label_comes_from_a_model_fitted_on_strictly_earlier_bars() -> None:
    sched = fit_schedule(2000, SMALL)
    assert sched[0] == (0, 720, 720, 888)
    for (lo, hi, a, b), nxt in zip(sched, sched[1:] + [None]):
        assert hi == a and hi - lo <= 900 and b - a <= 168           # train rows < first labelled row
        assert nxt is None and b == 2000 or nxt is not None and nxt[2] == b
    assert sched[-1][0] == sched[-1][1] - 900                          # rolling window once data > max_train


def test_labels_are_stable_names_ordered_by_volatility(state) -> None:
    mk = state[state["scope"] == "market"]
    assert set(mk["regime"]) <= {"low_vol", "mid_vol", "high_vol"}
    assert ((mk["prob"] >= 1 / 3 - 1e-12) & (mk["prob"] <= 1)).all()
    rets = log_returns(close_panel(generate_synthetic_market().bars)).mean(axis=1)
    vol = rets.reindex(pd.DatetimeIndex(mk["datetime"])).groupby(mk["regime"].to_numpy()).std()
    assert vol["low_vol"] < vol["mid_vol"] < vol["high_vol"]


def test_asset_regime_is_the_sign_of_the_expanding_z_score_of_log_realised_vol() -> None:
    m = generate_synthetic_market(n_assets=3, n_bars=600, seed=8)
    rets = log_returns(close_panel(m.bars))
    p = RegimeSettings(asset_vol_window=24, asset_min_history=50)
    times = rets.index[100::37]
    got = asset_regimes(rets, times, p)
    for sym in rets.columns:
        r = rets[sym].to_numpy()
        for t in times:
            i = rets.index.get_loc(t)
            # plain loop: std of the last 24 returns, or of the first k+1 once at least 12 exist
            lv = [np.log(np.std(r[max(0, k - 23):k + 1], ddof=1)) for k in range(11, i + 1)]
            if len(lv) < 50:
                assert not ((got["scope"] == sym) & (got["datetime"] == t)).any()
                continue
            z = (lv[-1] - np.mean(lv)) / np.std(lv, ddof=1)
            row = got[(got["scope"] == sym) & (got["datetime"] == t)].iloc[0]
            assert row["regime"] == ("high_vol" if z > 0 else "low_vol")
            assert row["prob"] == pytest.approx(norm.cdf(abs(z)), abs=1e-9)


def test_too_little_data_for_the_first_fit_names_both_numbers() -> None:
    m = generate_synthetic_market(n_assets=3, n_bars=500, seed=1)
    with pytest.raises(DataError, match=r"more than min_train=1440 bars .* the data has 499"):
        build_regime_state(m.bars)


def test_bad_regime_parameters_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="n_states must be in"):
        RegimeSettings(n_states=9).check()
    with pytest.raises(ConfigError, match="fixed_stay must be in"):
        RegimeSettings(fixed_stay=1.0).check()
