"""The store's frames: snapshot validation into canonical form, regime-state validation, transition
statistics, and the conversion of stored times back to UTC timestamps.

Nothing here talks to a server; the operations (``ops_*.py``) use these to check what they write and to
shape what they read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import check_symbol
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError
from graphwiz_trader.graph.snapshot import EDGE_COLUMNS, LEAD_COLUMNS, REGIME_COLUMNS, GraphSnapshot
from graphwiz_trader.graph.store_errors import GraphStoreError

MARKET_SCOPE = "market"
_RHO_TOL = 1e-9
TRANSITION_COLUMNS = ["scope", "from_regime", "to_regime", "count", "prob", "mean_duration"]


# ============================================================================================ values
def _epoch_ts(seconds: Any, nanos: Any) -> pd.Timestamp:
    """``x.epochSeconds`` and ``x.nanosecond`` of a stored datetime back to a UTC ``pd.Timestamp``."""
    if seconds is None or nanos is None:
        raise GraphStoreError(_NULL_EPOCH)
    return pd.Timestamp(int(seconds) * 1_000_000_000 + int(nanos), tz="UTC")


def _epoch_index(seconds: Sequence[Any], nanos: Sequence[Any]) -> pd.DatetimeIndex:
    """Vectorised :func:`_epoch_ts`."""
    try:
        ns = np.asarray(seconds, dtype=np.int64) * 1_000_000_000 + np.asarray(nanos, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise GraphStoreError(_NULL_EPOCH) from exc
    return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))


_NULL_EPOCH = ("the graph server returned a datetime without epochSeconds; an ArcadeDB server must run with "
               "-Darcadedb.dateTimeImplementation=java.time.ZonedDateTime (the embedded server does)")


def snapshot_key(gen: str, as_of: pd.Timestamp, method: str, window: int) -> str:
    """Identity of a snapshot in the store: ``gen|method|window|as_of(ISO, UTC)`` (``gen`` names the build)."""
    return f"{gen}|{method}|{int(window)}|{as_of.isoformat()}"


def regime_key(gen: str, scope: str, name: str) -> str:
    """Identity of a regime label node: ``gen|scope|name`` (one node per label, scope and generation)."""
    return f"{gen}|{scope}|{name}"


# ============================================================================================ snapshots
def _columns(df: pd.DataFrame | None, columns: list[str], where: str) -> dict[str, np.ndarray]:
    """The named columns of an edge frame as numpy arrays; missing/extra columns are a DataError."""
    if df is None:
        return {c: np.empty(0, dtype=object) for c in columns}
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    extra = [c for c in df.columns if c not in columns]
    if missing or extra:
        raise DataError(f"{where}: columns must be {columns}; missing {missing}, unexpected {extra}")
    return {c: df[c].to_numpy() for c in columns}


def _as_float(values: np.ndarray, where: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: rho must be numbers ({exc})") from exc


def _codes(symbols: np.ndarray, rank: dict[str, int], where: str) -> np.ndarray:
    """Rank of each symbol in the snapshot's sorted asset list; unknown symbols are a DataError."""
    try:
        return np.fromiter((rank[x] for x in symbols), dtype=np.int64, count=len(symbols))
    except (KeyError, TypeError):
        bad = sorted({str(x) for x in symbols if x not in rank})
        raise DataError(f"{where}: symbol(s) {bad[:8]} are not among the snapshot's assets") from None


def _check_rho(rho: np.ndarray, where: str) -> None:
    if not np.isfinite(rho).all():
        raise DataError(f"{where}: rho has {int((~np.isfinite(rho)).sum())} NaN/inf value(s)")
    if len(rho) and np.abs(rho).max() > 1 + _RHO_TOL:
        raise DataError(f"{where}: |rho| > 1 (max {np.abs(rho).max():.6g})")


@dataclass(frozen=True)
class _Parts:
    """A validated snapshot as arrays; symbol codes index ``syms`` (the assets, sorted), rows in canonical order."""

    as_of: pd.Timestamp
    window: int
    method: str
    assets: tuple[str, ...]
    syms: np.ndarray
    e_src: np.ndarray
    e_dst: np.ndarray
    e_rho: np.ndarray
    l_src: np.ndarray
    l_dst: np.ndarray
    l_lag: np.ndarray
    l_rho: np.ndarray
    communities: dict[str, int]


