"""Regime operations: regime-state records (``IN_REGIME``) and their transition statistics (``TRANSITIONS_TO``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.snapshot import REGIME_COLUMNS, empty_regime_state
from graphwiz_trader.graph.store.frames import (
    MARKET_SCOPE,
    TRANSITION_COLUMNS,
    _epoch_index,
    regime_key,
    regime_transitions,
    validate_regime_frame,
)
from graphwiz_trader.graph.store.ops_base import _BaseOps
from graphwiz_trader.graph.store.steps import Op, Progress, Step, WriteStats, _chunks
from graphwiz_trader.graph.store_errors import GraphStoreError


class _RegimeOps(_BaseOps):
    """Regime operations as step generators."""

    def _op_read_regime_records(self, scopes: Sequence[str] | None, start: Any, end: Any,
                                with_to: bool) -> Op:
        params: dict[str, Any] = {}
        if start is not None:
            params["start"] = to_utc(start, "read_regimes start", naive="error")
        if end is not None:
            params["end"] = to_utc(end, "read_regimes end", naive="error")
        wanted = None if scopes is None else list(dict.fromkeys(scopes))
        kinds = ("market", "asset")
        if wanted is not None:
            kinds = tuple(k for k, present in (("market", MARKET_SCOPE in wanted),
                                               ("asset", any(s != MARKET_SCOPE for s in wanted))) if present)
        scope_col: list[str] = []
        recs: list[list[Any]] = []
        for kind in kinds:
            p = dict(params)
            if wanted is not None:
                p["scopes"] = [s for s in wanted if (s == MARKET_SCOPE) == (kind == "market")]
            q = C.read_regime_records_query(kind, start=start is not None, end=end is not None,
                                            scopes=wanted is not None, with_to=with_to)
            res = yield Step(q, p, write=False, label=f"read {kind} regimes")
            for r in res.records:
                scope_col.extend([r["scope"]] * len(r["rows"]))
                recs.extend(r["rows"])
        if not recs:
            df = empty_regime_state()
            if with_to:
                df["to"] = pd.Series(dtype="datetime64[ns, UTC]")
            return df
        cols = list(zip(*recs))
        df = pd.DataFrame({
            "scope": pd.Series(scope_col, dtype=object).astype(str),
            "datetime": _epoch_index(cols[0], cols[1]),
            "regime": pd.Series(cols[2], dtype=object).astype(str),
            "prob": np.asarray(cols[3], dtype=np.float64),
        })
        if with_to:
            last = np.asarray([x is None for x in cols[4]])
            to_s = np.where(last, 0, np.asarray([0 if x is None else x for x in cols[4]], dtype=np.int64))
            to_ns = np.asarray([0 if x is None else x for x in cols[5]], dtype=np.int64)
            to = pd.Series(_epoch_index(to_s, to_ns))
            df["to"] = to.where(~last, pd.NaT)
        return df.sort_values(["scope", "datetime"], kind="mergesort").reset_index(drop=True)

    def _op_check_scopes(self, scopes: Sequence[str]) -> Op:
        assets = [s for s in scopes if s != MARKET_SCOPE]
        missing: list[str] = []
        if MARKET_SCOPE in scopes:
            res = yield Step(C.MARKET_EXISTS, {"id": MARKET_SCOPE}, write=False, label="check market scope")
            if int(res.records[0]["n"]) == 0:
                missing.append(MARKET_SCOPE)
        if assets:
            res = yield Step(C.SYMBOLS_AMONG, {"symbols": assets}, write=False, label="check scopes")
            found = {r["symbol"] for r in res.records}
            missing += [s for s in assets if s not in found]
        if missing:
            available = yield from self._op_symbols()
            raise UnknownSymbolError(missing, where=f"the regime scopes of the graph store at {self.uri}",
                                     available=available)

    def _op_read_regimes(self, scopes: Sequence[str] | str | None, start: Any, end: Any) -> Op:
        if isinstance(scopes, str):
            scopes = [scopes]
        if scopes is not None:
            yield from self._op_check_scopes(list(scopes))
        return (yield from self._op_read_regime_records(scopes, start, end, with_to=False))

    def _op_write_regimes(self, frame: pd.DataFrame, batch_size: int) -> Op:
        t0 = time.perf_counter()
        df = validate_regime_frame(frame)
        if df.empty:
            return WriteStats(batch_size=batch_size)
        scopes = list(df["scope"].unique())
        yield Progress(total=len(df), desc="regime write")
        asset_scopes = [s for s in scopes if s != MARKET_SCOPE]
        n_tx = 0
        if asset_scopes:
            n_tx += yield from self._op_upsert_assets(asset_scopes, None, batch_size)
        if MARKET_SCOPE in scopes:
            yield Step(C.ENSURE_MARKET, {"id": MARKET_SCOPE}, label="ensure market node")
            n_tx += 1
        names = df[["scope", "regime"]].drop_duplicates()
        rrows = [[regime_key(s, n), s, n] for s, n in names.itertuples(index=False)]
        for a, b in _chunks(len(rrows), batch_size):
            yield Step(C.ENSURE_REGIMES, {"rows": rrows[a:b]}, label="ensure regime nodes")
            n_tx += 1
        stored = yield from self._op_read_regime_records(scopes, None, None, with_to=True)
        limit = max(batch_size, 10_000)
        n_records = n_trans = 0
        for scope in scopes:
            kind = "market" if scope == MARKET_SCOPE else "asset"
            new = df[df["scope"] == scope]
            old = stored[stored["scope"] == scope]
            combined = pd.concat([old[REGIME_COLUMNS], new], ignore_index=True)
            combined = combined.drop_duplicates(["datetime"], keep="last").sort_values("datetime", kind="mergesort")
            nxt = combined["datetime"].shift(-1)
            combined = combined.assign(to=nxt)
            if old.empty:
                to_create = combined
            elif new["datetime"].min() > old["datetime"].max():
                # append: close the last stored record's interval, then add the new records
                last = old["datetime"].max()
                r = yield Step(C.set_regime_to_query(kind),
                               {"scope": scope, "from": last, "to": new["datetime"].min()},
                               label=f"regimes {scope}: close last interval")
                n_tx += 1
                if int(r.records[0]["n"]) != 1:
                    raise GraphStoreError(f"regimes {scope} on {self.uri}: expected one record at {last}, "
                                          f"found {r.records[0]['n']}")
                to_create = combined[combined["datetime"] >= new["datetime"].min()]
            else:
                while True:
                    r = yield Step(C.delete_in_regime_query(kind), {"scope": scope, "limit": limit},
                                   label=f"regimes {scope}: replace")
                    n_tx += 1
                    if int(r.records[0]["n"]) < limit:
                        break
                to_create = combined
            rows = [[regime_key(scope, name), frm, (None if pd.isna(to) else to), float(prob)]
                    for frm, name, prob, to in to_create[["datetime", "regime", "prob", "to"]].itertuples(index=False)]
            for a, b in _chunks(len(rows), batch_size):
                r = yield Step(C.create_in_regime_query(kind), {"scope": scope, "rows": rows[a:b]},
                               label=f"regimes {scope}: create IN_REGIME", rows=b - a)
                n_tx += 1
                self._check_created(r, "relationships_created", b - a, f"IN_REGIME records of {scope}")
            n_records += len(rows)
            trans = regime_transitions(combined[REGIME_COLUMNS])
            yield Step(C.DELETE_TRANSITIONS, {"scope": scope}, label=f"regimes {scope}: delete transitions")
            n_tx += 1
            trows = [[regime_key(scope, a), regime_key(scope, b), c, p, md]
                     for a, b, c, p, md in trans[["from_regime", "to_regime", "count", "prob", "mean_duration"]]
                     .itertuples(index=False)]
            trows = [[*r[:4], None if r[4] is None or pd.isna(r[4]) else float(r[4])] for r in trows]
            if trows:
                r = yield Step(C.CREATE_TRANSITIONS, {"rows": trows}, label=f"regimes {scope}: transitions")
                n_tx += 1
                self._check_created(r, "relationships_created", len(trows), f"TRANSITIONS_TO of {scope}")
            n_trans += len(trows)
        return WriteStats(regime_records=n_records, transitions=n_trans, transactions=n_tx,
                          seconds=time.perf_counter() - t0, batch_size=batch_size)

    def _op_read_transitions(self, scopes: Sequence[str] | str | None) -> Op:
        if isinstance(scopes, str):
            scopes = [scopes]
        params: dict[str, Any] = {}
        where = ""
        if scopes is not None:
            yield from self._op_check_scopes(list(scopes))
            where, params = "WHERE a.scope IN $scopes", {"scopes": list(scopes)}
        res = yield Step(C.READ_TRANSITIONS.format(where=where), params, write=False, label="read transitions")
        rows = [[r["scope"], r["from_regime"], r["to_regime"], int(r["count"]), float(r["prob"]),
                 None if r["mean_duration"] is None else float(r["mean_duration"])] for r in res.records]
        return pd.DataFrame(rows, columns=TRANSITION_COLUMNS)

