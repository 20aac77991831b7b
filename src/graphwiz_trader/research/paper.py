"""``graphwiz reproduce paper``: every table and figure of ``docs/paper.md`` (and its HTML twin) from one command.

For each dataset (:mod:`graphwiz_trader.research.paper_data`: the 20 hourly majors and CSI300 daily):

1. the ablation (:mod:`graphwiz_trader.research.ablation`): Alpha158 only, + the current graph features, + each
   graph family, + regime conditioning (interactions; one model per regime), + every family, with the same folds
   and seeds, per horizon; naive scores beside them;
2. CSI300 only: Qlib's own Linear and GATs models (:mod:`graphwiz_trader.research.csi300_peers`) on the same split
   and label, scored on the same test rows;
3. costs: the scores of some variants through rolling max-Sharpe and the cost-aware backtest
   (:func:`graphwiz_trader.backtest.runner.run_configured_backtest`), net Sharpe and its difference to Alpha158
   with a moving-block bootstrap interval over days;
4. the results go to ``<run>/paper.json``; :mod:`graphwiz_trader.research.paper_render` writes the paper from it.

Folds. Crypto: rolling walk-forward, 8,760 training bars, a purge gap of the horizon, 720 test bars, stride 1,440
(a test month every other month: 14 folds from 2022 to 2024, which keeps the full run near 2 h on two cores;
Rank IC blocks = folds). CSI300: Qlib's published split with the data's start (train 2010-2014, early stopping
on 2015-2016, test 2017-01 .. 2020-07, a purge gap of the largest horizon before the test), one fit per variant;
Rank IC blocks = calendar months of the test period.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.errors import SettingError
from graphwiz_trader.research.ablation import (
    RANK_SCALE,
    AblationSettings,
    HorizonResult,
    run_ablation,
)
from graphwiz_trader.research.experiment import WalkForwardSettings
from graphwiz_trader.research.paper_cache import StageCache, frame_digest, stage_key
from graphwiz_trader.research.paper_data import (
    AblationData,
    CryptoDataSettings,
    CSI300DataSettings,
    crypto_dataset,
    csi300_dataset,
)

log = logging.getLogger(__name__)

CRYPTO_LGB = {"learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 200, "max_bin": 127}
CSI300_LGB = {"colsample_bytree": 0.8879, "learning_rate": 0.2, "subsample": 0.8789, "lambda_l1": 205.6999,
              "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210}
"""Qlib's published LightGBM/Alpha158/CSI300 parameters (``workflow_config_lightgbm_Alpha158.yaml``)."""


@dataclass(frozen=True)
class PaperSettings:
    """One paper run. ``crypto``/``csi300`` None leaves that dataset out (the small test configuration)."""

    crypto: CryptoDataSettings | None
    csi300: CSI300DataSettings | None
    seeds: tuple[int, ...] = (0,)
    crypto_train_len: int = 8760
    crypto_test_len: int = 720
    crypto_stride: int = 1440
    crypto_max_folds: int | None = None
    crypto_rounds: int = 200
    csi300_rounds: int = 1000
    peers: tuple[str, ...] = ("linear", "gats")
    peer_epochs: int | None = None
    costs: bool = True
    cost_variants: tuple[str, ...] = ("alpha158", "+graph18", "+all")
    csi300_cost_horizons: tuple[int, ...] = (5,)
    workers: int | None = None
    ray_address: str | None = None
    n_resamples: int = 10_000
    cache_dir: Path | None = Path("data/paper_cache")

    def __post_init__(self) -> None:
        if self.crypto is None and self.csi300 is None:
            raise SettingError("reproduce paper: no dataset (give the crypto data, the CSI300 data or both)")


# ------------------------------------------------------------------------------------------------ folds

def crypto_ablation_settings(cfg: PaperSettings) -> AblationSettings:
    wf = WalkForwardSettings(train_len=cfg.crypto_train_len, test_len=cfg.crypto_test_len, stride=cfg.crypto_stride,
                             max_folds=cfg.crypto_max_folds, lgb_params=dict(CRYPTO_LGB),
                             num_boost_round=cfg.crypto_rounds, early_stopping_rounds=20, split_min_rows=20_000)
    assert cfg.crypto is not None
    return AblationSettings(horizons=cfg.crypto.horizons, seeds=cfg.seeds, walkforward=wf, block="fold",
                            n_resamples=cfg.n_resamples)


