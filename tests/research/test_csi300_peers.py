"""Qlib's peer models (linear, GATs) fitted on a frame in Qlib's raw layout.

A synthetic frame (six instruments, business days of 2014) stands in for the CSI300 frame: the label is a noisy
linear function of two Alpha158-named features, some features and labels are missing, one column is all NaN
(as ``VWAP0`` on the CSI300 data). Both peers fit on it in seconds (GATs for two epochs).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import (
    DataError,
    GraphwizError,
    InsufficientDataError,
    SettingError,
)
from graphwiz_trader.research.csi300_peers import (
    GATS_FEATURES,
    PEERS,
    CrossSectionSampler,
    GATsSettings,
    PeerSettings,
    daily_rank_ic,
    fit_peer,
    fit_peer_result,
    peer_dataset,
)
from graphwiz_trader.research.csi300_setup import Segments

SEGMENTS = Segments(("2014-01-01", "2014-06-30"), ("2014-07-01", "2014-09-30"), ("2014-10-01", "2014-12-31"))
EXTRA = ("KMID", "VWAP0")


def synthetic_frame(n_instruments: int = 6, seed: int = 0, dtype: str = "float64") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2014-01-01", "2014-12-31")
    codes = [f"SH60{i:04d}" for i in range(n_instruments)]
    index = pd.MultiIndex.from_product([dates, codes], names=["datetime", "instrument"])
    names = list(GATS_FEATURES) + list(EXTRA)
    x = rng.standard_t(df=4, size=(len(index), len(names))) * rng.uniform(0.5, 3.0, len(names)) + rng.normal(0, 2, len(names))
    x[rng.random(x.shape) < 0.03] = np.nan
    x[:, names.index("VWAP0")] = np.nan
    y = 0.5 * np.nan_to_num(x[:, 0]) - 0.3 * np.nan_to_num(x[:, 3]) + rng.normal(size=len(index))
    y[rng.random(len(y)) < 0.05] = np.nan
    cols = pd.MultiIndex.from_tuples([("feature", n) for n in names] + [("label", "LABEL0")])
    return pd.DataFrame(np.column_stack([x, y]).astype(dtype), index=index, columns=cols)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> PeerSettings:
    """Two GATs epochs; Qlib (when no test has started it yet) on an empty Qlib-shaped folder: the peers read
    nothing from the provider."""
    root = tmp_path_factory.mktemp("qlib_provider")
    for sub in ("calendars", "instruments", "features"):
        (root / sub).mkdir()
    return PeerSettings(gats=GATsSettings(n_epochs=2), provider_uri=root)


def rows_of_test_segment(frame: pd.DataFrame) -> pd.MultiIndex:
    dates = frame.index.get_level_values("datetime")
    return frame.index[(dates >= pd.Timestamp(SEGMENTS.test[0])) & (dates <= pd.Timestamp(SEGMENTS.test[1]))]


# ---------------------------------------------------------------------------------------------------------------
# The linear peer is Qlib's OLS on the YAML's processors
# ---------------------------------------------------------------------------------------------------------------


def independent_ols_predictions(frame: pd.DataFrame, seg: Segments) -> pd.Series:
    """RobustZScoreNorm (median / 1.4826 MAD over train, clipped to +-3), zero fill, per-day rank label scaled as
    Qlib's CSRankNorm, rows without label dropped, OLS without intercept by numpy's lstsq."""
    feats = frame["feature"].astype("float64")
    label = frame["label"].iloc[:, 0].astype("float64")
    dates = frame.index.get_level_values("datetime")

    def rows(part: tuple[str, str]) -> np.ndarray:
        return np.asarray((dates >= pd.Timestamp(part[0])) & (dates <= pd.Timestamp(part[1])))

    train = feats[rows(seg.train)].to_numpy()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN column
        med = np.nanmedian(train, axis=0)
        mad = (np.nanmedian(np.abs(train - med), axis=0) + 1e-12) * 1.4826
        z = np.clip((feats.to_numpy() - med) / mad, -3, 3)
    z = np.nan_to_num(z, nan=0.0)
    ranked = (label.groupby(level="datetime").rank(pct=True) - 0.5) * 3.46
    fit_rows = rows(seg.train) & label.notna().to_numpy()
    coef, *_ = np.linalg.lstsq(z[fit_rows], ranked.to_numpy()[fit_rows], rcond=None)
    test = rows(seg.test)
    return pd.Series(z[test] @ coef, index=frame.index[test])


def test_the_linear_peer_equals_an_independent_ols_on_the_same_processing(frame, settings):
    got = fit_peer("linear", frame, SEGMENTS, seed=0, settings=settings)
    want = independent_ols_predictions(frame, SEGMENTS)
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-6)
    assert daily_rank_ic(got, frame).mean() > 0.3  # the planted signal is found


def test_the_linear_fit_does_not_depend_on_the_seed(frame, settings):
    a = fit_peer("linear", frame, SEGMENTS, seed=0, settings=settings)
    b = fit_peer("linear", frame, SEGMENTS, seed=7, settings=settings)
    pd.testing.assert_series_equal(a, b)


# ---------------------------------------------------------------------------------------------------------------
# GATs
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gats_fit(frame, settings):
    return fit_peer_result("gats", frame, SEGMENTS, seed=3, settings=settings)


def test_two_gats_fits_with_one_seed_give_the_same_predictions_and_another_seed_does_not(frame, settings, gats_fit):
    again = fit_peer("gats", frame, SEGMENTS, seed=3, settings=settings)
    pd.testing.assert_series_equal(gats_fit.predictions, again, check_exact=True)
    other = fit_peer("gats", frame, SEGMENTS, seed=4, settings=settings)
    assert not np.allclose(other.to_numpy(), again.to_numpy())


def test_gats_runs_the_capped_epochs_on_one_thread_and_restores_the_thread_count(frame, settings, gats_fit):
    import torch

    assert gats_fit.epochs_run == 2 and gats_fit.n_features == 20 and len(gats_fit.valid_scores) == 2
    assert gats_fit.best_epoch == int(np.argmax(gats_fit.valid_scores))
    before = torch.get_num_threads()
    fit_peer("gats", frame, SEGMENTS, seed=3, settings=PeerSettings(gats=GATsSettings(n_epochs=1),
                                                                        provider_uri=settings.provider_uri))
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("name", PEERS)
def test_predictions_are_floats_on_exactly_the_test_rows(frame, settings, gats_fit, name):
    pred = gats_fit.predictions if name == "gats" else fit_peer(name, frame, SEGMENTS, seed=0, settings=settings)
    assert pred.dtype == np.float64 and pred.name == name
    assert list(pred.index.names) == ["datetime", "instrument"]
    assert pred.index.equals(rows_of_test_segment(frame))
    assert np.isfinite(pred.to_numpy()).all()


def test_gats_scores_vary_within_a_day(gats_fit):
    assert (gats_fit.predictions.groupby(level="datetime").std() > 0).all()


# ---------------------------------------------------------------------------------------------------------------
# Daily batches are cross-sections (Qlib's DailyBatchSampler is not: microsoft/qlib#2319)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sampler_and_features(frame, settings):
    from qlib.data.dataset.handler import DataHandlerLP

    from graphwiz_trader.research.csi300_peers import _ensure_qlib

    _ensure_qlib(settings)
    ds = peer_dataset(frame, SEGMENTS, features=GATS_FEATURES, step_len=20)
    ts = ds.prepare("test", col_set=["feature", "label"], data_key=DataHandlerLP.DK_I)
    processed = ds.handler.fetch(col_set="feature", data_key=DataHandlerLP.DK_I)
    return ts, processed


def test_each_batch_is_one_whole_day_and_the_days_come_in_order(frame, sampler_and_features):
    ts, _ = sampler_and_features
    index = ts.get_index()
    batches = list(CrossSectionSampler(ts))
    days = [index[b].get_level_values("datetime").unique() for b in batches]
    assert all(len(d) == 1 for d in days)
    assert [d[0] for d in days] == sorted(rows_of_test_segment(frame).get_level_values("datetime").unique())
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(index)))


def test_a_batch_row_holds_the_processed_features_of_the_row_its_index_names(sampler_and_features):
    ts, processed = sampler_and_features
    index = ts.get_index()
    for batch in list(CrossSectionSampler(ts))[::15]:
        window = np.asarray(ts[batch])
        want = processed.loc[index[batch]].to_numpy()
        np.testing.assert_allclose(window[:, -1, :-1], want, rtol=0, atol=1e-6)


def test_qlibs_own_sampler_mixes_days_which_is_why_it_is_replaced(sampler_and_features):
    from qlib.contrib.model.pytorch_gats_ts import DailyBatchSampler

    ts, _ = sampler_and_features
    index = ts.get_index()
    n_days = [index[b].get_level_values("datetime").nunique() for b in DailyBatchSampler(ts)]
    assert max(n_days) > 1  # if Qlib fixes qlib#2319 this fails: the replacement can then go


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------


def test_an_unknown_peer_is_a_setting_error_listing_the_peers(frame, settings):
    with pytest.raises(SettingError, match=r"unknown peer 'hist'.*linear.*gats"):
        fit_peer("hist", frame, SEGMENTS, seed=0, settings=settings)


@pytest.mark.parametrize("name", PEERS)
def test_a_frame_without_the_label_column_is_a_data_error(frame, settings, name):
    with pytest.raises(DataError, match=rf"fit_peer\('{name}'\).*label"):
        fit_peer(name, frame.drop(columns="label", level=0), SEGMENTS, seed=0, settings=settings)


def test_gats_names_the_selected_columns_the_frame_lacks(frame, settings):
    with pytest.raises(DataError, match=r"\['KLEN', 'KLOW'\]"):
        fit_peer("gats", frame.drop(columns=[("feature", "KLEN"), ("feature", "KLOW")]), SEGMENTS, seed=0,
                 settings=settings)


def test_a_test_segment_without_rows_is_named_with_the_frames_span(frame, settings):
    late = Segments(SEGMENTS.train, SEGMENTS.valid, ("2015-01-01", "2015-03-31"))
    with pytest.raises(InsufficientDataError, match=r"segment test 2015-01-01\.\.2015-03-31 has no rows.*2014-01-01\.\.2014-12-31"):
        fit_peer("linear", frame, late, seed=0, settings=settings)


def test_a_train_segment_whose_labels_are_all_missing_is_an_error(frame, settings):
    blank = frame.copy()
    dates = blank.index.get_level_values("datetime")
    blank.loc[dates <= pd.Timestamp(SEGMENTS.train[1]), ("label", "LABEL0")] = np.nan
    with pytest.raises(InsufficientDataError, match=r"segment train .* no rows with a label"):
        fit_peer("gats", blank, SEGMENTS, seed=0, settings=settings)


def test_a_flat_frame_is_a_data_error_and_every_error_is_a_graphwiz_error(frame, settings):
    flat = frame.copy()
    flat.columns = [f"{a}_{b}" for a, b in frame.columns]
    with pytest.raises(GraphwizError, match="two column levels"):
        fit_peer("linear", flat, SEGMENTS, seed=0, settings=settings)


def test_segments_given_as_a_mapping_must_name_all_three(frame, settings):
    with pytest.raises(SettingError, match=r"missing \['test'\]"):
        fit_peer("linear", frame, {"train": SEGMENTS.train, "valid": SEGMENTS.valid}, seed=0, settings=settings)


def test_progress_counts_the_gats_epochs_and_leaves_qlibs_logger_as_it_was(frame, settings, monkeypatch):
    import logging

    from graphwiz_trader.core import progress

    ticks: list[int] = []

    class Bar:
        def update(self, n: int) -> None:
            ticks.append(n)

        def close(self) -> None:
            ticks.append(0)

    monkeypatch.setattr(progress, "bar", lambda total, desc, **kw: Bar())
    target = logging.getLogger("qlib.GATs")
    propagate, handlers = target.propagate, list(target.handlers)
    fit_peer("gats", frame, SEGMENTS, seed=1, settings=settings, progress=True)
    assert ticks == [1, 1, 0]
    assert target.propagate == propagate and target.handlers == handlers


def test_a_gats_fit_without_any_finite_validation_score_is_an_error_not_qlibs_unbound_local(frame, settings,
                                                                                             monkeypatch):
    from qlib.contrib.model import pytorch_gats_ts

    def nan_fit(self, dataset, evals_result, save_path):
        evals_result["valid"] = [float("nan")]
        raise UnboundLocalError("cannot access local variable 'best_param'")  # what Qlib's fit then raises

    monkeypatch.setattr(pytorch_gats_ts.GATs, "fit", nan_fit)
    with pytest.raises(InsufficientDataError, match=r"no epoch gave a finite validation score \(\[nan\]"):
        fit_peer("gats", frame, SEGMENTS, seed=0, settings=settings)


def test_a_duplicated_row_is_named(frame, settings):
    doubled = pd.concat([frame, frame.iloc[[7]]])
    with pytest.raises(DataError, match=r"duplicate \(datetime, instrument\) rows, e\.g\. \(Timestamp\('2014-01-02"):
        fit_peer("linear", doubled, SEGMENTS, seed=0, settings=settings)


# ---------------------------------------------------------------------------------------------------------------
# No look-ahead: a day's GATs score does not move when later days are cut from the frame
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted_gats(frame, settings, tmp_path_factory):
    """Qlib's GATs fitted once (one epoch) with cross-sectional batches."""
    from qlib.contrib.model.pytorch_gats_ts import GATs

    from graphwiz_trader.research.csi300_peers import (
        _ensure_qlib,
        _qlib_daily_sampler,
        _seeded_single_thread,
    )

    _ensure_qlib(settings)
    gs = GATsSettings(n_epochs=1)
    with _seeded_single_thread(5, 1), _qlib_daily_sampler(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = peer_dataset(frame, SEGMENTS, features=gs.features, step_len=gs.step_len)
        model = GATs(**gs.model_kwargs(5))
        model.fit(dataset, evals_result={}, save_path=str(tmp_path_factory.mktemp("gats") / "gats.pt"))
    return model


CUT = pd.Timestamp("2014-11-14")


def scores_on(frame: pd.DataFrame, model, cross_sectional: bool) -> pd.Series:
    from graphwiz_trader.research.csi300_peers import _predict_cross_sections

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = peer_dataset(frame, SEGMENTS, features=GATS_FEATURES, step_len=20)
        pred = _predict_cross_sections(model, ds) if cross_sectional else model.predict(ds)
    return pred.sort_index()


def test_cross_sectional_scores_up_to_a_day_do_not_change_when_later_days_are_cut(frame, fitted_gats):
    model = fitted_gats
    cut = frame[frame.index.get_level_values("datetime") <= CUT]
    full = scores_on(frame, model, cross_sectional=True)
    early = scores_on(cut, model, cross_sectional=True)
    assert len(early) == len(full.loc[:CUT]) > 0
    np.testing.assert_allclose(early.to_numpy(), full.loc[:CUT].to_numpy(), rtol=0, atol=1e-6)


def test_qlibs_own_batches_leak_later_days_into_earlier_scores(frame, fitted_gats):
    """What the replacement avoids: with Qlib's sampler a batch is one stock's run of days, the attention mixes
    them, so cutting later days changes earlier scores (microsoft/qlib#2319)."""
    model = fitted_gats
    cut = frame[frame.index.get_level_values("datetime") <= CUT]
    full = scores_on(frame, model, cross_sectional=False)
    early = scores_on(cut, model, cross_sectional=False)
    assert np.abs(early.to_numpy() - full.loc[:CUT].to_numpy()).max() > 1e-4
