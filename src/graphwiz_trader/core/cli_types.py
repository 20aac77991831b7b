"""``argparse`` ``type=`` functions: bad values become a one-line usage error, never a traceback."""

from __future__ import annotations

import argparse

import pandas as pd

from graphwiz_trader.errors import GraphwizError


def utc_arg(text: str) -> pd.Timestamp:
    """``--start 2023-01-31`` -> a UTC timestamp; ``2023-13-45`` -> a usage error naming the value."""
    from graphwiz_trader.core.utc import to_utc

    try:
        return to_utc(text, "date")
    except GraphwizError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def timeframe_arg(text: str) -> str:
    """``1h`` stays ``1h``; ``1H`` or ``60min`` -> a usage error with the accepted forms."""
    from graphwiz_trader.core.timeframes import timeframe_minutes

    try:
        timeframe_minutes(text)
    except GraphwizError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def qlib_freq_arg(text: str) -> str:
    """``60min`` / ``day`` stay; ``1h`` -> a usage error saying hourly is ``60min``."""
    from graphwiz_trader.core.timeframes import from_qlib_freq

    try:
        from_qlib_freq(text)
    except GraphwizError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def symbols_arg(text: str) -> list[str]:
    """``BTC/USDT,ETH/USDT`` -> a validated list."""
    from graphwiz_trader.core.symbols import parse_symbols

    try:
        return parse_symbols(text) or []
    except GraphwizError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def non_negative_float_arg(text: str) -> float:
    """``--older-than 7`` -> 7.0; negative, NaN or non-numbers -> a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def positive_float_arg(text: str) -> float:
    """``--max-size-mb 512`` -> 512.0; zero, negative, NaN or non-numbers -> a usage error."""
    value = non_negative_float_arg(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0")
    return value
