"""``graphwiz reproduce paper``: the ablation paper (``docs/paper.md`` and its HTML twin) from one command.

Full run (both datasets, the protocol of issue 13)::

    PYTHONHASHSEED=0 graphwiz reproduce paper --crypto-data ../shared/data/binance_spot_2020_2024 \\
        --csi300-data ../shared/data/qlib_cn_csi300

Everything it needs is computed in the run (features cached by content; the graph builds keyed by their
inputs); ``<run>/paper.json`` holds every figure, and the paper is written from it.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from graphwiz_trader.core.cli_types import positive_ints_arg, seeds_arg
from graphwiz_trader.core.commandline import add_json_option, add_run_dir_option
from graphwiz_trader.core.progress import progress_enabled
from graphwiz_trader.core.runs import atomic_write_bytes, open_run
from graphwiz_trader.errors import ConfigError


def _read_payload(src: Path) -> dict[str, Any]:
    if not src.is_file():
        raise ConfigError(f"--from-json {src}: no such file (a run's paper.json)")
    try:
        payload = json.loads(src.read_text())
        payload["command"], payload["datasets"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--from-json {src}: not a paper.json written by graphwiz reproduce paper ({exc})") from exc
    return payload


def merge_payloads(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """One paper from several runs' figures (e.g. one run per dataset): their datasets side by side, every command
    that produced them. A dataset given twice is refused (which run's figures would be meant is unclear)."""
    if len(payloads) == 1:
        return payloads[0]
    out: dict[str, Any] = {"settings": payloads[0]["settings"], "datasets": {}, "seconds": 0.0}
    commands: list[str] = []
    for p in payloads:
        for key, ds in p["datasets"].items():
            if key in out["datasets"]:
                raise ConfigError(f"--from-json: dataset {key!r} appears in more than one run")
            out["datasets"][key] = ds
        out["seconds"] += float(p.get("seconds", 0.0))
        if p["command"] not in commands:
            commands.append(p["command"])
    out["command"] = "\n".join(commands)
    return out


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip() and x.strip() != "none")


def _paper(args: argparse.Namespace) -> int:
    from graphwiz_trader.core.symbols import parse_symbols
    from graphwiz_trader.data.paths import MAJORS_20
    from graphwiz_trader.research.paper import PaperSettings, run_paper
    from graphwiz_trader.research.paper_data import CSI300DataSettings, CryptoDataSettings
    from graphwiz_trader.research.paper_render import _ci, write_paper

    if args.from_json:
        payload = merge_payloads([_read_payload(Path(x)) for x in args.from_json])
        paths = write_paper(payload, Path(args.paper), payload["command"])
        print(f"paper: {paths['markdown']} (html {paths['html']}) written from {', '.join(args.from_json)}")
        return 0
    if not args.crypto_data and not args.csi300_data:
        raise ConfigError("reproduce paper: give --crypto-data, --csi300-data or both (the real data lives in "
                          "../shared/data, see its README)")
    crypto = None
    if args.crypto_data:
        d = Path(args.crypto_data)
        if not d.is_dir():
            raise ConfigError(f"--crypto-data {d} does not exist (../shared/data/binance_spot_2020_2024)")
        crypto = CryptoDataSettings(data=d, symbols=tuple(parse_symbols(args.symbols)) if args.symbols else MAJORS_20,
                                    start=args.start, end=args.end, horizons=args.crypto_horizons,
                                    graph_window=args.graph_window, graph_stride=args.graph_stride,
                                    qlib_dir=Path(args.qlib_dir))
    csi = None
    if args.csi300_data:
        d = Path(args.csi300_data)
        if not (d / "calendars" / "day.txt").is_file():
            raise ConfigError(f"--csi300-data {d}: not a Qlib data folder (no calendars/day.txt); see "
                              "../shared/data/qlib_cn_csi300")
        market: str | tuple[str, ...] = args.market
        if args.instruments:
            market = tuple(s.strip().upper() for s in args.instruments.split(",") if s.strip())
        csi = CSI300DataSettings(provider_uri=d, horizons=args.csi300_horizons, market=market,
                                 cache_dir=None if args.no_cache else Path(args.cache_dir))
    cfg = PaperSettings(crypto=crypto, csi300=csi, seeds=args.seeds, crypto_train_len=args.train_len,
                        crypto_test_len=args.test_len, crypto_stride=args.stride, crypto_max_folds=args.max_folds,
                        crypto_rounds=args.rounds, csi300_rounds=args.csi300_rounds, peers=args.peers,
                        peer_epochs=args.peer_epochs, costs=not args.no_costs, workers=args.workers,
                        ray_address=args.ray_address,
                        cache_dir=None if args.no_stage_cache else Path(args.stage_cache))
    run = open_run(args)
    command = command_line(args)
    print(f"reproduce paper: {'crypto ' if crypto else ''}{'csi300 ' if csi else ''}seeds {list(cfg.seeds)}, "
          f"run folder {run.path}", flush=True)
    payload = run_paper(cfg, run.path, progress=progress_enabled())
    payload["command"] = command
    text = json.dumps(payload, indent=1, default=str)
    atomic_write_bytes(run.path / "paper.json", text.encode())
    payload = json.loads(text)          # the paper is written from exactly what paper.json holds
    paths = write_paper(payload, Path(args.paper), command)
    payload["outputs"] = paths
    for key, ds in payload["datasets"].items():
        for h, hz in ds["horizons"].items():
            for r in hz["table"]:
                if r["variant"] in ("alpha158", "+graph18", "+all") or r["kind"] == "peer":
                    d = "" if r.get("diff_mean") is None else (
                        f" diff {r['diff_mean']:+.4f} {_ci(r.get('diff_boot_lo'), r.get('diff_boot_hi'))}")
                    print(f"  {key} h={h} {r['variant']:<14} Rank IC {r['ric_mean']:.4f}{d}")
    print(f"paper: {paths['markdown']} (html {paths['html']}); figures in {paths['figures']}; "
          f"{payload['seconds']:.0f}s")
    run.write_summary(payload, args.json)
    return 0


