"""Walk-forward benchmark: the 20 hourly majors, 2021-2024, train 8,760 bars, test 720, stride 720,
Alpha158-only and Alpha158 + graph features (one seed). Features are computed once and reused by
every fold; the graph is built, written to the graph store and read back once.

Target on the 2-core machine: <= 20 minutes for everything. Prints total and per-fold time.

Run: .venv/bin/python benchmarks/bench_walkforward.py [--json PATH] [--max-folds N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import measure  # noqa: E402

from graphwiz_trader.data.paths import binance_dir  # noqa: E402
from graphwiz_trader.core.jsonout import write_json  # noqa: E402
from graphwiz_trader.research.reproduce_crypto import CryptoReproductionSettings, run_graph_crypto  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--max-folds", type=int)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not (binance_dir() / "1h").is_dir():
        print(f"SKIPPED: real data not found at {binance_dir()} (see ../shared/data/README.md)")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench_wf_"))
    import os

    os.environ.setdefault("GRAPHWIZ_GRAPH_DIR", str(work / "graph"))
    cfg = CryptoReproductionSettings(data=binance_dir(), seeds=(0,), qlib_dir=work / "qlib", out=work / "out",
                            max_folds=args.max_folds)
    with measure() as m:
        res = run_graph_crypto(cfg, progress=False)
    t = res["timings_s"]
    fs = res["per_seed"][0]["fold_seconds"]
    n = len(fs["alpha158"])
    print(f"walk-forward, 20 majors 1h {res['range'][0][:10]}..{res['range'][1][:10]}, {n} folds "
          f"(train 8760, test 720, stride 720), 1 seed")
    print(f"  load bars              {t['load']:8.1f} s")
    print(f"  Alpha158 (+extras)     {t['alpha158']:8.1f} s  (computed once, cached bins/features)")
    g = t["graph"]
    print(f"  graph build+store+read {t['graph_total']:8.1f} s  (snapshots {g.get('snapshots', 0):.1f}, regimes "
          f"{g.get('regimes', 0):.1f}, write {g.get('write_snapshots', 0) + g.get('write_regimes', 0):.1f}, "
          f"read {g.get('read', 0):.1f}, features {g.get('features', 0):.1f}; {g.get('n_snapshots')} snapshots)")
    for name in ("alpha158", "hybrid"):
        v = fs[name]
        print(f"  folds {name:<9}       {t['walkforward'][name]:8.1f} s  (per fold mean {sum(v) / n:.1f} s, "
              f"min {min(v):.1f}, max {max(v):.1f})")
    ok = m.seconds <= 20 * 60
    print(f"  total                  {m.seconds:8.1f} s  target <= 1200 s: {'yes' if ok else 'NO'}; peak memory "
          f"{m.peak_rss_gb:.2f} GB")
    s = res["summary"]
    print(f"  (figures, 1 seed: AUC {s['auc_baseline']:.4f} -> {s['auc_hybrid']:.4f}, IC {s['ic_baseline']:.4f} -> "
          f"{s['ic_hybrid']:.4f}, accuracy {s['accuracy_baseline']:.4f} -> {s['accuracy_hybrid']:.4f} beside the "
          f"training-majority rate {s['majority_rate']:.4f}, improvement {s['accuracy_improvement_pct']:+.3f}%)")
    write_json(args.json, {"seconds_total": m.seconds, "peak_rss_gb": m.peak_rss_gb, "target_s": 1200,
                           "timings_s": t, "fold_seconds": fs, "n_folds": n, "summary": s})
    return 0


if __name__ == "__main__":
    sys.exit(main())
