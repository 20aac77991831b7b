"""Symbol names: instrument codes, with the file stems and Qlib codes derived from them.

A symbol is an instrument code in upper case: a crypto pair ``BASE/QUOTE`` (``BTC/USDT``) or a code
without a quote currency (``AAPL``, ``SH600000``, ``BRK.B``). The quote currency is optional everywhere.

- file stems: ``BTC/USDT`` -> ``BTC_USDT`` (freqtrade's naming), ``AAPL`` -> ``AAPL``; a stem reads back
  unambiguously because codes never hold ``_``;
- Qlib codes: ``BTC/USDT`` -> ``BTCUSDT`` (Qlib codes cannot hold a slash), ``AAPL`` -> ``AAPL``.
"""

from __future__ import annotations

import re

from graphwiz_trader.errors import DataError

_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_CANONICAL_RE = re.compile(r"^[A-Z0-9][A-Z0-9.-]*(/[A-Z0-9][A-Z0-9.-]*)?$")
EXPECTED = "an instrument code such as 'AAPL' or 'SH600000', or BASE/QUOTE such as 'BTC/USDT'"


def split_symbol(symbol: str) -> tuple[str, str | None]:
    """``BTC/USDT`` -> (``BTC``, ``USDT``); ``AAPL`` -> (``AAPL``, None); upper-cased.

    Raises
    ------
    DataError
        when ``symbol`` is not one code or two codes around one ``/`` (letters, digits, ``.`` and ``-``,
        starting with a letter or digit).
    """
    parts = symbol.split("/") if isinstance(symbol, str) else []
    if len(parts) not in (1, 2) or not all(_PART_RE.match(p) for p in parts):
        raise DataError(f"malformed symbol {symbol!r}; expected {EXPECTED}")
    return parts[0].upper(), (parts[1].upper() if len(parts) == 2 else None)


def check_symbol(symbol: object, what: str = "symbol") -> str:
    """``symbol`` when it is a canonical (upper-case) instrument code, else a :class:`DataError` naming ``what``.

    Stored data (graph assets, regime scopes, trades) holds canonical symbols only, so ``btc/usdt`` and
    ``BTC/USDT`` never name two assets.
    """
    if not isinstance(symbol, str) or not _CANONICAL_RE.match(symbol):
        raise DataError(f"{what} {symbol!r} is not a symbol; expected {EXPECTED} (upper case)")
    return symbol


def quote_of(symbol: str) -> str | None:
    """The quote currency of ``BASE/QUOTE``, or None for a code without one."""
    return split_symbol(symbol)[1]


def file_stem(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC_USDT``; ``AAPL`` -> ``AAPL`` (freqtrade's and the store's file stem)."""
    base, quote = split_symbol(symbol)
    return base if quote is None else f"{base}_{quote}"


def symbol_from_stem(stem: str) -> str:
    """``BTC_USDT`` -> ``BTC/USDT``; ``AAPL`` -> ``AAPL``.

    Raises
    ------
    DataError
        when the stem is not ``CODE`` or ``BASE_QUOTE``.
    """
    parts = stem.split("_")
    if len(parts) > 2 or not all(_PART_RE.match(p) for p in parts):
        raise DataError(f"cannot read a symbol from file stem {stem!r}; expected CODE or BASE_QUOTE")
    return "/".join(p.upper() for p in parts)


def to_qlib_instrument(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTCUSDT``; ``AAPL`` -> ``AAPL``: Qlib instrument codes cannot hold a slash."""
    base, quote = split_symbol(symbol)
    return base if quote is None else f"{base}{quote}"


def parse_symbols(text: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Comma-separated ``BTC/USDT,AAPL`` (or a list) -> validated, upper-cased list; ``None`` stays ``None``."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    out = [s.strip().upper() for s in items if s.strip()]
    for s in out:
        split_symbol(s)
    return out
