"""Plain-numpy snapshots and regime states to exercise the store (tests, benchmarks/bench_graph_store.py, the
docs/graph.md query check). The project's builders (rolling Pearson/Spearman with min-periods, lead-lag,
regime models) live in ``graph/builders``; this module is deliberately small and independent of them, so a
store test does not depend on the builders it would otherwise be checking.

Every snapshot is point-in-time: the window ends at ``as_of`` (its last bar) and uses returns of bars
``<= as_of`` only.
"""

from __future__ import annotations

import hashlib
import json

import networkx as nx
import numpy as np
import pandas as pd

from graphwiz_trader.core.threads import single_threaded
from graphwiz_trader.errors import DataError
from graphwiz_trader.graph.snapshot import EDGE_COLUMNS, LEAD_COLUMNS, GraphSnapshot

# Bases used to give synthetic assets familiar names in exploration examples (still SYNTHETIC data).
DEMO_BASES: tuple[str, ...] = (
    "BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC", "TRX", "ATOM", "NEAR",
    "UNI", "ETC", "XLM", "FIL", "APT", "ARB", "OP", "INJ", "AAVE", "ALGO", "SAND", "MANA", "AXS", "EGLD",
    "THETA", "FTM", "GRT", "VET", "ICP", "HBAR", "QNT", "RUNE", "KAVA", "ZEC", "DASH", "NEO", "EOS", "IOTA",
    "XTZ", "CHZ", "ENJ", "BAT",
)


def rename_demo_symbols(closes: pd.DataFrame, quote: str = "USDT") -> pd.DataFrame:
    """Columns renamed ``SYN00/USDT, SYN01/USDT, ...`` -> ``BTC/USDT, ETH/USDT, ...`` (order kept)."""
    if closes.shape[1] > len(DEMO_BASES):
        raise DataError(f"at most {len(DEMO_BASES)} demo names, got {closes.shape[1]} columns")
    return closes.set_axis([f"{b}/{quote}" for b in DEMO_BASES[: closes.shape[1]]], axis=1)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = np.nan
    return x / sd


def demo_snapshots(closes: pd.DataFrame, *, window: int, stride: int, top_k: int = 10, max_lag: int = 3,
                   leaders_per_asset: int = 2, communities: bool = True, seed: int = 0,
                   method: str = "pearson") -> list[GraphSnapshot]:
    """Rolling Pearson snapshots of log returns with top-k-per-node pruning, lag-1..max_lag leads, Louvain.

    Parameters
    ----------
    closes : DataFrame
        datetime (UTC) x symbol closes, no gaps.
    window, stride : int
        Window length and step, in bars of returns.
    top_k : int
        Each asset keeps its ``top_k`` largest-|rho| partners; the union is the edge set (``src < dst``).
    max_lag, leaders_per_asset : int
        For each asset (dst), the ``leaders_per_asset`` (src, lag) pairs with the largest
        ``|corr(r_src[t - lag], r_dst[t])|`` over lags ``1..max_lag`` inside the window.
    communities : bool
        Louvain (networkx, weights |rho|, ``seed``) on the pruned graph; ids by decreasing size.

    BLAS runs single-threaded here: on 46 x 720 matrices a multi-threaded OpenBLAS is up to ~17x slower on
    a busy 2-core machine (thread hand-off dominates; measured 5 ms vs 0.3 ms per ``corrcoef``).
    """
    with single_threaded("blas"):
        return _demo_snapshots(closes, window=window, stride=stride, top_k=top_k, max_lag=max_lag,
                               leaders_per_asset=leaders_per_asset, communities=communities, seed=seed,
                               method=method)


def _demo_snapshots(closes: pd.DataFrame, *, window: int, stride: int, top_k: int, max_lag: int,
                    leaders_per_asset: int, communities: bool, seed: int, method: str) -> list[GraphSnapshot]:
    if closes.isna().any().any():
        raise DataError("demo_snapshots: closes contain NaN; pass gap-free closes")
    rets = np.log(closes).diff().iloc[1:]
    if window > len(rets):
        raise DataError(f"demo_snapshots: window {window} bars is longer than the {len(rets)} returns available")
    values = rets.to_numpy(np.float64)
    symbols = list(closes.columns)
    syms = np.asarray(symbols, dtype=object)
    n = len(symbols)
    k = min(top_k, n - 1)
    out: list[GraphSnapshot] = []
    for end in range(window - 1, len(rets), stride):
        w = values[end - window + 1: end + 1]
        rho = np.corrcoef(w.T)
        a = np.abs(rho)
        np.fill_diagonal(a, -1.0)
        nbr = np.argsort(-a, axis=1, kind="stable")[:, :k]
        keep = np.zeros((n, n), bool)
        keep[np.repeat(np.arange(n), k), nbr.ravel()] = True
        keep |= keep.T
        iu, ju = np.nonzero(np.triu(keep, 1))
        src, dst = syms[iu], syms[ju]
        swap = src > dst  # stored src < dst by symbol
        s2 = np.where(swap, dst, src)
        d2 = np.where(swap, src, dst)
        edges = pd.DataFrame({"src": s2, "dst": d2, "rho": rho[iu, ju]}, columns=EDGE_COLUMNS)

        cand = []
        for lag in range(1, max_lag + 1):
            z1, z2 = _standardise(w[:-lag]), _standardise(w[lag:])
            lc = (z1.T @ z2) / len(z1)  # lc[i, j] = corr(r_i[t - lag], r_j[t])
            np.fill_diagonal(lc, np.nan)
            ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            cand.append(np.c_[ii.ravel(), jj.ravel(), np.full(n * n, lag), lc.ravel()])
        c = np.vstack(cand)
        c = c[np.isfinite(c[:, 3])]
        cdf = pd.DataFrame({"i": c[:, 0].astype(int), "j": c[:, 1].astype(int), "lag": c[:, 2].astype(int),
                            "rho": c[:, 3], "abs": np.abs(c[:, 3])})
        best = (cdf.sort_values(["j", "abs", "i", "lag"], ascending=[True, False, True, True], kind="mergesort")
                .groupby("j", sort=True).head(leaders_per_asset))
        leads = pd.DataFrame({"src": syms[best["i"].to_numpy()], "dst": syms[best["j"].to_numpy()],
                              "lag": best["lag"].to_numpy(np.int64), "rho": best["rho"].to_numpy()},
                             columns=LEAD_COLUMNS)

        comm: dict[str, int] = {}
        if communities:
            g = nx.Graph()
            g.add_nodes_from(symbols)
            g.add_weighted_edges_from(zip(edges["src"], edges["dst"], np.abs(edges["rho"].to_numpy())))
            parts = nx.community.louvain_communities(g, weight="weight", seed=seed)
            parts = sorted(parts, key=lambda p: (-len(p), min(p)))
            comm = {s: cid for cid, p in enumerate(parts) for s in p}
        out.append(GraphSnapshot(as_of=rets.index[end], window=window, method=method, assets=tuple(symbols),
                                 edges=edges.reset_index(drop=True), leads=leads.reset_index(drop=True),
                                 communities=comm))
    return out