def csi300_ablation_settings(cfg: PaperSettings, data: AblationData) -> AblationSettings:
    """Qlib's split as one walk-forward fold: training = train + valid segments (the valid part drives early
    stopping, after a purge gap), test from the test segment's start plus the gap."""
    from graphwiz_trader.research.csi300_setup import DATA_SEGMENTS

    assert cfg.csi300 is not None
    h_max = max(cfg.csi300.horizons)
    cal = pd.DatetimeIndex(data.features.index.get_level_values("datetime").unique()).sort_values()
    seg = DATA_SEGMENTS
    fwd_last = data.fwd_returns[h_max].index.get_level_values("datetime").max()
    cal = cal[cal <= fwd_last]
    n_train = int((cal <= pd.Timestamp(seg.valid[1])).sum())
    n_valid = int(((cal >= pd.Timestamp(seg.valid[0])) & (cal <= pd.Timestamp(seg.valid[1]))).sum())
    n_test = int(((cal >= pd.Timestamp(seg.test[0])) & (cal <= pd.Timestamp(seg.test[1]))).sum()) - h_max
    if n_train < 50 or n_test < 20:
        raise SettingError(f"csi300: too few days for Qlib's split ({n_train} train, {n_test} test)")
    wf = WalkForwardSettings(train_len=n_train, test_len=n_test, gap=h_max, max_folds=1,
                             stop_fraction=n_valid / n_train, lgb_params=dict(CSI300_LGB),
                             num_boost_round=cfg.csi300_rounds, early_stopping_rounds=50, split_min_rows=50_000,
                             shap_blocks="month")
    return AblationSettings(horizons=cfg.csi300.horizons, seeds=cfg.seeds, walkforward=wf, block="month",
                            n_resamples=cfg.n_resamples)


# ------------------------------------------------------------------------------------------------ costs

def sharpe(returns: np.ndarray, periods_per_year: float) -> float:
    r = returns[np.isfinite(returns)]
    sd = r.std(ddof=1) if len(r) > 1 else float("nan")
    return float(r.mean() / sd * np.sqrt(periods_per_year)) if sd and sd > 0 else float("nan")


