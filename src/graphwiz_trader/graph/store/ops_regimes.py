"""Regime operations: a build's regime state (``IN_REGIME`` records and ``TRANSITIONS_TO`` statistics) written
as one new generation, and point-in-time reads of the build's current generation."""

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
from graphwiz_trader.graph.store.generations import (
    Current,
    _GenerationOps,
    _writing,
    build_info_text,
    check_build_id,
    new_generation_id,
)
from graphwiz_trader.graph.store.steps import Op, Progress, Step, WriteStats, _chunks


def _scope_list(scopes: Sequence[str] | str | None) -> list[str] | None:
    if scopes is None:
        return None
    return list(dict.fromkeys([scopes] if isinstance(scopes, str) else scopes))


class _RegimeOps(_GenerationOps):
    """Regime operations as step generators."""

    def _op_write_regimes(self, frame: pd.DataFrame, build: str, info: Any, batch_size: int) -> Op:
        """The whole regime state of ``build`` as a new generation, switched in once complete.

        Each record's ``to`` is the next record's time of its scope (null for the last); ``TRANSITIONS_TO``
        is computed over the frame (:func:`regime_transitions`).
        """
        t0 = time.perf_counter()
        build = check_build_id(build)
        df = validate_regime_frame(frame)
        gen = new_generation_id(build)
        scopes = sorted(df["scope"].unique())
        yield Progress(total=len(df), desc="regime write")
        asset_scopes = [s for s in scopes if s != MARKET_SCOPE]
        n_tx = 0
        if asset_scopes:
            n_tx += yield from self._op_upsert_assets(asset_scopes, None, batch_size)
        if MARKET_SCOPE in scopes:
            yield Step(C.ENSURE_MARKET, {"id": MARKET_SCOPE}, label="ensure market node", merge=True)
            n_tx += 1
        with _writing(gen):
            yield from self._op_begin_generation(build, "regimes", gen)
            n_tx += 1
            tx, n_trans = yield from self._op_create_regime_parts(df, build, gen, batch_size)
            n_tx += tx
            old = yield from self._op_switch_generation(build, "regimes", gen, build_info_text(info), len(df), scopes)
            n_tx += 1
        replaced = 0
        if old is not None:
            res = yield Step(C.GENERATION_SIZE, {"gen": old}, write=False, label=f"build {build}: previous regimes")
            replaced = int(res.records[0]["n"] or 0) if res.records else 0
        deleted, tx = yield from self._op_cleanup(build, "regimes", gen, batch_size)
        return WriteStats(regime_records=len(df), transitions=n_trans, replaced=replaced, transactions=n_tx + tx,
                          seconds=time.perf_counter() - t0, batch_size=batch_size, build=build, generation=gen,
                          deleted_generations=deleted)

    def _op_create_regime_parts(self, df: pd.DataFrame, build: str, gen: str, batch_size: int) -> Op:
        ids = {"build": build, "gen": gen}
        n_tx = 0
        names = df[["scope", "regime"]].drop_duplicates()
        rrows = [[regime_key(gen, s, n), s, n] for s, n in names.itertuples(index=False)]
        for a, b in _chunks(len(rrows), batch_size):
            r = yield Step(C.CREATE_REGIMES, {**ids, "rows": rrows[a:b]}, label="create regime nodes")
            n_tx += 1
            self._check_created(r, "nodes_created", b - a, "Regime nodes")
        for scope, g in df.groupby("scope", sort=True):
            kind = "market" if scope == MARKET_SCOPE else "asset"
            nxt = g["datetime"].shift(-1)
            rows = [[regime_key(gen, scope, name), frm, (None if pd.isna(to) else to), float(prob)]
                    for frm, name, prob, to in zip(g["datetime"], g["regime"], g["prob"], nxt)]
            for a, b in _chunks(len(rows), batch_size):
                r = yield Step(C.create_in_regime_query(kind), {"scope": scope, "rows": rows[a:b]},
                               label=f"regimes {scope}: create IN_REGIME", rows=b - a)
                n_tx += 1
                self._check_created(r, "relationships_created", b - a, f"IN_REGIME records of {scope}")
        trans = regime_transitions(df)
        trows = [[regime_key(gen, s, a), regime_key(gen, s, b), int(c), float(p),
                  None if md is None or pd.isna(md) else float(md)]
                 for s, a, b, c, p, md in trans[TRANSITION_COLUMNS].itertuples(index=False)]
        for a, b in _chunks(len(trows), batch_size):
            r = yield Step(C.CREATE_TRANSITIONS, {"rows": trows[a:b]}, label="create TRANSITIONS_TO")
            n_tx += 1
            self._check_created(r, "relationships_created", b - a, "TRANSITIONS_TO statistics")
        return n_tx, len(trows)

    def _check_scopes(self, wanted: list[str], cur: Current) -> None:
        have = set(cur.names)
        missing = [s for s in wanted if s not in have]
        if missing:
            raise UnknownSymbolError(missing, where=f"the regime scopes of build {cur.build} in the graph store at "
                                     f"{self.uri}", available=list(cur.names))

    def _op_read_regimes(self, build: str, scopes: Sequence[str] | str | None, start: Any, end: Any) -> Op:
        params: dict[str, Any] = {}
        if start is not None:
            params["start"] = to_utc(start, "read_regimes start", naive="error")
        if end is not None:
            params["end"] = to_utc(end, "read_regimes end", naive="error")
        wanted = _scope_list(scopes)
        if wanted is not None:
            params["scopes"] = wanted
        q = C.read_regime_records_query(start=start is not None, end=end is not None, scopes=wanted is not None)

        def read(cur: Current) -> Op:
            if wanted is not None:
                self._check_scopes(wanted, cur)
            res = yield Step(q, {**params, "gen": cur.gen}, write=False, label="read regimes")
            return res.records

        records = yield from self._op_consistent_read(build, "regimes", read)
        scope_col: list[str] = []
        recs: list[list[Any]] = []
        for r in records:
            scope_col.extend([r["scope"]] * len(r["rows"]))
            recs.extend(r["rows"])
        if not recs:
            return empty_regime_state()
        cols = list(zip(*recs))
        df = pd.DataFrame({
            "scope": pd.Series(scope_col, dtype=object).astype(str),
            "datetime": _epoch_index(cols[0], cols[1]),
            "regime": pd.Series(cols[2], dtype=object).astype(str),
            "prob": np.asarray(cols[3], dtype=np.float64),
        }, columns=REGIME_COLUMNS)
        return df.sort_values(["scope", "datetime"], kind="mergesort").reset_index(drop=True)

    def _op_read_transitions(self, build: str, scopes: Sequence[str] | str | None) -> Op:
        wanted = _scope_list(scopes)
        extra, params = ("AND a.scope IN $scopes", {"scopes": wanted}) if wanted is not None else ("", {})

        def read(cur: Current) -> Op:
            if wanted is not None:
                self._check_scopes(wanted, cur)
            res = yield Step(C.READ_TRANSITIONS.format(extra=extra), {**params, "gen": cur.gen}, write=False,
                             label="read transitions")
            return res.records

        records = yield from self._op_consistent_read(build, "regimes", read)
        rows = [[r["scope"], r["from_regime"], r["to_regime"], int(r["count"]), float(r["prob"]),
                 None if r["mean_duration"] is None else float(r["mean_duration"])] for r in records]
        return pd.DataFrame(rows, columns=TRANSITION_COLUMNS)