def canonical_snapshot(snap: GraphSnapshot) -> GraphSnapshot:
    """The snapshot in the store's canonical form, validated.

    ``as_of`` UTC; ``window`` int; edges sorted by ``(src, dst)``, leads by ``(src, dst, lag)``, both with
    a RangeIndex and dtypes ``object, object, [int64,] float64``; communities sorted by symbol with int ids.
    :meth:`GraphStore.read_snapshots` returns exactly this form, so ``canonical_snapshot(s)`` equals what is
    read back after writing ``s``. Bad input raises :class:`DataError` naming the snapshot and the problem.
    """
    p = _validated(snap)
    edges = pd.DataFrame({"src": p.syms[p.e_src], "dst": p.syms[p.e_dst], "rho": p.e_rho}, columns=EDGE_COLUMNS)
    leads = pd.DataFrame({"src": p.syms[p.l_src], "dst": p.syms[p.l_dst], "lag": p.l_lag, "rho": p.l_rho},
                         columns=LEAD_COLUMNS)
    return GraphSnapshot(as_of=p.as_of, window=p.window, method=p.method, assets=p.assets, edges=edges,
                         leads=leads, communities=p.communities)


def _validated(snap: GraphSnapshot) -> _Parts:
    """Validate a snapshot (see :func:`canonical_snapshot`) into sorted arrays."""
    if not isinstance(snap, GraphSnapshot):
        raise DataError(f"expected a GraphSnapshot, got {type(snap).__name__}")
    as_of = to_utc(snap.as_of, f"snapshot as_of={snap.as_of}", naive="error")
    where = f"snapshot {snap.method}/{snap.window}/{as_of.isoformat()}"
    if not isinstance(snap.method, str) or not snap.method:
        raise DataError(f"{where}: method must be a non-empty string, got {snap.method!r}")
    if isinstance(snap.window, bool) or not isinstance(snap.window, (int, np.integer)) or int(snap.window) < 1:
        raise DataError(f"{where}: window must be a positive integer (bars), got {snap.window!r}")
    assets = tuple(snap.assets)
    for a in assets:
        check_symbol(a, f"{where}: asset")
    if len(set(assets)) != len(assets):
        dup = sorted({a for a in assets if assets.count(a) > 1})
        raise DataError(f"{where}: duplicate assets {dup}")
    ordered = sorted(assets)
    rank = {a: i for i, a in enumerate(ordered)}
    syms = np.asarray(ordered, dtype=object)
    n = max(len(ordered), 1)

    ec = _columns(snap.edges, EDGE_COLUMNS, f"{where} edges")
    es, ed = _codes(ec["src"], rank, f"{where} edges"), _codes(ec["dst"], rank, f"{where} edges")
    erho = _as_float(ec["rho"], f"{where} edges")
    _check_rho(erho, f"{where} edges")
    if (es >= ed).any():
        i = int(np.argmax(es >= ed))
        raise DataError(f"{where} edges: expected src < dst (undirected edges stored once), "
                        f"got {ec['src'][i]!r} -> {ec['dst'][i]!r}")
    ekey = es * n + ed
    eorder = np.argsort(ekey, kind="stable")
    if len(ekey) and (np.diff(ekey[eorder]) == 0).any():
        raise DataError(f"{where} edges: duplicate (src, dst) pair(s)")

    lc = _columns(snap.leads, LEAD_COLUMNS, f"{where} leads")
    ls, ld = _codes(lc["src"], rank, f"{where} leads"), _codes(lc["dst"], rank, f"{where} leads")
    lrho = _as_float(lc["rho"], f"{where} leads")
    _check_rho(lrho, f"{where} leads")
    lagf = _as_float(lc["lag"], f"{where} leads lag")
    if len(lagf) and (~np.isfinite(lagf) | (lagf != np.round(lagf)) | (lagf < 1)).any():
        raise DataError(f"{where} leads: lag must be integers >= 1 (bars), got {sorted(set(lagf.tolist()))[:5]}")
    lag = lagf.astype(np.int64)
    if (ls == ld).any():
        raise DataError(f"{where} leads: self-loop {lc['src'][int(np.argmax(ls == ld))]!r}")
    order = np.lexsort((lag, ld, ls))
    if len(order) > 1:
        same = (np.diff(ls[order]) == 0) & (np.diff(ld[order]) == 0) & (np.diff(lag[order]) == 0)
        if same.any():
            raise DataError(f"{where} leads: duplicate (src, dst, lag) row(s)")

    comm: dict[str, int] = {}
    for sym, cid in sorted(dict(snap.communities).items()):
        if sym not in rank:
            raise DataError(f"{where} communities: {sym!r} is not among the snapshot's assets")
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)):
            raise DataError(f"{where} communities: id of {sym!r} must be an integer, got {cid!r}")
        comm[sym] = int(cid)
    return _Parts(as_of=as_of, window=int(snap.window), method=snap.method, assets=assets, syms=syms,
                  e_src=es[eorder], e_dst=ed[eorder], e_rho=erho[eorder], l_src=ls[order], l_dst=ld[order],
                  l_lag=lag[order], l_rho=lrho[order], communities=comm)


