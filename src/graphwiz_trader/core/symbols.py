"""Symbol names: ``BASE/QUOTE`` (``BTC/USDT``) and the file stems and Qlib codes derived from them."""

from __future__ import annotations

import re

from graphwiz_trader.errors import DataError

_PART_RE = re.compile(r"^[A-Za-z0-9.-]+$")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTC/USDT`` -> (``BTC``, ``USDT``), upper-cased.

    Raises
    ------
    DataError
        when ``symbol`` is not two non-empty alphanumeric parts (``.``/``-`` allowed) around one ``/``.
    """
    parts = symbol.split("/") if isinstance(symbol, str) else []
    if len(parts) != 2 or not all(_PART_RE.match(p) for p in parts):
        raise DataError(f"malformed symbol {symbol!r}; expected BASE/QUOTE such as 'BTC/USDT'")
    return parts[0].upper(), parts[1].upper()


def file_stem(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC_USDT`` (freqtrade's and the store's file stem)."""
    base, quote = split_symbol(symbol)
    return f"{base}_{quote}"


def symbol_from_stem(stem: str) -> str:
    """``BTC_USDT`` -> ``BTC/USDT``."""
    base, _, quote = stem.partition("_")
    if not base or not quote:
        raise DataError(f"cannot read a symbol from file stem {stem!r}; expected BASE_QUOTE")
    return f"{base}/{quote}"


def to_qlib_instrument(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTCUSDT``: Qlib instrument codes cannot hold a slash."""
    base, quote = split_symbol(symbol)
    return f"{base}{quote}"


def parse_symbols(text: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Comma-separated ``BTC/USDT,ETH/USDT`` (or a list) -> validated list; ``None`` stays ``None``."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    out = [s.strip().upper() for s in items if s.strip()]
    for s in out:
        split_symbol(s)
    return out
