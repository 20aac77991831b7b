"""Graph feature families: point-in-time under truncation, formulas against plain loops, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import DataError, GraphwizError, SettingError
from graphwiz_trader.features.graph_families import (
    FAMILIES,
    PREFIX,
    FamilySettings,
    family_columns,
    family_features,
)
from graphwiz_trader.features.graph_families_peer import fit_residual_betas
from graphwiz_trader.features.graph_features import graph_features, snapshot_metrics
from graphwiz_trader.graph.builders import RegimeSettings, build_regime_state, build_snapshots
from graphwiz_trader.graph.builders.regimes import MARKET_SCOPE

WINDOW = 120
SNAP_KW = dict(window=WINDOW, stride=24, min_abs_rho=0.05, top_k=4, lead_max_lag=3, lead_min_abs_rho=0.1,
               lead_min_gain=0.02)
REGIME_PARAMS = RegimeSettings(min_train=600, refit_every=120, burn_in=150, asset_vol_window=48,
                               asset_min_history=96)
SETTINGS = FamilySettings(peer_columns=("ROC5", "STD20", "MA20"), residual_lookbacks=(1, 6, 24, 60),
                          breakdown_snapshots=4)


def alpha_like(panel: pd.DataFrame) -> pd.DataFrame:
    """A few Alpha158 columns by their Qlib definitions (``Ref($close, 5)/$close``, ``Std($close, 20)/$close``,
    ``Mean($close, 20)/$close``), backward-looking, indexed like Qlib's frame (tz-naive UTC, Qlib codes)."""
    c = panel
    cols = {"ROC5": c.shift(5) / c, "STD20": c.rolling(20).std() / c, "MA20": c.rolling(20).mean() / c}
    frame = pd.concat({k: v.rename(columns=to_qlib_instrument).stack(future_stack=True) for k, v in cols.items()},
                      axis=1)
    frame.index = frame.index.set_names(["datetime", "instrument"])
    return frame.set_index(frame.index.set_levels(frame.index.levels[0].tz_convert(None), level=0))


def pipeline(bars: dict[str, pd.DataFrame]) -> dict:
    panel = pd.DataFrame({s: df["close"] for s, df in bars.items()})
    snaps = build_snapshots(bars, **SNAP_KW)
    reg = build_regime_state(bars, REGIME_PARAMS, asset_times=[s.as_of for s in snaps])
    met = snapshot_metrics(snaps, sorted(bars))
    alpha = alpha_like(panel)
    feats = family_features(met, panel, alpha=alpha, regimes=reg, window=WINDOW, settings=SETTINGS)
    return {"panel": panel.reindex(columns=sorted(panel.columns)), "snaps": snaps, "reg": reg, "met": met,
            "alpha": alpha, "feats": feats}


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(n_assets=8, n_bars=1300, seed=11)


@pytest.fixture(scope="module")
def full(market):
    return pipeline(market.bars)


