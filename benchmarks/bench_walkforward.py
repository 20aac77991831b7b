"""Walk-forward benchmark: serial against Ray workers in the same run, on the real-data case.

The 20 hourly majors, 2021-2024, train 8,760 bars, test 720, stride 720 (28 folds), Alpha158-only and
Alpha158 + graph features, one seed: 56 fold tasks. The features (Alpha158, the graph through the graph
store, the labels) are computed once; then the same walk-forward runs serially in this process
(``workers=1``) and on a local Ray instance (``--workers``, default 2), and the predictions of both must be
identical. Every fold task fits LightGBM with one thread in both modes (``LGB_THREADS``), so the ratio is
the gain from running tasks side by side.

Printed: each mode's wall time with its stages (panel build in this process, Ray start, shipping the
panel, the tasks, Ray shutdown), the summed task time (wall and CPU: CPU / wall ~ 1 says a task used one
thread), the speed-up ratio (goal >= 1.7x with 2 workers on the 2-core machine), and the load average
before and after (the machine is shared).

Run: .venv/bin/python benchmarks/bench_walkforward.py [--workers N] [--max-folds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from _common import measure  # noqa: E402

from graphwiz_trader.core.jsonout import write_json  # noqa: E402
from graphwiz_trader.data.paths import binance_dir  # noqa: E402
from graphwiz_trader.research.experiment import predictions_frame  # noqa: E402
from graphwiz_trader.research.reproduce_crypto import (  # noqa: E402
    CryptoReproductionSettings,
    crypto_inputs,
    crypto_walkforward,
)

GOAL = 1.7


def _load() -> str:
    """The 1, 5 and 15 minute load averages from /proc/loadavg."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "n/a"


def _mode(inputs: Any, cfg: CryptoReproductionSettings) -> dict[str, Any]:
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    runs = crypto_walkforward(inputs, cfg, progress=False, timings=stages)
    wall = time.perf_counter() - t0
    folds = pd.concat([r.folds for by_variant in runs.values() for r in by_variant.values()])
    return {"wall_s": wall, "stages_s": stages, "tasks": int(len(folds)), "task_wall_sum_s": float(folds["seconds"].sum()),
            "task_cpu_sum_s": float(folds["cpu_seconds"].sum()),
            "task_cpu_over_wall_max": float((folds["cpu_seconds"] / folds["seconds"]).max()),
            "predictions": predictions_frame({f"{v}_seed{s}": r for s, bv in runs.items() for v, r in bv.items()})}


def _line(name: str, m: dict[str, Any]) -> str:
    st = m["stages_s"]
    parts = ", ".join(f"{k} {st[k]:.1f}" for k in ("panel", "ray_start", "ray_put", "tasks", "ray_shutdown") if k in st)
    return (f"  {name:<18}{m['wall_s']:8.1f} s  ({parts}); {m['tasks']} tasks: summed wall {m['task_wall_sum_s']:.0f} s, "
            f"CPU {m['task_cpu_sum_s']:.0f} s, max CPU/wall per task {m['task_cpu_over_wall_max']:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    ap.add_argument("--max-folds", type=int, help="stop after this many folds (default: all 28)")
    ap.add_argument("--workers", type=int, default=2, help="Ray workers of the parallel run (default 2)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not (binance_dir() / "1h").is_dir():
        print(f"SKIPPED: real data not found at {binance_dir()} (see ../shared/data/README.md)")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench_wf_"))
    os.environ.setdefault("GRAPHWIZ_GRAPH_DIR", str(work / "graph"))
    cfg = CryptoReproductionSettings(data=binance_dir(), seeds=(0,), qlib_dir=work / "qlib", out=work / "out",
                                     max_folds=args.max_folds)
    load_start = _load()
    with measure() as m:
        inputs = crypto_inputs(cfg, progress=False)
        t = inputs.timings
        serial = _mode(inputs, replace(cfg, workers=1))
        parallel = _mode(inputs, replace(cfg, workers=args.workers))
    load_end = _load()
    same = serial["predictions"].equals(parallel["predictions"])
    ratio = serial["wall_s"] / parallel["wall_s"]
    n = serial["tasks"] // 2
    sym = sorted(inputs.bars)
    print(f"walk-forward, {len(sym)} majors 1h, {n} folds x 2 variants (train 8760, test 720, stride 720), 1 seed; "
          f"LightGBM 1 thread per task in both modes")
    print(f"  features once: load {t['load']:.1f} s, Alpha158 {t['alpha158']:.1f} s, graph build+store+read "
          f"{t['graph_total']:.1f} s")
    print(_line("serial (1)", serial))
    print(_line(f"Ray ({args.workers} workers)", parallel))
    print(f"  speed-up serial / {args.workers} workers: {ratio:.2f}x (goal >= {GOAL}x: {'yes' if ratio >= GOAL else 'NO'}); "
          f"identical predictions: {'yes' if same else 'NO'}")
    ideal = parallel["task_wall_sum_s"] / args.workers
    print(f"  parallel wall {parallel['wall_s']:.1f} s against its summed task time / {args.workers} = {ideal:.1f} s; "
          f"tasks ran {parallel['task_wall_sum_s'] / serial['task_wall_sum_s']:.2f}x as long side by side as alone")
    print(f"  load average (1, 5, 15 min) before {load_start}, after {load_end}; peak memory {m.peak_rss_gb:.2f} GB "
          f"(this process)")
    write_json(args.json, {"ratio": ratio, "goal": GOAL, "identical_predictions": same, "workers": args.workers,
                           "features_s": {k: v for k, v in t.items() if k != "graph"},
                           **{name: {k: v for k, v in mode.items() if k != "predictions"}
                              for name, mode in (("serial", serial), ("parallel", parallel))},
                           "loadavg_before": load_start, "loadavg_after": load_end, "n_folds": n})
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
