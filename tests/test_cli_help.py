"""The command line helps: every flag explains itself and shows its default, help is lazy, errors are one line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphwiz_trader import __version__
from graphwiz_trader.cli import COMMANDS, build_parser, main


def every_parser(parser: argparse.ArgumentParser, path: str = "graphwiz"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_parser(sub, f"{path} {name}")


def test_every_flag_of_every_command_has_help_text():
    missing = [f"{path} {a.option_strings[0]}" for path, p in every_parser(build_parser("*"))
               for a in p._actions if a.option_strings and not (a.help or "").strip()]
    assert not missing, "flags without help: " + ", ".join(missing)


def test_every_flag_with_a_default_shows_it_in_the_help():
    hidden = []
    for path, p in every_parser(build_parser("*")):
        formatter = p._get_formatter()
        for a in p._actions:
            if not a.option_strings or a.default in (None, False, argparse.SUPPRESS) or a.nargs == 0:
                continue
            if "default" not in formatter._get_help_string(a).lower():
                hidden.append(f"{path} {a.option_strings[0]}")
    assert not hidden, "defaults not shown: " + ", ".join(hidden)


def test_the_top_level_help_lists_each_command_with_the_help_its_module_registers():
    full = build_parser("*")
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    registered = {c.dest: c.help for c in sub._choices_actions}
    assert set(registered) == set(COMMANDS)
    assert {name: h for name, (_, h) in COMMANDS.items()} == registered


def test_top_level_help_imports_no_command_module():
    code = ("import sys\nfrom graphwiz_trader.cli import build_parser\nbuild_parser(None).format_help()\n"
            "heavy = [m for m in ('pandas', 'qlib', 'torch', 'neo4j', 'lightgbm') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"graphwiz_trader {__version__}"


@pytest.mark.parametrize("argv, needle", [
    (["features", "--start", "2023-13-45"], "2023-13-45"),
    (["features", "--timeframe", "1H"], "unknown timeframe '1H'"),
    (["features", "--symbols", "BTC_USDT"], "malformed symbol"),
])
def test_a_bad_value_is_a_one_line_usage_error_not_a_traceback(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_a_command_gets_its_own_run_folder_with_what_it_promises(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHWIZ_RUNS_DIR", str(tmp_path / "runs"))
    argv = ["features", "--format", "synthetic", "--symbols", "SYN00/USDT,SYN01/USDT", "--qlib-dir",
            str(tmp_path / "q"), "--mlflow-dir", str(tmp_path / "ml"), "--no-extras"]
    assert main(argv) == 0
    runs = list((tmp_path / "runs" / "features").iterdir())
    assert len(runs) == 1
    run = runs[0]
    cmd = json.loads((run / "command.json").read_text())
    assert cmd["argv"] == argv and cmd["version"] == __version__
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run_dir"] == str(run) and Path(summary["outputs"]["features"]).exists()
    import pandas as pd

    frame = pd.read_parquet(run / "features.parquet")
    assert frame.shape == (summary["rows"], 158)
    assert main(argv) == 0
    assert len(list((tmp_path / "runs" / "features").iterdir())) == 2, "a second invocation gets a second folder"
