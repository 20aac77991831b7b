"""Data-layer benchmark on the real Binance candles (../shared/data).

Rows (targets on the 2-core machine):
  import + validate + store + to-qlib, all 46 pairs at 1h      <= 15 s
  Alpha158 (+extras) for the 20 majors, 2020-2024 hourly, cold  <= 120 s
  the same, from cache                                          <= 10 s
  peak memory (process tree)                                    <= 6 GB

Run: .venv/bin/python benchmarks/bench_data.py [--json PATH] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import measure, print_table  # noqa: E402

from graphwiz_trader.data.paths import MAJORS_20, binance_dir  # noqa: E402
from graphwiz_trader.data.qlib_bins import write_qlib_bins  # noqa: E402
from graphwiz_trader.data.sources import read_bars  # noqa: E402
from graphwiz_trader.data.store import ParquetStore  # noqa: E402
from graphwiz_trader.features.alpha158 import AlphaFeatureExtractor  # noqa: E402
from graphwiz_trader.core.jsonout import write_json  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--workdir", help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    src = binance_dir()
    if not (src / "1h").is_dir():
        print(f"SKIPPED: real data not found at {src} (see ../shared/data/README.md)")
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_data_"))
    rows = []

    with measure() as m:
        bars, report = read_bars(src, "1h", None, strict=True)
        store = ParquetStore(work / "store")
        for sym, df in bars.items():
            store.upsert(sym, "1h", df)
        summary = write_qlib_bins(bars, work / "qlib_all", "60min")
    rows.append({"what": f"import+validate+store+to-qlib, {len(bars)} pairs 1h ({sum(map(len, bars.values())):,} bars)",
                 "seconds": m.seconds, "target_s": 15, "peak_rss_gb": m.peak_rss_gb,
                 "missing_bars": sum(s.missing_bars for s in report.symbols),
                 "calendar_length": summary["calendar_length"]})

    majors = {s: bars[s] for s in MAJORS_20}
    write_qlib_bins(majors, work / "qlib_majors", "60min")
    ex = AlphaFeatureExtractor(work / "qlib_majors", "60min", mlflow_dir=work / "mlruns", cache_dir=work / "cache")
    with measure() as m:
        feats = ex.extract(list(majors))
    assert not ex.last_from_cache
    rows.append({"what": f"Alpha158+extras, 20 majors, full span, cold ({feats.shape[0]:,} x {feats.shape[1]})",
                 "seconds": m.seconds, "target_s": 120, "peak_rss_gb": m.peak_rss_gb})
    del feats
    ex2 = AlphaFeatureExtractor(work / "qlib_majors", "60min", mlflow_dir=work / "mlruns", cache_dir=work / "cache")
    with measure() as m:
        feats = ex2.extract(list(majors))
    assert ex2.last_from_cache
    rows.append({"what": "the same, from cache", "seconds": m.seconds, "target_s": 10, "peak_rss_gb": m.peak_rss_gb})
    peak = max(r["peak_rss_gb"] for r in rows)
    print_table(rows)
    print(f"peak memory over all rows: {peak:.2f} GB (target <= 6 GB): {'yes' if peak <= 6 else 'NO'}")
    write_json(args.json, {"rows": rows, "peak_rss_gb": peak, "workdir": str(work)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
