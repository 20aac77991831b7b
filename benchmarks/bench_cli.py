"""Command-line start-up: ``graphwiz --help`` and ``graphwiz <command> --help`` wall time.

Target: ``graphwiz --help`` <= 0.5 s on the 2-core machine. Peers from the same run: a bare
``python -c pass`` (the interpreter's floor) and ``python -c "import pandas"`` (what one heavy import costs).
Each row is the median of ``--repeat`` runs in fresh processes.

Run: .venv/bin/python benchmarks/bench_cli.py [--repeat 7] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="runs per row (median reported)")
    ap.add_argument("--json", help="write the rows as JSON")
    a = ap.parse_args()
    py = sys.executable
    rows = {
        "python -c pass (floor)": wall([py, "-c", "pass"], a.repeat),
        "python -c 'import pandas' (one heavy import)": wall([py, "-c", "import pandas"], a.repeat),
        "graphwiz --help": wall([str(BIN / "graphwiz"), "--help"], a.repeat),
        "graphwiz --version": wall([str(BIN / "graphwiz"), "--version"], a.repeat),
        "graphwiz data --help": wall([str(BIN / "graphwiz"), "data", "--help"], a.repeat),
        "graphwiz research walkforward --help": wall([str(BIN / "graphwiz"), "research", "walkforward", "--help"],
                                                     a.repeat),
    }
    floor = rows["python -c pass (floor)"]
    print(f"{'what':48s} {'median s':>9s} {'x floor':>8s}")
    for name, s in rows.items():
        print(f"{name:48s} {s:9.3f} {s / floor:8.1f}")
    verdict = "OK" if rows["graphwiz --help"] <= 0.5 else "ABOVE TARGET"
    print(f"target: graphwiz --help <= 0.5 s -> {rows['graphwiz --help']:.3f} s ({verdict})")
    if a.json:
        Path(a.json).write_text(json.dumps({"median_seconds": rows, "target_s": 0.5}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
