"""Market data: sources (ccxt, freqtrade, CSV, synthetic), the Parquet store, the validator, Qlib bins."""

from graphwiz_trader.data.bars import OHLCV, normalize_bars
from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.data.ccxt_source import CcxtBarSource
from graphwiz_trader.data.qlib_bins import write_qlib_bins
from graphwiz_trader.data.sources import available_symbols, read_bars
from graphwiz_trader.data.store import ParquetStore
from graphwiz_trader.data.synthetic import SyntheticMarket, SyntheticMarketSettings, generate_synthetic_market
from graphwiz_trader.data.validate import ValidationReport, fill_gaps, sort_and_dedupe, validate_bars

__all__ = [
    "OHLCV",
    "ParquetStore",
    "CcxtBarSource",
    "SyntheticMarket",
    "SyntheticMarketSettings",
    "ValidationReport",
    "available_symbols",
    "fill_gaps",
    "generate_synthetic_market",
    "normalize_bars",
    "read_bars",
    "sort_and_dedupe",
    "to_qlib_instrument",
    "validate_bars",
    "write_qlib_bins",
]
