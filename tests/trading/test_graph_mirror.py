"""The journal mirrored into the graph store: one Trade per fill linked to its asset and to the regime record of a
build that holds its time, one Signal per (cycle, symbol), idempotent, re-linked after a regime re-write, and the
exploration query in docs/graph.md answers what a pandas computation over the same data says."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.graph.store import AsyncGraphStore, GraphStore
from graphwiz_trader.trading.graph_mirror import journal_trades, mirror_run, mirror_run_async
from graphwiz_trader.trading.journal import JournalError, TradeJournal
from graphwiz_trader.trading.types import Fill, OrderRequest, Side, client_order_id, fill_id

pytestmark = pytest.mark.integration

RUN = "mirror-run"
B = "mirror-build"
T0 = pd.Timestamp("2024-02-01 00:00", tz="UTC")
DOC = Path(__file__).resolve().parents[2] / "docs" / "graph.md"


def regimes(labels: dict[str, list[tuple[str, str]]]) -> pd.DataFrame:
    rows = [(scope, pd.Timestamp(t, tz="UTC"), name, 0.9) for scope, recs in labels.items() for t, name in recs]
    return pd.DataFrame(rows, columns=["scope", "datetime", "regime", "prob"])


MARKET = {"market": [("2024-02-01 02:00", "calm"), ("2024-02-01 06:00", "crash"), ("2024-02-01 09:00", "calm")],
          "BTC/USDT": [("2024-02-01 00:00", "low_vol"), ("2024-02-01 05:00", "high_vol")]}


@pytest.fixture()
def journal(tmp_path: Path):
    """A run of 4 cycles: BTC and ETH orders, fills an hour or more after each decision, and signals."""
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    j.start_run(RUN, "qlib_hybrid_v2", "replay", {"symbols": ["BTC/USDT", "ETH/USDT"]}, T0)
    fill_hours = {1: [1.0, 2.0], 2: [4.5], 3: [6.0, 8.0], 4: [9.0, 10.5]}  # hours after T0
    for cycle, hours in fill_hours.items():
        as_of = T0 + pd.Timedelta(hours=cycle - 1)
        j.begin_cycle(RUN, cycle, as_of)
        j.record_signals(RUN, cycle, as_of, pd.Series({"BTC/USDT": 0.01 * cycle, "ETH/USDT": -0.02 if cycle != 2
                                                        else np.nan}), pd.Series({"BTC/USDT": 0.3, "ETH/USDT": 0.1}))
        for sym, side in (("BTC/USDT", Side.BUY), ("ETH/USDT", Side.SELL if cycle % 2 else Side.BUY)):
            o = OrderRequest(client_order_id(RUN, cycle, sym), RUN, cycle, sym, side, 1.0, as_of)
            j.record_orders([o])
            j.record_fills([Fill(fill_id(o.client_order_id, k), o.client_order_id, sym, side, 0.5,
                                 100.0 * cycle + k, 0.05, T0 + pd.Timedelta(hours=h)) for k, h in enumerate(hours)])
        j.finish_cycle(RUN, cycle, "ok", {}, {})
    yield j
    j.close()


def expected_regimes(trades: pd.DataFrame, frame: pd.DataFrame, scope_of) -> pd.Series:
    """Independent: for each trade the last record of its scope with datetime <= trade time (None before it)."""
    out = []
    for _, t in trades.iterrows():
        recs = frame[(frame["scope"] == scope_of(t)) & (frame["datetime"] <= t["ts"])].sort_values("datetime")
        out.append(recs["regime"].iloc[-1] if len(recs) else None)
    return pd.Series(out, index=trades["fill_id"].to_numpy())


def graph_regimes(store: GraphStore, build: str = B) -> dict[str, str | None]:
    back = store.read_trades(RUN)
    return {f: next((name for b, _, name in regs if b == build), None) for f, regs in zip(back["fill_id"],
                                                                                           back["regimes"])}


def counts(store: GraphStore) -> dict[str, int]:
    q = {"trades": "MATCH (t:Trade) WHERE t.run = $run RETURN count(t) AS n",
         "of": "MATCH (t:Trade)-[r:OF]->(:Asset) WHERE t.run = $run RETURN count(r) AS n",
         "during": "MATCH (t:Trade)-[r:DURING]->(:Regime) WHERE t.run = $run RETURN count(r) AS n",
         "signals": "MATCH (s:Signal) WHERE s.run = $run RETURN count(s) AS n",
         "for": "MATCH (s:Signal)-[r:FOR]->(:Asset) WHERE s.run = $run RETURN count(r) AS n"}
    return {k: int(store.query(v, run=RUN)[0]["n"]) for k, v in q.items()}


def test_trades_link_to_their_asset_and_the_market_regime_holding_their_time_and_mirroring_again_adds_nothing(
        graph_store: GraphStore, journal: TradeJournal) -> None:
    frame = regimes(MARKET)
    graph_store.write_regimes(frame, build=B)
    trades = journal_trades(journal, RUN)
    want = expected_regimes(trades, frame, lambda t: "market")
    stats = mirror_run(journal, graph_store, RUN, build=B)
    assert (stats.trades, stats.signals) == (len(trades), 8) == (14, 8)
    assert stats.linked == int(want.notna().sum()) and stats.unlinked == int(want.isna().sum()) == 2  # 01:00
    assert graph_regimes(graph_store) == want.to_dict()
    first = counts(graph_store)
    assert first == {"trades": 14, "of": 14, "during": 12, "signals": 8, "for": 8}
    mirror_run(journal, graph_store, RUN, build=B)
    assert counts(graph_store) == first
    back = graph_store.read_trades(RUN).set_index("fill_id")
    j = trades.set_index("fill_id")
    assert back["symbol"].to_dict() == j["symbol"].to_dict() and back["price"].to_dict() == j["price"].to_dict()
    sig = graph_store.query("MATCH (s:Signal)-[:FOR]->(a:Asset) WHERE s.run = $run RETURN s.cycle AS cycle, "
                            "a.symbol AS symbol, s.score AS score, s.weight AS weight ORDER BY cycle, symbol", run=RUN)
    assert [(r["cycle"], r["symbol"], r["score"], r["weight"]) for r in sig[:4]] == [
        (1, "BTC/USDT", 0.01, 0.3), (1, "ETH/USDT", -0.02, 0.1), (2, "BTC/USDT", 0.02, 0.3), (2, "ETH/USDT", None, 0.1)]


def test_a_regime_rewrite_drops_the_old_links_and_mirroring_again_links_the_new_generation(
        graph_store: GraphStore, journal: TradeJournal) -> None:
    graph_store.write_regimes(regimes(MARKET), build=B)
    mirror_run(journal, graph_store, RUN, build=B)
    refit = regimes({"market": [("2024-02-01 00:00", "bull"), ("2024-02-01 08:30", "bear")]})
    graph_store.write_regimes(refit, build=B)
    assert counts(graph_store)["during"] == 0  # the old generation's Regime nodes went, with their links
    stats = mirror_run(journal, graph_store, RUN, build=B)
    want = expected_regimes(journal_trades(journal, RUN), refit, lambda t: "market")
    assert graph_regimes(graph_store) == want.to_dict() and stats.unlinked == 0
    gens = graph_store.query("MATCH (t:Trade)-[:DURING]->(g:Regime) WHERE t.run = $run RETURN DISTINCT g.gen AS gen",
                             run=RUN)
    assert [r["gen"] for r in gens] == [stats.generation]


def test_the_asset_scope_links_each_trade_to_its_own_assets_regime(graph_store: GraphStore,
                                                                    journal: TradeJournal) -> None:
    frame = regimes(MARKET)
    graph_store.write_regimes(frame, build=B)
    stats = mirror_run(journal, graph_store, RUN, build=B, regime_scope="asset")
    trades = journal_trades(journal, RUN)
    want = expected_regimes(trades, frame, lambda t: t["symbol"])  # ETH has no records of its own: unlinked
    assert graph_regimes(graph_store) == want.to_dict()
    assert (stats.linked, stats.unlinked) == (7, 7)


def test_the_docs_query_of_trades_by_regime_matches_the_journal(graph_store: GraphStore,
                                                                 journal: TradeJournal) -> None:
    m = re.search(r"<!-- trades-by-regime[^>]*-->\n```cypher\n(.*?)```", DOC.read_text(), flags=re.S)
    assert m, "docs/graph.md lost its trades-by-regime query"
    frame = regimes(MARKET)
    graph_store.write_regimes(frame, build=B)
    mirror_run(journal, graph_store, RUN, build=B)
    rows = graph_store.query(m.group(1), run=RUN, build=B)
    trades = journal_trades(journal, RUN)
    trades["regime"] = expected_regimes(trades, frame, lambda t: "market").to_numpy()
    g = trades.dropna(subset=["regime"]).groupby("regime")
    want = {k: (len(v), round(float((v["qty"] * v["price"]).sum()), 2), round(float(v["fee_quote"].sum()), 4),
                sorted(v["symbol"].unique())) for k, v in g}
    assert {r["regime"]: (r["trades"], r["notional_quote"], r["fees_quote"], sorted(r["assets"])) for r in rows} == want


def test_deleting_a_run_removes_its_trades_and_signals_only(graph_store: GraphStore, journal: TradeJournal) -> None:
    graph_store.write_regimes(regimes(MARKET), build=B)
    mirror_run(journal, graph_store, RUN, build=B)
    assert graph_store.delete_run(RUN) == 14 + 8
    assert counts(graph_store) == {"trades": 0, "of": 0, "during": 0, "signals": 0, "for": 0}
    assert len(graph_store.read_regimes(B)) == len(regimes(MARKET))
    assert set(graph_store.symbols_in_store()) >= {"BTC/USDT", "ETH/USDT"}


def test_an_incremental_mirror_writes_only_the_newest_cycles_and_an_unknown_run_is_an_error(
        graph_store: GraphStore, journal: TradeJournal) -> None:
    stats = mirror_run(journal, graph_store, RUN, from_cycle=4)
    assert (stats.trades, stats.signals, stats.linked, stats.build) == (4, 2, 0, None)
    with pytest.raises(JournalError, match=r"no run 'nope' in the journal; runs there: mirror-run"):
        mirror_run(journal, graph_store, "nope")


def test_the_async_store_mirrors_the_same_run(graph_settings, graph_store: GraphStore,
                                              journal: TradeJournal) -> None:
    graph_store.write_regimes(regimes(MARKET), build=B)

    async def go():
        async with await AsyncGraphStore.connect(graph_settings, ensure_schema=False) as astore:
            return await mirror_run_async(journal, astore, RUN, build=B)

    stats = asyncio.run(go())
    assert (stats.trades, stats.linked) == (14, 12)
    assert counts(graph_store)["during"] == 12


def test_mirroring_cycle_by_cycle_picks_up_late_fills_of_earlier_orders_and_ends_equal_to_a_full_mirror(
        graph_store: GraphStore, tmp_path: Path) -> None:
    from graphwiz_trader.trading.graph_mirror import GraphMirror

    graph_store.write_regimes(regimes(MARKET), build=B)
    j = TradeJournal.open(tmp_path / "live.sqlite")
    j.start_run(RUN, "qlib_hybrid_v2", "paper", {}, T0)
    mirror = GraphMirror(j, graph_store, build=lambda: B)
    btc = OrderRequest(client_order_id(RUN, 1, "BTC/USDT"), RUN, 1, "BTC/USDT", Side.BUY, 1.0, T0, execution="TWAP",
                       horizon_bars=3)
    seen = []
    for cycle in (1, 2, 3):
        as_of = T0 + pd.Timedelta(hours=cycle)
        j.begin_cycle(RUN, cycle, as_of)
        j.record_signals(RUN, cycle, as_of, pd.Series({"BTC/USDT": 0.1 * cycle}), pd.Series({"BTC/USDT": 0.2}))
        if cycle == 1:
            j.record_orders([btc])
        # one TWAP child of the cycle-1 order fills on each following bar
        j.record_fills([Fill(fill_id(btc.client_order_id, cycle), btc.client_order_id, "BTC/USDT", Side.BUY, 1 / 3,
                             100.0 + cycle, 0.01, as_of + pd.Timedelta(hours=1))])
        j.finish_cycle(RUN, cycle, "ok", {}, {})
        stats = mirror.mirror_cycle(RUN, cycle)
        seen.append((stats.signals, counts(graph_store)["trades"], counts(graph_store)["signals"]))
    assert [s[1:] for s in seen] == [(1, 1), (2, 2), (3, 3)] and all(s[0] == 1 for s in seen)
    before = counts(graph_store)
    full = mirror.mirror_run(RUN)
    assert (full.trades, full.signals) == (3, 3) and counts(graph_store) == before
    assert graph_regimes(graph_store) == expected_regimes(journal_trades(j, RUN), regimes(MARKET),
                                                          lambda t: "market").to_dict()
    j.close()