def demo_regime_state(regimes: pd.Series, *, seed: int = 0, scope: str = "market") -> pd.DataFrame:
    """The synthetic market's planted regime path as a regime-state frame with a noisy probability.

    ``prob`` is drawn uniformly in [0.5, 1] (seeded): a stand-in for a model's filtered probability.
    """
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"scope": scope, "datetime": regimes.index, "regime": regimes.astype(str).to_numpy(),
                         "prob": rng.uniform(0.5, 1.0, len(regimes))})


def demo_asset_regimes(closes: pd.DataFrame, times: list[pd.Timestamp], *, window: int) -> pd.DataFrame:
    """Per-asset ``high_vol`` / ``low_vol`` state at each time in ``times`` (point-in-time).

    At t: ``v_t`` = std of the asset's last ``window`` log returns (bars <= t); the label is ``high_vol`` when
    ``v_t`` exceeds the median of the asset's ``v`` at ``times <= t`` (expanding, never later), and
    ``prob = 0.5 + 0.5 * |tanh(log(v_t / median))|``.
    """
    rets = np.log(closes).diff()
    vol = rets.rolling(window, min_periods=window).std().reindex(pd.DatetimeIndex(times))
    med = vol.expanding().median()
    ratio = np.log(vol / med)
    frames = []
    for sym in closes.columns:
        ok = ratio[sym].notna()
        r = ratio.loc[ok, sym]
        frames.append(pd.DataFrame({"scope": sym, "datetime": r.index,
                                    "regime": np.where(r.to_numpy() > 0, "high_vol", "low_vol"),
                                    "prob": 0.5 + 0.5 * np.abs(np.tanh(r.to_numpy()))}))
    return pd.concat(frames, ignore_index=True)


def demo_build_id(**params: object) -> str:
    """A build id for demo data: ``demo-`` + 12 hex digits of SHA-256 over the sorted parameters."""
    text = json.dumps(params, sort_keys=True, default=str)
    return "demo-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def write_demo_graph(store: object, *, n_assets: int = 12, days: int = 90, window: int = 240, stride: int = 24,
                     top_k: int = 5, regime_assets: int = 4, seed: int = 7) -> dict[str, object]:
    """Fill a :class:`~graphwiz_trader.graph.store.GraphStore` with a small SYNTHETIC market graph.

    Hourly synthetic market (``generate_synthetic_market``) renamed BTC/USDT, ETH/USDT, ...; correlation
    snapshots every ``stride`` bars, per-bar market regimes (the planted path) and per-snapshot volatility
    regimes for the first ``regime_assets`` assets, written under the build id :func:`demo_build_id` of
    these parameters (returned as ``build``). Used to check the docs/graph.md queries.
    """
    from graphwiz_trader.data.synthetic import generate_synthetic_market

    params = {"n_assets": n_assets, "days": days, "window": window, "stride": stride, "top_k": top_k,
              "regime_assets": regime_assets, "seed": seed}
    build = demo_build_id(**params)
    market = generate_synthetic_market(n_assets=n_assets, n_bars=24 * days, seed=seed)
    closes = rename_demo_symbols(market.close_panel())
    snaps = demo_snapshots(closes, window=window, stride=stride, top_k=top_k, seed=0)
    info = {"demo": params, "universe": list(closes.columns)}
    stats = store.write_snapshots(snaps, build=build, info=info, exchange="binance")  # type: ignore[attr-defined]
    regimes = demo_regime_state(market.regimes.set_axis(closes.index), seed=seed)
    asset_regimes = demo_asset_regimes(closes[closes.columns[:regime_assets]], [s.as_of for s in snaps],
                                       window=window)
    rstats = store.write_regimes(pd.concat([regimes, asset_regimes], ignore_index=True),  # type: ignore[attr-defined]
                                 build=build, info=info)
    return {"label": market.label, "build": build, "snapshots": stats.snapshots, "edges": stats.edges,
            "leads": stats.leads, "regime_records": rstats.regime_records, "first": snaps[0].as_of,
            "last": snaps[-1].as_of}
