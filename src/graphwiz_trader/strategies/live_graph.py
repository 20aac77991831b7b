"""The graph kept up to date one bar at a time: only the newest snapshot is built and written.

It reproduces, bar by bar, what :func:`graphwiz_trader.graph.pipeline.build_graph` computes on the bars from the
first warm-up bar to t (the same anchor), without rebuilding history:

- **snapshots**: due at union bar rows ``u`` with ``u - window`` a multiple of ``stride`` (the builders'
  schedule, anchored at the first bar); each is built from the last ``window + 1`` closes alone
  (:func:`~graphwiz_trader.graph.builders.build_snapshots` with one window), which is all a snapshot depends on;
- **market regime**: the same expanding HMM fits (``graph.builders.regimes``: first fit after ``min_train``
  feature rows, a re-fit every ``refit_every`` rows on the ``max_train`` rows before it, warm-started from the
  previous model) and the same forward filter, advanced one step per bar;
- **asset regimes**: log realised volatility per asset and its expanding mean and std (running sums), recorded
  at the snapshot times.

:meth:`LiveGraph.features` gives the ``G_*`` features of the newest bar (``features.graph_features`` on the
newest snapshot and the current regime records). Each new snapshot, with the regime records since the previous
one, is written to the graph store as its own build ``<base>-<as_of>`` (``build_ids``) and read back before use,
as the research pipeline does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import multivariate_normal

from graphwiz_trader.features.graph_features import feature_names, graph_features, snapshot_metrics
from graphwiz_trader.graph.builders import ASSET_REGIMES, MARKET_SCOPE, build_snapshots, market_features
from graphwiz_trader.graph.builders.regimes import _fit_hmm, _quiet_hmmlearn, _std, forward_filter, market_regime_names
from graphwiz_trader.graph.pipeline import GraphBuildSettings, regime_params_for
from graphwiz_trader.graph.snapshot import REGIME_COLUMNS, GraphSnapshot

log = logging.getLogger(__name__)

__all__ = ["LiveGraph"]


class _MarketRegime:
    """Filtered market regime, advanced one feature row at a time (see the module docstring)."""

    def __init__(self, params: Any) -> None:
        self.p = params
        keep = (params.max_train or 10**9) + params.burn_in + 1
        self.keep = keep
        self.x = np.empty((0, 2))
        self.rows = 0                       # feature rows seen (global)
        self.prev: tuple[Any, np.ndarray, np.ndarray] | None = None
        self.model: Any = None
        self.mu = self.sd = None
        self.rank: np.ndarray | None = None
        self.alpha: np.ndarray | None = None
        self.names = market_regime_names(params.n_states)

    def _rows(self, lo: int, hi: int) -> np.ndarray:
        first = self.rows - len(self.x)
        return self.x[lo - first: hi - first]

    def add(self, feat: np.ndarray) -> tuple[str, float] | None:
        """Add one feature row ``(m, log_disp)``; returns its (label, prob) once a model exists."""
        self.x = np.vstack([self.x, feat[None, :]])
        if len(self.x) > self.keep + 256:
            self.x = self.x[-self.keep:]
        r = self.rows
        self.rows += 1
        p = self.p
        if r < p.min_train:
            return None
        if (r - p.min_train) % p.refit_every == 0:
            lo = 0 if p.max_train is None else max(0, r - p.max_train)
            train = self._rows(lo, r)
            mu = train.mean(axis=0)
            sd = train.std(axis=0)
            sd = np.where(sd > 0, sd, 1.0)
            with _quiet_hmmlearn():
                model = _fit_hmm(_std(train, mu, sd, p.clip), p, self.prev, mu, sd)
            self.prev = (model, mu, sd)
            self.model, self.mu, self.sd = model, mu, sd
            order = np.argsort(model.covars_[:, 0, 0], kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            self.rank = rank
            s0 = max(0, r - p.burn_in)
            self.alpha = forward_filter(model, _std(self._rows(s0, r + 1), mu, sd, p.clip))[-1]
        else:
            m = self.model
            z = _std(feat[None, :], self.mu, self.sd, p.clip)
            logb = np.array([multivariate_normal(m.means_[s], m.covars_[s], allow_singular=True).logpdf(z)
                             for s in range(m.n_components)]).reshape(-1)
            b = np.exp(logb - logb.max())
            post = (self.alpha @ m.transmat_) * b
            tot = post.sum()
            self.alpha = post / tot if tot > 0 else np.full(m.n_components, 1.0 / m.n_components)
        state = int(self.alpha.argmax())
        return self.names[int(self.rank[state])], float(self.alpha[state])


class LiveGraph:
    """Snapshots and regimes of the universe, updated with each new bar (see the module docstring).

    Parameters
    ----------
    symbols : the universe.
    spec : how the graph is built (window, stride, pruning, lead-lag, regimes); the regime parameters default
        to those of the bars' timeframe.
    timeframe : bar size (for the default regime parameters).
    store : an open :class:`~graphwiz_trader.graph.store.GraphStore` (``None``: nothing is written).
    run_id : names the builds written (``<hash of run id and spec>-<as_of>``).
    """

    def __init__(self, symbols: list[str], spec: GraphBuildSettings, timeframe: str, store: Any = None,
                 run_id: str = "run") -> None:
        self.symbols = sorted(symbols)
        self.spec = spec if spec.regimes is not None else replace(spec, regimes=regime_params_for(timeframe))
        self.params = self.spec.regimes
        self.params.check()
        self.store = store
        info = json.dumps({"run": run_id, "spec": asdict(self.spec), "universe": self.symbols}, sort_keys=True,
                          default=str)
        self.base_id = "live" + hashlib.sha256(info.encode()).hexdigest()[:12]
        self.regime_names = market_regime_names(self.params.n_states)
        self.market = _MarketRegime(self.params)
        self.rows = 0                                    # union bar rows seen (global)
        self.snapshot: GraphSnapshot | None = None
        self._metrics: Any = None
        self.build_ids: list[str] = []
        self.market_record: tuple[pd.Timestamp, str, float] | None = None
        self.run_start_row: int | None = None
        self.asset_records: dict[str, tuple[pd.Timestamp, str, float]] = {}
        self._pending_market: list[tuple[pd.Timestamp, str, float]] = []
        n = len(self.symbols)
        self._lv_n = np.zeros(n)
        self._lv_mean = np.zeros(n)
        self._lv_m2 = np.zeros(n)
        self.seconds: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------- updates
    def _due(self, u: int) -> bool:
        w, s = self.spec.window, self.spec.stride
        return u >= w and (u - w) % s == 0

    def update(self, close: pd.DataFrame, new_rows: int, build: bool = True) -> GraphSnapshot | None:
        """Advance over the last ``new_rows`` rows of ``close`` (``bars x symbols``, the newest last, with at least
        ``window + 1`` rows before each new one when a snapshot is due, and ``asset_vol_window + 1`` for the
        asset regimes). Returns the snapshot built at the newest row, if one was due.

        ``build=False`` (warm-up) advances regimes and schedules without building earlier snapshots; the caller
        then builds the newest due one with :meth:`build_latest`.
        """
        c = close.reindex(columns=self.symbols)
        logp = np.log(c.to_numpy(np.float64))
        times = c.index
        made = None
        p = self.params
        for k in range(len(c) - new_rows, len(c)):
            u = self.rows
            self.rows += 1
            t = times[k]
            if k >= 1:
                r = logp[k] - logp[k - 1]
                feats = market_features(pd.DataFrame(r[None, :], index=[t]), p.min_assets)
                if len(feats):
                    lab = self.market.add(feats.to_numpy()[0])
                    if lab is not None:
                        if self.market_record is None or lab[0] != self.market_record[1]:
                            self.run_start_row = u
                        self.market_record = (t, lab[0], lab[1])
                        self._pending_market.append((t, lab[0], lab[1]))
                self._update_asset_vol(logp, k)
            if self._due(u):
                self._record_assets(t)
                if build:
                    made = self._build(c.iloc[k - self.spec.window: k + 1])
        return made

    def build_latest(self, close: pd.DataFrame) -> GraphSnapshot | None:
        """Build the newest snapshot due at or before the last row of ``close`` (after a warm-up ``update``)."""
        w, s = self.spec.window, self.spec.stride
        last_u = self.rows - 1
        if last_u < w:
            return None
        due_u = w + ((last_u - w) // s) * s
        k = len(close) - 1 - (last_u - due_u)
        if k - w < 0:
            return None
        return self._build(close.reindex(columns=self.symbols).iloc[k - w: k + 1])

    def _update_asset_vol(self, logp: np.ndarray, k: int) -> None:
        w = self.params.asset_vol_window
        lo = max(1, k - w + 1)
        rets = logp[lo: k + 1] - logp[lo - 1: k]
        valid = np.isfinite(rets)
        n = valid.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(valid, rets, 0.0).sum(axis=0) / np.maximum(n, 1)
            var = (np.where(valid, rets - m, 0.0) ** 2).sum(axis=0) / np.maximum(n - 1, 1)
            sd = np.where(n >= max(3, w // 2), np.sqrt(var), np.nan)
            lv = np.log(np.where(sd > 0, sd, np.nan))
        ok = np.isfinite(lv)
        self._lv_n += ok
        delta = np.where(ok, lv - self._lv_mean, 0.0)
        self._lv_mean += np.where(ok, delta / np.maximum(self._lv_n, 1), 0.0)
        self._lv_m2 += np.where(ok, delta * (lv - self._lv_mean), 0.0)
        self._lv_last = lv

    def _record_assets(self, t: pd.Timestamp) -> None:
        lv = getattr(self, "_lv_last", None)
        if lv is None:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(self._lv_m2 / np.maximum(self._lv_n - 1, 1))
            z = (lv - self._lv_mean) / sd
        ok = np.isfinite(z) & (self._lv_n >= self.params.asset_min_history)
        for j in np.flatnonzero(ok):
            self.asset_records[self.symbols[j]] = (t, ASSET_REGIMES[int(z[j] > 0)], float(ndtr(abs(z[j]))))

    def _build(self, window_close: pd.DataFrame) -> GraphSnapshot | None:
        sp = self.spec
        snaps = build_snapshots(window_close, sp.window, 1, sp.min_periods, sp.method, sp.min_abs_rho, sp.top_k,
                                sp.lead_max_lag)
        snap = snaps[-1]
        if self.store is not None:
            snap = self._write(snap)
        self.snapshot = snap
        self._metrics = snapshot_metrics([snap], self.symbols)
        return snap

    def _regime_frame(self, records_market: list[tuple[pd.Timestamp, str, float]]) -> pd.DataFrame:
        rows = [(MARKET_SCOPE, t, lab, prob) for t, lab, prob in records_market]
        rows += [(s, t, lab, prob) for s, (t, lab, prob) in sorted(self.asset_records.items())]
        frame = pd.DataFrame(rows, columns=REGIME_COLUMNS)
        if len(frame):
            frame["datetime"] = pd.DatetimeIndex(frame["datetime"]).tz_convert("UTC")
            frame["prob"] = frame["prob"].astype(np.float64)
        return frame

    def _write(self, snap: GraphSnapshot) -> GraphSnapshot:
        as_of = pd.Timestamp(snap.as_of)
        build = f"{self.base_id}-{as_of:%Y%m%dT%H%M}"
        info = {"live": True, "base": self.base_id, "as_of": str(as_of), "spec": asdict(self.spec),
                "universe": self.symbols}
        self.store.write_snapshots([snap], build=build, info=info, exchange=self.spec.exchange)
        frame = self._regime_frame(self._pending_market)
        frame = frame[frame["datetime"] <= as_of] if len(frame) else frame
        if len(frame):
            self.store.write_regimes(frame, build=build, info=info)
        self._pending_market = [r for r in self._pending_market if r[0] > as_of]
        back = self.store.read_snapshots(build, self.symbols)
        self.build_ids.append(build)
        return back[-1]

    # ------------------------------------------------------------------------------------------- features
    def regime_at(self) -> tuple[str | None, float | None]:
        """The current market regime label and its filtered probability (None before the first fit)."""
        return (self.market_record[1], self.market_record[2]) if self.market_record else (None, None)

    def features(self, close_tail: pd.DataFrame) -> pd.DataFrame:
        """``G_*`` features at the newest row of ``close_tail`` (at least 25 rows: the 24-bar neighbour momentum).

        Returns the rows of that time (index ``(datetime, instrument)``, tz-naive UTC as the Alpha158 frame).
        """
        c = close_tail.reindex(columns=self.symbols)
        t = c.index[-1]
        market = [self.market_record] if self.market_record is not None else []
        regimes = self._regime_frame(market)
        snaps = [self.snapshot] if self.snapshot is not None else []
        metrics = self._metrics if snaps else None
        feats = graph_features(snaps, regimes, c, regime_names=self.regime_names, metrics=metrics)
        if self.market_record is not None and self.run_start_row is not None:
            feats["G_mkt_regime_age"] = np.where(feats.index.get_level_values("datetime") == t,
                                                 float(self.rows - 1 - self.run_start_row),
                                                 feats["G_mkt_regime_age"].to_numpy())
        last = feats[feats.index.get_level_values("datetime") == t]
        last.index = last.index.set_levels(last.index.levels[0].tz_convert(None), level=0)
        return last[feature_names(self.regime_names)]