# ============================================================================================ regimes
def validate_regime_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The regime-state long frame, validated and sorted by ``(scope, datetime)``, datetimes in UTC."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"regime state: expected a DataFrame, got {type(frame).__name__}")
    missing = [c for c in REGIME_COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in REGIME_COLUMNS]
    if missing or extra:
        raise DataError(f"regime state: columns must be {REGIME_COLUMNS}; missing {missing}, unexpected {extra}")
    df = frame[REGIME_COLUMNS].reset_index(drop=True)
    if df["scope"].isna().any() or not df["scope"].map(lambda s: isinstance(s, str) and s != "").all():
        raise DataError("regime state: scope must be 'market' or an asset symbol (non-empty strings)")
    for scope in df["scope"].unique():
        if scope != MARKET_SCOPE:
            try:
                check_symbol(scope)
            except DataError as exc:
                raise DataError(f"regime state: scope {scope!r} is neither 'market' nor an instrument symbol "
                                "(upper case, e.g. 'BTC/USDT' or 'AAPL')") from exc
    dt = df["datetime"]
    if not isinstance(dt.dtype, pd.DatetimeTZDtype):
        raise DataError(f"regime state: datetime must be tz-aware UTC (dtype datetime64[ns, UTC]), got {dt.dtype}")
    if dt.isna().any():
        raise DataError(f"regime state: {int(dt.isna().sum())} missing datetime(s)")
    df["datetime"] = dt.dt.tz_convert("UTC").dt.as_unit("ns")
    if df["regime"].isna().any() or not df["regime"].map(lambda s: isinstance(s, str) and s != "").all():
        raise DataError("regime state: regime labels must be non-empty strings")
    prob = pd.to_numeric(df["prob"], errors="coerce").astype("float64")
    bad = ~np.isfinite(prob.to_numpy()) | (prob.to_numpy() < 0) | (prob.to_numpy() > 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"regime state: prob must be in [0, 1]; row {i} ({df['scope'].iat[i]}, "
                        f"{df['datetime'].iat[i]}) has {df['prob'].iat[i]!r}")
    df["prob"] = prob
    dup = df.duplicated(["scope", "datetime"])
    if dup.any():
        r = df.loc[dup].iloc[0]
        raise DataError(f"regime state: {int(dup.sum())} duplicate (scope, datetime) row(s), first "
                        f"({r['scope']}, {r['datetime']})")
    return df.sort_values(["scope", "datetime"], kind="mergesort").reset_index(drop=True)