def sharpe_difference(a: pd.Series, b: pd.Series, periods_per_year: float, n_resamples: int = 10_000,
                      seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Sharpe(a) - Sharpe(b) of two return series on the same dates, with a moving-block bootstrap interval
    (blocks of ``round(n^(1/3))`` consecutive dates, drawn jointly for both series so their dependence is kept)."""
    df = pd.concat({"a": a, "b": b}, axis=1, join="inner").dropna()
    n = len(df)
    if n < 20:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": n}
    x = df.to_numpy()
    b_len = max(1, int(round(n ** (1 / 3))))
    rng = np.random.default_rng(seed)
    k = int(np.ceil(n / b_len))
    starts = rng.integers(0, n - b_len + 1, size=(n_resamples, k))
    idx = (starts[:, :, None] + np.arange(b_len)[None, None, :]).reshape(n_resamples, k * b_len)[:, :n]
    xa, xb = x[:, 0][idx], x[:, 1][idx]
    sa = xa.mean(axis=1) / xa.std(axis=1, ddof=1)
    sb = xb.mean(axis=1) / xb.std(axis=1, ddof=1)
    d = (sa - sb) * np.sqrt(periods_per_year)
    return {"diff": sharpe(x[:, 0], periods_per_year) - sharpe(x[:, 1], periods_per_year),
            "lo": float(np.nanquantile(d, (1 - level) / 2)), "hi": float(np.nanquantile(d, 0.5 + level / 2)),
            "n": n, "block": b_len}


COSTS_FORMAT = 2   # 2: Sharpe over the scored days only, equal weight beside the variants


def _utc(index: pd.Index) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert("UTC") if idx.tz is not None else idx.tz_localize("UTC")


def _daily(equity: pd.Series) -> pd.Series:
    e = equity.copy()
    e.index = _utc(e.index)
    return e.resample("1D").last().dropna().pct_change().dropna()


def scored_days(scores: pd.Series) -> pd.DatetimeIndex:
    """The UTC days on which ``scores`` (indexed by datetime, instrument) has a value, and each following day.

    Walk-forward test windows need not cover the whole period (a stride longer than the test window leaves gaps
    with no score, in which the strategy holds cash); Sharpe is measured on the days the scores traded, plus the
    day after each, which carries the exit from the last positions."""
    days = _utc(scores.dropna().index.get_level_values(0)).normalize().unique()
    return days.union(days + pd.Timedelta(days=1))


def cost_backtests(data: AblationData, hr: HorizonResult, variants: tuple[str, ...], source: Any, fmt: str,
                   source_options: Any = None, universe: Any = None, progress: bool = False) -> dict[str, Any]:
    """Each variant's seed-mean scores through rolling max-Sharpe and the cost-aware backtest (the project's
    defaults of ``config/backtest.yaml``: 10 bps taker fee, 1 bp half-spread, 2 bps slippage, square-root impact),
    rebalanced every ``h`` bars with the score horizon set to ``h``. Net Sharpe from daily returns on the scored days
    (:func:`scored_days`; equal weight's net Sharpe on the same days beside the variants) (annualised
    with 365 days on 24/7 data, 252 trading days on daily exchange data), and each
    variant's difference to Alpha158 with a block-bootstrap interval over days."""
    from graphwiz_trader.backtest.runner import run_configured_backtest
    from graphwiz_trader.backtest.settings import (
        BacktestRunSettings,
        load_backtest_config,
    )

    default = Path("config/backtest.yaml")
    base = load_backtest_config(default) if default.exists() else BacktestRunSettings()
    h = hr.horizon
    timeframe = str(data.info.get("timeframe", "1h"))
    opt = base.portfolio.optimiser.model_copy(update={"score_horizon_bars": int(h)})
    pf = base.portfolio.model_copy(update={"optimiser": opt, **({"cov_window": "120D"} if timeframe == "1d" else {})})
    src = base.data.source.model_copy(update={"timeframe": timeframe})
    cfg = base.model_copy(update={"backtest": base.backtest.model_copy(update={"rebalance": int(h)}), "portfolio": pf,
                                  "data": base.data.model_copy(update={"source": src})})
    ppy = 365.0 if timeframe != "1d" else 252.0     # daily returns: calendar days (24/7) or trading days
    preds = hr.predictions
    present = [v for v in variants if v in preds.columns]
    out: dict[str, Any] = {"horizon": h, "rebalance_bars": h, "variants": {}}
    daily: dict[str, pd.Series] = {}
    days = scored_days(preds[present[0]]) if present else pd.DatetimeIndex([], tz="UTC")
    for v in present:
        t0 = time.perf_counter()
        run = run_configured_backtest(cfg, source, fmt, progress=progress, write_html=False,
                                      scores=preds[[v]], score_column=v, source_options=source_options,
                                      universe=universe, scores_where=f"the {v} scores (h={h})")
        strat = run.results[next(iter(run.results))]
        m = run.metrics.iloc[:, 0].to_dict()
        daily[v] = _on(_daily(strat.equity), days)
        out["variants"][v] = {"net_sharpe_daily": sharpe(daily[v].to_numpy(), ppy),
                              "total_return": float(np.prod(1.0 + daily[v].to_numpy()) - 1.0),
                              "metrics": {k: float(x) for k, x in m.items() if isinstance(x, (int, float))},
                              "seconds": time.perf_counter() - t0}
        if "equal_weight" in run.results and "equal_weight" not in out:
            ew = _on(_daily(run.results["equal_weight"].equity), days)
            out["equal_weight"] = {"net_sharpe_daily": sharpe(ew.to_numpy(), ppy),
                                   "total_return": float(np.prod(1.0 + ew.to_numpy()) - 1.0)}
    out["days"] = len(daily[present[0]]) if present else 0
    if "alpha158" in daily:
        for v in present:
            if v != "alpha158":
                out["variants"][v]["sharpe_diff_vs_alpha158"] = sharpe_difference(daily[v], daily["alpha158"], ppy)
    return out


def _on(daily: pd.Series, days: pd.DatetimeIndex) -> pd.Series:
    return daily[daily.index.normalize().isin(days)]


# ------------------------------------------------------------------------------------------------ run

