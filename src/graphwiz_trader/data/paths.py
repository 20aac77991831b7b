"""Where the project's real reference data lives (never committed).

``shared_data_dir()`` is ``$GRAPHWIZ_SHARED_DATA`` when set, else ``../shared/data`` from the working folder
(the project's commands, tests and benchmarks run from the checkout's root).
"""

from __future__ import annotations

import os
from pathlib import Path

MAJORS_20: tuple[str, ...] = (
    "BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT", "LTC/USDT", "LINK/USDT",
    "TRX/USDT", "BCH/USDT", "ETC/USDT", "EOS/USDT", "XLM/USDT", "XTZ/USDT", "ATOM/USDT", "ALGO/USDT",
    "FET/USDT", "FTM/USDT", "HBAR/USDT", "STX/USDT",
)


def shared_data_dir() -> Path:
    env = os.environ.get("GRAPHWIZ_SHARED_DATA")
    return Path(env) if env else Path.cwd().parent / "shared" / "data"


def binance_dir() -> Path:
    """Freqtrade-layout Binance spot candles (``1h/`` and ``1d/`` inside)."""
    return shared_data_dir() / "binance_spot_2020_2024"


def csi300_dir() -> Path:
    """Qlib-format CSI300 daily data."""
    return shared_data_dir() / "qlib_cn_csi300"