def regime_transitions(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scope, the regime transition statistics written as ``TRANSITIONS_TO``.

    Over a scope's records ordered by time (labels ``l_0 .. l_n``):

    - ``count(a -> b)`` = number of consecutive record pairs ``(l_k, l_{k+1}) = (a, b)`` (``a == b`` counts
      staying), and ``prob(a -> b) = count(a -> b) / sum_c count(a -> c)`` (a per-record Markov matrix;
      each row sums to 1);
    - a *run* is a maximal stretch of equal labels; it is complete when another label follows. Its duration
      is ``t(first record of the next run) - t(first record of the run)``, in hours.
      ``mean_duration(a -> b)``, ``a != b``: mean duration of the complete ``a`` runs followed by ``b``;
      ``mean_duration(a -> a)``: mean duration of all complete ``a`` runs (NaN in the frame, null in the
      graph, if there are none).

    Uses the whole frame, so it is a summary for exploration, not a point-in-time feature.
    """
    rows: list[list[Any]] = []
    for scope, g in frame.sort_values(["scope", "datetime"], kind="mergesort").groupby("scope", sort=True):
        labels = g["regime"].to_numpy(dtype=object)
        times = g["datetime"].to_numpy(dtype="datetime64[ns]").astype("int64")
        if len(labels) < 2:
            continue
        pairs = pd.DataFrame({"a": labels[:-1], "b": labels[1:]})
        counts = pairs.value_counts().rename("count").reset_index()
        counts["prob"] = counts["count"] / counts.groupby("a")["count"].transform("sum")
        start = np.r_[True, labels[1:] != labels[:-1]]
        run_label = labels[start]
        run_start = times[start]
        dur_h = (run_start[1:] - run_start[:-1]) / 3.6e12  # complete runs only (all but the last)
        runs = pd.DataFrame({"a": run_label[:-1], "b": run_label[1:], "hours": dur_h})
        by_pair = runs.groupby(["a", "b"])["hours"].mean()
        by_label = runs.groupby("a")["hours"].mean()
        for a, b, cnt, prob in counts[["a", "b", "count", "prob"]].itertuples(index=False):
            md = by_label.get(a) if a == b else by_pair.get((a, b))
            rows.append([scope, a, b, int(cnt), float(prob), None if md is None or pd.isna(md) else float(md)])
    out = pd.DataFrame(rows, columns=TRANSITION_COLUMNS)
    return out.sort_values(["scope", "from_regime", "to_regime"], kind="mergesort").reset_index(drop=True)



def _normalise_read(as_of: pd.Timestamp, method: str, window: int, assets: list[str], edge_rows: list[list[Any]],
                    lead_rows: list[list[Any]], communities: dict[str, int]) -> GraphSnapshot:
    """A snapshot as read back, in :func:`canonical_snapshot` form (same sort order and dtypes)."""
    if edge_rows:
        src, dst, rho = zip(*edge_rows)
        order = sorted(range(len(src)), key=lambda i: (src[i], dst[i]))
        edges = pd.DataFrame({"src": np.asarray([src[i] for i in order], dtype=object),
                              "dst": np.asarray([dst[i] for i in order], dtype=object),
                              "rho": np.asarray([rho[i] for i in order], dtype=np.float64)}, columns=EDGE_COLUMNS)
    else:
        edges = pd.DataFrame({"src": np.empty(0, object), "dst": np.empty(0, object),
                              "rho": np.empty(0, np.float64)}, columns=EDGE_COLUMNS)
    if lead_rows:
        src, dst, lag, rho = zip(*lead_rows)
        order = sorted(range(len(src)), key=lambda i: (src[i], dst[i], lag[i]))
        leads = pd.DataFrame({"src": np.asarray([src[i] for i in order], dtype=object),
                              "dst": np.asarray([dst[i] for i in order], dtype=object),
                              "lag": np.asarray([lag[i] for i in order], dtype=np.int64),
                              "rho": np.asarray([rho[i] for i in order], dtype=np.float64)}, columns=LEAD_COLUMNS)
    else:
        leads = pd.DataFrame({"src": np.empty(0, object), "dst": np.empty(0, object), "lag": np.empty(0, np.int64),
                              "rho": np.empty(0, np.float64)}, columns=LEAD_COLUMNS)
    comm = {k: int(v) for k, v in sorted(communities.items())}
    return GraphSnapshot(as_of=as_of, window=int(window), method=method, assets=tuple(assets), edges=edges,
                         leads=leads, communities=comm)