def _peer_frame(data: AblationData, h: int) -> pd.DataFrame:
    from graphwiz_trader.models.targets import cross_sectional_rank

    x = data.features[data.alpha_columns]
    y = (cross_sectional_rank(data.fwd_returns[h]) * RANK_SCALE).reindex(x.index)
    cols = pd.MultiIndex.from_tuples([("feature", c) for c in x.columns] + [("label", "LABEL0")])
    frame = pd.concat([x, y.rename("LABEL0")], axis=1)
    frame.columns = cols
    return frame


def run_peers(data: AblationData, cfg: PaperSettings, results: dict[int, HorizonResult], abl: AblationSettings,
              keys: dict[int, str] | None = None, cache: StageCache | None = None,
              progress: bool = False) -> dict[str, Any]:
    """Qlib's Linear and GATs on the CSI300 split at every horizon, added to the tables as ``peer`` rows.

    A peer's scores are kept in ``cache`` under the horizon's key, the peer, its settings and the seeds."""
    from graphwiz_trader.research.csi300_peers import PeerSettings, fit_peer
    from graphwiz_trader.research.csi300_setup import DATA_SEGMENTS

    settings = PeerSettings(provider_uri=Path(cfg.csi300.provider_uri) if cfg.csi300 else None)
    if cfg.peer_epochs is not None:
        settings = replace(settings, gats=replace(settings.gats, n_epochs=cfg.peer_epochs))
    cache = cache or StageCache(None)
    seconds: dict[str, float] = {}
    for h, hr in results.items():
        frame = None
        scores = {}
        for name in cfg.peers:
            t0 = time.perf_counter()
            key = stage_key("peer", (keys or {}).get(h), name, list(cfg.seeds), asdict(settings))
            held = cache.load_frame(key)
            if held is not None:
                scores[f"qlib_{name}"] = held.iloc[:, 0]
            else:
                frame = _peer_frame(data, h) if frame is None else frame
                per_seed = [fit_peer(name, frame, DATA_SEGMENTS, s, settings, progress=progress) for s in cfg.seeds]
                scores[f"qlib_{name}"] = pd.concat(per_seed, axis=1).mean(axis=1)
                cache.save_frame(key, scores[f"qlib_{name}"].to_frame("score"))
            seconds[f"qlib_{name}_h{h}"] = time.perf_counter() - t0
        hr.add_scores(scores, "peer", data.fwd_returns[h], abl)
    return {"settings": asdict(settings), "seconds": seconds}


def run_paper(cfg: PaperSettings, run_dir: Path, progress: bool = True, store: Any = None) -> dict[str, Any]:
    """Run every dataset's ablation, peers and costs; returns the payload :mod:`graphwiz_trader.research.paper_render` turns into the paper."""
    payload: dict[str, Any] = {"settings": _settings_dict(cfg), "datasets": {}}
    t_all = time.perf_counter()
    if cfg.crypto is not None:
        payload["datasets"]["crypto"] = _run_dataset("crypto", cfg, run_dir, progress, store)
    if cfg.csi300 is not None:
        payload["datasets"]["csi300"] = _run_dataset("csi300", cfg, run_dir, progress, store)
    payload["seconds"] = time.perf_counter() - t_all
    return payload


