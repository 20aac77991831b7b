"""Graph-store write/read rates against the embedded ArcadeDB Bolt server (or NEO4J_URI when --neo4j).

Setup: the synthetic market (SYNTHETIC data) with 46 assets at 1h, window 720, stride 24 -> 1,450
snapshots; edges pruned to the top-10 |rho| partners per asset (union, ~290 edges per snapshot), 2 leaders
per asset over lags 1..3, Louvain communities. Snapshots are built with plain numpy (testkit/graph.py),
before any timing.

Rows:
  embedded server startup (until a Cypher query succeeds)
  batched write of all snapshots, edges/s, first write to a fresh server (cold JVM): the store's path, and its
    peer, today's path before issue 12 (each edge batch sent as a list of rows [src, dst, rho, snap]; now as
    column lists), on its own fresh server in the same run; goal >= 100,000 edges/s, ratio new / peer
  the same, warm server: peer and new path alternately, twice each, into builds of their own (no clear between)
  the same rows, one query per edge (auto-commit), subset     shows what batching buys
  re-write of the whole build (new generation, one-transaction switch, deletion of the old generation)
  a 10-snapshot build written beside the big one, then re-written (cost follows the build, not the store)
  bulk read of all snapshots of the build (read_snapshots), seconds
  regime state (per-bar market regime, ~35k records) write and read

Run: .venv/bin/python benchmarks/bench_graph_store.py [--json PATH] [--batch-size N] [--snapshots N] [--neo4j]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import measure  # noqa: E402

from graphwiz_trader.config.settings import GraphSettings  # noqa: E402
from graphwiz_trader.data.synthetic import generate_synthetic_market  # noqa: E402
from graphwiz_trader.graph.server import EmbeddedGraphServer  # noqa: E402
from graphwiz_trader.graph.store import GraphStore, canonical_snapshot, settings_from_env  # noqa: E402
from graphwiz_trader.testkit.graph import demo_regime_state, demo_snapshots, rename_demo_symbols  # noqa: E402
from graphwiz_trader.core.jsonout import write_json  # noqa: E402
from graphwiz_trader.graph.cypher import _NODES_PROLOGUE  # noqa: E402

class CpuClock:
    """CPU seconds used by this process (client) and the server process during a block.

    On a shared machine wall time depends on other load; CPU seconds do not (much). ``edges / (client +
    server CPU)`` is what a dedicated core pair would sustain when client and server work in turn, as they
    do here (one transaction at a time).
    """

    def __init__(self, server_pid: int | None) -> None:
        self.me = psutil.Process()
        self.server = psutil.Process(server_pid) if server_pid else None
        self.client_s = self.server_s = 0.0

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    def __enter__(self) -> "CpuClock":
        self._c0 = self._cpu(self.me)
        self._s0 = self._cpu(self.server) if self.server else 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.client_s = self._cpu(self.me) - self._c0
        self.server_s = (self._cpu(self.server) - self._s0) if self.server else float("nan")


# The peer: today's path before issue 12, kept here to measure against (same batches, same server work per
# edge; only the parameter layout differs: one Python list per row instead of one list per column).
_ROWS_EDGES = _NODES_PROLOGUE + """
UNWIND $rows AS row
WITH nodes[row[0]] AS a, nodes[row[1]] AS b, row[2] AS rho, $snaps[row[3]] AS s
CREATE (a)-[:CORRELATED_WITH {rho: rho, method: s.method, window: s.window, as_of: s.as_of, gen: $gen}]->(b)
"""
_ROWS_LEADS = _NODES_PROLOGUE + """
UNWIND $rows AS row
WITH nodes[row[0]] AS a, nodes[row[1]] AS b, row[2] AS rho, row[3] AS lag, $snaps[row[4]] AS s
CREATE (a)-[:LEADS {lag: lag, rho: rho, method: s.method, window: s.window, as_of: s.as_of, gen: $gen}]->(b)
"""


class RowListStore(GraphStore):
    """The graph store writing edge and lead batches as lists of rows (the peer path)."""

    @staticmethod
    def _edge_batch(gen, syms, metas, src, dst, rho, snap):  # type: ignore[override]
        rows = [list(r) for r in zip(src.tolist(), dst.tolist(), rho.tolist(), snap.tolist())]
        return _ROWS_EDGES, {"gen": gen, "syms": syms, "snaps": metas, "rows": rows}

    @staticmethod
    def _lead_batch(gen, syms, metas, src, dst, rho, lag, snap):  # type: ignore[override]
        rows = [list(r) for r in zip(src.tolist(), dst.tolist(), rho.tolist(), lag.tolist(), snap.tolist())]
        return _ROWS_LEADS, {"gen": gen, "syms": syms, "snaps": metas, "rows": rows}


GOAL_EDGES_PER_S = 100_000

ONE_EDGE = """
MATCH (a:Asset {symbol: $src}) MATCH (b:Asset {symbol: $dst})
CREATE (a)-[:CORRELATED_WITH {rho: $rho, method: $method, window: $window, as_of: $as_of}]->(b)
"""


BUILD = "bench-big"
SMALL = "bench-small"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--batch-size", type=int, default=20_000, help="rows per transaction (default 20000)")
    ap.add_argument("--snapshots", type=int, default=1450)
    ap.add_argument("--one-by-one", type=int, default=2000, help="edges written one query each (default 2000)")
    ap.add_argument("--heap", default="2g", help="embedded server Java heap (default 2g)")
    ap.add_argument("--neo4j", action="store_true", help="use NEO4J_URI instead of the embedded server "
                    "(CLEARS graphwiz nodes there)")
    ap.add_argument("--workdir", help="embedded server data folder (default: a temp dir)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    market = generate_synthetic_market(n_assets=46, n_bars=721 + 24 * (args.snapshots - 1), seed=7)
    print(market.label)
    closes = rename_demo_symbols(market.close_panel())
    t = time.perf_counter()
    snaps = demo_snapshots(closes, window=720, stride=24, top_k=10, max_lag=3, leaders_per_asset=2, seed=0)
    build_s = time.perf_counter() - t
    n_edges = sum(len(s.edges) for s in snaps)
    n_leads = sum(len(s.leads) for s in snaps)
    n_members = sum(len(s.communities) for s in snaps)
    print(f"setup: {len(snaps)} snapshots, {n_edges:,} edges, {n_leads:,} leads, {n_members:,} memberships "
          f"(numpy build {build_s:.1f} s, not timed below)")

    rows: list[dict] = []
    server = None
    peer_cold: dict | None = None
    if not args.neo4j:  # the peer's cold write, on a fresh server of its own (same JVM settings), before ours
        pwork = Path(tempfile.mkdtemp(prefix="bench_graph_store_peer_"))
        pserver = EmbeddedGraphServer(pwork / "graph", heap=args.heap)
        pserver.start()
        try:
            pstore = RowListStore.connect(GraphSettings(uri=pserver.uri, user=pserver.user, password=pserver.password,
                                                        database=pserver.database), batch_size=args.batch_size)
            with measure() as m, CpuClock(pserver.pid) as cpu:
                pst = pstore.write_snapshots(snaps, build=BUILD, exchange="binance")
            pstore.close()
        finally:
            pserver.stop()
            shutil.rmtree(pwork, ignore_errors=True)
        pe = pst.edges + pst.leads
        peer_cold = {"what": "PEER (row lists): batched write, fresh server", "seconds": m.seconds,
                     "edges_per_s": pe / m.seconds, "target_edges_per_s": GOAL_EDGES_PER_S,
                     "client_cpu_s": cpu.client_s, "server_cpu_s": cpu.server_s,
                     "edges_per_cpu_s": pe / (cpu.client_s + cpu.server_s)}
    if args.neo4j:
        settings = settings_from_env()
        if settings.uri is None:
            print("SKIPPED: --neo4j needs NEO4J_URI")
            return 0
    else:
        work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_graph_store_"))
        server = EmbeddedGraphServer(work / "graph", heap=args.heap)
        with measure() as m:
            server.start()
        rows.append({"what": "embedded server startup (until RETURN 1 succeeds)", "seconds": m.seconds})
        settings = GraphSettings(uri=server.uri, user=server.user, password=server.password,
                                 database=server.database)
    try:
        store = GraphStore.connect(settings, batch_size=args.batch_size)
        store.clear()
        pid = server.pid if server else None
        # --- batched write of everything
        with measure() as m, CpuClock(pid) as cpu:
            stats = store.write_snapshots(snaps, build=BUILD, exchange="binance", progress=True)
        total_rows = stats.edges + stats.leads + stats.memberships
        n_e = stats.edges + stats.leads
        rows.append({"what": f"batched write, {stats.snapshots} snapshots (batch {args.batch_size})",
                     "seconds": m.seconds, "edges": stats.edges, "leads": stats.leads,
                     "memberships": stats.memberships, "transactions": stats.transactions,
                     "edges_per_s": n_e / m.seconds, "rows_per_s": total_rows / m.seconds,
                     "target_edges_per_s": GOAL_EDGES_PER_S, "client_cpu_s": cpu.client_s, "server_cpu_s": cpu.server_s,
                     "edges_per_cpu_s": n_e / (cpu.client_s + cpu.server_s), "peak_rss_gb": m.peak_rss_gb})
        if peer_cold is not None:
            rows.insert(len(rows) - 1, peer_cold)
        # the same write on the warm server (JIT-compiled; the first write pays the JVM warm-up): peer and new
        # path alternately, each into a build of its own (no clear between: deleting 550k edges takes minutes)
        peer_store = RowListStore.connect(settings, batch_size=args.batch_size, ensure_schema=False)
        warm: dict[str, list[dict]] = {"peer": [], "new": []}
        for k in range(2):
            for name, st_ in (("peer", peer_store), ("new", store)):
                with measure() as m, CpuClock(pid) as cpu:
                    st_.write_snapshots(snaps, build=f"bench-warm-{name}-{k}", exchange="binance")
                warm[name].append({"seconds": m.seconds, "edges_per_s": n_e / m.seconds, "client_cpu_s": cpu.client_s,
                                   "server_cpu_s": cpu.server_s,
                                   "edges_per_cpu_s": n_e / (cpu.client_s + cpu.server_s)})
        peer_store.close()
        for name, label in (("peer", "PEER (row lists)"), ("new", "new (column lists)")):
            best = max(warm[name], key=lambda r: r["edges_per_s"])
            rows.append({"what": f"{label}: batched write, warm server (best of 2)", **best,
                         "target_edges_per_s": GOAL_EDGES_PER_S,
                         "runs_edges_per_s": [r["edges_per_s"] for r in warm[name]]})
        # crash-safe re-write of the same build: a new generation, the switch, then the old one deleted
        with measure() as m:
            st = store.write_snapshots(snaps, build=BUILD, exchange="binance")
        rows.append({"what": "re-write of the build (new generation + switch + old deleted)", "seconds": m.seconds,
                     "edges_per_s": n_e / m.seconds, "replaced": st.replaced,
                     "deleted_generations": st.deleted_generations})

        # --- one query per edge on a subset, same data shape
        sub = []
        for s in snaps:
            for src, dst, rho in s.edges.itertuples(index=False):
                sub.append({"src": src, "dst": dst, "rho": float(rho), "method": "one-by-one", "window": s.window,
                            "as_of": s.as_of})
                if len(sub) >= args.one_by_one:
                    break
            if len(sub) >= args.one_by_one:
                break
        with store._driver.session(database=store.database) as session:  # noqa: SLF001 - benchmark only
            t = time.perf_counter()
            with CpuClock(pid) as cpu:
                for p in sub:
                    session.run(ONE_EDGE, p).consume()
            one_s = time.perf_counter() - t
            session.run("MATCH ()-[r:CORRELATED_WITH]->() WHERE r.method = 'one-by-one' DELETE r").consume()
        rows.append({"what": f"one query per edge (auto-commit), {len(sub):,} edges", "seconds": one_s,
                     "edges_per_s": len(sub) / one_s, "client_cpu_s": cpu.client_s, "server_cpu_s": cpu.server_s,
                     "edges_per_cpu_s": len(sub) / (cpu.client_s + cpu.server_s)})

        # --- a small build beside the big one: written, then re-written
        with measure() as m:
            store.write_snapshots(snaps[-10:], build=SMALL)
        rows.append({"what": "write a 10-snapshot build beside the big one", "seconds": m.seconds})
        with measure() as m:
            st = store.write_snapshots(snaps[-10:], build=SMALL)
        rows.append({"what": "re-write the 10-snapshot build", "seconds": m.seconds, "replaced": st.replaced})
        with measure() as m:
            small_back = store.read_snapshots(SMALL)
        rows.append({"what": f"read the 10-snapshot build ({len(small_back)} snapshots)", "seconds": m.seconds})

        # --- bulk read
        with measure() as m:
            back = store.read_snapshots(BUILD)
        rows.append({"what": f"bulk read, all {len(back)} snapshots", "seconds": m.seconds,
                     "edges_per_s": sum(len(s.edges) + len(s.leads) for s in back) / m.seconds,
                     "peak_rss_gb": m.peak_rss_gb})
        exact = all(
            canonical_snapshot(a).edges.equals(b.edges) and canonical_snapshot(a).leads.equals(b.leads)
            and canonical_snapshot(a).communities == b.communities for a, b in zip(snaps, back))
        with measure() as m:
            mid = store.read_snapshots(BUILD, end=snaps[len(snaps) // 2].as_of)
        rows.append({"what": f"point-in-time read, as_of <= mid ({len(mid)} snapshots)", "seconds": m.seconds})
        with measure() as m:
            few = store.read_snapshots(BUILD, start=snaps[-10].as_of)
        rows.append({"what": f"read the last {len(few)} snapshots of the big build", "seconds": m.seconds})

        # --- regimes
        regimes = demo_regime_state(market.regimes, seed=0)
        with measure() as m:
            rst = store.write_regimes(regimes, build=BUILD)
        rows.append({"what": f"regime write, {rst.regime_records:,} market records", "seconds": m.seconds,
                     "records_per_s": rst.regime_records / m.seconds})
        with measure() as m:
            rback = store.read_regimes(BUILD, "market")
        rows.append({"what": "regime read, all market records", "seconds": m.seconds,
                     "records_per_s": len(rback) / m.seconds})
        regimes_exact = bool((rback["prob"].to_numpy() == regimes["prob"].to_numpy()).all()
                             and (rback["regime"].to_numpy() == regimes["regime"].to_numpy()).all())
        store.close()
    finally:
        if server is not None:
            server.stop()
            if not args.workdir:
                shutil.rmtree(server.data_dir.parent, ignore_errors=True)

    load = os.getloadavg()[0]
    print(f"\n{'what':<56} {'seconds':>8} {'wall rate':>18} {'per CPU-s':>16}  target (wall)")
    for r in rows:
        rate = next((f"{r[k]:,.0f} {k.removesuffix('_per_s')}/s" for k in ("edges_per_s", "records_per_s")
                     if k in r), "")
        cpu_rate = f"{r['edges_per_cpu_s']:,.0f} edges" if "edges_per_cpu_s" in r else ""
        tgt = ""
        if "target_edges_per_s" in r:
            tgt = f">= {r['target_edges_per_s']:,} edges/s: {'yes' if r['edges_per_s'] >= r['target_edges_per_s'] else 'NO'}"
        print(f"{r['what']:<56} {r['seconds']:>8.2f} {rate:>18} {cpu_rate:>16}  {tgt}")
    batched = next(r for r in rows if r["what"].startswith("batched write"))
    one = next(r for r in rows if r["what"].startswith("one query"))
    ratios: dict[str, float] = {}
    if peer_cold is not None:
        new_w = next(r for r in rows if r["what"].startswith("new (column lists)"))
        peer_w = next(r for r in rows if r["what"].startswith("PEER (row lists): batched write, warm"))
        ratios = {"cold_wall": batched["edges_per_s"] / peer_cold["edges_per_s"],
                  "cold_cpu": batched["edges_per_cpu_s"] / peer_cold["edges_per_cpu_s"],
                  "warm_wall": new_w["edges_per_s"] / peer_w["edges_per_s"],
                  "warm_cpu": new_w["edges_per_cpu_s"] / peer_w["edges_per_cpu_s"]}
        print(f"new path vs peer (today's path), same run: fresh server {batched['edges_per_s']:,.0f} vs "
              f"{peer_cold['edges_per_s']:,.0f} edges/s = {ratios['cold_wall']:.2f}x wall "
              f"({ratios['cold_cpu']:.2f}x per CPU-second); warm server {new_w['edges_per_s']:,.0f} vs "
              f"{peer_w['edges_per_s']:,.0f} edges/s = {ratios['warm_wall']:.2f}x wall "
              f"({ratios['warm_cpu']:.2f}x per CPU-second); goal >= {GOAL_EDGES_PER_S:,} edges/s: fresh "
              f"{'yes' if batched['edges_per_s'] >= GOAL_EDGES_PER_S else 'NO'}, warm "
              f"{'yes' if new_w['edges_per_s'] >= GOAL_EDGES_PER_S else 'NO'}")
    print(f"batching speed-up: {batched['edges_per_s'] / one['edges_per_s']:.0f}x wall, "
          f"{batched['edges_per_cpu_s'] / one['edges_per_cpu_s']:.0f}x per CPU-second; "
          f"read-back exact: {exact}; regimes exact: {regimes_exact}; 1-min load average {load:.1f} on "
          f"{os.cpu_count()} CPUs (wall rates shrink with other load, CPU-second rates much less)")
    write_json(args.json, {"label": market.label, "server": "neo4j" if args.neo4j else "embedded-arcadedb",
                           "snapshots": len(snaps), "edges": n_edges, "leads": n_leads, "memberships": n_members,
                           "batch_size": args.batch_size, "rows": rows,
                           "batching_speedup_wall": batched["edges_per_s"] / one["edges_per_s"],
                           "batching_speedup_cpu": batched["edges_per_cpu_s"] / one["edges_per_cpu_s"],
                           "goal_edges_per_s": GOAL_EDGES_PER_S, "new_vs_peer": ratios,
                           "readback_exact": exact, "regimes_exact": regimes_exact, "machine_load_1m": load,
                           "cpus": os.cpu_count()})
    return 0 if exact and regimes_exact else 1


if __name__ == "__main__":
    sys.exit(main())
