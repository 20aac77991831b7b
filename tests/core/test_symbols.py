"""Symbols are instrument codes; the quote currency is optional everywhere."""

import pytest

from graphwiz_trader.core.symbols import (
    check_symbol,
    file_stem,
    parse_symbols,
    quote_of,
    split_symbol,
    symbol_from_stem,
    to_qlib_instrument,
)
from graphwiz_trader.errors import DataError


@pytest.mark.parametrize("symbol, parts, stem, code", [
    ("BTC/USDT", ("BTC", "USDT"), "BTC_USDT", "BTCUSDT"),
    ("AAPL", ("AAPL", None), "AAPL", "AAPL"),
    ("SH600000", ("SH600000", None), "SH600000", "SH600000"),
    ("BRK.B", ("BRK.B", None), "BRK.B", "BRK.B"),
])
def test_pairs_and_codes_have_one_stem_and_one_qlib_code_each_and_stems_read_back(symbol, parts, stem, code):
    assert split_symbol(symbol) == parts
    assert quote_of(symbol) == parts[1]
    assert file_stem(symbol) == stem and symbol_from_stem(stem) == symbol
    assert to_qlib_instrument(symbol) == code


def test_lower_case_input_is_upper_cased_by_the_parsers():
    assert parse_symbols("aapl, btc/usdt") == ["AAPL", "BTC/USDT"]
    assert symbol_from_stem("aapl") == "AAPL"


@pytest.mark.parametrize("bad", ["", "BTC/USDT/X", "BTC USDT", "BTC_USDT", "/USDT", ".A"])
def test_malformed_symbols_are_refused_naming_the_symbol(bad):
    with pytest.raises(DataError, match="malformed symbol"):
        split_symbol(bad)


def test_stored_data_takes_canonical_upper_case_symbols_only():
    assert check_symbol("AAPL") == "AAPL"
    with pytest.raises(DataError, match="asset 'aapl' is not a symbol"):
        check_symbol("aapl", "asset")