def _run_dataset(name: str, cfg: PaperSettings, run_dir: Path, progress: bool, store: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    if name == "crypto":
        assert cfg.crypto is not None
        data = crypto_dataset(cfg.crypto, store=store, progress=progress)
        abl = crypto_ablation_settings(cfg)
    else:
        assert cfg.csi300 is not None
        data = csi300_dataset(cfg.csi300, store=store, progress=progress)
        abl = csi300_ablation_settings(cfg, data)
    t_data = time.perf_counter() - t0
    log.info("%s: %d rows x %d columns, %d variants", name, len(data.features), data.features.shape[1],
             len(data.variants))
    t1 = time.perf_counter()
    cache = StageCache(cfg.cache_dir)
    data_key = stage_key(name, frame_digest(data.features), {k: frame_digest(v) for k, v in data.naive_scores.items()},
                         [(v.name, list(v.columns), v.split_by) for v in data.variants])
    results: dict[int, HorizonResult] = {}
    keys: dict[int, str] = {}
    for h in abl.horizons:
        one = replace(abl, horizons=(h,))
        keys[h] = stage_key("ablation", data_key, h, frame_digest(data.fwd_returns[h]), asdict(one))
        held = cache.load_horizon(keys[h])
        if held is None:
            held = run_ablation(data.features, {h: data.fwd_returns[h]}, data.variants, one,
                                naive_scores=data.naive_scores, workers=cfg.workers, ray_address=cfg.ray_address,
                                progress=progress)[h]
            cache.save_horizon(keys[h], held)
        results[h] = held
    t_abl = time.perf_counter() - t1
    peers: dict[str, Any] = {}
    if name == "csi300" and cfg.peers:
        peers = run_peers(data, cfg, results, abl, keys, cache, progress)
    costs: dict[str, Any] = {}
    t2 = time.perf_counter()

    def costed(h: int, hr: HorizonResult, source: Any, fmt: str, opts: Any = None) -> dict[str, Any]:
        key = stage_key("costs", COSTS_FORMAT, keys[h], list(cfg.cost_variants), str(source), fmt, repr(opts))
        held = cache.load_json(key)
        if held is None:
            held = cost_backtests(data, hr, cfg.cost_variants, source, fmt, source_options=opts)
            cache.save_json(key, held)
        return held

    if cfg.costs:
        if name == "crypto":
            assert cfg.crypto is not None
            for h, hr in results.items():
                costs[str(h)] = costed(h, hr, cfg.crypto.data, "freqtrade")
        else:
            from graphwiz_trader.data.sources import SourceOptions

            assert cfg.csi300 is not None
            opts = SourceOptions(provider=cfg.csi300.provider_uri, market=cfg.csi300.market
                                 if isinstance(cfg.csi300.market, str) else None, region="cn")
            for h, hr in results.items():
                if h in cfg.csi300_cost_horizons:
                    costs[str(h)] = costed(h, hr, cfg.csi300.provider_uri, "qlib", opts)
    t_costs = time.perf_counter() - t2
    reference: dict[str, Any] = {}
    if data.reference_label is not None:
        for h, hr in results.items():
            reference[str(h)] = _records(hr.against(data.reference_label, abl).reset_index())
    for h, hr in results.items():
        hr.predictions.to_parquet(run_dir / f"{name}_predictions_h{h}.parquet")
        hr.rank_ic.to_csv(run_dir / f"{name}_rank_ic_h{h}.csv")
    return {
        "label": data.label, "info": data.info, "build_id": data.build_id,
        "variants": [{"name": v.name, "note": v.note, "n_columns": len(v.columns), "split_by": v.split_by}
                     for v in data.variants],
        "families": data.family_columns, "graph18": data.graph_columns,
        "ablation": {"block": abl.block, "seeds": list(abl.seeds), "walkforward": _wf_dict(abl.walkforward)},
        "horizons": {str(h): _horizon_payload(hr, abl) for h, hr in results.items()},
        "peers": peers, "costs": costs,
        "reference_label": {"label": data.reference_name, "horizons": reference} if reference else None,
        "seconds": {"data": t_data, "ablation": t_abl, "costs": t_costs, **data.timings},
    }


def _wf_dict(wf: WalkForwardSettings) -> dict[str, Any]:
    d = asdict(wf)
    d["label"] = "cross-sectional rank of the forward log return (unit variance)"
    return d


def _horizon_payload(hr: HorizonResult, abl: AblationSettings) -> dict[str, Any]:
    return {
        "table": _records(hr.table.reset_index()),
        "accuracy": _records(hr.accuracy_table(abl).reset_index()),
        "rank_ic": {"index": [str(i) for i in hr.rank_ic.index],
                    "columns": {c: [None if pd.isna(x) else float(x) for x in hr.rank_ic[c]] for c in hr.rank_ic}},
        "family_shap": {v: _records(df.reset_index(names="fold")) for v, df in hr.family_shap.items()},
        "shap_stability": {v: _records(df.reset_index(names="family")) for v, df in hr.shap_stability.items()},
        "seconds": hr.seconds,
    }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else
                        (float(v) if isinstance(v, (np.floating, float)) else
                         (int(v) if isinstance(v, (np.integer,)) else v))) for k, v in row.items()})
    return out


def _settings_dict(cfg: PaperSettings) -> dict[str, Any]:
    d = asdict(cfg)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