@pytest.fixture(scope="module")
def truncated(market, full):
    times = market.bars["SYN00/USDT"].index
    mkt = full["reg"][full["reg"]["scope"] == MARKET_SCOPE].sort_values("datetime")
    lab = mkt["regime"].to_numpy()
    last_of_run = pd.DatetimeIndex(mkt["datetime"])[:-1][lab[1:] != lab[:-1]]
    switch = last_of_run[len(last_of_run) // 2]                 # the bar before a market regime switch
    cuts = (times[707], switch, times[1013])
    return {cut: pipeline({s: df.loc[:cut] for s, df in market.bars.items()})["feats"] for cut in cuts}


# ------------------------------------------------------------------------------------------ point-in-time

@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_unchanged_when_the_data_ends_at_t(family, full, truncated) -> None:
    cols = [c for c in full["feats"].columns if c.startswith(PREFIX[family])]
    assert cols
    ref_all = full["feats"][cols]
    assert ref_all.notna().to_numpy().mean() > 0.4                   # mostly filled: the comparison has teeth
    for cut, trunc in truncated.items():
        ref = ref_all.loc[ref_all.index.get_level_values("datetime") <= cut]
        assert len(ref) == len(trunc)
        pd.testing.assert_frame_equal(trunc[cols], ref, check_exact=False, rtol=0, atol=1e-12)


def test_rows_and_columns_are_those_of_graph_features_and_family_columns(full) -> None:
    ref = graph_features(full["snaps"], full["reg"], full["panel"], metrics=full["met"])
    assert full["feats"].index.equals(ref.index)
    assert list(full["feats"].columns) == family_columns(FAMILIES, SETTINGS)
    assert (full["feats"].dtypes == np.float64).all()
    no_alpha = family_features(full["met"], full["panel"], window=WINDOW, families=("peer", "leadlag"),
                               settings=SETTINGS)
    assert list(no_alpha.columns) == family_columns(("peer", "leadlag"), SETTINGS, with_alpha=False)
    assert not any(c.endswith("ROC5") for c in no_alpha.columns)
    pd.testing.assert_frame_equal(no_alpha, full["feats"][no_alpha.columns])


# ----------------------------------------------------------------------------- formulas against plain loops

def _snapshot_at(snaps, t):
    cands = [s for s in snaps if s.as_of <= t]
    return cands[-1] if cands else None


def _edge_rho(snap) -> dict[tuple[str, str], float]:
    out = {}
    for s, d, r in snap.edges[["src", "dst", "rho"]].itertuples(index=False):
        out[(s, d)] = out[(d, s)] = r
    return out


def test_peer_columns_equal_loops_over_edges_and_communities(full) -> None:
    panel, snaps, feats = full["panel"], full["snaps"], full["feats"]
    logp = np.log(panel)
    roc5 = full["alpha"]["ROC5"]
    checked = 0
    for t in panel.index[[300, 555, 901, 1299]]:
        snap = _snapshot_at(snaps, t)
        rho = _edge_rho(snap)
        for i in snap.assets:
            row = feats.loc[(t, to_qlib_instrument(i))]
            # own 6-bar log return and Alpha158 ROC5 as the peer inputs
            loc = panel.index.get_loc(t)
            ret6 = {a: logp[a].iloc[loc] - logp[a].iloc[loc - 6] for a in panel.columns}
            r5 = {a: roc5.loc[(t.tz_convert(None), to_qlib_instrument(a))] for a in panel.columns}
            for name, x in (("ret_6", ret6), ("ROC5", r5)):
                num = sum(rho[(i, j)] * x[j] for j in snap.assets if (i, j) in rho)
                den = sum(abs(rho[(i, j)]) for j in snap.assets if (i, j) in rho)
                nbr = num / den if den > 0 else math.nan
                mates = [j for j, c in snap.communities.items() if c == snap.communities[i] and j != i]
                cmean = sum(x[j] for j in mates) / len(mates) if mates else math.nan
                assert row[f"P_nbr_{name}"] == pytest.approx(nbr, abs=1e-12, nan_ok=True)
                assert row[f"P_dev_{name}"] == pytest.approx(x[i] - nbr, abs=1e-12, nan_ok=True)
                assert row[f"P_cdev_{name}"] == pytest.approx(x[i] - cmean, abs=1e-12, nan_ok=True)
                checked += 1
    assert checked >= 40


def _factors_by_loop(r: pd.DataFrame, snap, i: str) -> tuple[pd.Series, pd.Series]:
    m = r[list(snap.assets)].mean(axis=1)                           # pandas skips NaN
    mates = [j for j, c in snap.communities.items() if c == snap.communities[i] and j != i]
    return m, r[mates].mean(axis=1)


def test_residual_betas_equal_lstsq_on_the_snapshot_window(full) -> None:
    panel, snaps, met = full["panel"], full["snaps"], full["met"]
    r = np.log(panel).diff()
    for k in (0, 17, len(snaps) - 1):
        snap = snaps[k]
        end = panel.index.get_loc(snap.as_of)
        rows = r.iloc[end - WINDOW + 1: end + 1]
        fit = fit_residual_betas(rows.to_numpy(), met.in_snapshot[k], met.values["G_comm_id"][k])
        assert len(set(snap.communities.values())) >= 2
        for col, i in enumerate(panel.columns):
            if i not in snap.assets:
                assert math.isnan(fit["a"][col])
                continue
            m, c = _factors_by_loop(rows, snap, i)
            design = pd.DataFrame({"one": 1.0, "m": m, "c": c, "y": rows[i]}).dropna()
            coef, *_ = np.linalg.lstsq(design[["one", "m", "c"]].to_numpy(), design["y"].to_numpy(), rcond=None)
            e = design["y"].to_numpy() - design[["one", "m", "c"]].to_numpy() @ coef
            np.testing.assert_allclose([fit["a"][col], fit["b_m"][col], fit["b_c"][col]], coef, rtol=1e-8, atol=1e-12)
            assert fit["vol"][col] == pytest.approx(np.sqrt((e @ e) / (len(e) - 3)), rel=1e-10)


def test_residual_momentum_sums_residuals_with_the_betas_current_at_each_bar(full) -> None:
    panel, snaps, feats = full["panel"], full["snaps"], full["feats"]
    r = np.log(panel).diff()

    def beta(snap, i):
        end = panel.index.get_loc(snap.as_of)
        rows = r.iloc[end - WINDOW + 1: end + 1]
        m, c = _factors_by_loop(rows, snap, i)
        d = pd.DataFrame({"one": 1.0, "m": m, "c": c, "y": rows[i]}).dropna()
        coef, *_ = np.linalg.lstsq(d[["one", "m", "c"]].to_numpy(), d["y"].to_numpy(), rcond=None)
        return coef

    i = "SYN03/USDT"
    for loc in (400, 1210):                     # 24-bar sums that straddle a snapshot change
        t = panel.index[loc]
        total = 0.0
        for u in panel.index[loc - 23: loc + 1]:
            snap = _snapshot_at(snaps, u)
            a, bm, bc = beta(snap, i)
            m, c = _factors_by_loop(r.loc[[u]], snap, i)
            total += r.loc[u, i] - a - bm * m.iloc[0] - bc * c.iloc[0]
        assert _snapshot_at(snaps, panel.index[loc - 23]) is not _snapshot_at(snaps, t)
        assert feats.loc[(t, "SYN03USDT"), "R_mom_24"] == pytest.approx(total, abs=1e-12)


def test_lead_lag_signal_weights_leaders_by_fisher_significance(full) -> None:
    panel, snaps, feats = full["panel"], full["snaps"], full["feats"]
    r = np.log(panel).diff()
    seen_leaders = 0
    for loc in (333, 777, 1222):
        t = panel.index[loc]
        snap = _snapshot_at(snaps, t)
        for i in snap.assets:
            lead = snap.leads[snap.leads["dst"] == i]
            num = den = zsum = 0.0
            for j, lag, rho in lead[["src", "lag", "rho"]].itertuples(index=False):
                z = math.atanh(abs(rho)) * math.sqrt(WINDOW - lag - 3)
                num += math.copysign(z, rho) * r[j].iloc[loc + 1 - lag]
                den += z
                zsum += z
            row = feats.loc[(t, to_qlib_instrument(i))]
            assert row["L_lead_ret_raw"] == pytest.approx(num, abs=1e-12)
            assert row["L_lead_ret"] == pytest.approx(num / den if den else 0.0, abs=1e-12)
            assert row["L_n_leaders"] == len(lead) and row["L_lead_z"] == pytest.approx(zsum, abs=1e-12)
            seen_leaders += len(lead)
    assert seen_leaders > 0


def test_structure_dynamics_equal_set_and_edge_loops(full) -> None:
    panel, snaps, met, feats = full["panel"], full["snaps"], full["met"], full["feats"]
    switched = 0
    for k in (1, 9, 20, len(snaps) - 1):
        t, now, before = snaps[k].as_of, snaps[k], snaps[k - 1]
        mean_corr = [s.edges["rho"].abs().mean() for s in snaps]
        for i in now.assets:
            row = feats.loc[(t, to_qlib_instrument(i))]
            col = list(panel.columns).index(i)
            if i in before.communities:
                c_now = {j for j, c in now.communities.items() if c == now.communities[i]}
                c_before = {j for j, c in before.communities.items() if c == before.communities[i]}
                jac = len(c_now & c_before) / len(c_now | c_before)
                assert row["D_comm_switch"] == pytest.approx(1 - jac, abs=1e-15)
                switched += jac < 1
                assert row["D_eig_chg"] == pytest.approx(met.values["G_eigvec"][k, col]
                                                         - met.values["G_eigvec"][k - 1, col], abs=1e-15)
            own = [abs(v) for (a, _), v in _edge_rho(now).items() if a == i]
            own_b = [abs(v) for (a, _), v in _edge_rho(before).items() if a == i]
            assert row["D_own_corr_chg"] == pytest.approx(np.mean(own) - np.mean(own_b), abs=1e-12)
            assert row["D_mean_corr"] == pytest.approx(mean_corr[k], abs=1e-12)
            if k >= SETTINGS.breakdown_snapshots:
                base = np.mean(mean_corr[k - SETTINGS.breakdown_snapshots:k])
                assert row["D_mean_corr_chg"] == pytest.approx(mean_corr[k] - base, abs=1e-12)
            else:
                assert math.isnan(row["D_mean_corr_chg"])
    assert switched > 0


def test_regime_switch_probability_and_interactions_count_records_up_to_t(full) -> None:
    reg, feats = full["reg"], full["feats"]
    mkt = reg[reg["scope"] == MARKET_SCOPE].sort_values("datetime").reset_index(drop=True)
    labels = list(mkt["regime"])
    assert len(set(labels)) >= 2
    records: dict[str, int] = {}
    exits: dict[str, int] = {}
    switch_p = feats["D_regime_switch_p"].groupby(level="datetime").first()
    for s in range(len(mkt)):                      # every record: counts from records <= its time only
        cur = labels[s]
        records[cur] = records.get(cur, 0) + 1
        if s > 0 and labels[s - 1] != labels[s]:
            exits[labels[s - 1]] = exits.get(labels[s - 1], 0) + 1
        assert switch_p[mkt["datetime"][s]] == exits.get(cur, 0) / records[cur]
    for s in (3, 120, 400, len(mkt) - 1):
        t, cur = mkt["datetime"][s], labels[s]
        n_rec = sum(1 for u in range(s + 1) if labels[u] == cur)
        n_exit = sum(1 for u in range(s) if labels[u] == cur and labels[u + 1] != cur)
        age = 0
        while s - age - 1 >= 0 and labels[s - age - 1] == cur:
            age += 1
        rows = feats.loc[t]
        assert (rows["D_regime_switch_p"] == n_exit / n_rec).all()
        assert (rows["D_regime_age"] == age).all()
        roc5 = full["alpha"]["ROC5"].loc[t.tz_convert(None)].reindex(rows.index)     # an Alpha158 condition
        for name in ("low_vol", "mid_vol", "high_vol"):
            on = 1.0 if name == cur else 0.0
            np.testing.assert_array_equal(rows[f"X_R_mom_24_{name}"].to_numpy(), rows["R_mom_24"].to_numpy() * on)
            np.testing.assert_array_equal(rows[f"X_ROC5_{name}"].to_numpy(), roc5.to_numpy() * on)
    before = feats.loc[feats.index.get_level_values("datetime") < mkt["datetime"][0]]
    assert before.filter(like="X_").isna().all().all() and before["D_regime_age"].isna().all()


# ---------------------------------------------------------------------------------------------- bad input

def test_an_unknown_family_is_refused_by_name(full) -> None:
    with pytest.raises(SettingError, match=r"unknown graph feature family 'gnn'.*peer, residual"):
        family_features(full["met"], full["panel"], window=WINDOW, families=("peer", "gnn"))
    with pytest.raises(GraphwizError, match="unknown graph feature family"):
        family_columns(("peers",))


def test_a_missing_alpha158_column_is_named(full) -> None:
    alpha = full["alpha"].drop(columns=["STD20"])
    with pytest.raises(DataError, match=r"lacks column\(s\) STD20"):
        family_features(full["met"], full["panel"], alpha=alpha, window=WINDOW, settings=SETTINGS)
    with pytest.raises(DataError, match=r"condition column 'ROC5' is an Alpha158 column but no Alpha158 frame"):
        family_features(full["met"], full["panel"], window=WINDOW, families=("regime",), settings=SETTINGS)


def test_bad_settings_and_mismatched_metrics_are_refused(full) -> None:
    with pytest.raises(SettingError, match="residual_lookbacks"):
        FamilySettings(residual_lookbacks=(0, 5))
    with pytest.raises(SettingError, match=r"condition column 'R_mom_7' is no column of the residual family"):
        family_features(full["met"], full["panel"], alpha=full["alpha"], window=WINDOW, families=("regime",),
                        settings=FamilySettings(peer_columns=(), condition_columns=("R_mom_7",)))
    with pytest.raises(DataError, match="other symbols"):
        family_features(full["met"], full["panel"].iloc[:, :5], window=WINDOW, families=("peer",))
    idx = full["alpha"].reset_index()
    with pytest.raises(DataError, match=r"indexed by \(datetime, instrument\)"):
        family_features(full["met"], full["panel"], alpha=idx, window=WINDOW, families=("peer",), settings=SETTINGS)


def test_the_daily_preset_has_daily_horizons() -> None:
    d = FamilySettings.daily()
    assert d.return_horizons == (1, 5, 20) and d.residual_lookbacks == (1, 5, 20, 60)
    assert "R_mom_20" in d.condition_columns
    assert "X_R_mom_20_high_vol" in family_columns(("regime",), d)


def test_with_a_membership_mask_rows_are_the_member_rows_of_graph_features(full) -> None:
    panel = full["panel"]
    rows = np.arange(len(panel))[:, None]
    mask = pd.DataFrame((rows % 97 < 60) | (np.arange(panel.shape[1])[None, :] % 2 == 0), index=panel.index,
                        columns=panel.columns)
    feats = family_features(full["met"], panel, alpha=full["alpha"], regimes=full["reg"], window=WINDOW,
                            settings=SETTINGS, members=mask)
    ref = graph_features(full["snaps"], full["reg"], panel, metrics=full["met"], members=mask)
    assert feats.index.equals(ref.index) and len(feats) == int(mask.to_numpy().sum())
    pd.testing.assert_frame_equal(feats, full["feats"].loc[feats.index])     # the mask only selects rows
