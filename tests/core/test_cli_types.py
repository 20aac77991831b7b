"""Argument types turn bad dates, timeframes, Qlib frequencies and symbols into one-line usage errors."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from graphwiz_trader.core.cli_types import qlib_freq_arg, symbols_arg, timeframe_arg, utc_arg


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphwiz")
    p.add_argument("--start", type=utc_arg)
    p.add_argument("--timeframe", type=timeframe_arg)
    p.add_argument("--freq", type=qlib_freq_arg)
    p.add_argument("--symbols", type=symbols_arg)
    return p


@pytest.mark.parametrize("argv, message", [
    (["--start", "2023-13-45"], "argument --start: date: '2023-13-45' is not a valid timestamp"),
    (["--timeframe", "1H"], "argument --timeframe: unknown timeframe '1H'; expected e.g. '1m', '15m', '1h', '4h', "
                            "'1d'; did you mean '1h'? (timeframes are lower-case)"),
    (["--timeframe", "60min"], "did you mean '1h'? ('60min' is a Qlib frequency name)"),
    (["--freq", "1h"], "argument --freq: unknown qlib freq '1h'; expected 'day' or '<N>min' (hourly is '60min'); "
                       "did you mean '60min'?"),
    (["--symbols", "BTC/USDT/X"], "argument --symbols: malformed symbol 'BTC/USDT/X'; expected an instrument code"),
])
def test_bad_values_are_usage_errors_naming_the_option_and_the_fix(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_good_values_are_parsed():
    args = parser().parse_args(["--start", "2023-01-31T12:00Z", "--timeframe", "4h", "--freq", "day",
                                "--symbols", "btc/usdt, ETH/USDT"])
    assert args.start == pd.Timestamp("2023-01-31 12:00", tz="UTC")
    assert (args.timeframe, args.freq, args.symbols) == ("4h", "day", ["BTC/USDT", "ETH/USDT"])