def add_paper_parser(rsub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``paper`` to the ``reproduce`` subparsers."""
    from graphwiz_trader.research.fanout import add_fanout_options

    p = rsub.add_parser("paper", help="the graph-features ablation paper (docs/paper.md + HTML) from one command",
                        description="Ablations of the graph feature families on the hourly crypto majors and CSI300 "
                        "(same folds and seeds, Rank IC with block-bootstrap intervals), Qlib's Linear and GATs "
                        "beside them, the scores through max-Sharpe and the cost-aware backtest; writes the paper.")
    p.add_argument("--crypto-data", metavar="DIR", help="freqtrade folder of Binance candles "
                   "(../shared/data/binance_spot_2020_2024); omitted: no crypto part")
    p.add_argument("--csi300-data", metavar="DIR", help="Qlib CN folder (../shared/data/qlib_cn_csi300); omitted: "
                   "no CSI300 part")
    p.add_argument("--paper", metavar="PATH", default="docs/paper.md", help="where the Markdown goes (the HTML "
                   "beside it, figures in <stem>_files/)")
    p.add_argument("--seeds", type=seeds_arg, default=(0,), help="LightGBM seeds: a count (3 -> 0,1,2) or a list")
    p.add_argument("--symbols", metavar="LIST", help="crypto pairs (default: the 20 majors)")
    p.add_argument("--start", metavar="DATE", default="2021-01-01", help="crypto: first bar, UTC")
    p.add_argument("--end", metavar="DATE", help="crypto: last bar, UTC (default: the data's end)")
    p.add_argument("--crypto-horizons", type=positive_ints_arg, default=(1, 4, 24), help="crypto label horizons, bars")
    p.add_argument("--train-len", type=int, default=8760, help="crypto: training bars per fold")
    p.add_argument("--test-len", type=int, default=720, help="crypto: test bars per fold")
    p.add_argument("--stride", type=int, default=1440,
                   help="crypto: bars between fold starts (1440 with 720 test bars: a test month every other month)")
    p.add_argument("--max-folds", type=int, help="crypto: stop after this many folds (default: all)")
    p.add_argument("--rounds", type=int, default=200, help="crypto: LightGBM rounds at most (early stopping 20)")
    p.add_argument("--graph-window", type=int, default=720, help="crypto: bars per correlation window")
    p.add_argument("--graph-stride", type=int, default=24, help="crypto: bars between snapshots")
    p.add_argument("--qlib-dir", metavar="DIR", default="data/qlib", help="crypto: Qlib bins (content-addressed)")
    p.add_argument("--csi300-horizons", type=positive_ints_arg, default=(1, 5), help="CSI300 label horizons, trading days")
    p.add_argument("--csi300-rounds", type=int, default=1000, help="CSI300: LightGBM rounds at most (published "
                   "1000, early stopping 50)")
    p.add_argument("--market", metavar="NAME", default="csi300", help="CSI300: Qlib market (instruments file)")
    p.add_argument("--instruments", metavar="LIST", help="CSI300: these instruments instead of the market "
                   "(quick checks)")
    p.add_argument("--cache-dir", metavar="DIR", default="data/qlib/feature_cache", help="CSI300: Alpha158 "
                   "raw-frame cache")
    p.add_argument("--no-cache", action="store_true", help="CSI300: compute Alpha158 every run")
    p.add_argument("--peers", type=_names, default=("linear", "gats"), help="CSI300: Qlib peer models, "
                   "comma-separated, or none")
    p.add_argument("--peer-epochs", type=int, help="CSI300: cap the GATs epochs (default: the peer settings')")
    p.add_argument("--no-costs", action="store_true", help="skip the max-Sharpe + cost-aware backtests")
    p.add_argument("--stage-cache", metavar="DIR", default="data/paper_cache", help="finished stages (a horizon's "
                   "ablation, a peer's scores, a cost backtest) kept across runs, keyed by the content of everything "
                   "that produced them")
    p.add_argument("--no-stage-cache", action="store_true", help="compute every stage and keep none")
    p.add_argument("--from-json", metavar="PATH", action="append", help="only write the paper again from a run's "
                   "paper.json (its figures and command; nothing is computed); repeat it to put several runs' datasets "
                   "in one paper")
    add_fanout_options(p)
    add_run_dir_option(p)
    add_json_option(p)
    p.set_defaults(func=_paper, paper_parser=p)
    return p


_NOT_IN_COMMAND = {"help", "verbose", "no_progress", "out", "json", "from_json", "stage_cache", "no_stage_cache"}


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run: every option that differs from its default, in parser order."""
    parts = ["PYTHONHASHSEED=0", "graphwiz", "reproduce", "paper"]
    for a in args.paper_parser._actions:
        if not a.option_strings or a.dest in _NOT_IN_COMMAND:
            continue
        v = getattr(args, a.dest, None)
        if v is None or v == a.default or v is False:
            continue
        flag = a.option_strings[-1] if a.option_strings[-1].startswith("--") else a.option_strings[0]
        if v is True:
            parts.append(flag)
        else:
            text = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
            parts += [flag, shlex.quote(text if text else "none")]
    return " ".join(parts)
