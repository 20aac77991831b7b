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


def seeds_arg(text: str) -> tuple[int, ...]:
    """``3`` -> (0, 1, 2); ``7,11,13`` -> (7, 11, 13) (seeds of model fits)."""
    try:
        if "," in text:
            out = tuple(int(x) for x in text.split(",") if x.strip())
            if len(set(out)) != len(out) or not out:
                raise argparse.ArgumentTypeError(f"--seeds must be distinct, got {text!r}")
            return out
        n = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds takes a count (3) or a list (7,11,13), got {text!r}") from exc
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds must be >= 1, got {n}")
    return tuple(range(n))


def positive_ints_arg(text: str) -> tuple[int, ...]:
    """``1,4,24`` -> (1, 4, 24): comma-separated positive integers (horizons in bars)."""
    try:
        out = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return out
